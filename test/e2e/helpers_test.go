package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	mtOCIManifest    = ocispec.MediaTypeImageManifest
	mtOCIIndex       = ocispec.MediaTypeImageIndex
	mtOCIConfig      = ocispec.MediaTypeImageConfig
	mtOCILayer       = ocispec.MediaTypeImageLayerGzip
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtEmptyJSON      = ocispec.MediaTypeEmptyJSON
	mtOctetStream    = "application/octet-stream"
)

// ociErrors is the error envelope of the distribution spec.
type ociErrors struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail,omitempty"`
	} `json:"errors"`
}

// expectStatus fails t unless resp has the status.
func expectStatus(t testing.TB, what string, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body: %.500s", what, resp.StatusCode, status, body)
	}
}

// expectError fails t unless resp has the status and, for requests that
// carry a body, an OCI error envelope whose first code is one of codes.
func expectError(t testing.TB, what string, resp *http.Response, body []byte, status int, codes ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body: %.500s", what, resp.StatusCode, status, body)
	}
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return
	}
	var e ociErrors
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("%s: body is not an OCI error envelope (%v): %.500s", what, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error Content-Type %q, want application/json", what, ct)
	}
	if len(codes) > 0 && !slices.Contains(codes, e.Errors[0].Code) {
		t.Fatalf("%s: error code %q, want one of %v; body: %.500s", what, e.Errors[0].Code, codes, body)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return b
}

// pushBlob uploads data monolithically (POST then PUT) and returns its
// digest.
func (s *server) pushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	return s.pushBlobAlgo(t, repo, data, digest.SHA256)
}

func (s *server) pushBlobAlgo(t testing.TB, repo string, data []byte, algo digest.Algorithm) digest.Digest {
	t.Helper()
	dgst := algo.FromBytes(data)
	loc := s.startUpload(t, repo)
	resp, body := s.do(t, request{
		method: http.MethodPut,
		path:   withQuery(loc, "digest="+dgst.String()),
		body:   data,
		header: http.Header{"Content-Type": {mtOctetStream}},
	})
	expectStatus(t, "blob PUT "+dgst.String(), resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst.String() {
		t.Fatalf("blob PUT: Docker-Content-Digest %q, want %q", got, dgst)
	}
	if resp.Header.Get("Location") == "" {
		t.Fatalf("blob PUT: no Location header")
	}
	return dgst
}

// startUpload opens an upload session and returns its location as a path
// with query.
func (s *server) startUpload(t testing.TB, repo string) string {
	t.Helper()
	resp, body := s.do(t, request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/"})
	expectStatus(t, "upload POST", resp, body, http.StatusAccepted)
	return s.location(t, resp)
}

// location returns the Location header as a path with query, accepting
// both absolute and relative forms.
func (s *server) location(t testing.TB, resp *http.Response) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("%s %s: no Location header", resp.Request.Method, resp.Request.URL.Path)
	}
	reqPath := resp.Request.URL.Opaque
	if reqPath == "" {
		reqPath = resp.Request.URL.EscapedPath()
	}
	base, err := url.Parse(s.url(reqPath))
	if err != nil {
		t.Fatalf("request URL does not parse: %v", err)
	}
	u, err := base.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q does not parse: %v", loc, err)
	}
	if u.Host != s.addr {
		t.Fatalf("Location %q points at host %q, want %q", loc, u.Host, s.addr)
	}
	p := u.EscapedPath()
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

func withQuery(path, q string) string {
	if strings.Contains(path, "?") {
		return path + "&" + q
	}
	return path + "?" + q
}

// imageManifest builds an OCI image manifest with the given config and
// layers; the caller pushes the blobs.
func imageManifest(config ocispec.Descriptor, layers []ocispec.Descriptor, subject *ocispec.Descriptor, annotations map[string]string) []byte {
	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   mtOCIManifest,
		Config:      config,
		Layers:      layers,
		Subject:     subject,
		Annotations: annotations,
	}
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	return mustJSON(m)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err))
	}
	return b
}

// testImage is an image whose blobs are pushed and whose manifest is built
// but not yet pushed.
type testImage struct {
	manifest []byte
	digest   digest.Digest
	desc     ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
}

// pushTestImage pushes a config and n random layers to repo and builds an
// image manifest over them.
func (s *server) pushTestImage(t testing.TB, repo string, layers int) testImage {
	t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"nonce":%q}`, randomHex(8)))
	img := testImage{config: ocispec.Descriptor{MediaType: mtOCIConfig, Digest: s.pushBlob(t, repo, cfg), Size: int64(len(cfg))}}
	for i := 0; i < layers; i++ {
		data := randomBytes(512 + i)
		img.layers = append(img.layers, ocispec.Descriptor{MediaType: mtOCILayer, Digest: s.pushBlob(t, repo, data), Size: int64(len(data))})
	}
	img.manifest = imageManifest(img.config, img.layers, nil, nil)
	img.digest = digest.FromBytes(img.manifest)
	img.desc = ocispec.Descriptor{MediaType: mtOCIManifest, Digest: img.digest, Size: int64(len(img.manifest))}
	return img
}

// putManifest PUTs a manifest under ref and expects 201.
func (s *server) putManifest(t testing.TB, repo, ref, mediaType string, manifest []byte) *http.Response {
	t.Helper()
	resp, body := s.do(t, request{
		method: http.MethodPut,
		path:   "/v2/" + repo + "/manifests/" + ref,
		body:   manifest,
		header: http.Header{"Content-Type": {mediaType}},
	})
	expectStatus(t, "manifest PUT "+repo+":"+ref, resp, body, http.StatusCreated)
	return resp
}
