package dataplane

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// digestParam validates a digest from the URL (path or query) and answers
// 400 DIGEST_INVALID when it is not one moat can verify.
func digestParam(s, what string) (digest.Digest, *apiError) {
	d, st := parseDigest(s)
	switch st {
	case digestOK:
		return d, nil
	case digestUnsupported:
		return "", &apiError{Code: codeDigestInvalid,
			Message: fmt.Sprintf("unsupported digest algorithm in %s %q (use sha256 or sha512)", what, s),
			Detail:  digestDetail{Digest: s}}
	default:
		return "", &apiError{Code: codeDigestInvalid,
			Message: fmt.Sprintf("invalid %s %q", what, s), Detail: digestDetail{Digest: s}}
	}
}

// getBlob serves GET and HEAD of a blob. The metadata store decides whether
// the repository may see it (bytes present elsewhere in the deployment do
// not count); HEAD is answered from the metadata alone. GET streams the
// store's reader through http.ServeContent, which handles Range and, for
// file-backed stores, lets net/http use sendfile.
func (h *Handler) getBlob(q *request) {
	d, e := digestParam(q.route.Ref, "digest")
	if e != nil {
		q.fail(e)
		return
	}
	ctx := q.r.Context()
	size, err := h.meta.StatBlob(ctx, q.registry, q.route.Name, d)
	if err != nil {
		q.failErr(err, codeBlobUnknown)
		return
	}
	if q.r.Method == http.MethodHead {
		setBlobHeaders(q.Header(), d)
		q.Header()["Content-Length"] = []string{strconv.FormatInt(size, 10)}
		q.WriteHeader(http.StatusOK)
		return
	}
	if h.redirect != nil {
		h.redirectBlob(q, d)
		return
	}
	rd, err := h.blobs.Open(ctx, d)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			// Linked but gone from the blob store: the stores disagree.
			h.log.ErrorContext(ctx, "blob linked in repository but missing from blob store",
				"registry", q.registry, "repository", q.route.Name, "digest", d.String())
		}
		q.failErr(fmt.Errorf("opening blob %s: %w", d, err), codeBlobUnknown)
		return
	}
	defer func() { _ = rd.Close() }() // read-only; nothing to lose
	setBlobHeaders(q.Header(), d)
	if onlyZeroSuffixRanges(q.r.Header.Get("Range")) {
		// RFC 9110 §14.1.2: a suffix of length zero cannot be satisfied;
		// net/http would answer 206 with an empty body.
		q.Header()["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
		q.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	http.ServeContent(q, q.r, "", time.Time{}, rd)
}

// redirectBlob answers a blob GET with 307 to a signed URL of the blob
// store. The network decision and authorization have already run for this
// request, but the client then fetches from the storage service, which
// moat's network rules do not guard: whoever holds the URL may read that one
// blob until it expires, from wherever the storage account's own firewall
// admits. That is why it is off by default.
func (h *Handler) redirectBlob(q *request, d digest.Digest) {
	u, err := h.redirect.DownloadURL(q.r.Context(), d, h.redirectTTL)
	if err != nil {
		q.failErr(fmt.Errorf("signing a download URL for %s: %w", d, err), codeBlobUnknown)
		return
	}
	hdr := q.Header()
	hdr["Docker-Content-Digest"] = []string{string(d)}
	hdr["Location"] = []string{u}
	// The URL expires; nothing may cache the answer.
	hdr["Cache-Control"] = []string{"no-store"}
	q.WriteHeader(http.StatusTemporaryRedirect)
}

// onlyZeroSuffixRanges reports whether a Range header asks for bytes and
// every range in it is a zero-length suffix ("bytes=-0", "bytes=-0, -00").
func onlyZeroSuffixRanges(h string) bool {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return false
	}
	// Parsed as net/http parses it: blanks around ranges and around their
	// ends are trimmed ("- 0" is "-0"), empty ranges are skipped.
	zero := false
	for _, r := range strings.Split(spec, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		suffix, ok := strings.CutPrefix(r, "-")
		suffix = strings.TrimSpace(suffix)
		if !ok || suffix == "" || strings.Trim(suffix, "0") != "" {
			return false
		}
		zero = true
	}
	return zero
}

// setBlobHeaders sets the headers of a successful blob GET or HEAD.
func setBlobHeaders(hdr http.Header, d digest.Digest) {
	hdr["Docker-Content-Digest"] = []string{string(d)}
	hdr["Content-Type"] = []string{"application/octet-stream"}
	hdr["Accept-Ranges"] = []string{"bytes"}
	hdr["Etag"] = []string{`"` + string(d) + `"`}
	// Content under a digest never changes.
	hdr["Cache-Control"] = []string{"max-age=31536000"}
}

// deleteBlob removes the blob from the repository. The bytes stay in the
// blob store: other repositories and registries may share them, and only
// garbage collection deletes them.
func (h *Handler) deleteBlob(q *request) {
	d, e := digestParam(q.route.Ref, "digest")
	if e != nil {
		q.fail(e)
		return
	}
	if err := h.meta.UnlinkBlob(q.r.Context(), q.registry, q.route.Name, d); err != nil {
		q.failErr(fmt.Errorf("unlinking blob %s: %w", d, err), codeBlobUnknown)
		return
	}
	q.Header().Set("Content-Length", "0")
	q.WriteHeader(http.StatusAccepted)
}
