package dataplane

import (
	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// privateArrival binds a request that arrived on a private endpoint's
// listener to that endpoint's registry: the Host header cannot name
// another one there, so a request meant for another registry meets this
// registry's network decision, credentials and repositories (and never
// another registry's data). The endpoint id goes into the network decision.
func (h *Handler) privateArrival(q *request) {
	a, ok := privatelink.ArrivalFrom(q.r.Context())
	if !ok {
		return
	}
	q.registry, q.login, q.endpoint = a.Registry, a.Registry+h.suffix, a.EndpointID
}

// auditEndpoint is the audit record's endpoint: the private endpoint's id,
// or meta.EndpointPublic.
func auditEndpoint(q *request) string {
	if q.endpoint != "" {
		return q.endpoint
	}
	return meta.EndpointPublic
}
