package netrule

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-registry/moat/internal/model"
)

// Private endpoint connection states, as ACR spells them.
const (
	Approved     = "Approved"
	Pending      = "Pending"
	Rejected     = "Rejected"
	Disconnected = "Disconnected"
)

// PrivateEndpoint is one private endpoint connected to the registry.
type PrivateEndpoint struct {
	// ID identifies the endpoint; the server puts the same value in
	// Request.PrivateEndpointID for requests arriving on it. It is compared
	// case-insensitively, as ARM resource ids are.
	ID string
	// ConnectionState is Approved, Pending, Rejected or Disconnected (any
	// case); only Approved lets requests through.
	ConnectionState string
}

// Request is what the network decision reads about one data-plane request.
type Request struct {
	// ClientIP is the client address as the edge resolved it (clientip).
	// IPv4-mapped IPv6 is matched as IPv4; an address with an IPv6 zone
	// matches no rule; the zero value matches no rule.
	ClientIP netip.Addr
	// PrivateEndpointID is the endpoint the request arrived on, "" for the
	// public endpoint.
	PrivateEndpointID string
	// TrustedService is the service the caller was recognised as, None when
	// the caller is not (yet) known.
	TrustedService TrustedService
}

// Step is the step of the decision that decided.
type Step uint8

// The steps, in the order Decide takes them. The zero Step is not one.
const (
	StepPrivateEndpoint Step = iota + 1
	StepTrustedService
	StepPublicNetworkAccess
	StepFirewallDefaultAllow
	StepFirewallIPRule
	StepFirewallDefaultDeny
)

var stepNames = [...]string{
	StepPrivateEndpoint:      "private-endpoint",
	StepTrustedService:       "trusted-service",
	StepPublicNetworkAccess:  "public-network-access",
	StepFirewallDefaultAllow: "firewall-default-allow",
	StepFirewallIPRule:       "firewall-ip-rule",
	StepFirewallDefaultDeny:  "firewall-default-deny",
}

func (s Step) String() string {
	if int(s) < len(stepNames) && stepNames[s] != "" {
		return stepNames[s]
	}
	return "unknown"
}

// Decision is the answer of Decide. Its zero value denies.
type Decision struct {
	Allowed bool
	Step    Step
	// Rule is the ipRules value that allowed the request (StepFirewallIPRule).
	Rule string
	// Reason says, for people and audit records, which setting and value
	// decided.
	Reason string
}

// DeniedMessage is the message of the 403 DENIED answer to a request the
// network decision refused. An IPv4-mapped address is shown as IPv4.
func DeniedMessage(ip netip.Addr) string {
	s := "unknown"
	if ip.IsValid() {
		s = ip.Unmap().String()
	}
	return "client with IP '" + s + "' is not allowed access. Refer to moat's README, section 'Network access', to configure registry firewall."
}

// Policy is a registry's network configuration compiled for Decide. It is
// immutable once Compile returns and safe for concurrent use.
type Policy struct {
	publicDisabled bool
	defaultDeny    bool
	bypass         bool // networkRuleBypassOptions is AzureServices
	tasks          bool // networkRuleBypassAllowedForTasks
	ruleValues     []string
	ruleReasons    []string
	v4             v4Table
	v6             v6Table
	endpoints      map[string]endpoint // by ID as given
	endpointList   []endpoint          // for case-insensitive lookups
	version        string
}

type endpoint struct {
	id      string
	state   string // canonical case
	allowed bool
	reason  string
}

// Compile checks reg's network settings and builds its Policy, with the
// private endpoints connected to reg. It fails, naming the setting, its
// index and value, on anything Decide could not judge with certainty: an
// enum value it does not know, an ipRules entry that is not an address or
// CIDR or whose action is not Allow, an endpoint with an empty or repeated
// id or an unknown state. The caller must then deny (fail closed).
func Compile(reg model.Registry, endpoints []PrivateEndpoint) (*Policy, error) {
	p := reg.Properties
	pol := &Policy{}
	var err error
	if pol.publicDisabled, err = enum("publicNetworkAccess", p.PublicNetworkAccess, model.Enabled, model.Disabled); err != nil {
		return nil, err
	}
	if pol.defaultDeny, err = enum("networkRuleSet.defaultAction", p.NetworkRuleSet.DefaultAction, model.ActionAllow, model.ActionDeny); err != nil {
		return nil, err
	}
	var bypassNone bool
	if bypassNone, err = enum("networkRuleBypassOptions", p.NetworkRuleBypassOptions, model.BypassAzureServices, model.BypassNone); err != nil {
		return nil, err
	}
	pol.bypass = !bypassNone
	pol.tasks = p.NetworkRuleBypassAllowedForTasks

	rules := p.NetworkRuleSet.IPRules
	if len(rules) > 1<<30 {
		return nil, fmt.Errorf("netrule: networkRuleSet.ipRules has %d rules, too many to compile", len(rules))
	}
	spans := make([]span, 0, len(rules))
	pol.ruleValues = make([]string, len(rules))
	pol.ruleReasons = make([]string, len(rules))
	for i, r := range rules {
		if r.Action != "" && !strings.EqualFold(r.Action, model.ActionAllow) {
			return nil, fmt.Errorf("netrule: networkRuleSet.ipRules[%d].action %q is not %q", i, r.Action, model.ActionAllow)
		}
		lo, hi, err := parseRule(r.Value)
		if err != nil {
			return nil, fmt.Errorf("netrule: networkRuleSet.ipRules[%d].value %q is not an IPv4/IPv6 address or CIDR: %w", i, r.Value, err)
		}
		spans = append(spans, span{lo: lo, hi: hi, idx: int32(i)}) // i < 1<<30, checked above
		pol.ruleValues[i] = r.Value
		pol.ruleReasons[i] = "networkRuleSet.defaultAction is Deny and the client IP is inside networkRuleSet.ipRules[" +
			strconv.Itoa(i) + "] " + strconv.Quote(r.Value)
	}
	pol.v4, pol.v6 = buildTables(spans)

	pol.endpoints = make(map[string]endpoint, len(endpoints))
	for i, e := range endpoints {
		if e.ID == "" {
			return nil, fmt.Errorf("netrule: private endpoint %d has an empty id", i)
		}
		var state string
		for _, s := range []string{Approved, Pending, Rejected, Disconnected} {
			if strings.EqualFold(e.ConnectionState, s) {
				state = s
			}
		}
		if state == "" {
			return nil, fmt.Errorf("netrule: private endpoint %d %q: connection state %q is not one of Approved, Pending, Rejected, Disconnected", i, e.ID, e.ConnectionState)
		}
		for _, prev := range pol.endpointList {
			if strings.EqualFold(prev.id, e.ID) {
				return nil, fmt.Errorf("netrule: private endpoint %d %q is listed twice", i, e.ID)
			}
		}
		ep := endpoint{id: e.ID, state: state, allowed: state == Approved}
		if ep.allowed {
			ep.reason = "private endpoint " + strconv.Quote(e.ID) + " connection is Approved"
		} else {
			ep.reason = "private endpoint " + strconv.Quote(e.ID) + " connection is " + state + ", not Approved"
		}
		pol.endpoints[e.ID] = ep
		pol.endpointList = append(pol.endpointList, ep)
	}
	pol.version = fingerprint(pol)
	return pol, nil
}

// enum reads a setting that must be one of two values (any case) and
// reports whether it is the second.
func enum(name, v, first, second string) (bool, error) {
	switch {
	case strings.EqualFold(v, first):
		return false, nil
	case strings.EqualFold(v, second):
		return true, nil
	}
	return false, fmt.Errorf("netrule: %s %q is not %s or %s", name, v, first, second)
}

// fingerprint hashes everything Decide reads, in a length-prefixed
// encoding, so equal configurations get equal versions and any change that
// can change a decision (including rule order, which decides the reported
// rule) changes it. Endpoint ids are compared case-insensitively, so they
// are hashed lower-cased.
func fingerprint(p *Policy) string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	put("netrule/v1")
	put(flag(p.publicDisabled))
	put(flag(p.defaultDeny))
	put(flag(p.bypass))
	put(flag(p.tasks))
	put(strconv.Itoa(len(p.ruleValues)))
	for _, v := range p.ruleValues {
		put(v)
	}
	// Endpoints come from the store in no particular order.
	eps := make([]string, 0, len(p.endpointList))
	for _, e := range p.endpointList {
		eps = append(eps, strings.ToLower(e.id)+"\x00"+e.state)
	}
	slices.Sort(eps)
	put(strconv.Itoa(len(eps)))
	for _, e := range eps {
		put(e)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Version identifies the configuration the policy was compiled from: 16
// hex digits of a SHA-256 over every setting Decide reads. Audit records
// carry it so a decision can be tied to the rules in force.
func (p *Policy) Version() string { return p.version }

// Why the trusted-service bypass did not apply to a caller that claimed a
// service; appended to a denial's reason.
type bypassNote uint8

const (
	noteNone bypassNote = iota
	noteAppService
	noteBypassOff
	noteTasksOff
	noteCount
)

var noteText = [noteCount]string{ //nolint:gosec // G101 reads "Bypass" in the keys as a password; these are reasons
	noteAppService: "; App Service is never a trusted service",
	noteBypassOff:  "; the trusted-services bypass is off (networkRuleBypassOptions is None)",
	noteTasksOff:   "; Registry Tasks bypass only with networkRuleBypassAllowedForTasks true (it is false)",
}

// Reasons built once, so Decide never allocates.
var (
	reasonPublicDisabled [noteCount]string
	reasonDefaultDeny    [noteCount]string
	reasonNoClientIP     [noteCount]string
	reasonTrusted        [AppService + 1]string
)

func init() {
	for n := range noteCount {
		reasonPublicDisabled[n] = "publicNetworkAccess is Disabled" + noteText[n]
		reasonDefaultDeny[n] = "networkRuleSet.defaultAction is Deny and the client IP is inside no networkRuleSet.ipRules entry" + noteText[n]
		reasonNoClientIP[n] = "networkRuleSet.defaultAction is Deny and the client IP is unknown" + noteText[n]
	}
	for _, si := range TrustedServices {
		r := "caller is trusted service " + si.Name + " and networkRuleBypassOptions is AzureServices"
		if si.Service == RegistryTasks {
			r += " and networkRuleBypassAllowedForTasks is true"
		}
		reasonTrusted[si.Service] = r
	}
}

const (
	reasonUnknownEndpoint = "the private endpoint the request arrived on is not connected to this registry"
	reasonDefaultAllow    = "networkRuleSet.defaultAction is Allow"
)

// Decide is the network decision of DESIGN.md §3 for one request; see the
// package doc for the order. It does not allocate.
func (p *Policy) Decide(req Request) Decision {
	// 1. Private endpoint: only its connection state counts.
	if req.PrivateEndpointID != "" {
		ep, ok := p.endpoint(req.PrivateEndpointID)
		if !ok {
			return Decision{Step: StepPrivateEndpoint, Reason: reasonUnknownEndpoint}
		}
		return Decision{Allowed: ep.allowed, Step: StepPrivateEndpoint, Reason: ep.reason}
	}

	// 2. Trusted services, on the public endpoint.
	note := noteNone
	switch s := req.TrustedService; {
	case s == AppService:
		note = noteAppService
	case s <= None || s > AppService:
		// not a trusted service
	case !p.bypass:
		note = noteBypassOff
	case s == RegistryTasks && !p.tasks:
		note = noteTasksOff
	default:
		return Decision{Allowed: true, Step: StepTrustedService, Reason: reasonTrusted[s]}
	}

	// 3. Public network access.
	if p.publicDisabled {
		return Decision{Step: StepPublicNetworkAccess, Reason: reasonPublicDisabled[note]}
	}

	// 4. Firewall.
	if !p.defaultDeny {
		return Decision{Allowed: true, Step: StepFirewallDefaultAllow, Reason: reasonDefaultAllow}
	}
	if !req.ClientIP.IsValid() {
		return Decision{Step: StepFirewallDefaultDeny, Reason: reasonNoClientIP[note]}
	}
	if i := p.match(req.ClientIP); i >= 0 {
		return Decision{Allowed: true, Step: StepFirewallIPRule, Rule: p.ruleValues[i], Reason: p.ruleReasons[i]}
	}
	return Decision{Step: StepFirewallDefaultDeny, Reason: reasonDefaultDeny[note]}
}

// match returns the index of the first ipRules entry containing a, or -1.
func (p *Policy) match(a netip.Addr) int32 {
	if !a.IsValid() || a.Zone() != "" {
		return -1
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return p.v4.find(binary.BigEndian.Uint32(b[:]))
	}
	return p.v6.find(u128From16(a.As16()))
}

func (p *Policy) endpoint(id string) (endpoint, bool) {
	if ep, ok := p.endpoints[id]; ok {
		return ep, true
	}
	for _, ep := range p.endpointList {
		if strings.EqualFold(ep.id, id) {
			return ep, true
		}
	}
	return endpoint{}, false
}
