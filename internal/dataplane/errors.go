package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// errorCode is a registered protocol error: its code, the message used when
// the site has nothing more specific to say, and its HTTP status.
type errorCode struct {
	Code    string
	Message string
	Status  int
}

// The distribution spec's error codes, plus the codes clients know from the
// Docker registry API that the spec lists as legacy (TAG_INVALID) and the
// catch-all for server faults (UNKNOWN, as Distribution names it).
var (
	codeBlobUnknown         = &errorCode{"BLOB_UNKNOWN", "blob unknown to registry", http.StatusNotFound}
	codeBlobUploadInvalid   = &errorCode{"BLOB_UPLOAD_INVALID", "blob upload invalid", http.StatusBadRequest}
	codeBlobUploadUnknown   = &errorCode{"BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", http.StatusNotFound}
	codeDigestInvalid       = &errorCode{"DIGEST_INVALID", "provided digest did not match uploaded content", http.StatusBadRequest}
	codeManifestBlobUnknown = &errorCode{"MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", http.StatusBadRequest}
	codeManifestInvalid     = &errorCode{"MANIFEST_INVALID", "manifest invalid", http.StatusBadRequest}
	codeManifestUnknown     = &errorCode{"MANIFEST_UNKNOWN", "manifest unknown to registry", http.StatusNotFound}
	codeNameInvalid         = &errorCode{"NAME_INVALID", "invalid repository name", http.StatusBadRequest}
	codeNameUnknown         = &errorCode{"NAME_UNKNOWN", "repository name not known to registry", http.StatusNotFound}
	codeSizeInvalid         = &errorCode{"SIZE_INVALID", "provided length did not match content length", http.StatusBadRequest}
	codeUnauthorized        = &errorCode{"UNAUTHORIZED", "authentication required", http.StatusUnauthorized}
	codeDenied              = &errorCode{"DENIED", "requested access to the resource is denied", http.StatusForbidden}
	codeUnsupported         = &errorCode{"UNSUPPORTED", "the operation is unsupported", http.StatusMethodNotAllowed}
	codeTooManyRequests     = &errorCode{"TOOMANYREQUESTS", "too many requests", http.StatusTooManyRequests}
	codeTagInvalid          = &errorCode{"TAG_INVALID", "invalid tag", http.StatusBadRequest}
	codeUnknown             = &errorCode{"UNKNOWN", "internal server error", http.StatusInternalServerError}
)

// allCodes lists every registered code (for tests and documentation).
var allCodes = []*errorCode{
	codeBlobUnknown, codeBlobUploadInvalid, codeBlobUploadUnknown, codeDigestInvalid,
	codeManifestBlobUnknown, codeManifestInvalid, codeManifestUnknown, codeNameInvalid,
	codeNameUnknown, codeSizeInvalid, codeUnauthorized, codeDenied, codeUnsupported,
	codeTooManyRequests, codeTagInvalid, codeUnknown,
}

// apiError is one error response. Status overrides the code's status where
// the spec asks for another (416 for an out-of-order chunk, 413 for an
// oversized manifest, 404 for an unknown endpoint). Cause is the Go error
// behind it, logged but never sent: it may name files or database details.
type apiError struct {
	Code    *errorCode
	Status  int
	Message string
	Detail  any
	Cause   error
}

func (e *apiError) Error() string {
	msg := e.message()
	if e.Cause != nil {
		return e.Code.Code + ": " + msg + ": " + e.Cause.Error()
	}
	return e.Code.Code + ": " + msg
}

func (e *apiError) Unwrap() error { return e.Cause }

func (e *apiError) status() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status
}

func (e *apiError) message() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code.Message
}

// newError returns an error with code and a message (empty for the code's
// default); detail, when not nil, is sent as the error's "detail".
func newError(code *errorCode, message string, detail any) *apiError {
	return &apiError{Code: code, Message: message, Detail: detail}
}

func errorf(code *errorCode, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// digestDetail is the detail of errors about one digest.
type digestDetail struct {
	Digest string `json:"digest"`
}

// toAPIError maps an error from the stores, the identity service, the
// manifest parser or the request body to the response it deserves. notFound
// is the code for a plain "not found" at this site (BLOB_UNKNOWN,
// MANIFEST_UNKNOWN, ...), because the stores cannot know which thing the
// client was asking for. Anything unrecognised is a server fault: 500 UNKNOWN,
// with the cause kept for the log.
func toAPIError(err error, notFound *errorCode) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var missing *meta.MissingReferenceError
	var maxBytes *http.MaxBytesError
	var body *bodyError
	switch {
	case errors.As(err, &missing):
		kind := "blob"
		if missing.Manifest {
			kind = "manifest"
		}
		return &apiError{
			Code:    codeManifestBlobUnknown,
			Message: fmt.Sprintf("manifest references %s %s, which is not in the repository", kind, missing.Digest),
			Detail:  digestDetail{Digest: missing.Digest.String()},
			Cause:   err,
		}
	case errors.Is(err, manifest.ErrInvalid), errors.Is(err, manifest.ErrUnsupportedMediaType):
		return &apiError{Code: codeManifestInvalid, Message: err.Error(), Cause: err}
	case errors.Is(err, blob.ErrDigestMismatch):
		return &apiError{Code: codeDigestInvalid, Cause: err}
	case errors.Is(err, blob.ErrUnsupportedAlgorithm):
		return &apiError{Code: codeDigestInvalid, Message: "unsupported digest algorithm (use sha256 or sha512)", Cause: err}
	case errors.Is(err, blob.ErrOffsetMismatch), errors.Is(err, meta.ErrConflict):
		// Another request moved the upload on (or lost bytes): the client
		// must ask where it stands and continue from there.
		return &apiError{Code: codeBlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable,
			Message: "the upload's offset changed; GET the upload for its current range", Cause: err}
	case errors.Is(err, blob.ErrNotFound), errors.Is(err, meta.ErrNotFound):
		if notFound == nil {
			notFound = codeNameUnknown
		}
		return &apiError{Code: notFound, Cause: err}
	case errors.Is(err, identity.ErrUnauthenticated):
		return &apiError{Code: codeUnauthorized, Cause: err}
	case errors.Is(err, identity.ErrInvalidScope):
		return &apiError{Code: codeUnsupported, Status: http.StatusBadRequest, Message: err.Error(), Cause: err}
	case errors.As(err, &maxBytes):
		return &apiError{Code: codeSizeInvalid, Status: http.StatusRequestEntityTooLarge,
			Message: "request body exceeds the limit of " + strconv.FormatInt(maxBytes.Limit, 10) + " bytes", Cause: err}
	case errors.Is(err, errBodyTooShort), errors.Is(err, errBodyTooLong), errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Code: codeSizeInvalid, Message: "request body length does not match Content-Length or Content-Range", Cause: err}
	case errors.As(err, &body):
		return &apiError{Code: codeBlobUploadInvalid, Message: "could not read the request body", Cause: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away or the request timed out; nobody reads the
		// answer, but the log should not call it a server fault.
		return &apiError{Code: codeBlobUploadInvalid, Message: "request canceled", Cause: err}
	}
	return &apiError{Code: codeUnknown, Cause: err}
}

// errorBody is the JSON error envelope of the distribution spec.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError sends e. For HEAD requests the body is left out (net/http would
// drop it anyway) but the headers still describe it.
func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	body, err := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code.Code, Message: e.message(), Detail: e.Detail}}})
	if err != nil {
		// Only an unmarshalable Detail can get here; drop it.
		body, _ = json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code.Code, Message: e.message()}}}) // only strings: cannot fail
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Docker-Content-Digest")
	w.WriteHeader(e.status())
	if r.Method != http.MethodHead {
		_, _ = w.Write(body) // the client may be gone; nothing else to do
	}
}
