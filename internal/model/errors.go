package model

import "fmt"

// Error is a management-plane error in ARM's shape: an HTTP status, a code
// clients switch on, a message for people and the JSON path it concerns.
type Error struct {
	Status  int
	Code    string
	Message string
	Target  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, target, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Target: target, Message: fmt.Sprintf(format, args...)}
}

// HTTP statuses used by the model's errors (net/http is not imported to keep
// the package free of I/O concerns).
const (
	statusBadRequest = 400
	statusConflict   = 409
)

// Codes of decoding errors.
const (
	// CodeInvalidRequestContent: the body is not JSON, or a value has the
	// wrong type or is not one of an enum's values.
	CodeInvalidRequestContent = "InvalidRequestContent"
)
