package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// maxPage caps n in tag and catalog listings. A request for more gets
// maxPage entries and a Link to the rest, as the spec allows.
const maxPage = 10000

// mediaTypeOCIIndex is the type of a referrers response.
const mediaTypeOCIIndex = "application/vnd.oci.image.index.v1+json"

// parsePage reads the n parameter of a listing: limited=false when absent
// (everything), otherwise 0..maxPage.
func parsePage(query url.Values) (n int, limited bool, e *apiError) {
	v, has := query["n"]
	if !has || firstOf(v) == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(firstOf(v))
	if err != nil || n < 0 {
		return 0, false, &apiError{Code: codeUnsupported, Status: http.StatusBadRequest,
			Message: fmt.Sprintf("invalid n %q: want a non-negative integer", firstOf(v))}
	}
	return min(n, maxPage), true, nil
}

// nextLink is the RFC 5988 Link header to the next page of a listing.
func nextLink(path, last string, n int) string {
	v := url.Values{}
	v.Set("last", last)
	v.Set("n", strconv.Itoa(n))
	return "<" + path + "?" + v.Encode() + `>; rel="next"`
}

// writeJSON sends v as the 200 answer.
func writeJSON(q *request, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		q.failErr(fmt.Errorf("encoding response: %w", err), nil)
		return
	}
	hdr := q.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	q.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		_, _ = q.Write(body)
	}
}

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// listTags serves GET /v2/<name>/tags/list with n/last pagination: tags in
// byte order, those after last, at most n with a Link to more. n=0 is an
// empty list without Link. An unknown repository is 404 NAME_UNKNOWN.
func (h *Handler) listTags(q *request) {
	query := q.r.URL.Query()
	n, limited, e := parsePage(query)
	if e != nil {
		q.fail(e)
		return
	}
	last := query.Get("last")
	fetch := 0
	if limited {
		fetch = n + 1 // one more tells whether there is a next page
	}
	tags, err := h.meta.ListTags(q.r.Context(), q.registry, q.route.Name, last, fetch)
	if err != nil {
		q.failErr(err, codeNameUnknown)
		return
	}
	if limited && len(tags) > n {
		tags = tags[:n]
		if n > 0 {
			q.Header().Set("Link", nextLink("/v2/"+q.route.Name+"/tags/list", tags[n-1], n))
		}
	}
	if tags == nil {
		tags = []string{}
	}
	writeJSON(q, "application/json", tagList{Name: q.route.Name, Tags: tags})
}

type catalog struct {
	Repositories []string `json:"repositories"`
}

// serveCatalog serves GET /v2/_catalog: the registry's repositories, with
// the same pagination as tags.
func (h *Handler) serveCatalog(q *request) {
	query := q.r.URL.Query()
	n, limited, e := parsePage(query)
	if e != nil {
		q.fail(e)
		return
	}
	var repos []string
	if !limited || n > 0 {
		fetch := 0
		if limited {
			fetch = n + 1
		}
		var err error
		repos, err = h.meta.ListRepositories(q.r.Context(), q.registry, query.Get("last"), fetch)
		if err != nil {
			q.failErr(fmt.Errorf("listing repositories: %w", err), nil)
			return
		}
		if limited && len(repos) > n {
			repos = repos[:n]
			q.Header().Set("Link", nextLink("/v2/_catalog", repos[n-1], n))
		}
	}
	if repos == nil {
		repos = []string{}
	}
	writeJSON(q, "application/json", catalog{Repositories: repos})
}

// referrersIndex is the referrers API's answer: an OCI index of descriptors.
type referrersIndex struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Manifests     []referrerDescriptor `json:"manifests"`
}

type referrerDescriptor struct {
	MediaType    string          `json:"mediaType"`
	Digest       string          `json:"digest"`
	Size         int64           `json:"size"`
	ArtifactType string          `json:"artifactType,omitempty"`
	Annotations  json.RawMessage `json:"annotations,omitempty"`
}

// listReferrers serves GET /v2/<name>/referrers/<digest>: the manifests of
// the repository whose subject is digest, optionally filtered by
// artifactType. Never 404: no referrers (or no repository) is an empty index.
func (h *Handler) listReferrers(q *request) {
	d, e := digestParam(q.route.Ref, "digest")
	if e != nil {
		q.fail(e)
		return
	}
	artifactType := q.r.URL.Query().Get("artifactType")
	list, err := h.meta.ListReferrers(q.r.Context(), q.registry, q.route.Name, d, artifactType)
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		q.failErr(fmt.Errorf("listing referrers of %s: %w", d, err), nil)
		return
	}
	idx := referrersIndex{SchemaVersion: 2, MediaType: mediaTypeOCIIndex, Manifests: make([]referrerDescriptor, 0, len(list))}
	for _, m := range list {
		idx.Manifests = append(idx.Manifests, referrerDescriptor{
			MediaType:    m.MediaType,
			Digest:       m.Digest.String(),
			Size:         m.Size,
			ArtifactType: m.ArtifactType,
			Annotations:  json.RawMessage(m.Annotations),
		})
	}
	if artifactType != "" {
		q.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(q, mediaTypeOCIIndex, idx)
}
