package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/server"
	"github.com/moat-registry/moat/internal/server/localca"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// endpointFollower runs the private endpoint listeners (server.EndpointListeners)
// of this replica. The management plane is built before the main listener's
// port is known, so its change callback reaches the listeners through here:
// a change made through this replica is applied before the management call
// answers; a change announced by another replica is applied soon after.
type endpointFollower struct {
	mu     sync.Mutex
	m      *server.EndpointListeners
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

func newEndpointFollower() *endpointFollower { return &endpointFollower{} }

// afterChange wraps the management plane's OnRegistryChange.
func (f *endpointFollower) afterChange(inner func(context.Context, string)) func(context.Context, string) {
	return func(ctx context.Context, name string) {
		inner(ctx, name)
		f.mu.Lock()
		m, log := f.m, f.log
		f.mu.Unlock()
		if m == nil {
			return
		}
		// The change is committed: a client that went away must not stop
		// its listener from following.
		if err := m.Sync(context.WithoutCancel(ctx)); err != nil {
			log.Error("private endpoint listeners after a change", "registry", name, "error", err)
		}
	}
}

// trigger asks for a sync without waiting (another replica's change).
func (f *endpointFollower) trigger() {
	f.mu.Lock()
	m := f.m
	f.mu.Unlock()
	if m != nil {
		m.Trigger()
	}
}

// start opens the listeners on the main listener's port and follows the
// store until ctx is done.
func (f *endpointFollower) start(ctx context.Context, store meta.Store, data http.Handler, main net.Addr, tlsConf *tls.Config,
	ca *localca.CA, o *serveOptions, logger *slog.Logger) error {
	ap, err := netip.ParseAddrPort(main.String())
	if err != nil {
		return fmt.Errorf("private endpoint listeners: main listener address %s: %w", main, err)
	}
	var forIP func(netip.Addr) (*tls.Certificate, error)
	if ca != nil {
		// Clients that dial the endpoint's address get a certificate naming
		// it; with --tls-cert the operator's certificate must name it.
		forIP = ca.CertificateForIP
	}
	m, err := server.NewEndpointListeners(server.EndpointConfig{
		Load:             func(ctx context.Context) ([]privatelink.Endpoint, error) { return privatelink.List(ctx, store) },
		Data:             data,
		Port:             int(ap.Port()),
		TLS:              tlsConf,
		CertificateForIP: forIP,
		LoopbackOnly:     o.insecureHTTP,
		ShutdownTimeout:  o.shutdownTimeout,
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	if err := m.Sync(ctx); err != nil {
		logger.Error("some private endpoint listeners could not be opened; retrying in the background", "error", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f.mu.Lock()
	f.m, f.log, f.cancel, f.done = m, logger, cancel, make(chan struct{})
	done := f.done
	f.mu.Unlock()
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	return nil
}

// stop closes the listeners (gracefully) and returns once they are closed.
func (f *endpointFollower) stop() {
	f.mu.Lock()
	cancel, done := f.cancel, f.done
	f.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
