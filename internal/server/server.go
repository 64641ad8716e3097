// Package server owns moat's edge: the listener, TLS, the client address of
// each request, the operational endpoints (/healthz, /readyz, /metrics) and
// the hand-over of every other request to the data plane, and graceful
// shutdown.
//
// Invariants:
//
//   - Every request reaching the data plane carries its client address in
//     the context (clientip.With): the TCP peer, or, only when that peer is a
//     trusted proxy, the address it reports in X-Forwarded-For. With
//     ProxyProtocol the peer is the source a trusted proxy's PROXY header
//     names (proxyproto.go); anyone else sending such a header is cut off.
//   - Only the exact paths /healthz, /readyz and /metrics are answered here;
//     every other path and method goes to the data plane untouched (no path
//     cleaning or redirects), so the data plane sees what the client sent.
//   - No write or whole-request read timeout: blob transfers may take as long
//     as they need. Headers must arrive within ReadHeaderTimeout, a body may
//     pause at most BodyStallTimeout between bytes, and idle keep-alive
//     connections are closed after IdleTimeout.
//   - On shutdown the listener closes first (new connections are refused),
//     in-flight requests get ShutdownTimeout to finish, then the remaining
//     connections are closed.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moat-registry/moat/internal/clientip"
)

// Defaults for Config.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultShutdownTimeout   = 30 * time.Second
	// readyTimeout bounds one readiness check.
	readyTimeout = 2 * time.Second
)

// Config configures a Server.
type Config struct {
	// TLS, when not nil, serves HTTPS (with HTTP/2) using this configuration;
	// see TLSConfig. Nil serves plain HTTP.
	TLS *tls.Config
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// ProxyProtocol reads a PROXY protocol (v1 or v2) header from every
	// connection of a trusted proxy and takes its source as the peer; see
	// proxyproto.go for the policy. It needs TrustedProxies.
	ProxyProtocol bool
	// Ready reports whether the process can serve requests (/readyz); nil
	// means always ready.
	Ready func(context.Context) error
	// Metrics is the registry /metrics serves; the data plane registers its
	// collectors in the same one. Nil serves an empty registry.
	Metrics *prometheus.Registry
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// once shutdown starts; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout and IdleTimeout default to the constants above.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// BodyStallTimeout bounds how long a request body may send nothing;
	// 0 means DefaultBodyStallTimeout (see stallGuard).
	BodyStallTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is moat's HTTP(S) server.
type Server struct {
	cfg      Config
	plane    http.Handler
	resolver *clientip.Resolver
	metrics  http.Handler
	logger   *slog.Logger
	stopping atomic.Bool
}

// New returns a Server that serves the operational endpoints itself and
// hands every other request to plane.
func New(cfg Config, plane http.Handler) (*Server, error) {
	if plane == nil {
		return nil, errors.New("server: no handler")
	}
	if cfg.ShutdownTimeout < 0 || cfg.ReadHeaderTimeout < 0 || cfg.IdleTimeout < 0 || cfg.BodyStallTimeout < 0 {
		return nil, errors.New("server: timeouts must not be negative")
	}
	if cfg.ProxyProtocol && len(cfg.TrustedProxies) == 0 {
		return nil, errors.New("server: the PROXY protocol needs trusted proxies: only they may send the header")
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.BodyStallTimeout == 0 {
		cfg.BodyStallTimeout = DefaultBodyStallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:      cfg,
		plane:    plane,
		resolver: clientip.NewResolver(cfg.TrustedProxies),
		logger:   cfg.Logger,
	}
	s.metrics = promhttp.InstrumentMetricHandler(cfg.Metrics, promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelError),
	}))
	return s, nil
}

// NewMetricsRegistry returns a registry with the Go runtime and process
// collectors, for Config.Metrics and the data plane to share.
func NewMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// TLSConfig returns the TLS settings moat serves with: TLS 1.2 or later,
// HTTP/2 and HTTP/1.1, certificates from getCert.
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// ServeHTTP resolves the client address and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// RemoteAddr is always ip:port for TCP connections; if it ever is not,
	// no address is stored and the planes treat the client as unknown.
	if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client := s.resolver.Resolve(peer.Addr(), r.Header.Values("X-Forwarded-For"))
		r = r.WithContext(clientip.With(r.Context(), client))
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = newStallGuard(w, r.Body, s.cfg.BodyStallTimeout)
	}
	switch r.URL.Path {
	case "/healthz":
		s.operational(w, r, s.healthz)
	case "/readyz":
		s.operational(w, r, s.readyz)
	case "/metrics":
		s.operational(w, r, s.metrics.ServeHTTP)
	default:
		s.plane.ServeHTTP(w, r)
	}
}

// operational allows GET and HEAD only.
func (s *Server) operational(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h(w, r)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n")) // nothing to do if the client went away
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.stopping.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			// The reason goes to the log, not to whoever asks: it may name
			// internals (paths, database errors).
			s.logger.Warn("not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish within ShutdownTimeout, and
// returns nil if they all did. Requests still running after that are cut
// off and Serve returns an error saying so. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.ProxyProtocol {
		ln = newProxyListener(ln, s.resolver.Trusts, s.cfg.ReadHeaderTimeout, s.logger)
	}
	hs := &http.Server{
		Handler:           s,
		TLSConfig:         s.cfg.TLS,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          log.New(&errorLogWriter{logger: s.logger}, "", 0),
		// Requests are not cancelled when shutdown starts: they are being
		// drained, not aborted.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLS != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	s.logger.Info("shutting down: draining in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		s.logger.Warn("server stopped with an error", "error", serr)
	}
	if err != nil {
		cerr := hs.Close()
		return fmt.Errorf("server: in-flight requests did not finish within %s and were cut off: %w",
			s.cfg.ShutdownTimeout, errors.Join(err, cerr))
	}
	s.logger.Info("all requests drained")
	return nil
}

// errorLogWriter sends net/http's own log lines to slog. TLS handshake
// failures are routine (a client that does not trust the CA yet, a port
// scanner) and go to debug; everything else (e.g. a recovered panic) is a
// warning.
type errorLogWriter struct{ logger *slog.Logger }

func (e *errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelWarn
	if bytes.Contains(p, []byte("TLS handshake error")) {
		level = slog.LevelDebug
	}
	e.logger.Log(context.Background(), level, msg, "source", "net/http")
	return len(p), nil
}

var _ http.Handler = (*Server)(nil)
