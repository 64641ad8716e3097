package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

const (
	testDomain    = "localhost"
	testDefault   = "moat"
	testOther     = "other"
	adminPassword = "correct horse battery staple"
	// Hosts of the two registries every env has. Any other host (the
	// httptest server's 127.0.0.1:port) is the default registry.
	hostDefault = "moat.localhost"
	hostOther   = "other.localhost:5443"
)

// env is a data plane over real stores in a temporary directory, served by
// an httptest server.
type env struct {
	t     testing.TB
	meta  *sqlite.Store
	blobs *fs.Store
	id    *identity.Service
	h     *Handler
	srv   *httptest.Server
	logs  *syncBuffer
	reg   *prometheus.Registry
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	ms, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatalf("opening metadata store: %v", err)
	}
	t.Cleanup(func() {
		if err := ms.Close(); err != nil {
			t.Errorf("closing metadata store: %v", err)
		}
	})
	bs, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatalf("opening blob store: %v", err)
	}
	t.Cleanup(func() {
		// Uploads finish in the background; none may outlive dir.
		if err := bs.Settle(context.Background()); err != nil {
			t.Errorf("settling blob store: %v", err)
		}
	})
	quiet := slog.New(slog.DiscardHandler)
	id, err := identity.New(ctx, ms, identity.Options{BcryptCost: bcrypt.MinCost, Logger: quiet})
	if err != nil {
		t.Fatalf("identity: %v", err)
	}
	if _, _, err := id.EnsureAdmin(ctx, adminPassword); err != nil {
		t.Fatalf("creating admin: %v", err)
	}
	for _, name := range []string{testDefault, testOther} {
		if _, err := ms.CreateRegistry(ctx, meta.Registry{Name: name, SKU: "Premium", Location: "local"}); err != nil {
			t.Fatalf("creating registry %s: %v", name, err)
		}
	}
	e := &env{t: t, meta: ms, blobs: bs, id: id, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	e.h = e.newHandler()
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// newHandler returns another Handler over the env's stores (as another
// replica would have).
func (e *env) newHandler() *Handler {
	e.t.Helper()
	h, err := New(Options{
		Meta:            e.meta,
		Blobs:           e.blobs,
		Identity:        e.id,
		Domain:          testDomain,
		DefaultRegistry: testDefault,
		Logger:          slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics:         e.reg,
	})
	if err != nil {
		e.t.Fatalf("dataplane.New: %v", err)
	}
	return h
}

// reqOpt adjusts a test request.
type reqOpt func(*http.Request)

// anon sends no credentials (requests carry the admin's Basic credentials
// unless told otherwise).
func anon() reqOpt { return func(r *http.Request) { r.Header.Del("Authorization") } }

func basicAuth(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func host(h string) reqOpt { return func(r *http.Request) { r.Host = h } }

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// body sends b with a Content-Length.
func body(b []byte) reqOpt {
	return func(r *http.Request) {
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
}

// chunkedBody sends b without a Content-Length (chunked transfer encoding).
func chunkedBody(b []byte) reqOpt {
	return func(r *http.Request) {
		r.Body = io.NopCloser(struct{ io.Reader }{bytes.NewReader(b)})
		r.ContentLength = -1
	}
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body []byte
}

// do sends a request to the env's server (or another server URL).
func (e *env) do(method, path string, opts ...reqOpt) *response {
	e.t.Helper()
	return e.doURL(e.srv.URL, method, path, opts...)
}

func (e *env) doURL(base, method, path string, opts ...reqOpt) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		e.t.Fatalf("building request: %v", err)
	}
	req.SetBasicAuth(identity.AdminName, adminPassword)
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &response{Response: resp, body: b}
}

// wantStatus fails the test unless r has status.
func (r *response) wantStatus(t testing.TB, status int) *response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	return r
}

// wantError fails the test unless r is an error response with status and
// code in the spec's envelope.
func (r *response) wantError(t testing.TB, status int, code string) *response {
	t.Helper()
	r.wantStatus(t, status)
	if r.Request.Method == http.MethodHead {
		return r
	}
	var eb struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("%s %s: error body %q is not the spec's JSON: %v", r.Request.Method, r.Request.URL.Path, r.body, err)
	}
	if len(eb.Errors) != 1 || eb.Errors[0].Code != code {
		t.Fatalf("%s %s: errors %s, want code %s", r.Request.Method, r.Request.URL.Path, r.body, code)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q", ct)
	}
	return r
}

func (r *response) wantHeader(t testing.TB, key, want string) *response {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Fatalf("%s %s: header %s = %q, want %q", r.Request.Method, r.Request.URL.Path, key, got, want)
	}
	return r
}

// pushBlob uploads b monolithically into repo and returns its digest.
func (e *env) pushBlob(repo string, b []byte, opts ...reqOpt) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), append([]reqOpt{body(b)}, opts...)...).
		wantStatus(e.t, http.StatusCreated)
	return d
}

// startUpload opens an upload session and returns its location.
func (e *env) startUpload(repo string, opts ...reqOpt) string {
	e.t.Helper()
	r := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", opts...).wantStatus(e.t, http.StatusAccepted)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") {
		e.t.Fatalf("upload location %q", loc)
	}
	return loc
}

// image is a pushed OCI image: its config and layer blobs and manifest.
type image struct {
	config, layer digest.Digest
	manifest      []byte
	digest        digest.Digest
}

// pushImage pushes a small image's blobs into repo and returns the image
// with its (not yet pushed) manifest. seed makes images distinct.
func (e *env) pushImage(repo, seed string) image {
	e.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer " + seed)
	img := image{config: e.pushBlob(repo, cfg), layer: e.pushBlob(repo, layer)}
	img.manifest = imageManifest(img.config, int64(len(cfg)), img.layer, int64(len(layer)), "", nil)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

// imageManifest builds an OCI image manifest; subject may be empty.
func imageManifest(cfg digest.Digest, cfgSize int64, layer digest.Digest, layerSize int64, subject digest.Digest, annotations map[string]string) []byte {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfgSize},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layerSize}},
	}
	if subject != "" {
		m["subject"] = map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1}
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// putManifest pushes a manifest by reference with its media type.
func (e *env) putManifest(repo, ref string, b []byte, mediaType string, opts ...reqOpt) *response {
	e.t.Helper()
	return e.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref,
		append([]reqOpt{body(b), header("Content-Type", mediaType)}, opts...)...)
}

// token gets a bearer token from the token endpoint with Basic credentials.
func (e *env) token(service string, scopes ...string) string {
	e.t.Helper()
	v := url.Values{"service": {service}, "scope": scopes}
	r := e.do(http.MethodGet, "/oauth2/token?"+v.Encode(), host(strings.Split(service, ":")[0])).wantStatus(e.t, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		e.t.Fatalf("token response %s: %v", r.body, err)
	}
	return tr.Token
}
