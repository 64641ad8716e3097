package metatest

import (
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

func auditRecord(reg, ip string, allowed bool, at time.Time) meta.AuditRecord {
	step := "firewall-default-deny"
	if allowed {
		step = "firewall-ip-rule"
	}
	return meta.AuditRecord{
		Time: at, Registry: reg, Endpoint: meta.EndpointPublic, ClientIP: ip, Allowed: allowed,
		Step: step, Reason: "reason for " + ip, RuleSetVersion: "0123456789abcdef", Method: "GET", Path: "/v2/app/manifests/v1",
	}
}

func (e *env) addAudit(r meta.AuditRecord) {
	e.t.Helper()
	if err := e.s.AddAuditRecord(e.ctx, r); err != nil {
		e.t.Fatalf("AddAuditRecord(%+v): %v", r, err)
	}
}

func (e *env) listAudit(reg string, f meta.AuditFilter) []meta.AuditRecord {
	e.t.Helper()
	rs, err := e.s.ListAuditRecords(e.ctx, reg, f)
	if err != nil {
		e.t.Fatalf("ListAuditRecords(%q, %+v): %v", reg, f, err)
	}
	return rs
}

func auditIPs(rs []meta.AuditRecord) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ClientIP)
	}
	return out
}

// auditChecks cover meta.AuditStore.
var auditChecks = []check{
	{"Audit/RoundTripNewestFirst", func(e *env) {
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
		want := auditRecord("Audited", "127.0.0.3", false, base)
		want.Principal = "someone"
		want.Endpoint = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/pe1"
		want.Reason = "ünïcode reason, with 'quotes' and \"double quotes\""
		e.addAudit(want)
		e.addAudit(auditRecord("audited", "127.0.0.4", true, base.Add(time.Minute)))
		e.addAudit(auditRecord("other", "127.0.0.5", false, base))
		rs := e.listAudit("AUDITED", meta.AuditFilter{})
		e.wantStrings("client IPs", auditIPs(rs), nil, "127.0.0.4", "127.0.0.3")
		got := rs[1]
		if got.ID == "" || got.ID == rs[0].ID {
			e.t.Fatalf("IDs %q and %q: want distinct, non-empty", got.ID, rs[0].ID)
		}
		wantTime(e.t, "Time", got.Time, want.Time)
		want.ID, want.Time, want.Registry = got.ID, got.Time, "audited"
		if got != want {
			e.t.Fatalf("read back %+v\nwant %+v", got, want)
		}
		if !rs[0].Allowed || rs[1].Allowed {
			e.t.Fatalf("Allowed = %v, %v; want true, false", rs[0].Allowed, rs[1].Allowed)
		}
	}},
	{"Audit/Filters", func(e *env) {
		base := time.Now().Add(-time.Hour).UTC()
		for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"} {
			e.addAudit(auditRecord("reg", ip, i%2 == 1, base.Add(time.Duration(i)*time.Minute)))
		}
		e.wantStrings("denied only", auditIPs(e.listAudit("reg", meta.AuditFilter{DeniedOnly: true})), nil, "10.0.0.3", "10.0.0.1")
		e.wantStrings("since", auditIPs(e.listAudit("reg", meta.AuditFilter{Since: base.Add(2 * time.Minute)})), nil, "10.0.0.4", "10.0.0.3")
		e.wantStrings("limit", auditIPs(e.listAudit("reg", meta.AuditFilter{Limit: 3})), nil, "10.0.0.4", "10.0.0.3", "10.0.0.2")
		e.wantStrings("all three", auditIPs(e.listAudit("reg", meta.AuditFilter{DeniedOnly: true, Since: base.Add(time.Minute), Limit: 1})), nil, "10.0.0.3")
		e.wantStrings("unknown registry", auditIPs(e.listAudit("nope", meta.AuditFilter{})), nil)
	}},
	{"Audit/ZeroTimeIsNow", func(e *env) {
		before := time.Now().Add(-time.Second)
		e.addAudit(auditRecord("reg", "::1", false, time.Time{}))
		rs := e.listAudit("reg", meta.AuditFilter{})
		if len(rs) != 1 || rs[0].Time.Before(before) || rs[0].Time.After(time.Now().Add(time.Second)) {
			e.t.Fatalf("records %+v: want one stamped now", rs)
		}
	}},
	{"Audit/ExpiredRecordsArePruned", func(e *env) {
		old := time.Now().Add(-meta.AuditRetention - time.Hour)
		e.addAudit(auditRecord("reg", "10.0.0.1", false, old))
		// The next add prunes what expired, including a record that was
		// already expired when it was added.
		e.addAudit(auditRecord("reg", "10.0.0.2", false, time.Time{}))
		e.wantStrings("after pruning", auditIPs(e.listAudit("reg", meta.AuditFilter{})), nil, "10.0.0.2")
	}},
	{"Audit/SurvivesRegistryDeletion", func(e *env) {
		e.registry("gone")
		e.addAudit(auditRecord("gone", "10.0.0.9", false, time.Time{}))
		if err := e.s.DeleteRegistry(e.ctx, "gone"); err != nil {
			e.t.Fatal(err)
		}
		e.wantStrings("after delete", auditIPs(e.listAudit("gone", meta.AuditFilter{})), nil, "10.0.0.9")
	}},
}
