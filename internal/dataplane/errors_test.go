package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestErrorCodes_AreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range allCodes {
		if seen[c.Code] {
			t.Errorf("code %s registered twice", c.Code)
		}
		seen[c.Code] = true
		for _, r := range c.Code {
			if (r < 'A' || r > 'Z') && r != '_' {
				t.Errorf("code %q has a character the spec forbids", c.Code)
			}
		}
		if c.Message == "" || c.Status < 400 || c.Status > 599 {
			t.Errorf("code %s: message %q, status %d", c.Code, c.Message, c.Status)
		}
	}
	for _, spec := range []string{"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
		"MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN",
		"SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"} {
		if !seen[spec] {
			t.Errorf("spec code %s not registered", spec)
		}
	}
}

func TestToAPIError(t *testing.T) {
	d := digest.FromString("x")
	wrap := func(err error) error { return fmt.Errorf("doing something: %w", err) }
	tests := []struct {
		name     string
		err      error
		notFound *errorCode
		code     *errorCode
		status   int
	}{
		{"api error passes through", wrap(newError(codeDenied, "", nil)), nil, codeDenied, http.StatusForbidden},
		{"missing blob reference", wrap(&meta.MissingReferenceError{Digest: d}), nil, codeManifestBlobUnknown, http.StatusBadRequest},
		{"missing child manifest", wrap(&meta.MissingReferenceError{Digest: d, Manifest: true}), nil, codeManifestBlobUnknown, http.StatusBadRequest},
		{"invalid manifest", wrap(fmt.Errorf("%w: config is missing", manifest.ErrInvalid)), nil, codeManifestInvalid, http.StatusBadRequest},
		{"unsupported manifest", wrap(manifest.ErrUnsupportedMediaType), nil, codeManifestInvalid, http.StatusBadRequest},
		{"digest mismatch", wrap(blob.ErrDigestMismatch), nil, codeDigestInvalid, http.StatusBadRequest},
		{"unsupported algorithm", wrap(blob.ErrUnsupportedAlgorithm), nil, codeDigestInvalid, http.StatusBadRequest},
		{"offset mismatch", wrap(blob.ErrOffsetMismatch), nil, codeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable},
		{"upload conflict", wrap(meta.ErrConflict), nil, codeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable},
		{"blob not found", wrap(blob.ErrNotFound), codeBlobUnknown, codeBlobUnknown, http.StatusNotFound},
		{"meta not found at a manifest", wrap(meta.ErrNotFound), codeManifestUnknown, codeManifestUnknown, http.StatusNotFound},
		{"upload not found", wrap(meta.ErrNotFound), codeBlobUploadUnknown, codeBlobUploadUnknown, http.StatusNotFound},
		{"not found without a hint", wrap(meta.ErrNotFound), nil, codeNameUnknown, http.StatusNotFound},
		{"unauthenticated", wrap(identity.ErrUnauthenticated), nil, codeUnauthorized, http.StatusUnauthorized},
		{"invalid scope", wrap(identity.ErrInvalidScope), nil, codeUnsupported, http.StatusBadRequest},
		{"body too large", wrap(&http.MaxBytesError{Limit: 10}), nil, codeSizeInvalid, http.StatusRequestEntityTooLarge},
		{"body cut short", wrap(io.ErrUnexpectedEOF), nil, codeSizeInvalid, http.StatusBadRequest},
		{"chunk too long", wrap(errBodyTooLong), nil, codeSizeInvalid, http.StatusBadRequest},
		{"chunk too short", wrap(errBodyTooShort), nil, codeSizeInvalid, http.StatusBadRequest},
		{"client gone", wrap(context.Canceled), nil, codeBlobUploadInvalid, http.StatusBadRequest},
		{"body read failed", wrap(&bodyError{err: errors.New("connection reset by peer")}), nil, codeBlobUploadInvalid, http.StatusBadRequest},
		{"body cut short, marked", wrap(&bodyError{err: io.ErrUnexpectedEOF}), nil, codeSizeInvalid, http.StatusBadRequest},
		{"anything else", errors.New("disk on fire"), nil, codeUnknown, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		e := toAPIError(tt.err, tt.notFound)
		if e.Code != tt.code || e.status() != tt.status {
			t.Errorf("%s: %s/%d, want %s/%d", tt.name, e.Code.Code, e.status(), tt.code.Code, tt.status)
		}
	}
}

func TestWriteError_Envelope(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	rec.Header().Set("Docker-Content-Digest", "sha256:stale")
	writeError(rec, req, &apiError{Code: codeManifestBlobUnknown, Detail: digestDetail{Digest: "sha256:x"},
		Cause: errors.New("secret database detail")})
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Docker-Content-Digest") != "" {
		t.Fatalf("status %d, headers %v", rec.Code, rec.Header())
	}
	var got errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := errorEntry{Code: "MANIFEST_BLOB_UNKNOWN", Message: codeManifestBlobUnknown.Message, Detail: map[string]any{"digest": "sha256:x"}}
	if len(got.Errors) != 1 || got.Errors[0].Code != want.Code || got.Errors[0].Message != want.Message ||
		fmt.Sprint(got.Errors[0].Detail) != fmt.Sprint(want.Detail) {
		t.Errorf("body %s", rec.Body)
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Error("the cause leaked into the response")
	}

	rec = httptest.NewRecorder()
	writeError(rec, httptest.NewRequest(http.MethodHead, "/v2/", nil), newError(codeBlobUnknown, "", nil))
	if rec.Code != http.StatusNotFound || rec.Body.Len() != 0 {
		t.Errorf("HEAD error: %d with %d body bytes", rec.Code, rec.Body.Len())
	}
}
