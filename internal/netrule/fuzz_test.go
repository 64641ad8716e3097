package netrule

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
)

var fuzzRuleSeeds = []string{
	"10.0.0.1", "10.0.0.0/8", "10.1.2.3/8", "0.0.0.0/0", "::/0", "::1", "2001:db8::/32",
	"::ffff:10.0.0.0/104", "::ffff:10.0.0.1", "fe80::1%eth0", "fe80::/10", "10.0.0.0/33", "::/129",
	"10.0.0.256", "010.0.0.1", " 10.0.0.1", "10.0.0.1 ", "", "/", "10.0.0.0/", "/8", "10.0.0.0/-1",
	"10.0.0.0/08", "1.2.3.4/32", "2001:db8::1/128", "::ffff:1.2.3.4/96", "1::2::3", "[::1]", "10.0.0.1/24/24",
	"\x00", "1.2.3.4\n",
}

// FuzzCompile: any rule strings compile or fail without panicking; a
// failure names the index and the quoted value of a rule; and Compile
// accepts exactly what model.Validate accepts, so a stored registry always
// compiles and nothing model refuses slips in.
func FuzzCompile(f *testing.F) {
	for i, s := range fuzzRuleSeeds {
		f.Add(s, fuzzRuleSeeds[(i+1)%len(fuzzRuleSeeds)], "10.0.0.0/8")
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		r := model.Defaults()
		r.Location, r.SKU = "local", model.SKUPremium
		r.Properties.NetworkRuleSet.DefaultAction = model.ActionDeny
		for _, v := range []string{a, b, c} {
			r.Properties.NetworkRuleSet.IPRules = append(r.Properties.NetworkRuleSet.IPRules, model.IPRule{Action: model.ActionAllow, Value: v})
		}
		p, err := Compile(r, nil)
		verr := model.Validate(nil, r, model.ValidationContext{})
		if (err == nil) != (verr == nil) {
			t.Fatalf("rules %q: Compile error %v but model.Validate error %v", []string{a, b, c}, err, verr)
		}
		if err != nil {
			named := false
			for i, v := range []string{a, b, c} {
				if strings.Contains(err.Error(), fmt.Sprintf("ipRules[%d].value %q", i, v)) {
					named = true
				}
			}
			if !named || p != nil {
				t.Fatalf("rules %q: error %q names no rule's index and value", []string{a, b, c}, err)
			}
			return
		}
		rules := []string{a, b, c}
		for _, probe := range probes(nil, rules) {
			checkAgainstNaive(t, p, rules, probe)
		}
	})
}

// FuzzDecide: for fuzzed rules and client addresses, Decide agrees with a
// scan of the rules, in every form the client address may take.
func FuzzDecide(f *testing.F) {
	f.Add("10.0.0.0/8", "127.0.0.2", []byte{10, 1, 2, 3})
	f.Add("0.0.0.0/0", "::/0", []byte{})
	f.Add("::ffff:127.0.0.0/104", "2001:db8::/32", []byte{127, 0, 0, 3})
	f.Add("192.168.1.0/25", "192.168.1.128/25", []byte{192, 168, 1, 128})
	f.Add("2001:db8::/32", "2001:db8::1", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("::/96", "::ffff:0:0/96", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, a, b string, addr []byte) {
		rules := []string{a, b}
		r := model.Defaults()
		r.Properties.NetworkRuleSet.DefaultAction = model.ActionDeny
		for _, v := range rules {
			r.Properties.NetworkRuleSet.IPRules = append(r.Properties.NetworkRuleSet.IPRules, model.IPRule{Value: v})
		}
		p, err := Compile(r, nil)
		if err != nil {
			return
		}
		var client netip.Addr
		switch {
		case len(addr) >= 16:
			client = netip.AddrFrom16([16]byte(addr[:16]))
		case len(addr) >= 4:
			client = netip.AddrFrom4([4]byte(addr[:4]))
		}
		checkAgainstNaive(t, p, rules, client)
		if client.IsValid() {
			checkAgainstNaive(t, p, rules, netip.AddrFrom16(client.As16()))
			checkAgainstNaive(t, p, rules, client.Unmap())
		}
	})
}
