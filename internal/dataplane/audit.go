package dataplane

// Audit records of network denials (DESIGN.md §3) and login lockouts. A
// refusal must not wait for the metadata store, so the request path only
// queues the record; one writer goroutine per Handler, started by the first
// record, stores it.
// When the queue is full (the store is slow or down, or a flood of refused
// requests), records are dropped and counted in moat_audit_dropped_total;
// the denial itself is still answered and logged.

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// auditQueue bounds the records waiting for the writer.
	auditQueue = 1024
	// auditWriteTimeout bounds one store write.
	auditWriteTimeout = 5 * time.Second
	// auditFlushTimeout bounds how long Close spends storing what is queued.
	auditFlushTimeout = 5 * time.Second
	// auditLogEvery rate-limits the log lines about dropped or failed
	// records, which come in floods when they come.
	auditLogEvery = time.Minute
	// maxAuditPath bounds the request path kept in a record.
	maxAuditPath = 1024
)

type auditor struct {
	store   meta.AuditStore
	log     *slog.Logger
	dropped prometheus.Counter
	queue   chan meta.AuditRecord

	start   sync.Once
	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
	closed  atomic.Bool
	lastLog atomic.Int64 // unix nanoseconds of the last rate-limited log line
}

func newAuditor(store meta.AuditStore, log *slog.Logger, reg prometheus.Registerer) (*auditor, error) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "moat",
		Name:      "audit_dropped_total",
		Help:      "Audit records (network denials, login lockouts) dropped because the queue to the metadata store was full or the write failed.",
	})
	if reg != nil {
		var err error
		if dropped, err = register(reg, dropped); err != nil {
			return nil, err
		}
	}
	return &auditor{
		store: store, log: log, dropped: dropped,
		queue: make(chan meta.AuditRecord, auditQueue),
		stop:  make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// record queues r without waiting; it is dropped (and counted) when the
// queue is full or the auditor is closed.
func (a *auditor) record(r meta.AuditRecord) {
	if a.closed.Load() {
		a.drop("the data plane is shutting down")
		return
	}
	a.start.Do(func() {
		a.started.Store(true)
		go a.run()
	})
	select {
	case a.queue <- r:
	default:
		a.drop("the queue to the metadata store is full")
	}
}

func (a *auditor) drop(why string) {
	a.dropped.Inc()
	a.logLimited("audit record dropped", slog.String("why", why))
}

// logLimited logs at most once per auditLogEvery.
func (a *auditor) logLimited(msg string, attrs ...slog.Attr) {
	now := time.Now().UnixNano()
	last := a.lastLog.Load()
	if now-last < int64(auditLogEvery) || !a.lastLog.CompareAndSwap(last, now) {
		return
	}
	a.log.LogAttrs(context.Background(), slog.LevelWarn, msg,
		append(attrs, slog.String("counter", "moat_audit_dropped_total"))...)
}

func (a *auditor) run() {
	defer close(a.done)
	for {
		select {
		case r := <-a.queue:
			ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
			a.write(ctx, r)
			cancel()
		case <-a.stop:
			ctx, cancel := context.WithTimeout(context.Background(), auditFlushTimeout)
			defer cancel()
			for {
				select {
				case r := <-a.queue:
					a.write(ctx, r)
				default:
					return
				}
			}
		}
	}
}

func (a *auditor) write(ctx context.Context, r meta.AuditRecord) {
	if err := a.store.AddAuditRecord(ctx, r); err != nil {
		a.dropped.Inc()
		a.logLimited("storing an audit record failed",
			slog.String("registry", r.Registry), slog.Any("error", err))
	}
}

// close stores what is queued (within auditFlushTimeout) and stops the
// writer; records arriving later are dropped.
func (a *auditor) close() {
	a.closing.Do(func() {
		a.closed.Store(true)
		close(a.stop)
	})
	if a.started.Load() {
		<-a.done
	}
}

// Close stops the Handler's background work: it stores the audit records
// still queued (waiting at most a few seconds) and stops their writer.
// Call it after the server stopped serving and before the stores close;
// requests served after it are still answered but not audited.
func (h *Handler) Close() error {
	h.audit.close()
	return nil
}

// auditDenial queues the audit record of a request the network decision
// refused. The caller is not known at that point.
func (h *Handler) auditDenial(q *request, ip netip.Addr, step, reason, version string) {
	client := "unknown"
	if ip.IsValid() {
		client = ip.Unmap().String()
	}
	h.audit.record(meta.AuditRecord{
		Time:           h.now(),
		Registry:       q.registry,
		Endpoint:       auditEndpoint(q),
		ClientIP:       client,
		Step:           step,
		Reason:         reason,
		RuleSetVersion: version,
		Method:         cleanText(q.r.Method, 32),
		Path:           cleanText(q.r.URL.Path, maxAuditPath),
	})
}

// cleanText makes request text storable in any metadata store: valid
// UTF-8 without NUL (PostgreSQL's TEXT refuses both), at most n bytes.
func cleanText(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
