package dataplane

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Errors of a chunk whose body does not match its Content-Range.
var (
	errBodyTooShort = errors.New("request body shorter than its Content-Range")
	errBodyTooLong  = errors.New("request body longer than its Content-Range")
)

// startUpload serves POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload in one request (?digest=), or
// the start of an upload session (202 and its Location).
func (h *Handler) startUpload(q *request) {
	query := q.r.URL.Query()
	if mount, ok := query["mount"]; ok && len(mount) > 0 && mount[0] != "" {
		h.mountBlob(q, mount[0], query.Get("from"))
		return
	}
	if !h.authorizeRepo(q, actionsPullPush) {
		return
	}
	if dg, ok := query["digest"]; ok {
		d, e := digestParam(firstOf(dg), "digest parameter")
		if e != nil {
			q.fail(e)
			return
		}
		h.monolithicUpload(q, d)
		return
	}
	var alg digest.Algorithm
	if a := query.Get("digest-algorithm"); a != "" {
		if a != string(digest.SHA256) && a != string(digest.SHA512) {
			q.fail(errorf(codeDigestInvalid, "unsupported digest-algorithm %q (use sha256 or sha512)", a))
			return
		}
		alg = digest.Algorithm(a)
	}
	h.newUpload(q, alg)
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// mountBlob links a blob of repository from into the request's repository,
// both in the request's registry: a mount never looks at another registry.
// The caller needs pull and push on the target and pull on the source. When
// the source does not have the blob, or the caller was refused pull on it,
// an ordinary upload starts instead (202), as the spec prescribes.
func (h *Handler) mountBlob(q *request, mount, from string) {
	d, e := digestParam(mount, "mount digest")
	if e != nil {
		q.fail(e)
		return
	}
	target := identity.Access{Type: identity.TypeRepository, Name: q.route.Name, Actions: actionsPullPush}
	if from == "" {
		need := []identity.Access{target}
		if _, ok := h.authorize(q, need, need); ok {
			h.newUpload(q, d.Algorithm())
		}
		return
	}
	if !validName(from) {
		q.fail(&apiError{Code: codeNameInvalid, Message: fmt.Sprintf("invalid repository name %q in from", from),
			Detail: nameDetail{Name: from}})
		return
	}
	source := identity.Access{Type: identity.TypeRepository, Name: from, Actions: actionsPull}
	both := []identity.Access{target, source}
	c, ok := h.authorize(q, both[:1], both)
	if !ok {
		return
	}
	mayPull, e := h.mayPullSource(q, c, source, both)
	if e != nil {
		if e.Code == codeUnauthorized {
			q.decision = decisionDenied
		}
		q.fail(e)
		return
	}
	if !mayPull {
		h.newUpload(q, d.Algorithm())
		return
	}
	ctx := q.r.Context()
	size, err := h.meta.StatBlob(ctx, q.registry, from, d)
	if errors.Is(err, meta.ErrNotFound) {
		h.newUpload(q, d.Algorithm())
		return
	}
	if err != nil {
		q.failErr(fmt.Errorf("looking up blob %s in %q: %w", d, from, err), nil)
		return
	}
	if err := h.meta.LinkBlob(ctx, q.registry, q.route.Name, d, size); err != nil {
		q.failErr(fmt.Errorf("mounting blob %s from %q: %w", d, from, err), nil)
		return
	}
	h.blobCreated(q, d)
}

// mayPullSource decides whether the caller of a mount may read the source
// repository. A bearer token that never mentioned the source earns a 401
// naming both scopes, so the client fetches a token that does; a token (or
// Basic principal) that was refused pull there simply gets no mount.
func (h *Handler) mayPullSource(q *request, c caller, source identity.Access, both []identity.Access) (bool, *apiError) {
	need := []identity.Access{source}
	if c.claims != nil {
		if covers(c.claims.Access, need) {
			return true, nil
		}
		for _, a := range c.claims.Access {
			if a.Type == source.Type && a.Name == source.Name {
				return false, nil
			}
		}
		h.challengeHeader(q, both, "insufficient_scope")
		return false, &apiError{Code: codeUnauthorized, Detail: both}
	}
	acc, err := h.granted(q, c, need)
	if err != nil {
		return false, toAPIError(err, nil)
	}
	return covers(acc, need), nil
}

// newUpload starts an upload session: the blob store prepares it and its
// state goes into the metadata store, where any process can continue it.
func (h *Handler) newUpload(q *request, alg digest.Algorithm) {
	ctx := q.r.Context()
	id, err := newUploadID()
	if err != nil {
		q.failErr(err, nil)
		return
	}
	st, err := h.blobs.StartUpload(ctx, id, alg)
	if err != nil {
		q.failErr(fmt.Errorf("starting upload: %w", err), nil)
		return
	}
	u := meta.Upload{ID: id, Registry: q.registry, Repository: q.route.Name, Offset: st.Offset, HashState: st.Hash}
	if err := h.meta.CreateUpload(ctx, u); err != nil {
		h.abortQuietly(q, id)
		q.failErr(fmt.Errorf("recording upload: %w", err), nil)
		return
	}
	h.uploadAccepted(q, id, st.Offset, http.StatusAccepted)
}

// monolithicUpload stores a whole blob sent with POST ?digest=. It is
// recorded like any upload while it runs, so that a crash mid-way leaves a
// record for PurgeUploads to clean up.
func (h *Handler) monolithicUpload(q *request, d digest.Digest) {
	ctx := q.r.Context()
	id, err := newUploadID()
	if err != nil {
		q.failErr(err, nil)
		return
	}
	st, err := h.blobs.StartUpload(ctx, id, d.Algorithm())
	if err != nil {
		q.failErr(fmt.Errorf("starting upload: %w", err), nil)
		return
	}
	u := meta.Upload{ID: id, Registry: q.registry, Repository: q.route.Name, Offset: st.Offset, HashState: st.Hash}
	if err := h.meta.CreateUpload(ctx, u); err != nil {
		h.abortQuietly(q, id)
		q.failErr(fmt.Errorf("recording upload: %w", err), nil)
		return
	}
	if q.r.ContentLength != 0 {
		if st, err = h.blobs.Append(ctx, id, st, bodyReader{q.r.Body}); err != nil {
			h.discardUpload(q, id)
			q.failErr(fmt.Errorf("writing blob: %w", err), codeBlobUploadUnknown)
			return
		}
	}
	h.commitUpload(q, id, st, d)
}

// commitUpload verifies and publishes an upload's bytes as blob d, links it
// into the repository and forgets the upload. A digest that does not match
// discards the upload: nothing of it becomes visible.
func (h *Handler) commitUpload(q *request, id string, st blob.UploadState, d digest.Digest) {
	ctx := q.r.Context()
	size, err := h.blobs.Commit(ctx, id, st, d)
	if err != nil {
		if errors.Is(err, blob.ErrDigestMismatch) || errors.Is(err, blob.ErrUnsupportedAlgorithm) {
			h.discardUpload(q, id)
			q.fail(&apiError{Code: codeDigestInvalid,
				Message: fmt.Sprintf("uploaded content does not match digest %s", d),
				Detail:  digestDetail{Digest: d.String()}, Cause: err})
			return
		}
		q.failErr(fmt.Errorf("committing blob %s: %w", d, err), codeBlobUploadUnknown)
		return
	}
	if err := h.meta.LinkBlob(ctx, q.registry, q.route.Name, d, size); err != nil {
		q.failErr(fmt.Errorf("linking blob %s: %w", d, err), nil)
		return
	}
	if err := h.meta.DeleteUpload(ctx, id); err != nil && !errors.Is(err, meta.ErrNotFound) {
		// The blob is in place; the stale record is PurgeUploads' to remove.
		h.log.WarnContext(ctx, "could not delete finished upload record", "upload", id, "error", err)
	}
	h.blobCreated(q, d)
}

// blobCreated answers 201 for a blob now visible in the repository.
func (h *Handler) blobCreated(q *request, d digest.Digest) {
	hdr := q.Header()
	hdr.Set("Location", "/v2/"+q.route.Name+"/blobs/"+d.String())
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Length", "0")
	q.WriteHeader(http.StatusCreated)
}

// uploadAccepted answers with an upload's location and progress.
func (h *Handler) uploadAccepted(q *request, id string, offset int64, status int) {
	setUploadHeaders(q, id, offset)
	q.Header().Set("Content-Length", "0")
	q.WriteHeader(status)
}

func setUploadHeaders(q *request, id string, offset int64) {
	hdr := q.Header()
	hdr.Set("Location", uploadLocation(q.route.Name, id))
	hdr.Set("Docker-Upload-UUID", id)
	hdr.Set("Range", uploadRange(offset))
}

func uploadLocation(name, id string) string {
	return "/v2/" + name + "/blobs/uploads/" + id
}

// ownedUpload locks and loads the upload the URL names. An upload is found
// only from the registry and repository that started it; anything else is
// 404 BLOB_UPLOAD_UNKNOWN, whether or not the id exists elsewhere. On
// success the caller must call unlock.
func (h *Handler) ownedUpload(q *request) (u meta.Upload, unlock func(), ok bool) {
	id := q.route.Ref
	if !validUploadID(id) {
		q.fail(errorf(codeBlobUploadUnknown, "upload %q unknown", id))
		return meta.Upload{}, nil, false
	}
	unlock = h.uploads.lock(id)
	u, err := h.meta.GetUpload(q.r.Context(), id)
	if err == nil && (u.Registry != q.registry || u.Repository != q.route.Name) {
		err = meta.ErrNotFound
	}
	if err != nil {
		unlock()
		if errors.Is(err, meta.ErrNotFound) {
			q.fail(errorf(codeBlobUploadUnknown, "upload %q unknown", id))
			return meta.Upload{}, nil, false
		}
		q.failErr(fmt.Errorf("loading upload %s: %w", id, err), codeBlobUploadUnknown)
		return meta.Upload{}, nil, false
	}
	return u, unlock, true
}

// uploadStatus serves GET of an upload: 204 with its progress.
func (h *Handler) uploadStatus(q *request) {
	u, unlock, ok := h.ownedUpload(q)
	if !ok {
		return
	}
	defer unlock()
	h.uploadAccepted(q, u.ID, u.Offset, http.StatusNoContent)
}

// chunkBody checks a chunk's Content-Range against the upload's offset and
// returns the body to append: the request body, bounded to the declared
// range when the request has no Content-Length. ok=false means the answer
// (416 for a chunk out of order, 400 for a malformed range) has been sent.
func (h *Handler) chunkBody(q *request, u meta.Upload) (body io.Reader, empty, ok bool) {
	r := q.r
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return bodyReader{r.Body}, r.ContentLength == 0, true
	}
	start, end, valid := parseContentRange(cr)
	if !valid {
		q.fail(errorf(codeBlobUploadInvalid, "malformed Content-Range %q (want start-end)", cr))
		return nil, false, false
	}
	if start != u.Offset {
		setUploadHeaders(q, u.ID, u.Offset)
		q.fail(&apiError{Code: codeBlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable,
			Message: fmt.Sprintf("chunk starts at %d but the upload is at offset %d", start, u.Offset)})
		return nil, false, false
	}
	n := end - start + 1
	if r.ContentLength >= 0 && r.ContentLength != n {
		q.fail(errorf(codeSizeInvalid, "Content-Length %d does not match Content-Range %q", r.ContentLength, cr))
		return nil, false, false
	}
	if r.ContentLength < 0 {
		return bodyReader{&exactReader{r: r.Body, n: n}}, false, true
	}
	return bodyReader{r.Body}, false, true
}

// patchUpload appends a chunk (with Content-Range) or a stream (without) to
// an upload and records the new state with compare-and-swap: if another
// request moved the upload on meanwhile, this one is refused and the bytes it
// wrote are discarded by the next append.
func (h *Handler) patchUpload(q *request) {
	u, unlock, ok := h.ownedUpload(q)
	if !ok {
		return
	}
	defer unlock()
	body, empty, ok := h.chunkBody(q, u)
	if !ok {
		return
	}
	if empty {
		h.uploadAccepted(q, u.ID, u.Offset, http.StatusAccepted)
		return
	}
	ctx := q.r.Context()
	st, err := h.blobs.Append(ctx, u.ID, blob.UploadState{Offset: u.Offset, Hash: u.HashState}, body)
	if err != nil {
		h.failUploadWrite(q, u, err)
		return
	}
	if err := h.meta.UpdateUpload(ctx, u.ID, u.Offset, st.Offset, st.Hash); err != nil {
		h.failUploadWrite(q, u, fmt.Errorf("recording upload progress: %w", err))
		return
	}
	h.uploadAccepted(q, u.ID, st.Offset, http.StatusAccepted)
}

// failUploadWrite answers a failed append; a conflict (416) also tells the
// client where the upload stands.
func (h *Handler) failUploadWrite(q *request, u meta.Upload, err error) {
	e := toAPIError(err, codeBlobUploadUnknown)
	if e.status() == http.StatusRequestedRangeNotSatisfiable {
		if cur, gerr := h.meta.GetUpload(q.r.Context(), u.ID); gerr == nil {
			setUploadHeaders(q, u.ID, cur.Offset)
		}
	}
	q.fail(e)
}

// putUpload finishes an upload: appends the optional last chunk, verifies
// the whole content against ?digest= and makes the blob visible.
func (h *Handler) putUpload(q *request) {
	u, unlock, ok := h.ownedUpload(q)
	if !ok {
		return
	}
	defer unlock()
	dg, has := q.r.URL.Query()["digest"]
	if !has {
		q.fail(newError(codeDigestInvalid, "the digest parameter is required to finish an upload", nil))
		return
	}
	d, e := digestParam(firstOf(dg), "digest parameter")
	if e != nil {
		q.fail(e)
		return
	}
	body, empty, ok := h.chunkBody(q, u)
	if !ok {
		return
	}
	st := blob.UploadState{Offset: u.Offset, Hash: u.HashState}
	if !empty {
		var err error
		// The new state serves only the commit that follows and is not
		// recorded: a PUT is the upload's last request.
		if st, err = h.blobs.Append(q.r.Context(), u.ID, st, body); err != nil {
			h.failUploadWrite(q, u, err)
			return
		}
	}
	h.commitUpload(q, u.ID, st, d)
}

// cancelUpload serves DELETE of an upload: its bytes and record go.
func (h *Handler) cancelUpload(q *request) {
	u, unlock, ok := h.ownedUpload(q)
	if !ok {
		return
	}
	defer unlock()
	ctx := q.r.Context()
	if err := h.blobs.Abort(ctx, u.ID); err != nil && !errors.Is(err, blob.ErrNotFound) {
		q.failErr(fmt.Errorf("aborting upload: %w", err), nil)
		return
	}
	if err := h.meta.DeleteUpload(ctx, u.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		q.failErr(fmt.Errorf("deleting upload record: %w", err), nil)
		return
	}
	q.Header().Set("Content-Length", "0")
	q.WriteHeader(http.StatusNoContent)
}

// abortQuietly removes an upload's bytes after a failure that is already
// being reported.
func (h *Handler) abortQuietly(q *request, id string) {
	if err := h.blobs.Abort(q.r.Context(), id); err != nil && !errors.Is(err, blob.ErrNotFound) {
		h.log.WarnContext(q.r.Context(), "could not abort upload", "upload", id, "error", err)
	}
}

// discardUpload removes an upload's bytes and record.
func (h *Handler) discardUpload(q *request, id string) {
	h.abortQuietly(q, id)
	if err := h.meta.DeleteUpload(q.r.Context(), id); err != nil && !errors.Is(err, meta.ErrNotFound) {
		h.log.WarnContext(q.r.Context(), "could not delete upload record", "upload", id, "error", err)
	}
}

// newUploadID returns a random version-4 UUID, the session id the spec
// asks the upload location to contain.
func newUploadID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating upload id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:]), nil
}

// validUploadID accepts the ids moat hands out (and anything the blob store
// could hold: 1..128 of [A-Za-z0-9_-]); other strings are never looked up.
func validUploadID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// bodyError is a failure to read the request body: the client went away or
// sent less than it announced. It is the client's doing, never a 500.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading the request body: " + e.err.Error() }

func (e *bodyError) Unwrap() error { return e.err }

// bodyReader marks the errors of a request body as bodyErrors, so they can
// be told from the store's errors after the store has wrapped them.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &bodyError{err: err}
	}
	return n, err
}

// exactReader reads exactly n bytes from r: fewer is errBodyTooShort, more
// is errBodyTooLong. It guards chunks sent without Content-Length, whose
// size only their Content-Range declares.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		var one [1]byte
		for {
			k, err := e.r.Read(one[:])
			if k > 0 {
				return 0, errBodyTooLong
			}
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	if errors.Is(err, io.EOF) && e.n > 0 {
		return k, errBodyTooShort
	}
	return k, err
}
