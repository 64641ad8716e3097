package clientip

import (
	"net/netip"
	"strings"
)

// Resolver finds the client address of a request from its TCP peer and,
// only when that peer is a trusted proxy, its X-Forwarded-For header. The
// zero value (and a nil *Resolver) trusts no proxy. It is safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver that trusts the proxies inside the given
// prefixes. Prefixes are masked, and IPv4-mapped IPv6 prefixes are turned
// into the IPv4 prefixes they denote, so that ::ffff:10.0.0.0/104 trusts
// 10.0.0.1 just as 10.0.0.0/8 does. Invalid prefixes are dropped (they could
// only ever fail to match).
func NewResolver(trusted []netip.Prefix) *Resolver {
	r := &Resolver{trusted: make([]netip.Prefix, 0, len(trusted))}
	for _, p := range trusted {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r
}

// Resolve returns the client address of a request that arrived from the TCP
// peer with the given X-Forwarded-For header values (in the order they
// appeared).
//
// The header is read only when the peer itself is trusted: anyone else can
// write anything in it. It is then read right to left, because each proxy
// appends the address it received the request from; the first address that
// is not a trusted proxy is the client. Everything to the left of that entry
// was written by the client or by proxies we do not trust, so it is never
// parsed. A malformed entry in the part that is read, or a header that is
// missing or empty, yields the peer. When every entry is a trusted proxy the
// leftmost one is the client. Addresses come back unmapped (an IPv4-mapped
// IPv6 address as IPv4) and without zone.
func (r *Resolver) Resolve(peer netip.Addr, xff []string) netip.Addr {
	peer = peer.Unmap().WithZone("")
	var trusted []netip.Prefix
	if r != nil {
		trusted = r.trusted
	}
	if !contains(trusted, peer) {
		return peer
	}
	var last netip.Addr
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for {
			entry := rest
			cut := strings.LastIndexByte(rest, ',')
			if cut >= 0 {
				entry, rest = rest[cut+1:], rest[:cut]
			}
			entry = strings.TrimSpace(entry)
			// An empty element (a stray comma or an empty header line) carries
			// no address; skip it rather than treat it as an attack, as RFC 9110
			// list syntax allows empty elements.
			if entry != "" {
				addr, ok := parseEntry(entry)
				if !ok {
					return peer
				}
				if !contains(trusted, addr) {
					return addr
				}
				last = addr
			}
			if cut < 0 {
				break
			}
		}
	}
	if last.IsValid() {
		return last
	}
	return peer
}

// parseEntry parses one X-Forwarded-For element: an IPv4 or IPv6 address,
// optionally with a port ("1.2.3.4:80", "[::1]:80") or in brackets ("[::1]"),
// as some proxies write them.
func parseEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return clean(a)
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return clean(ap.Addr())
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return clean(a)
		}
	}
	return netip.Addr{}, false
}

// clean rejects zoned addresses (a zone names an interface of the proxy's
// host and is meaningless to us) and unmaps IPv4-mapped ones.
func clean(a netip.Addr) (netip.Addr, bool) {
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// contains reports whether a is inside one of the prefixes (normalized by
// NewResolver).
func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Trusts reports whether the peer a is a trusted proxy. A nil Resolver
// trusts nobody.
func (r *Resolver) Trusts(a netip.Addr) bool {
	if r == nil {
		return false
	}
	return contains(r.trusted, a.Unmap().WithZone(""))
}
