package dataplane

import (
	"strings"

	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// privateArrival binds a request that arrived on a private endpoint's
// listener to that endpoint's registry, and puts the endpoint's id into the
// network decision. A Host naming another registry's login server
// ({other}.{domain}) is answered 404 NAME_UNKNOWN: that registry is not
// reachable here, and answering with this registry's content under its name
// would mislead. Any other Host (an IP address, a privatelink name, the
// bare domain) means the endpoint's registry. It reports whether the
// request may go on.
func (h *Handler) privateArrival(q *request) bool {
	a, ok := privatelink.ArrivalFrom(q.r.Context())
	if !ok {
		return true
	}
	named := q.registry
	q.registry, q.login, q.endpoint = a.Registry, a.Registry+h.suffix, a.EndpointID
	if named != a.Registry && namesRegistry(q.r.Host, h.suffix) {
		q.fail(errorf(codeNameUnknown, "registry %q is not served on this private endpoint; it serves %q", named, a.Registry))
		return false
	}
	return true
}

// namesRegistry reports whether host is some registry's login server
// ({name}.{domain}), the form registryFor reads a name from.
func namesRegistry(host, suffix string) bool {
	host = strings.ToLower(strings.TrimSuffix(stripPort(host), "."))
	name, ok := strings.CutSuffix(host, suffix)
	return ok && name != "" && !strings.ContainsAny(name, ".[]")
}

// auditEndpoint is the audit record's endpoint: the private endpoint's id,
// or meta.EndpointPublic.
func auditEndpoint(q *request) string {
	if q.endpoint != "" {
		return q.endpoint
	}
	return meta.EndpointPublic
}
