package netrule

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/moat-registry/moat/internal/model"
)

// benchPolicy compiles n rules: IPv4 /24s, /32s and /16s over the whole
// space plus an IPv6 rule in ten, as a large real rule set would look.
func benchPolicy(b testing.TB, n int) (*Policy, []netip.Addr) {
	r := rand.New(rand.NewPCG(7, 11))
	reg := model.Defaults()
	reg.Properties.NetworkRuleSet.DefaultAction = model.ActionDeny
	var rules []string
	for i := range n {
		var v string
		switch {
		case i%10 == 9:
			v = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, rbyte(r, 256), rbyte(r, 256)}), 48).String()
		case i%3 == 0:
			v = netip.AddrFrom4([4]byte{rbyte(r, 256), rbyte(r, 256), rbyte(r, 256), rbyte(r, 256)}).String()
		case i%3 == 1:
			v = netip.PrefixFrom(netip.AddrFrom4([4]byte{rbyte(r, 256), rbyte(r, 256), rbyte(r, 256)}), 24).String()
		default:
			v = netip.PrefixFrom(netip.AddrFrom4([4]byte{rbyte(r, 256), rbyte(r, 256)}), 16).String()
		}
		rules = append(rules, v)
		reg.Properties.NetworkRuleSet.IPRules = append(reg.Properties.NetworkRuleSet.IPRules, model.IPRule{Value: v})
	}
	p, err := Compile(reg, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Clients: half inside some rule, half random (mostly refused), a
	// quarter of all in IPv4-mapped form.
	clients := make([]netip.Addr, 1024)
	for i := range clients {
		var a netip.Addr
		if i%2 == 0 {
			v := rules[r.IntN(len(rules))]
			if pf, err := netip.ParsePrefix(v); err == nil {
				a = pf.Addr()
			} else {
				a = netip.MustParseAddr(v)
			}
		} else {
			a = netip.AddrFrom4([4]byte{rbyte(r, 256), rbyte(r, 256), rbyte(r, 256), rbyte(r, 256)})
		}
		if i%4 == 1 && a.Is4() {
			a = netip.AddrFrom16(a.As16())
		}
		clients[i] = a
	}
	return p, clients
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 200, 10000} {
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			p, clients := benchPolicy(b, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = p.Decide(Request{ClientIP: clients[i&1023]})
				i++
			}
		})
	}
}

func BenchmarkCompile10000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchPolicy(b, 10000)
	}
}

// TestDecideDoesNotAllocate holds the benchmark's 0 allocs/op in an
// ordinary test run.
func TestDecideDoesNotAllocate(t *testing.T) {
	p, clients := benchPolicy(t, 200)
	reqs := []Request{
		{ClientIP: clients[0]}, {ClientIP: clients[1]}, {},
		{TrustedService: AppService}, {TrustedService: ContainerInstances},
		{PrivateEndpointID: "pe"},
	}
	for _, req := range reqs {
		if n := testing.AllocsPerRun(100, func() { _ = p.Decide(req) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %v times", req, n)
		}
	}
}
