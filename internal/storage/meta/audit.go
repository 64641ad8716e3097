package meta

import (
	"context"
	"time"
)

// AuditRecord is one data-plane request as the network decision judged it
// (DESIGN.md §3: every denial is audited).
type AuditRecord struct {
	// ID is assigned by the store (AddAuditRecord ignores the caller's).
	ID string
	// Time is when the request was judged; a zero Time is set to now.
	Time time.Time
	// Registry is the registry's name; stored lower-case.
	Registry string
	// Endpoint is "public" or the id of the private endpoint the request
	// arrived on.
	Endpoint string
	// ClientIP is the client address as the edge resolved it.
	ClientIP string
	// Principal is the caller, or "" when it was not known yet (the network
	// decision comes before authentication).
	Principal string
	// Allowed is the decision; the data plane records only denials.
	Allowed bool
	// Step and Reason are the netrule decision's step name and reason.
	Step   string
	Reason string
	// RuleSetVersion is the netrule Policy version that decided.
	RuleSetVersion string
	// Method and Path are the request's HTTP method and URL path.
	Method string
	Path   string
}

// EndpointPublic is AuditRecord.Endpoint for the public endpoint.
const EndpointPublic = "public"

// AuditFilter narrows ListAuditRecords.
type AuditFilter struct {
	// DeniedOnly leaves out allowed requests.
	DeniedOnly bool
	// Since leaves out records older than it, when not zero.
	Since time.Time
	// Limit is the most records returned, when > 0.
	Limit int
}

// AuditRetention is how long audit records are kept. Stores prune older
// ones opportunistically, in AddAuditRecord, so a deployment that records
// nothing keeps its old records until the next one is added.
const AuditRetention = 30 * 24 * time.Hour

// AuditStore keeps audit records. Records are never updated; they are not
// deleted with their registry (the trail outlives what it audits) but
// expire after AuditRetention.
type AuditStore interface {
	// AddAuditRecord stores r under a new ID and prunes records older than
	// AuditRetention.
	AddAuditRecord(ctx context.Context, r AuditRecord) error
	// ListAuditRecords returns the registry's records (name in any case)
	// matching f, newest first; an unknown registry has none.
	ListAuditRecords(ctx context.Context, registry string, f AuditFilter) ([]AuditRecord, error)
}
