package netrule

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
)

// naiveMatch is the reference the tables must agree with: the index of the
// first rule whose prefix contains the client, reading IPv4 clients also in
// their IPv4-mapped form so IPv6 rules over ::ffff:0:0/96 apply to them.
func naiveMatch(rules []string, a netip.Addr) int {
	if !a.IsValid() || a.Zone() != "" {
		return -1
	}
	a = a.Unmap()
	for i, r := range rules {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			ad := netip.MustParseAddr(r)
			p = netip.PrefixFrom(ad, ad.BitLen())
		}
		p = p.Masked()
		if p.Contains(a) || a.Is4() && p.Addr().Is6() && p.Contains(netip.AddrFrom16(a.As16())) {
			return i
		}
	}
	return -1
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// genRule returns a random rule value drawn from small address pools, so
// rules overlap, nest, touch and cover everything often.
func genRule(r *rand.Rand) string {
	var a netip.Addr
	var bits int
	switch r.IntN(6) {
	case 0, 1, 2: // IPv4 near a few bases
		bases := [][4]byte{{10, 0, 0, 0}, {10, 1, 0, 0}, {127, 0, 0, 0}, {192, 168, 1, 0}, {0, 0, 0, 0}, {255, 255, 255, 0}}
		b := bases[r.IntN(len(bases))]
		b[2] ^= rbyte(r, 4)
		b[3] = rbyte(r, 256)
		a, bits = netip.AddrFrom4(b), []int{0, 1, 8, 16, 20, 23, 24, 25, 28, 30, 31, 32, 32, 32}[r.IntN(14)]
	case 3, 4: // IPv6 near a few bases
		bases := []string{"2001:db8::", "2001:db8:0:1::", "::", "fe80::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00"}
		b := netip.MustParseAddr(bases[r.IntN(len(bases))]).As16()
		b[15] = rbyte(r, 256)
		b[7] ^= rbyte(r, 3)
		a, bits = netip.AddrFrom16(b), []int{0, 1, 16, 32, 48, 63, 64, 65, 96, 120, 127, 128, 128}[r.IntN(13)]
	default: // IPv4-mapped IPv6
		b := [4]byte{10, rbyte(r, 2), 0, rbyte(r, 256)}
		a, bits = netip.AddrFrom16(netip.AddrFrom4(b).As16()), []int{80, 95, 96, 104, 120, 128}[r.IntN(6)]
	}
	if bits == a.BitLen() && r.IntN(2) == 0 {
		return a.String()
	}
	p := netip.PrefixFrom(a, bits)
	if r.IntN(3) == 0 {
		return p.String() // host bits may be set
	}
	return p.Masked().String()
}

// probes are addresses on and around every rule's edges plus random ones,
// in plain, IPv4-mapped and zoned forms; r == nil leaves out the random
// ones.
func probes(r *rand.Rand, rules []string) []netip.Addr {
	var out []netip.Addr
	add := func(a netip.Addr) {
		out = append(out, a)
		if a.Is4() {
			out = append(out, netip.AddrFrom16(a.As16()))
		}
	}
	for _, v := range rules {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			ad := netip.MustParseAddr(v)
			p = netip.PrefixFrom(ad, ad.BitLen())
		}
		lo, hi := p.Masked().Addr(), lastAddr(p)
		for _, a := range []netip.Addr{lo, lo.Prev(), lo.Next(), hi, hi.Prev(), hi.Next()} {
			if a.IsValid() {
				add(a.Unmap())
				add(a)
			}
		}
	}
	for i := 0; r != nil && i < 20; i++ {
		var b4 [4]byte
		var b16 [16]byte
		for i := range b4 {
			b4[i] = rbyte(r, 256)
		}
		for i := range b16 {
			b16[i] = rbyte(r, 256)
		}
		add(netip.AddrFrom4(b4))
		add(netip.AddrFrom16(b16))
	}
	out = append(out, netip.Addr{}, netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:10.0.0.1%eth0"))
	return out
}

func policyFor(t testing.TB, rules []string) *Policy {
	t.Helper()
	r := model.Defaults()
	r.Properties.NetworkRuleSet.DefaultAction = model.ActionDeny
	for _, v := range rules {
		r.Properties.NetworkRuleSet.IPRules = append(r.Properties.NetworkRuleSet.IPRules, model.IPRule{Value: v})
	}
	p, err := Compile(r, nil)
	if err != nil {
		t.Fatalf("Compile(%q): %v", rules, err)
	}
	return p
}

// checkAgainstNaive fails when Decide and the naive scan disagree on a.
func checkAgainstNaive(t testing.TB, p *Policy, rules []string, a netip.Addr) {
	t.Helper()
	want := naiveMatch(rules, a)
	d := p.Decide(Request{ClientIP: a})
	switch {
	case want < 0 && (d.Allowed || d.Step != StepFirewallDefaultDeny):
		t.Fatalf("rules %q, client %v: Decide = %+v, naive scan finds no rule", rules, a, d)
	case want >= 0 && (!d.Allowed || d.Step != StepFirewallIPRule || d.Rule != rules[want] ||
		!strings.Contains(d.Reason, fmt.Sprintf("ipRules[%d]", want))):
		t.Fatalf("rules %q, client %v: Decide = %+v, naive scan finds rule %d %q", rules, a, d, want, rules[want])
	}
}

func TestTablesAgreeWithScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := 0
	for range 400 {
		rules := make([]string, r.IntN(12))
		for i := range rules {
			rules[i] = genRule(r)
		}
		p := policyFor(t, rules)
		for _, a := range probes(r, rules) {
			checkAgainstNaive(t, p, rules, a)
			cases++
		}
	}
	if cases < 10000 {
		t.Fatalf("only %d cases", cases)
	}
}

func TestSegmentsAreSortedDisjointAndMerged(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		rules := make([]string, 1+r.IntN(30))
		for i := range rules {
			rules[i] = genRule(r)
		}
		p := policyFor(t, rules)
		for i := range p.v4.lo {
			if p.v4.lo[i] > p.v4.hi[i] {
				t.Fatalf("v4 segment %d inverted", i)
			}
			if i > 0 {
				if p.v4.lo[i] <= p.v4.hi[i-1] {
					t.Fatalf("rules %q: v4 segments %d and %d overlap", rules, i-1, i)
				}
				if p.v4.lo[i] == p.v4.hi[i-1]+1 && p.v4.idx[i] == p.v4.idx[i-1] {
					t.Fatalf("rules %q: v4 segments %d and %d should be merged", rules, i-1, i)
				}
			}
		}
		for i := range p.v6.lo {
			if p.v6.hi[i].less(p.v6.lo[i]) {
				t.Fatalf("v6 segment %d inverted", i)
			}
			if i > 0 {
				if !p.v6.hi[i-1].less(p.v6.lo[i]) {
					t.Fatalf("rules %q: v6 segments %d and %d overlap", rules, i-1, i)
				}
				if p.v6.hi[i-1].next() == p.v6.lo[i] && p.v6.idx[i] == p.v6.idx[i-1] {
					t.Fatalf("rules %q: v6 segments %d and %d should be merged", rules, i-1, i)
				}
			}
		}
		if n := len(rules); len(p.v4.lo) > 2*n+1 || len(p.v6.lo) > 2*n+1 {
			t.Fatalf("%d rules gave %d+%d segments", n, len(p.v4.lo), len(p.v6.lo))
		}
	}
}

func TestAdjacentAndDuplicateRulesMerge(t *testing.T) {
	tests := []struct {
		rules  []string
		v4, v6 int // segments expected
	}{
		{[]string{"10.0.0.0/25", "10.0.0.128/25"}, 2, 0},                // adjacent, different rules: kept apart to name each
		{[]string{"10.0.0.0/24", "10.0.0.0/25", "10.0.0.128/25"}, 1, 0}, // covered by rule 0 throughout
		{[]string{"10.0.0.1", "10.0.0.1", "10.0.0.1/32"}, 1, 0},
		{[]string{"0.0.0.0/0", "10.0.0.0/8"}, 1, 0},
		{[]string{"10.0.0.0/8", "0.0.0.0/0"}, 3, 0}, // 0/0 before and after 10/8
		{[]string{"::/0"}, 1, 2},                    // the IPv6 table skips the mapped block
		{[]string{"255.255.255.255", "255.255.255.254"}, 2, 0},
		{[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "::/128"}, 0, 2},
	}
	for _, tc := range tests {
		p := policyFor(t, tc.rules)
		if len(p.v4.lo) != tc.v4 || len(p.v6.lo) != tc.v6 {
			t.Errorf("%q: %d IPv4 and %d IPv6 segments, want %d and %d", tc.rules, len(p.v4.lo), len(p.v6.lo), tc.v4, tc.v6)
		}
	}
}

func TestParseRuleRange(t *testing.T) {
	tests := []struct{ in, lo, hi string }{
		{"10.0.0.1", "::ffff:10.0.0.1", "::ffff:10.0.0.1"},
		{"10.1.2.3/8", "::ffff:10.0.0.0", "::ffff:10.255.255.255"},
		{"0.0.0.0/0", "::ffff:0.0.0.0", "::ffff:255.255.255.255"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::/63", "2001:db8::", "2001:db8:0:1:ffff:ffff:ffff:ffff"},
		{"2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"},
		{"2001:db8::/65", "2001:db8::", "2001:db8::7fff:ffff:ffff:ffff"},
		{"::1/128", "::1", "::1"},
		{"::ffff:10.0.0.0/104", "::ffff:10.0.0.0", "::ffff:10.255.255.255"},
	}
	for _, tc := range tests {
		lo, hi, err := parseRule(tc.in)
		if err != nil {
			t.Fatalf("parseRule(%q): %v", tc.in, err)
		}
		if w := u128From16(netip.MustParseAddr(tc.lo).As16()); lo != w {
			t.Errorf("parseRule(%q) lo = %x, want %s", tc.in, lo, tc.lo)
		}
		if w := u128From16(netip.MustParseAddr(tc.hi).As16()); hi != w {
			t.Errorf("parseRule(%q) hi = %x, want %s", tc.in, hi, tc.hi)
		}
	}
}

// rbyte returns a random byte below n.
func rbyte(r *rand.Rand, n int) byte {
	return byte(r.IntN(min(n, 256))) //nolint:gosec // below 256 by construction
}
