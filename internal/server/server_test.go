package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moat-registry/moat/internal/clientip"
	"github.com/moat-registry/moat/internal/server/localca"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// plane is a stand-in data plane that records what it saw.
type plane struct {
	mu     sync.Mutex
	paths  []string
	client netip.Addr
}

func (p *plane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	p.client, _ = clientip.From(r.Context())
	p.mu.Unlock()
	w.Header().Set("X-Plane", "yes")
	_, _ = io.WriteString(w, "plane")
}

func newServer(t *testing.T, cfg Config, h http.Handler) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(t *testing.T, h http.Handler, method, target string, mod func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "203.0.113.5:40000"
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestRouting(t *testing.T) {
	var ready error
	reg := NewMetricsRegistry()
	planeMetric := prometheus.NewCounter(prometheus.CounterOpts{Name: "moat_test_plane_total", Help: "test"})
	reg.MustRegister(planeMetric)
	planeMetric.Inc()
	p := &plane{}
	s := newServer(t, Config{Metrics: reg, Ready: func(context.Context) error { return ready }}, p)

	tests := []struct {
		name, method, path string
		wantCode           int
		wantBody           string
		wantPlane          bool
	}{
		{"healthz", "GET", "/healthz", 200, "ok", false},
		{"healthz HEAD", "HEAD", "/healthz", 200, "", false},
		{"healthz POST", "POST", "/healthz", 405, "method not allowed", false},
		{"readyz", "GET", "/readyz", 200, "ok", false},
		{"metrics has Go collector", "GET", "/metrics", 200, "go_goroutines", false},
		{"metrics has process collector", "GET", "/metrics", 200, "process_start_time_seconds", false},
		{"metrics has data-plane metrics", "GET", "/metrics", 200, "moat_test_plane_total 1", false},
		{"v2 goes to the plane", "GET", "/v2/", 200, "plane", true},
		{"token goes to the plane", "POST", "/oauth2/token", 200, "plane", true},
		{"trailing slash is not healthz", "GET", "/healthz/", 200, "plane", true},
		{"no path cleaning", "GET", "/v2/a//b/../c", 200, "plane", true},
		{"root goes to the plane", "DELETE", "/", 200, "plane", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, s, tt.method, tt.path, nil)
			if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, w.Code, w.Body.String(), tt.wantCode, tt.wantBody)
			}
			if got := w.Header().Get("X-Plane") == "yes"; got != tt.wantPlane {
				t.Fatalf("reached plane = %v, want %v", got, tt.wantPlane)
			}
		})
	}
	if p.paths[len(p.paths)-2] != "GET /v2/a//b/../c" {
		t.Errorf("plane saw %q", p.paths)
	}
	if w := do(t, s, "POST", "/healthz", nil); w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("405 without Allow: %v", w.Header())
	}

	ready = errors.New("database is locked at /secret/path")
	w := do(t, s, "GET", "/readyz", nil)
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("readyz when not ready = %d %q", w.Code, w.Body.String())
	}
	if w := do(t, s, "GET", "/healthz", nil); w.Code != 200 {
		t.Fatalf("healthz depends on readiness: %d", w.Code)
	}
}

func TestReadyzFailsWhileStopping(t *testing.T) {
	s := newServer(t, Config{}, &plane{})
	s.stopping.Store(true)
	if w := do(t, s, "GET", "/readyz", nil); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz while stopping = %d", w.Code)
	}
}

func TestClientIPInContext(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"peer", nil, "203.0.113.5:1234", nil, "203.0.113.5"},
		{"header from untrusted peer ignored", trusted, "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"header from trusted proxy", trusted, "10.0.0.2:1234", []string{"198.51.100.1, 10.0.0.3"}, "198.51.100.1"},
		{"IPv6 peer", nil, "[2001:db8::1]:1234", nil, "2001:db8::1"},
		{"IPv4-mapped peer unmapped", nil, "[::ffff:192.0.2.1]:1234", nil, "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &plane{}
			s := newServer(t, Config{TrustedProxies: tt.trusted}, p)
			do(t, s, "GET", "/v2/", func(r *http.Request) {
				r.RemoteAddr = tt.remote
				for _, v := range tt.xff {
					r.Header.Add("X-Forwarded-For", v)
				}
			})
			if p.client != netip.MustParseAddr(tt.want) {
				t.Fatalf("client = %v, want %s", p.client, tt.want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Error("nil handler accepted")
	}
	if _, err := New(Config{ShutdownTimeout: -time.Second}, &plane{}); err == nil {
		t.Error("negative timeout accepted")
	}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := Listen(context.Background(), "127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestShutdownDrainsInFlightAndRefusesNew is the graceful-shutdown promise:
// a request in progress when shutdown starts completes, and new connections
// are refused meanwhile.
func TestShutdownDrainsInFlightAndRefusesNew(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	s := newServer(t, Config{ShutdownTimeout: 10 * time.Second}, slow)
	ln := listenLoopback(t)
	addr := ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/v2/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-started
	stop()

	// New connections are refused once the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections after shutdown started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned before the in-flight request finished: %v", err)
	default:
	}

	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil after a clean drain", err)
	}
}

func TestShutdownTimeoutCutsOffAndReports(t *testing.T) {
	started := make(chan struct{})
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // until the connection is closed
	})
	s := newServer(t, Config{ShutdownTimeout: 100 * time.Millisecond}, stuck)
	ln := listenLoopback(t)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/v2/stuck")
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-started
	stop()
	select {
	case err := <-served:
		if err == nil || !strings.Contains(err.Error(), "did not finish within 100ms") {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the shutdown timeout")
	}
}

func TestTLSWithLocalCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := localca.Load(dir, []string{"localhost", "*.localhost", "127.0.0.1"}, localca.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, Config{TLS: TLSConfig(ca.GetCertificate)}, &plane{})
	ln := listenLoopback(t)
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()

	pool := x509.NewCertPool()
	pool.AddCert(ca.CACertificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	resp, err := client.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("status %d proto %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}

	// TLS 1.1 clients are refused.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}) //nolint:gosec // testing that the server refuses old TLS
	if err == nil {
		_ = conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestCheckLoopback(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
		case "half.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.1")}, nil
		case "empty.test":
			return nil, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:5443", true},
		{"127.0.0.2:0", true},
		{"[::1]:5443", true},
		{"[::ffff:127.0.0.1]:5443", true},
		{"localhost:5443", true},
		{"0.0.0.0:5443", false},
		{"[::]:5443", false},
		{":5443", false},
		{"10.0.0.1:5443", false},
		{"192.168.1.10:5443", false},
		{"half.test:5443", false},
		{"empty.test:5443", false},
		{"unknown.test:5443", false},
		{"127.0.0.1", false}, // no port
	}
	for _, tt := range tests {
		err := CheckLoopback(context.Background(), tt.addr, lookup)
		if (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}

func TestListenInsecureRefusedOnAllInterfaces(t *testing.T) {
	ln, err := Listen(context.Background(), "0.0.0.0:0", true)
	if err == nil {
		_ = ln.Close()
		t.Fatal("loopback-only listen accepted 0.0.0.0")
	}
	if !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("err = %v", err)
	}
	ln, err = Listen(context.Background(), "localhost:0", true)
	if err != nil {
		t.Fatalf("localhost: %v", err)
	}
	_ = ln.Close()
}
