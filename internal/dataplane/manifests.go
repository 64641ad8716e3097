package dataplane

import (
	"bytes"
	// Digest algorithms must be linked in for go-digest to hash with them.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// maxTagParams bounds the ?tag= parameters of one manifest PUT (the spec
// asks for at least 10).
const maxTagParams = 100

// reference is a parsed <tag-or-digest>.
type reference struct {
	tag    string
	digest digest.Digest
}

// parseReference reads the reference of a manifest URL. Anything with a ':'
// must be a digest moat can verify (400 DIGEST_INVALID otherwise); anything
// else must be a tag. A malformed tag is reported as absent for reads (no
// such manifest can exist, and clients expect 404) and as TAG_INVALID for
// writes.
func parseReference(ref string, write bool) (reference, *apiError) {
	if strings.IndexByte(ref, ':') >= 0 {
		d, st := parseDigest(ref)
		switch st {
		case digestOK:
			return reference{digest: d}, nil
		case digestUnsupported:
			return reference{}, &apiError{Code: codeDigestInvalid,
				Message: fmt.Sprintf("unsupported digest algorithm in %q (use sha256 or sha512)", ref), Detail: digestDetail{Digest: ref}}
		default:
			return reference{}, &apiError{Code: codeDigestInvalid,
				Message: fmt.Sprintf("invalid digest %q", ref), Detail: digestDetail{Digest: ref}}
		}
	}
	if !validTag(ref) {
		if write {
			return reference{}, errorf(codeTagInvalid, "invalid tag %q", ref)
		}
		return reference{}, errorf(codeManifestUnknown, "manifest unknown: %q is not a valid tag or digest", ref)
	}
	return reference{tag: ref}, nil
}

// getManifest serves GET and HEAD of a manifest: one metadata query, the
// stored bytes as pushed, with the media type they were pushed as. Accept is
// not consulted: moat never converts manifests, and a client that cannot
// read the stored type is better served by the type than by a 404.
func (h *Handler) getManifest(q *request) {
	ref, e := parseReference(q.route.Ref, false)
	if e != nil {
		q.fail(e)
		return
	}
	ctx := q.r.Context()
	var m meta.Manifest
	var err error
	if ref.digest != "" {
		m, err = h.meta.GetManifest(ctx, q.registry, q.route.Name, ref.digest)
	} else {
		m, err = h.meta.GetManifestByTag(ctx, q.registry, q.route.Name, ref.tag)
	}
	if err != nil {
		q.failErr(err, codeManifestUnknown)
		return
	}
	// One backing array for the three header values: this is the hot path.
	vals := [...]string{m.MediaType, strconv.Itoa(len(m.Content)), string(m.Digest)}
	hs := vals[:]
	hdr := q.Header()
	hdr["Content-Type"] = hs[0:1:1]
	hdr["Content-Length"] = hs[1:2:2]
	hdr["Docker-Content-Digest"] = hs[2:3:3]
	q.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		_, _ = q.Write(m.Content)
	}
}

// putManifest stores a manifest pushed by tag or by digest (with optional
// ?tag= parameters). The body is read whole (it is bounded), its digest is
// checked against a digest reference with that digest's algorithm, it is
// parsed and validated, and the metadata store stores it, its references
// and its first tag atomically.
func (h *Handler) putManifest(q *request) {
	ref, e := parseReference(q.route.Ref, true)
	if e != nil {
		q.fail(e)
		return
	}
	tags, e := manifestTags(ref, q.r.URL.Query()["tag"])
	if e != nil {
		q.fail(e)
		return
	}
	body, e := h.readManifest(q.r)
	if e != nil {
		q.fail(e)
		return
	}

	var dgst digest.Digest
	if ref.digest != "" {
		dgst = ref.digest.Algorithm().FromBytes(body)
		if dgst != ref.digest {
			q.fail(&apiError{Code: codeDigestInvalid,
				Message: fmt.Sprintf("manifest digest is %s, not %s as the URL says", dgst, ref.digest),
				Detail:  digestDetail{Digest: ref.digest.String()}})
			return
		}
	} else {
		dgst = digest.SHA256.FromBytes(body)
	}

	parsed, err := manifest.Parse(q.r.Header.Get("Content-Type"), body)
	if err != nil {
		q.failErr(err, nil)
		return
	}
	var annotations []byte
	if len(parsed.Annotations) > 0 {
		if annotations, err = json.Marshal(parsed.Annotations); err != nil {
			q.failErr(fmt.Errorf("encoding annotations: %w", err), nil)
			return
		}
	}
	m := meta.Manifest{
		Registry:     q.registry,
		Repository:   q.route.Name,
		Digest:       dgst,
		MediaType:    parsed.MediaType,
		ArtifactType: parsed.ArtifactType,
		Subject:      parsed.Subject,
		Annotations:  annotations,
		Content:      body,
		Size:         int64(len(body)),
		Blobs:        parsed.Blobs,
		Children:     parsed.Children,
	}
	ctx := q.r.Context()
	first := ""
	if len(tags) > 0 {
		first = tags[0]
	}
	if err := h.meta.PutManifest(ctx, m, first); err != nil {
		q.failErr(fmt.Errorf("storing manifest %s: %w", dgst, err), nil)
		return
	}
	// Further tags point at the stored manifest; storing the same digest
	// again changes nothing but the tag.
	for _, t := range tags[min(1, len(tags)):] {
		if err := h.meta.PutManifest(ctx, m, t); err != nil {
			q.failErr(fmt.Errorf("tagging manifest %s as %q: %w", dgst, t, err), nil)
			return
		}
	}

	hdr := q.Header()
	hdr.Set("Location", "/v2/"+q.route.Name+"/manifests/"+dgst.String())
	hdr.Set("Docker-Content-Digest", dgst.String())
	if parsed.Subject != "" {
		hdr.Set("OCI-Subject", parsed.Subject.String())
	}
	if ref.digest != "" {
		for _, t := range tags {
			hdr.Add("OCI-Tag", t)
		}
	}
	hdr.Set("Content-Length", "0")
	q.WriteHeader(http.StatusCreated)
}

// manifestTags is the list of tags a PUT sets: the reference when it is a
// tag, then the ?tag= parameters (valid tags, each once).
func manifestTags(ref reference, params []string) ([]string, *apiError) {
	if len(params) > maxTagParams {
		return nil, &apiError{Code: codeTagInvalid, Status: http.StatusRequestURITooLong,
			Message: fmt.Sprintf("too many tag parameters (%d, at most %d)", len(params), maxTagParams)}
	}
	var tags []string
	if ref.tag != "" {
		tags = append(tags, ref.tag)
	}
	for _, t := range params {
		if !validTag(t) {
			return nil, errorf(codeTagInvalid, "invalid tag %q", t)
		}
		dup := false
		for _, seen := range tags {
			if seen == t {
				dup = true
				break
			}
		}
		if !dup {
			tags = append(tags, t)
		}
	}
	return tags, nil
}

// readManifest reads a manifest body, refusing more than the configured
// maximum with 413 before or while reading.
func (h *Handler) readManifest(r *http.Request) ([]byte, *apiError) {
	tooLarge := func() *apiError {
		return &apiError{Code: codeManifestInvalid, Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("manifest exceeds the limit of %d bytes", h.maxManifest)}
	}
	if r.ContentLength > h.maxManifest {
		return nil, tooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength)) // bounded by maxManifest above
	}
	n, err := buf.ReadFrom(io.LimitReader(bodyReader{r.Body}, h.maxManifest+1))
	if err != nil {
		return nil, toAPIError(fmt.Errorf("reading manifest: %w", err), nil)
	}
	if n > h.maxManifest {
		return nil, tooLarge()
	}
	if n == 0 {
		return nil, newError(codeManifestInvalid, "empty manifest", nil)
	}
	return buf.Bytes(), nil
}

// deleteManifest deletes a manifest (by digest, with every tag pointing at
// it) or a tag (the manifest stays).
func (h *Handler) deleteManifest(q *request) {
	ref, e := parseReference(q.route.Ref, false)
	if e != nil {
		q.fail(e)
		return
	}
	ctx := q.r.Context()
	var err error
	if ref.digest != "" {
		err = h.meta.DeleteManifest(ctx, q.registry, q.route.Name, ref.digest)
	} else {
		err = h.meta.DeleteTag(ctx, q.registry, q.route.Name, ref.tag)
	}
	if err != nil {
		q.failErr(fmt.Errorf("deleting %s: %w", q.route.Ref, err), codeManifestUnknown)
		return
	}
	q.Header().Set("Content-Length", "0")
	q.WriteHeader(http.StatusAccepted)
}
