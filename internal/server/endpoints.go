package server

// Private endpoint listeners.
//
// moat listens on each private endpoint connection's address, on the port of
// the main listener (or EndpointConfig.Port), and serves only the data
// plane there, bound to the endpoint's registry (privatelink.Arrival): no
// management plane, no identity issuer, no /metrics. The client address is
// the TCP peer; X-Forwarded-For and the PROXY protocol are not read on these
// listeners (a private endpoint is reached directly).
//
// Decisions:
//
//   - The listeners follow the stored connections: Sync reads them all and
//     opens what is missing, closes what went away. Sync runs at start, at
//     once after a change made through this process (before the management
//     call answers), on every change another replica announces, and every
//     EndpointConfig.Resync as a safety net.
//   - A Pending, Rejected or Disconnected connection keeps its socket bound:
//     the address still belongs to the endpoint, and the network decision
//     answers 403 DENIED naming why, which says more than a refused
//     connection. Deleting the connection or the endpoint closes the
//     listener and every connection on it at once.
//   - A listener that cannot be opened (the address is not on this host, or
//     taken) is logged and tried again at the next Sync; nothing else
//     serves that address meanwhile (fail closed).
//   - With LoopbackOnly (plain HTTP), only loopback addresses are opened.
//   - If a store read fails, the listeners stay as they were until a Sync
//     succeeds: acting on part of the truth could close an Approved endpoint.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/clientip"
	"github.com/moat-registry/moat/internal/privatelink"
)

// DefaultEndpointResync is how often the endpoint listeners are checked
// against the store when no change was announced.
const DefaultEndpointResync = 30 * time.Second

// EndpointConfig configures an EndpointListeners.
type EndpointConfig struct {
	// Load returns every private endpoint connection; required.
	Load func(ctx context.Context) ([]privatelink.Endpoint, error)
	// Data is the data plane; required.
	Data http.Handler
	// Port is the port opened on every endpoint address; required (the
	// main listener's port).
	Port int
	// TLS, when not nil, serves HTTPS with it (the main listener's).
	TLS *tls.Config
	// CertificateForIP, when set with TLS, supplies the certificate for a
	// client that sent no server name (it dialled the endpoint's address):
	// one that names that address (localca.CA.CertificateForIP).
	CertificateForIP func(netip.Addr) (*tls.Certificate, error)
	// LoopbackOnly refuses endpoint addresses outside 127.0.0.0/8 and ::1.
	LoopbackOnly bool
	// ReadHeaderTimeout, IdleTimeout and ShutdownTimeout as in Config.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	// Resync defaults to DefaultEndpointResync.
	Resync time.Duration
	Logger *slog.Logger
}

// EndpointListeners opens and closes the private endpoint listeners.
type EndpointListeners struct {
	cfg  EndpointConfig
	log  *slog.Logger
	kick chan struct{}

	syncMu sync.Mutex // one Sync at a time
	mu     sync.Mutex
	open   map[netip.Addr]*endpointListener
	closed bool
}

type endpointListener struct {
	ep   privatelink.Endpoint
	ln   net.Listener
	hs   *http.Server
	done chan struct{}
}

// NewEndpointListeners returns the manager; nothing is opened before Sync or Run.
func NewEndpointListeners(cfg EndpointConfig) (*EndpointListeners, error) {
	switch {
	case cfg.Load == nil:
		return nil, errors.New("server: EndpointConfig.Load is required")
	case cfg.Data == nil:
		return nil, errors.New("server: EndpointConfig.Data is required")
	case cfg.Port <= 0 || cfg.Port > 65535:
		return nil, fmt.Errorf("server: endpoint port %d is not a TCP port", cfg.Port)
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultEndpointResync
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &EndpointListeners{cfg: cfg, log: cfg.Logger.With("component", "private-endpoints"),
		kick: make(chan struct{}, 1), open: map[netip.Addr]*endpointListener{}}, nil
}

// Trigger asks Run for a Sync soon, without waiting (for change-feed
// callbacks, which must return quickly). Triggers coalesce.
func (m *EndpointListeners) Trigger() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run syncs at start, on every Trigger and every Resync until ctx is done,
// then closes every listener, letting in-flight requests finish within
// ShutdownTimeout.
func (m *EndpointListeners) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Resync)
	defer t.Stop()
	for {
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("private endpoint listeners not updated; trying again", "error", err)
		}
		select {
		case <-ctx.Done():
			m.shutdown()
			return
		case <-m.kick:
		case <-t.C:
		}
	}
}

// Sync reads the connections and opens and closes listeners to match. It
// returns the store's error, or the joined errors of listeners that could
// not be opened (each also logged; the others are open).
func (m *EndpointListeners) Sync(ctx context.Context) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	eps, err := m.cfg.Load(ctx)
	if err != nil {
		return fmt.Errorf("reading private endpoint connections: %w", err)
	}
	want := plan(eps)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	var stale []*endpointListener
	for a, l := range m.open {
		if ep, ok := want[a]; !ok || !sameBinding(ep, l.ep) {
			stale = append(stale, l)
			delete(m.open, a)
		}
	}
	m.mu.Unlock()
	for _, l := range stale {
		l.close()
		m.log.Info("private endpoint listener closed", "endpoint", l.ep.ID, "registry", l.ep.Registry, "addr", l.ln.Addr().String())
	}
	var errs []error
	for _, a := range sortedAddrs(want) {
		m.mu.Lock()
		_, ok := m.open[a]
		m.mu.Unlock()
		if ok {
			continue
		}
		ep := want[a]
		l, err := m.listen(ctx, ep)
		if err != nil {
			m.log.Error("private endpoint listener could not be opened", "endpoint", ep.ID, "registry", ep.Registry, "error", err)
			errs = append(errs, err)
			continue
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			l.close()
			return nil
		}
		m.open[a] = l
		m.mu.Unlock()
		m.log.Info("private endpoint listener opened", "endpoint", ep.ID, "registry", ep.Registry, "addr", l.ln.Addr().String(), "status", ep.Status)
	}
	return errors.Join(errs...)
}

// plan picks one endpoint per address. Two connections claiming the same
// address (which the management plane refuses, but a store shared with
// older data might hold) open nothing there: which registry to serve would
// be a guess.
func plan(eps []privatelink.Endpoint) map[netip.Addr]privatelink.Endpoint {
	want := make(map[netip.Addr]privatelink.Endpoint, len(eps))
	dup := map[netip.Addr]bool{}
	for _, ep := range eps {
		a := ep.Addr.Unmap()
		if !a.IsValid() {
			continue
		}
		if _, ok := want[a]; ok {
			dup[a] = true
			continue
		}
		want[a] = ep
	}
	for a := range dup {
		delete(want, a)
	}
	return want
}

func sameBinding(a, b privatelink.Endpoint) bool {
	return a.ID == b.ID && a.Registry == b.Registry && a.Addr == b.Addr
}

func sortedAddrs(m map[netip.Addr]privatelink.Endpoint) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return out
}

// Addrs returns the listening address of every open endpoint listener, by
// endpoint id.
func (m *EndpointListeners) Addrs() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.open))
	for _, l := range m.open {
		out[l.ep.ID] = l.ln.Addr().String()
	}
	return out
}

func (m *EndpointListeners) listen(ctx context.Context, ep privatelink.Endpoint) (*endpointListener, error) {
	addr := net.JoinHostPort(ep.Addr.String(), strconv.Itoa(m.cfg.Port))
	if m.cfg.LoopbackOnly && !ep.Addr.IsLoopback() {
		return nil, fmt.Errorf("private endpoint %s: %s is not a loopback address, and plain HTTP is served only on loopback", ep.ID, ep.Addr)
	}
	ln, err := Listen(ctx, addr, m.cfg.LoopbackOnly)
	if err != nil {
		return nil, fmt.Errorf("private endpoint %s: %w", ep.ID, err)
	}
	arrival := privatelink.Arrival{EndpointID: ep.ID, Registry: ep.Registry}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := privatelink.WithArrival(r.Context(), arrival)
		if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			ctx = clientip.With(ctx, peer.Addr().Unmap())
		}
		m.cfg.Data.ServeHTTP(w, r.WithContext(ctx))
	})
	l := &endpointListener{ep: ep, ln: ln, done: make(chan struct{}), hs: &http.Server{
		Handler:           handler,
		TLSConfig:         m.tlsFor(ep.Addr),
		ReadHeaderTimeout: m.cfg.ReadHeaderTimeout,
		IdleTimeout:       m.cfg.IdleTimeout,
		ErrorLog:          log.New(&errorLogWriter{logger: m.log}, "", 0),
	}}
	go func() {
		defer close(l.done)
		var err error
		if m.cfg.TLS != nil {
			err = l.hs.ServeTLS(ln, "", "")
		} else {
			err = l.hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("private endpoint listener stopped", "endpoint", ep.ID, "error", err)
		}
	}()
	return l, nil
}

// tlsFor is the TLS configuration of the listener on addr: the main one,
// with the address's own certificate for clients that name no server.
func (m *EndpointListeners) tlsFor(addr netip.Addr) *tls.Config {
	base := m.cfg.TLS
	if base == nil || m.cfg.CertificateForIP == nil {
		return base
	}
	conf := base.Clone()
	forIP := m.cfg.CertificateForIP
	conf.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "" || base.GetCertificate == nil {
			return forIP(addr)
		}
		return base.GetCertificate(hello)
	}
	return conf
}

// close cuts the listener and its connections off at once: the endpoint is
// gone.
func (l *endpointListener) close() {
	_ = l.hs.Close() // closes the listener and every connection; the error is the listener's close
	<-l.done
}

// shutdown closes every listener gracefully (process shutdown).
func (m *EndpointListeners) shutdown() {
	m.mu.Lock()
	m.closed = true
	ls := make([]*endpointListener, 0, len(m.open))
	for _, l := range m.open {
		ls = append(ls, l)
	}
	clear(m.open)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
			defer cancel()
			if err := l.hs.Shutdown(ctx); err != nil {
				_ = l.hs.Close()
			}
			<-l.done
		})
	}
	wg.Wait()
}
