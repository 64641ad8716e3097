package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/moat-registry/moat/internal/model"
)

// apiError is an ARM error answer.
type apiError struct {
	status  int
	code    string
	message string
	target  string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// ErrForbidden, returned (wrapped) by Options.Authorize, turns the refusal
// into 403 AuthorizationFailed instead of 401 AuthenticationFailed.
var ErrForbidden = errors.New("arm: forbidden")

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

// writeError answers err as an ARM error; errors that are neither model nor
// arm errors are 500s whose detail goes to the log, not the client.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var me *model.Error
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &me):
		ae = &apiError{status: me.Status, code: me.Code, message: me.Message, target: me.Target}
	default:
		h.log.ErrorContext(r.Context(), "management request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = newError(http.StatusInternalServerError, "InternalServerError", "the request failed; see the server log")
	}
	w.Header().Set("x-ms-error-code", ae.code)
	writeJSON(w, ae.status, errorBody{Error: errorDetail{Code: ae.code, Message: ae.message, Target: ae.target}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"InternalServerError","message":"response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b) // a failed write means the client went away; nothing to do
}
