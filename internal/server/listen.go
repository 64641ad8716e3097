package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// LookupFunc resolves a host name to its addresses.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// CheckLoopback returns an error unless the listen address addr
// (host:port) can only be a loopback address: an IP literal in 127.0.0.0/8
// or ::1, or a name all of whose addresses are (such as "localhost"). An
// empty host or an unspecified address (0.0.0.0, ::) listens on every
// interface and is refused. lookup nil means the system resolver.
func CheckLoopback(ctx context.Context, addr string, lookup LookupFunc) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("listen address %q listens on every interface, not only loopback", addr)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("listen address %q is not a loopback address", addr)
		}
		return nil
	}
	if lookup == nil {
		lookup = defaultLookup
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return fmt.Errorf("listen address %q: resolving %s: %w", addr, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("listen address %q: %s has no addresses", addr, host)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("listen address %q: %s resolves to %s, which is not a loopback address", addr, host, a)
		}
	}
	return nil
}

// Listen opens a TCP listener on addr. With loopbackOnly, addr is checked
// with CheckLoopback before anything is bound, and the bound address is
// checked again (a resolver could answer differently the second time).
func Listen(ctx context.Context, addr string, loopbackOnly bool) (net.Listener, error) {
	if loopbackOnly {
		if err := CheckLoopback(ctx, addr, nil); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if loopbackOnly {
		ap, err := netip.ParseAddrPort(ln.Addr().String())
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			cerr := ln.Close()
			return nil, errors.Join(fmt.Errorf("listen address %q bound %s, which is not a loopback address", addr, ln.Addr()), cerr)
		}
	}
	return ln, nil
}
