package dataplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/moat-registry/moat/internal/clientip"
	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestRegistryFor(t *testing.T) {
	h := &Handler{suffix: ".localhost", defaultReg: "moat", defaultLS: "moat.localhost"}
	tests := []struct {
		host, name, login string
	}{
		{"other.localhost", "other", "other.localhost"},
		{"other.localhost:5443", "other", "other.localhost"},
		{"OTHER.LocalHost:5443", "other", "other.localhost"},
		{"other.localhost.", "other", "other.localhost"},
		{"127.0.0.1:5443", "moat", "moat.localhost"},
		{"127.0.0.1", "moat", "moat.localhost"},
		{"[::1]:5443", "moat", "moat.localhost"},
		{"[::1]", "moat", "moat.localhost"},
		{"localhost:5443", "moat", "moat.localhost"},
		{".localhost", "moat", "moat.localhost"},
		{"a.b.localhost", "moat", "moat.localhost"},
		{"registry.example.com", "moat", "moat.localhost"},
		{"", "moat", "moat.localhost"},
		{"otherlocalhost", "moat", "moat.localhost"},
	}
	for _, tt := range tests {
		name, login := h.registryFor(tt.host)
		if name != tt.name || login != tt.login {
			t.Errorf("registryFor(%q) = %q, %q; want %q, %q", tt.host, name, login, tt.name, tt.login)
		}
	}
}

func TestHost_SelectsRegistry(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "default")
	e.putManifest("app", "v1", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)
	// The default registry answers for its login server and any other host.
	e.wantManifest("app", "v1", img.manifest, mtOCIManifest, img.digest)
	e.do(http.MethodGet, "/v2/app/manifests/v1", host("MOAT.localhost:80")).wantStatus(t, http.StatusOK)
	// Another registry has its own namespace.
	e.do(http.MethodGet, "/v2/app/manifests/v1", host(hostOther)).wantError(t, http.StatusNotFound, "MANIFEST_UNKNOWN")
	e.wantNoBlob("app", img.config, host(hostOther))
	e.do(http.MethodGet, "/v2/app/tags/list", host(hostOther)).wantError(t, http.StatusNotFound, "NAME_UNKNOWN")
}

func TestHost_UnknownRegistry(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/v2/", host("ghost.localhost")).wantError(t, http.StatusNotFound, "NAME_UNKNOWN")
	if !strings.Contains(string(r.body), `ghost`) {
		t.Errorf("error does not name the registry: %s", r.body)
	}
	e.do(http.MethodGet, "/v2/app/manifests/v1", host("ghost.localhost:5443"), anon()).wantError(t, http.StatusNotFound, "NAME_UNKNOWN")

	// Created later: visible once the cache is invalidated.
	if _, err := e.meta.CreateRegistry(context.Background(), meta.Registry{Name: "ghost", SKU: "Basic"}); err != nil {
		t.Fatal(err)
	}
	e.h.Invalidate("GHOST")
	e.do(http.MethodGet, "/v2/", host("ghost.localhost")).wantStatus(t, http.StatusOK)
}

func TestNames_Invalid(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{
		"/v2/Upper/manifests/latest",
		"/v2/a//b/manifests/latest",
		"/v2/" + strings.Repeat("a", 256) + "/tags/list",
		"/v2/a__-b/tags/list",
		"/v2/manifests/latest",
	} {
		e.do(http.MethodGet, path).wantError(t, http.StatusBadRequest, "NAME_INVALID")
	}
	// "../x" never reaches the handler as such (the client or server cleans
	// the path); sent raw, it is an invalid name.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v2/x/manifests/latest", nil)
	req.URL.Path = "/v2/../x/manifests/latest"
	rec := httptest.NewRecorder()
	req.SetBasicAuth("admin", adminPassword)
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "NAME_INVALID") {
		t.Errorf("../x: %d %s", rec.Code, rec.Body)
	}
}

func TestUnknownEndpointsAndMethods(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/", "/v1/", "/v2/app", "/v2/app/tags", "/v2/app/other/x", "/oauth2/exchange/"} {
		e.do(http.MethodGet, path).wantError(t, http.StatusNotFound, "UNSUPPORTED")
	}
	tests := []struct{ method, path, allow string }{
		{http.MethodPost, "/v2/app/manifests/v1", "GET, HEAD, PUT, DELETE"},
		{http.MethodPut, "/v2/app/blobs/" + strings.Repeat("a", 10), "GET, HEAD, DELETE"},
		{http.MethodGet, "/v2/app/blobs/uploads/", "POST"},
		{http.MethodPost, "/v2/app/blobs/uploads/abc", "GET, PUT, PATCH, DELETE"},
		{http.MethodDelete, "/v2/app/tags/list", "GET, HEAD"},
		{http.MethodDelete, "/v2/", "GET, HEAD"},
		{http.MethodGet, "/oauth2/exchange", "POST"},
	}
	for _, tt := range tests {
		e.do(tt.method, tt.path).wantError(t, http.StatusMethodNotAllowed, "UNSUPPORTED").wantHeader(t, "Allow", tt.allow)
	}
}

func TestRequestLogAndMetrics(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodGet, "/v2/", anon())
	e.do(http.MethodGet, "/v2/app/tags/list")
	img := e.pushImage("app", "1")
	e.putManifest("app", "v1", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) < 4 {
		t.Fatalf("%d request log lines", len(lines))
	}
	first := lines[0]
	for k, want := range map[string]any{
		"method": "GET", "path": "/v2/", "status": float64(401), "registry": "moat",
		"decision": "unauthenticated", "client_ip": "127.0.0.1", "route": "base", "error_code": "UNAUTHORIZED",
	} {
		if first[k] != want {
			t.Errorf("first log line %s = %v, want %v (%v)", k, first[k], want, first)
		}
	}
	second := lines[1]
	for k, want := range map[string]any{
		"repository": "app", "principal": "admin", "decision": "allowed", "status": float64(404), "error_code": "NAME_UNKNOWN",
	} {
		if second[k] != want {
			t.Errorf("second log line %s = %v, want %v (%v)", k, second[k], want, second)
		}
	}
	for _, k := range []string{"bytes", "duration"} {
		if _, ok := second[k]; !ok {
			t.Errorf("log line without %s", k)
		}
	}

	if got := counterValue(t, e.h.metrics.requests.WithLabelValues("base", "GET", "4xx")); got != 1 {
		t.Errorf("base GET 4xx count %v", got)
	}
	if got := counterValue(t, e.h.metrics.requests.WithLabelValues("manifest", "PUT", "2xx")); got != 1 {
		t.Errorf("manifest PUT 2xx count %v", got)
	}
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range families {
		registered[f.GetName()] = len(f.GetMetric()) > 0
	}
	for _, name := range []string{"moat_dataplane_requests_total", "moat_dataplane_request_duration_seconds"} {
		if !registered[name] {
			t.Errorf("%s not registered or empty", name)
		}
	}
	// A second handler on the same registerer shares the collectors.
	if h2 := e.newHandler(); h2.metrics.requests != e.h.metrics.requests {
		t.Error("second handler has its own request counter")
	}
}

func TestClientIPFromContext(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req = req.WithContext(clientip.With(req.Context(), netip.MustParseAddr("192.0.2.7")))
	e.h.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(e.logs.String(), `"client_ip":"192.0.2.7"`) {
		t.Errorf("log does not carry the resolved client IP: %s", e.logs.String())
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// panicWriter panics when the body is written.
type panicWriter struct{ *httptest.ResponseRecorder }

func (p panicWriter) Write([]byte) (int, error) { panic("boom") }

func TestPanicIsRecovered(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req.SetBasicAuth("admin", adminPassword)
	rec := panicWriter{httptest.NewRecorder()}
	e.h.ServeHTTP(rec, req) // must not panic
	if !strings.Contains(e.logs.String(), "panic serving request") || !strings.Contains(e.logs.String(), "boom") {
		t.Errorf("panic not logged: %s", e.logs.String())
	}
	if got := counterValue(t, e.h.metrics.requests.WithLabelValues("base", "GET", "2xx")); got != 1 {
		t.Errorf("request not counted: %v", got)
	}

	// A panic before anything was written becomes a 500 in the spec's format.
	req = httptest.NewRequest(http.MethodGet, "/v2/", nil)
	req.SetBasicAuth("admin", adminPassword)
	rec2 := httptest.NewRecorder()
	h := e.newHandler()
	h.log = slog.New(slog.DiscardHandler)
	h.id = nil // authentication dereferences it
	h.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusInternalServerError || !strings.Contains(rec2.Body.String(), `"UNKNOWN"`) {
		t.Errorf("panic answer %d %s", rec2.Code, rec2.Body)
	}
}

func TestNew_Validation(t *testing.T) {
	e := newEnv(t)
	base := Options{Meta: e.meta, Blobs: e.blobs, Identity: e.id, Domain: "localhost", DefaultRegistry: "moat"}
	for name, mutate := range map[string]func(*Options){
		"no meta":           func(o *Options) { o.Meta = nil },
		"no blobs":          func(o *Options) { o.Blobs = nil },
		"no identity":       func(o *Options) { o.Identity = nil },
		"no domain":         func(o *Options) { o.Domain = "" },
		"dotted domain":     func(o *Options) { o.Domain = ".localhost" },
		"no default":        func(o *Options) { o.DefaultRegistry = "" },
		"dotted default":    func(o *Options) { o.DefaultRegistry = "a.b" },
		"default with port": func(o *Options) { o.DefaultRegistry = "a:1" },
	} {
		o := base
		mutate(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
	h, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if h.maxManifest != manifestMaxForTest {
		t.Errorf("default manifest limit %d", h.maxManifest)
	}
}

func TestMaxManifestSizeOption(t *testing.T) {
	e := newEnv(t)
	h, err := New(Options{Meta: e.meta, Blobs: e.blobs, Identity: e.id, Domain: "localhost", DefaultRegistry: "moat",
		Logger: slog.New(slog.DiscardHandler), MaxManifestSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	img := e.pushImage("app", "1")
	e.doURL(srv.URL, http.MethodPut, "/v2/app/manifests/v1", body(img.manifest), header("Content-Type", mtOCIManifest)).
		wantError(t, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID")
}
