// Package clientip owns the answer to "which address is this request from":
// the TCP peer, or, only when that peer is a configured trusted proxy, the
// address the proxy reports. The server resolves it once per request and
// stores it in the request context; every plane reads it from there.
package clientip

import (
	"context"
	"net/netip"
)

type ctxKey struct{}

// With returns a context carrying the client address.
func With(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, ctxKey{}, addr)
}

// From returns the client address stored by With, unmapped (an IPv4-mapped
// IPv6 address comes back as IPv4), and whether one was stored.
func From(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(ctxKey{}).(netip.Addr)
	if !ok || !a.IsValid() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
