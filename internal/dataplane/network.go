package dataplane

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/moat-registry/moat/internal/clientip"
	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// compilePolicy builds the network policy of a stored registry, once per
// cache fill (the registry cache is invalidated on every change). A registry
// whose configuration cannot be compiled gets an error instead of a policy:
// its requests are refused (fail closed).
func compilePolicy(reg meta.Registry, endpoints []netrule.PrivateEndpoint) (*netrule.Policy, error) {
	m, err := model.UnmarshalStored(reg.Location, reg.SKU, reg.Properties, reg.Tags)
	if err != nil {
		return nil, fmt.Errorf("reading the network configuration of registry %q: %w", reg.Name, err)
	}
	p, err := netrule.Compile(m, endpoints)
	if err != nil {
		return nil, fmt.Errorf("compiling the network rules of registry %q: %w", reg.Name, err)
	}
	return p, nil
}

// requestIP is the client address the server resolved (see clientip), or
// the TCP peer when none was stored (a Handler served without the server,
// as in tests). An address that does not parse is the zero Addr, which
// netrule refuses wherever an address matters.
func requestIP(r *http.Request) netip.Addr {
	if a, ok := clientip.From(r.Context()); ok {
		return a
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// checkNetwork makes the network decision of DESIGN §3 for q before any
// authentication or handler runs, and answers 403 DENIED when it refuses.
// Only a verified trusted-service credential (trusted.go) changes it.
func (h *Handler) checkNetwork(q *request, e registryEntry) bool {
	ip := q.ip
	if e.policyErr != nil {
		q.decision = decisionDenied
		q.netReason = "network configuration unreadable"
		h.auditDenial(q, ip, "configuration-error", q.netReason, "")
		q.fail(&apiError{Code: codeDenied, Message: netrule.DeniedMessage(ip), Cause: e.policyErr})
		return false
	}
	req := netrule.Request{ClientIP: ip, PrivateEndpointID: q.endpoint}
	d := e.policy.Decide(req)
	if !d.Allowed {
		// Refused as it stands: a verified trusted service may still pass.
		if req.TrustedService = h.trustedService(q); req.TrustedService != netrule.None {
			d = e.policy.Decide(req)
		}
	}
	q.netStep = d.Step.String()
	if d.Allowed {
		return true
	}
	if h.challengeTrusted(q, e, d) {
		return false
	}
	q.decision = decisionDenied
	q.netReason = d.Reason
	h.auditDenial(q, ip, q.netStep, d.Reason, e.policy.Version())
	q.fail(&apiError{Code: codeDenied, Message: netrule.DeniedMessage(ip)})
	return false
}
