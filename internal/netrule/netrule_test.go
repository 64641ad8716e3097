package netrule

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
)

// cfg is a registry's network settings in the table's shorthand.
type cfg struct {
	public  string // publicNetworkAccess; "" = Enabled
	deflt   string // defaultAction; "" = Allow
	bypass  string // networkRuleBypassOptions; "" = AzureServices
	tasks   bool
	rules   []string
	eps     []PrivateEndpoint
	fixture string // a name for failures
}

func (c cfg) registry() model.Registry {
	r := model.Defaults()
	r.SKU = model.SKUPremium
	r.Location = "local"
	p := &r.Properties
	if c.public != "" {
		p.PublicNetworkAccess = c.public
	}
	if c.deflt != "" {
		p.NetworkRuleSet.DefaultAction = c.deflt
	}
	if c.bypass != "" {
		p.NetworkRuleBypassOptions = c.bypass
	}
	p.NetworkRuleBypassAllowedForTasks = c.tasks
	for _, v := range c.rules {
		p.NetworkRuleSet.IPRules = append(p.NetworkRuleSet.IPRules, model.IPRule{Action: model.ActionAllow, Value: v})
	}
	return r
}

func mustCompile(t testing.TB, c cfg) *Policy {
	t.Helper()
	p, err := Compile(c.registry(), c.eps)
	if err != nil {
		t.Fatalf("Compile(%s): %v", c.fixture, err)
	}
	return p
}

const (
	peA = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe-a"
	peB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe-b"
)

var (
	open        = cfg{fixture: "defaults (public, Allow)"}
	publicOff   = cfg{fixture: "publicNetworkAccess Disabled", public: model.Disabled}
	publicOffPE = cfg{fixture: "public off with endpoints", public: model.Disabled, eps: []PrivateEndpoint{
		{peA, "Approved"}, {peB, "Pending"},
		{"pe-rejected", "Rejected"}, {"pe-disconnected", "Disconnected"},
	}}
	publicOffNoBypass = cfg{fixture: "public off, bypass None", public: model.Disabled, bypass: model.BypassNone}
	publicOffTasks    = cfg{fixture: "public off, tasks allowed", public: model.Disabled, tasks: true}
	denyOne           = cfg{fixture: "Deny with one rule", deflt: model.ActionDeny, rules: []string{"127.0.0.2"}}
	denyNone          = cfg{fixture: "Deny without rules", deflt: model.ActionDeny}
	denyMany          = cfg{fixture: "Deny with overlapping rules", deflt: model.ActionDeny, rules: []string{
		"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "192.168.1.0/25", "192.168.1.128/25",
		"2001:db8::/32", "2001:db8:1::1/128", "fe80::/10",
	}}
	denyEverything = cfg{fixture: "Deny with 0.0.0.0/0", deflt: model.ActionDeny, rules: []string{"0.0.0.0/0"}}
	denyAllV6      = cfg{fixture: "Deny with ::/0", deflt: model.ActionDeny, rules: []string{"::/0"}}
	denyMappedRule = cfg{fixture: "Deny with a mapped rule", deflt: model.ActionDeny, rules: []string{"::ffff:127.0.0.0/104"}}
	denyHostBits   = cfg{fixture: "Deny with host bits set", deflt: model.ActionDeny, rules: []string{"10.9.8.7/24"}}
	allowWithRules = cfg{fixture: "Allow with rules", rules: []string{"10.0.0.0/8"}}
	publicOffDeny  = cfg{fixture: "public off and Deny", public: model.Disabled, deflt: model.ActionDeny, rules: []string{"127.0.0.2"}}
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		cfg    cfg
		req    Request
		allow  bool
		step   Step
		rule   string
		reason string // a substring of Reason
	}{
		// Step 1: private endpoints.
		{"approved endpoint while public access is disabled", publicOffPE, Request{ClientIP: ip("10.5.0.4"), PrivateEndpointID: peA}, true, StepPrivateEndpoint, "", "is Approved"},
		{"endpoint id matched case-insensitively", publicOffPE, Request{PrivateEndpointID: strings.ToUpper(peA)}, true, StepPrivateEndpoint, "", "Approved"},
		{"approved endpoint ignores the firewall", cfg{deflt: model.ActionDeny, eps: []PrivateEndpoint{{peA, "approved"}}}, Request{ClientIP: ip("8.8.8.8"), PrivateEndpointID: peA}, true, StepPrivateEndpoint, "", ""},
		{"approved endpoint needs no client IP", publicOffPE, Request{PrivateEndpointID: peA}, true, StepPrivateEndpoint, "", ""},
		{"pending endpoint", publicOffPE, Request{ClientIP: ip("10.5.0.4"), PrivateEndpointID: peB}, false, StepPrivateEndpoint, "", "is Pending, not Approved"},
		{"rejected endpoint", publicOffPE, Request{PrivateEndpointID: "pe-rejected"}, false, StepPrivateEndpoint, "", "Rejected"},
		{"disconnected endpoint", publicOffPE, Request{PrivateEndpointID: "pe-disconnected"}, false, StepPrivateEndpoint, "", "Disconnected"},
		{"endpoint of another registry", publicOffPE, Request{ClientIP: ip("10.5.0.4"), PrivateEndpointID: peA + "-other"}, false, StepPrivateEndpoint, "", "not connected to this registry"},
		{"endpoint of another registry on an open registry", open, Request{ClientIP: ip("127.0.0.1"), PrivateEndpointID: peA}, false, StepPrivateEndpoint, "", "not connected"},
		{"pending endpoint is not rescued by a trusted service", publicOffPE, Request{PrivateEndpointID: peB, TrustedService: ContainerInstances}, false, StepPrivateEndpoint, "", "Pending"},
		{"pending endpoint is not rescued by an open firewall", cfg{eps: []PrivateEndpoint{{peB, Pending}}}, Request{ClientIP: ip("127.0.0.1"), PrivateEndpointID: peB}, false, StepPrivateEndpoint, "", ""},

		// Step 2: trusted services.
		{"container instances while public access is disabled", publicOff, Request{ClientIP: ip("20.1.2.3"), TrustedService: ContainerInstances}, true, StepTrustedService, "", "Container Instances and networkRuleBypassOptions is AzureServices"},
		{"defender while public access is disabled", publicOff, Request{TrustedService: DefenderForCloud}, true, StepTrustedService, "", "Defender"},
		{"machine learning", publicOff, Request{TrustedService: MachineLearning}, true, StepTrustedService, "", "Machine Learning"},
		{"registry import", publicOff, Request{TrustedService: RegistryImport}, true, StepTrustedService, "", "Import"},
		{"trusted service past a Deny firewall", denyOne, Request{ClientIP: ip("8.8.8.8"), TrustedService: ContainerInstances}, true, StepTrustedService, "", ""},
		{"trusted service with an unknown IP", denyOne, Request{TrustedService: ContainerInstances}, true, StepTrustedService, "", ""},
		{"tasks without the flag", publicOff, Request{TrustedService: RegistryTasks}, false, StepPublicNetworkAccess, "", "networkRuleBypassAllowedForTasks true (it is false)"},
		{"tasks with the flag", publicOffTasks, Request{TrustedService: RegistryTasks}, true, StepTrustedService, "", "networkRuleBypassAllowedForTasks is true"},
		{"tasks with the flag but bypass None", cfg{public: model.Disabled, bypass: model.BypassNone, tasks: true}, Request{TrustedService: RegistryTasks}, false, StepPublicNetworkAccess, "", "bypass is off"},
		{"tasks without the flag, firewall refuses", cfg{deflt: model.ActionDeny, rules: []string{"10.0.0.0/8"}}, Request{ClientIP: ip("8.8.8.8"), TrustedService: RegistryTasks}, false, StepFirewallDefaultDeny, "", "networkRuleBypassAllowedForTasks"},
		{"tasks without the flag, firewall allows its IP", cfg{deflt: model.ActionDeny, rules: []string{"10.0.0.0/8"}}, Request{ClientIP: ip("10.1.1.1"), TrustedService: RegistryTasks}, true, StepFirewallIPRule, "10.0.0.0/8", ""},
		{"bypass None, container instances", publicOffNoBypass, Request{TrustedService: ContainerInstances}, false, StepPublicNetworkAccess, "", "publicNetworkAccess is Disabled; the trusted-services bypass is off (networkRuleBypassOptions is None)"},
		{"bypass None, defender", publicOffNoBypass, Request{TrustedService: DefenderForCloud}, false, StepPublicNetworkAccess, "", "None"},
		{"bypass None, import", cfg{deflt: model.ActionDeny, bypass: model.BypassNone}, Request{ClientIP: ip("1.1.1.1"), TrustedService: RegistryImport}, false, StepFirewallDefaultDeny, "", "bypass is off"},
		{"app service claiming trust, public off", publicOff, Request{ClientIP: ip("20.1.2.3"), TrustedService: AppService}, false, StepPublicNetworkAccess, "", "App Service is never a trusted service"},
		{"app service claiming trust, firewall refuses", denyOne, Request{ClientIP: ip("20.1.2.3"), TrustedService: AppService}, false, StepFirewallDefaultDeny, "", "App Service is never"},
		{"app service from an allowed IP goes through the firewall", denyOne, Request{ClientIP: ip("127.0.0.2"), TrustedService: AppService}, true, StepFirewallIPRule, "127.0.0.2", ""},
		{"app service on an open registry", open, Request{ClientIP: ip("20.1.2.3"), TrustedService: AppService}, true, StepFirewallDefaultAllow, "", ""},
		{"unknown service value is not trusted", publicOff, Request{TrustedService: TrustedService(200)}, false, StepPublicNetworkAccess, "", "publicNetworkAccess is Disabled"},
		{"trusted service on an open registry", open, Request{TrustedService: ContainerInstances}, true, StepTrustedService, "", ""},

		// Step 3: public network access.
		{"public access disabled", publicOff, Request{ClientIP: ip("127.0.0.1")}, false, StepPublicNetworkAccess, "", "publicNetworkAccess is Disabled"},
		{"public access disabled beats an IP rule", publicOffDeny, Request{ClientIP: ip("127.0.0.2")}, false, StepPublicNetworkAccess, "", ""},
		{"public access disabled, no IP", publicOff, Request{}, false, StepPublicNetworkAccess, "", ""},

		// Step 4: firewall.
		{"default Allow", open, Request{ClientIP: ip("127.0.0.1")}, true, StepFirewallDefaultAllow, "", "defaultAction is Allow"},
		{"default Allow ignores rules", allowWithRules, Request{ClientIP: ip("8.8.8.8")}, true, StepFirewallDefaultAllow, "", ""},
		{"default Allow needs no IP", open, Request{}, true, StepFirewallDefaultAllow, "", ""},
		{"seed 003: allowed source", denyOne, Request{ClientIP: ip("127.0.0.2")}, true, StepFirewallIPRule, "127.0.0.2", "ipRules[0] \"127.0.0.2\""},
		{"seed 003: refused source", denyOne, Request{ClientIP: ip("127.0.0.3")}, false, StepFirewallDefaultDeny, "", "inside no networkRuleSet.ipRules entry"},
		{"refused source in IPv4-mapped form", denyOne, Request{ClientIP: ip("::ffff:127.0.0.3")}, false, StepFirewallDefaultDeny, "", ""},
		{"allowed source in IPv4-mapped form", denyOne, Request{ClientIP: ip("::ffff:127.0.0.2")}, true, StepFirewallIPRule, "127.0.0.2", ""},
		{"IPv4-compatible form is not IPv4", denyOne, Request{ClientIP: ip("::127.0.0.2")}, false, StepFirewallDefaultDeny, "", ""},
		{"NAT64 form is not IPv4", denyOne, Request{ClientIP: ip("64:ff9b::127.0.0.2")}, false, StepFirewallDefaultDeny, "", ""},
		{"IPv6 client against IPv4 rules", denyOne, Request{ClientIP: ip("::1")}, false, StepFirewallDefaultDeny, "", ""},
		{"Deny without rules", denyNone, Request{ClientIP: ip("127.0.0.1")}, false, StepFirewallDefaultDeny, "", ""},
		{"zero client IP fails closed", denyEverything, Request{}, false, StepFirewallDefaultDeny, "", "client IP is unknown"},
		{"zoned client IP matches no rule", denyAllV6, Request{ClientIP: ip("fe80::1%eth0")}, false, StepFirewallDefaultDeny, "", ""},
		{"first matching rule is named", denyMany, Request{ClientIP: ip("10.1.2.3")}, true, StepFirewallIPRule, "10.0.0.0/8", "ipRules[0]"},
		{"nested rule", denyMany, Request{ClientIP: ip("10.255.255.255")}, true, StepFirewallIPRule, "10.0.0.0/8", ""},
		{"just outside a /8", denyMany, Request{ClientIP: ip("11.0.0.0")}, false, StepFirewallDefaultDeny, "", ""},
		{"just below a /8", denyMany, Request{ClientIP: ip("9.255.255.255")}, false, StepFirewallDefaultDeny, "", ""},
		{"adjacent /25s, low half", denyMany, Request{ClientIP: ip("192.168.1.127")}, true, StepFirewallIPRule, "192.168.1.0/25", ""},
		{"adjacent /25s, high half", denyMany, Request{ClientIP: ip("192.168.1.128")}, true, StepFirewallIPRule, "192.168.1.128/25", ""},
		{"adjacent /25s, past the end", denyMany, Request{ClientIP: ip("192.168.2.0")}, false, StepFirewallDefaultDeny, "", ""},
		{"adjacent /25s, before the start", denyMany, Request{ClientIP: ip("192.168.0.255")}, false, StepFirewallDefaultDeny, "", ""},
		{"IPv6 rule", denyMany, Request{ClientIP: ip("2001:db8:ffff::1")}, true, StepFirewallIPRule, "2001:db8::/32", ""},
		{"IPv6 /128 inside a /32 names the /32", denyMany, Request{ClientIP: ip("2001:db8:1::1")}, true, StepFirewallIPRule, "2001:db8::/32", ""},
		{"IPv6 outside", denyMany, Request{ClientIP: ip("2001:db9::1")}, false, StepFirewallDefaultDeny, "", ""},
		{"IPv6 link-local without zone", denyMany, Request{ClientIP: ip("fe80::1")}, true, StepFirewallIPRule, "fe80::/10", ""},
		{"0.0.0.0/0 covers every IPv4", denyEverything, Request{ClientIP: ip("255.255.255.255")}, true, StepFirewallIPRule, "0.0.0.0/0", ""},
		{"0.0.0.0/0 covers 0.0.0.0", denyEverything, Request{ClientIP: ip("0.0.0.0")}, true, StepFirewallIPRule, "0.0.0.0/0", ""},
		{"0.0.0.0/0 covers mapped IPv4", denyEverything, Request{ClientIP: ip("::ffff:1.2.3.4")}, true, StepFirewallIPRule, "0.0.0.0/0", ""},
		{"0.0.0.0/0 does not cover IPv6", denyEverything, Request{ClientIP: ip("2001:db8::1")}, false, StepFirewallDefaultDeny, "", ""},
		{"::/0 covers IPv6", denyAllV6, Request{ClientIP: ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}, true, StepFirewallIPRule, "::/0", ""},
		{"::/0 covers IPv4 through the mapped block", denyAllV6, Request{ClientIP: ip("127.0.0.1")}, true, StepFirewallIPRule, "::/0", ""},
		{"mapped rule covers IPv4", denyMappedRule, Request{ClientIP: ip("127.9.9.9")}, true, StepFirewallIPRule, "::ffff:127.0.0.0/104", ""},
		{"mapped rule refuses other IPv4", denyMappedRule, Request{ClientIP: ip("128.0.0.1")}, false, StepFirewallDefaultDeny, "", ""},
		{"host bits are masked", denyHostBits, Request{ClientIP: ip("10.9.8.1")}, true, StepFirewallIPRule, "10.9.8.7/24", ""},
		{"host bits are masked, outside", denyHostBits, Request{ClientIP: ip("10.9.9.7")}, false, StepFirewallDefaultDeny, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, tc.cfg)
			d := p.Decide(tc.req)
			if d.Allowed != tc.allow || d.Step != tc.step || d.Rule != tc.rule {
				t.Fatalf("%s: Decide(%+v) = %+v; want allowed=%v step=%s rule=%q", tc.cfg.fixture, tc.req, d, tc.allow, tc.step, tc.rule)
			}
			if d.Reason == "" || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("reason %q does not contain %q", d.Reason, tc.reason)
			}
		})
	}
}

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(*model.Registry)
		eps  []PrivateEndpoint
		want string
	}{
		{"bad rule names index and value", func(r *model.Registry) {
			r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Value: "10.0.0.1"}, {Value: "10.0.0.300"}}
		}, nil, `ipRules[1].value "10.0.0.300"`},
		{"empty rule", func(r *model.Registry) {
			r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Value: ""}}
		}, nil, `ipRules[0].value ""`},
		{"rule with space", func(r *model.Registry) {
			r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Value: " 10.0.0.1"}}
		}, nil, `ipRules[0].value " 10.0.0.1"`},
		{"rule with zone", func(r *model.Registry) {
			r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Value: "fe80::1%eth0"}}
		}, nil, `ipRules[0].value "fe80::1%eth0"`},
		{"prefix too long", func(r *model.Registry) {
			r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Value: "10.0.0.0/33"}}
		}, nil, `"10.0.0.0/33"`},
		{"rule action Deny", func(r *model.Registry) {
			r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Action: "Deny", Value: "10.0.0.1"}}
		}, nil, `ipRules[0].action "Deny"`},
		{"unknown publicNetworkAccess", func(r *model.Registry) { r.Properties.PublicNetworkAccess = "" }, nil, "publicNetworkAccess"},
		{"unknown defaultAction", func(r *model.Registry) { r.Properties.NetworkRuleSet.DefaultAction = "Block" }, nil, `defaultAction "Block"`},
		{"unknown bypass", func(r *model.Registry) { r.Properties.NetworkRuleBypassOptions = "All" }, nil, `networkRuleBypassOptions "All"`},
		{"unknown endpoint state", nil, []PrivateEndpoint{{peA, "Approving"}}, `"Approving"`},
		{"empty endpoint id", nil, []PrivateEndpoint{{"", Approved}}, "empty id"},
		{"endpoint listed twice", nil, []PrivateEndpoint{{peA, Approved}, {strings.ToLower(peA), Rejected}}, "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := cfg{}.registry()
			if tc.edit != nil {
				tc.edit(&r)
			}
			p, err := Compile(r, tc.eps)
			if err == nil || p != nil {
				t.Fatalf("Compile = %v, %v; want an error", p, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestCompileAcceptsAnyCase(t *testing.T) {
	r := cfg{}.registry()
	r.Properties.PublicNetworkAccess = "disabled"
	r.Properties.NetworkRuleSet.DefaultAction = "DENY"
	r.Properties.NetworkRuleBypassOptions = "none"
	r.Properties.NetworkRuleSet.IPRules = []model.IPRule{{Action: "allow", Value: "10.0.0.1"}, {Value: "10.0.0.2"}}
	p, err := Compile(r, []PrivateEndpoint{{peA, "APPROVED"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(Request{TrustedService: ContainerInstances}); d.Allowed || d.Step != StepPublicNetworkAccess {
		t.Fatalf("lower-case settings not read: %+v", d)
	}
	if d := p.Decide(Request{PrivateEndpointID: peA}); !d.Allowed {
		t.Fatalf("upper-case state not read: %+v", d)
	}
}

// Compile must not keep the caller's slices: the caller may reuse them.
func TestPolicyDoesNotAliasInput(t *testing.T) {
	r := cfg{deflt: model.ActionDeny, rules: []string{"10.0.0.1"}}.registry()
	eps := []PrivateEndpoint{{peA, Approved}}
	p, err := Compile(r, eps)
	if err != nil {
		t.Fatal(err)
	}
	r.Properties.NetworkRuleSet.IPRules[0].Value = "10.0.0.2"
	eps[0].ConnectionState = Rejected
	if d := p.Decide(Request{ClientIP: ip("10.0.0.1")}); !d.Allowed || d.Rule != "10.0.0.1" {
		t.Fatalf("rule changed under the policy: %+v", d)
	}
	if d := p.Decide(Request{PrivateEndpointID: peA}); !d.Allowed {
		t.Fatalf("endpoint changed under the policy: %+v", d)
	}
}

func TestVersion(t *testing.T) {
	base := cfg{deflt: model.ActionDeny, rules: []string{"10.0.0.1", "10.0.0.2"}, eps: []PrivateEndpoint{{peA, Approved}, {peB, Pending}}}
	v := mustCompile(t, base).Version()
	if len(v) != 16 || strings.Trim(v, "0123456789abcdef") != "" {
		t.Fatalf("Version %q is not 16 hex digits", v)
	}
	same := base
	same.eps = []PrivateEndpoint{{strings.ToUpper(peB), "pending"}, {peA, Approved}}
	if got := mustCompile(t, same).Version(); got != v {
		t.Fatalf("endpoint order or id case changed the version: %s != %s", got, v)
	}
	changes := map[string]cfg{}
	c := base
	c.public = model.Disabled
	changes["publicNetworkAccess"] = c
	c = base
	c.deflt = model.ActionAllow
	changes["defaultAction"] = c
	c = base
	c.bypass = model.BypassNone
	changes["bypass"] = c
	c = base
	c.tasks = true
	changes["tasks"] = c
	c = base
	c.rules = []string{"10.0.0.2", "10.0.0.1"}
	changes["rule order"] = c
	c = base
	c.rules = []string{"10.0.0.1"}
	changes["rule removed"] = c
	c = base
	c.eps = []PrivateEndpoint{{peA, Approved}, {peB, Rejected}}
	changes["endpoint state"] = c
	c = base
	c.eps = []PrivateEndpoint{{peA, Approved}}
	changes["endpoint removed"] = c
	for name, c := range changes {
		if got := mustCompile(t, c).Version(); got == v {
			t.Errorf("%s: version unchanged", name)
		}
	}
}

func TestStepString(t *testing.T) {
	want := map[Step]string{
		StepPrivateEndpoint: "private-endpoint", StepTrustedService: "trusted-service",
		StepPublicNetworkAccess: "public-network-access", StepFirewallDefaultAllow: "firewall-default-allow",
		StepFirewallIPRule: "firewall-ip-rule", StepFirewallDefaultDeny: "firewall-default-deny",
		0: "unknown", 99: "unknown",
	}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("Step(%d).String() = %q, want %q", s, s.String(), w)
		}
	}
}

func TestZeroDecisionDenies(t *testing.T) {
	if (Decision{}).Allowed {
		t.Fatal("the zero Decision allows")
	}
}

func TestDeniedMessage(t *testing.T) {
	tests := []struct {
		ip   netip.Addr
		want string
	}{
		{ip("127.0.0.3"), "client with IP '127.0.0.3' is not allowed access. "},
		{ip("::ffff:127.0.0.3"), "client with IP '127.0.0.3' is not allowed access. "},
		{ip("2001:db8::1"), "client with IP '2001:db8::1' is not allowed access. "},
		{netip.Addr{}, "client with IP 'unknown' is not allowed access. "},
	}
	for _, tc := range tests {
		got := DeniedMessage(tc.ip)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("DeniedMessage(%v) = %q, want prefix %q", tc.ip, got, tc.want)
		}
		if !strings.Contains(got, "'Network access'") || strings.Contains(got, "http") {
			t.Errorf("DeniedMessage(%v) = %q: want a hint to moat's docs and no external host", tc.ip, got)
		}
	}
}

// A Policy is shared by every request goroutine; run with -race.
func TestDecideConcurrently(t *testing.T) {
	p := mustCompile(t, denyMany)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				a := netip.AddrFrom4([4]byte{10, 1, byte(g), byte(i)}) //nolint:gosec // g < 8, i < 500 wraps harmlessly
				if d := p.Decide(Request{ClientIP: a}); !d.Allowed || d.Rule != "10.0.0.0/8" {
					t.Errorf("Decide(%v) = %+v", a, d)
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}
