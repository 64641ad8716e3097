package dataplane

import (
	"context"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// TestAudit_DenialIsRecordedAllowedIsNot: a refused request leaves one
// audit record naming the client, the step and the rule set version; an
// allowed one leaves none.
func TestAudit_DenialIsRecordedAllowedIsNot(t *testing.T) {
	e := newEnv(t)
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.2"}]}}`)
	if code, msg := e.getFrom("127.0.0.2", "/v2/"); code != http.StatusOK {
		t.Fatalf("allowed source: %d %s", code, msg)
	}
	if code, _ := e.getFrom("127.0.0.3", "/v2/app/manifests/v1"); code != http.StatusForbidden {
		t.Fatalf("refused source: %d, want 403", code)
	}
	if err := e.h.Close(); err != nil { // flushes the queue
		t.Fatal(err)
	}
	rs, err := e.meta.ListAuditRecords(context.Background(), testDefault, meta.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("audit records %+v, want exactly the one denial", rs)
	}
	r := rs[0]
	entry, err := e.h.registries.lookup(context.Background(), e.meta, testDefault, e.h.now())
	if err != nil {
		t.Fatal(err)
	}
	if r.ClientIP != "127.0.0.3" || r.Step != "firewall-default-deny" || r.Allowed || r.Principal != "" ||
		r.Endpoint != meta.EndpointPublic || r.Method != http.MethodGet || r.Path != "/v2/app/manifests/v1" ||
		r.RuleSetVersion != entry.policy.Version() || r.Reason == "" || r.Time.IsZero() || r.Registry != testDefault {
		t.Fatalf("record %+v", r)
	}

	// After Close, denials are still answered but no longer recorded.
	if code, _ := e.getFrom("127.0.0.3", "/v2/"); code != http.StatusForbidden {
		t.Fatalf("refused source after Close: %d, want 403", code)
	}
	if got := testutil.ToFloat64(e.h.audit.dropped); got != 1 {
		t.Fatalf("moat_audit_dropped_total = %v, want 1", got)
	}
}

// blockingStore holds every AddAuditRecord until release is closed.
type blockingStore struct {
	meta.AuditStore
	entered chan struct{}
	release chan struct{}
	added   chan meta.AuditRecord
}

func (s *blockingStore) AddAuditRecord(ctx context.Context, r meta.AuditRecord) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	s.added <- r
	return nil
}

// TestAudit_FullQueueDropsAndCounts: a stuck store never slows the request
// path; what does not fit is dropped and counted, and Close stores what was
// queued.
func TestAudit_FullQueueDropsAndCounts(t *testing.T) {
	st := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{}), added: make(chan meta.AuditRecord, auditQueue+10)}
	reg := prometheus.NewRegistry()
	a, err := newAuditor(st, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	a.record(meta.AuditRecord{ClientIP: "first"})
	<-st.entered // the writer holds the first record; the queue is empty
	for range auditQueue + 5 {
		a.record(meta.AuditRecord{ClientIP: "more"})
	}
	if got := testutil.ToFloat64(a.dropped); got != 5 {
		t.Fatalf("dropped = %v, want 5", got)
	}
	if n, err := testutil.GatherAndCount(reg, "moat_audit_dropped_total"); err != nil || n != 1 {
		t.Fatalf("moat_audit_dropped_total registered %d times (%v), want 1", n, err)
	}
	close(st.release)
	a.close()
	if got := len(st.added); got != auditQueue+1 {
		t.Fatalf("stored %d records, want %d", got, auditQueue+1)
	}
}

func TestAudit_CloseWithoutDenialsAndTwice(t *testing.T) {
	a, err := newAuditor(&blockingStore{}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.close()
	a.close()
	a.record(meta.AuditRecord{})
	if got := testutil.ToFloat64(a.dropped); got != 1 {
		t.Fatalf("dropped after close = %v, want 1", got)
	}
}

func TestCleanText(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"/v2/app", 100, "/v2/app"},
		{"/v2/a\x00b", 100, "/v2/a\uFFFDb"},
		{"/v2/\xff", 100, "/v2/\uFFFD"},
		{"abcdef", 3, "abc"},
	}
	for _, c := range cases {
		if got := cleanText(c.in, c.n); got != c.want {
			t.Errorf("cleanText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
