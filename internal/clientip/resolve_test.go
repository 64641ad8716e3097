package clientip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestResolve(t *testing.T) {
	proxies := prefixes(t, "10.0.0.0/8", "fd00::/8", "192.0.2.7/32")
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{name: "no proxies trusted, no header", peer: "203.0.113.5", want: "203.0.113.5"},
		{name: "spoofed header from untrusted peer ignored", trusted: proxies, peer: "203.0.113.5", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "header ignored when nothing is trusted", peer: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "10.0.0.1"},
		{name: "trusted peer, one client", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "trusted peer, no header", trusted: proxies, peer: "10.0.0.1", want: "10.0.0.1"},
		{name: "trusted peer, empty header", trusted: proxies, peer: "10.0.0.1", xff: []string{""}, want: "10.0.0.1"},
		{name: "trusted peer, blank elements only", trusted: proxies, peer: "10.0.0.1", xff: []string{" , ,"}, want: "10.0.0.1"},
		{name: "right to left skips trusted proxies", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.1, 10.1.1.1, 192.0.2.7"}, want: "198.51.100.1"},
		{name: "client-written prefix is not believed", trusted: proxies, peer: "10.0.0.1", xff: []string{"1.1.1.1, 198.51.100.1, 10.1.1.1"}, want: "198.51.100.1"},
		{name: "garbage left of the client is never read", trusted: proxies, peer: "10.0.0.1", xff: []string{"not-an-ip, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "malformed entry read is ignored = peer", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.1, bogus"}, want: "10.0.0.1"},
		{name: "malformed unknown token", trusted: proxies, peer: "10.0.0.1", xff: []string{"unknown"}, want: "10.0.0.1"},
		{name: "malformed CIDR in header", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.0/24"}, want: "10.0.0.1"},
		{name: "multiple header lines read as one list", trusted: proxies, peer: "10.0.0.1", xff: []string{"1.1.1.1", "198.51.100.1, 10.2.2.2"}, want: "198.51.100.1"},
		{name: "multiple header lines, last line has the client", trusted: proxies, peer: "10.0.0.1", xff: []string{"1.1.1.1", "198.51.100.9"}, want: "198.51.100.9"},
		{name: "all entries trusted: leftmost", trusted: proxies, peer: "10.0.0.1", xff: []string{"10.9.9.9, 10.8.8.8"}, want: "10.9.9.9"},
		{name: "IPv6 client through IPv6 proxy", trusted: proxies, peer: "fd00::1", xff: []string{"2001:db8::5"}, want: "2001:db8::5"},
		{name: "IPv6 client in brackets with port", trusted: proxies, peer: "fd00::1", xff: []string{"[2001:db8::5]:4711"}, want: "2001:db8::5"},
		{name: "IPv6 client in brackets", trusted: proxies, peer: "fd00::1", xff: []string{"[2001:db8::5]"}, want: "2001:db8::5"},
		{name: "IPv4 client with port", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.1:4711"}, want: "198.51.100.1"},
		{name: "IPv4 in brackets is malformed", trusted: proxies, peer: "10.0.0.1", xff: []string{"[198.51.100.1]"}, want: "10.0.0.1"},
		{name: "zoned address is malformed", trusted: proxies, peer: "fd00::1", xff: []string{"fe80::1%eth0"}, want: "fd00::1"},
		{name: "IPv4-mapped peer matches IPv4 proxy", trusted: proxies, peer: "::ffff:10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "IPv4-mapped untrusted peer comes back unmapped", trusted: proxies, peer: "::ffff:203.0.113.5", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "IPv4-mapped client comes back unmapped", trusted: proxies, peer: "10.0.0.1", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "IPv4-mapped hop matches IPv4 proxy and is skipped", trusted: proxies, peer: "10.0.0.1", xff: []string{"198.51.100.1, ::ffff:10.3.3.3"}, want: "198.51.100.1"},
		{name: "IPv4-mapped trusted prefix", trusted: prefixes(t, "::ffff:10.0.0.0/104"), peer: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "unmasked trusted prefix", trusted: prefixes(t, "10.1.2.3/8"), peer: "10.0.0.1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "zoned peer", trusted: proxies, peer: "fe80::1%lo", xff: []string{"198.51.100.1"}, want: "fe80::1"},
		{name: "whitespace and tabs around entries", trusted: proxies, peer: "10.0.0.1", xff: []string{"\t198.51.100.1 ,\t10.4.4.4 "}, want: "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewResolver(tt.trusted).Resolve(netip.MustParseAddr(tt.peer), tt.xff)
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("Resolve(%s, %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
}

func TestNilResolverTrustsNobody(t *testing.T) {
	var r *Resolver
	got := r.Resolve(netip.MustParseAddr("10.0.0.1"), []string{"198.51.100.1"})
	if got != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("nil resolver believed the header: %s", got)
	}
}

func TestFromUnmaps(t *testing.T) {
	ctx := With(context.Background(), netip.MustParseAddr("::ffff:192.0.2.1"))
	got, ok := From(ctx)
	if !ok || got != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("From = %s, %v", got, ok)
	}
	if _, ok := From(context.Background()); ok {
		t.Fatal("From on an empty context reported an address")
	}
}

// FuzzResolve checks that any header yields either the peer or an address
// that appears in the header, and that an untrusted peer always wins.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"198.51.100.1", "198.51.100.1, 10.0.0.2", "[::1]:80", "garbage,,", "::ffff:1.2.3.4",
		"fe80::1%eth0", ",,,", "1.2.3.4:99999", "[1.2.3.4]", strings.Repeat("10.0.0.1,", 50),
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	r := NewResolver(prefixes(f, "10.0.0.0/8", "::1/128"))
	f.Fuzz(func(t *testing.T, header string, trustedPeer bool) {
		peer := netip.MustParseAddr("203.0.113.9")
		if trustedPeer {
			peer = netip.MustParseAddr("10.0.0.1")
		}
		got := r.Resolve(peer, []string{header})
		if !got.IsValid() || got.Is4In6() || got.Zone() != "" {
			t.Fatalf("Resolve returned %v", got)
		}
		if !trustedPeer && got != peer {
			t.Fatalf("untrusted peer's header was believed: %s", got)
		}
		if got != peer && !strings.Contains(header, strings.TrimPrefix(got.String(), "::ffff:")) {
			// The address may be written differently in the header (e.g.
			// mapped or with leading zeros in IPv6); parse every element to
			// make sure it came from there.
			found := false
			for _, e := range strings.Split(header, ",") {
				if a, ok := parseEntry(strings.TrimSpace(e)); ok && a == got {
					found = true
				}
			}
			if !found {
				t.Fatalf("Resolve returned %s, not in header %q", got, header)
			}
		}
	})
}

func TestTrusts(t *testing.T) {
	r := NewResolver(prefixes(t, "10.0.0.0/8", "::1/128"))
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"::1", true},
		{"11.0.0.1", false},
		{"::2", false},
	} {
		if got := r.Trusts(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Trusts(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	var nilR *Resolver
	if nilR.Trusts(netip.MustParseAddr("10.0.0.1")) {
		t.Error("a nil Resolver trusts a peer")
	}
}
