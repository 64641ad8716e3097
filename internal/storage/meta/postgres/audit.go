package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const auditCols = `id, event_time, registry, endpoint, client_ip, principal, allowed, step, reason, rule_set_version, method, path`

// AddAuditRecord stores r, then prunes expired records. The prune is a
// separate statement: it is idempotent, and an insert must not wait for it.
func (s *Store) AddAuditRecord(ctx context.Context, r meta.AuditRecord) error {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("postgres: add audit record: %w", err)
	}
	t := now()
	if !r.Time.IsZero() {
		t = r.Time
	}
	var allowed int64
	if r.Allowed {
		allowed = 1
	}
	// The id is fixed before the first attempt, so a retried insert whose
	// first attempt committed fails on the primary key instead of
	// recording the request twice; write only retries when it is safe.
	err := s.write(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO audit_records (`+auditCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			hex.EncodeToString(id[:]), nanos(t), normReg(r.Registry), r.Endpoint, r.ClientIP, r.Principal,
			allowed, r.Step, r.Reason, r.RuleSetVersion, r.Method, r.Path)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: add audit record of registry %q: %w", r.Registry, classify(err))
	}
	err = s.read(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM audit_records WHERE event_time < $1`, nanos(now().Add(-meta.AuditRetention)))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: prune audit records: %w", err)
	}
	return nil
}

// ListAuditRecords returns the registry's records matching f, newest first.
func (s *Store) ListAuditRecords(ctx context.Context, registry string, f meta.AuditFilter) ([]meta.AuditRecord, error) {
	var since int64
	if !f.Since.IsZero() {
		since = nanos(f.Since)
	}
	var limit *int64 // NULL: no limit
	if f.Limit > 0 {
		l := int64(f.Limit)
		limit = &l
	}
	var denied int64
	if f.DeniedOnly {
		denied = 1
	}
	var out []meta.AuditRecord
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+auditCols+` FROM audit_records
WHERE registry = $1 AND event_time >= $2 AND ($3::BIGINT = 0 OR allowed = 0)
ORDER BY event_time DESC, id COLLATE "C" DESC LIMIT $4`, normReg(registry), since, denied, limit)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(row pgx.Rows) (meta.AuditRecord, error) {
			var r meta.AuditRecord
			var t, allowed int64
			if err := row.Scan(&r.ID, &t, &r.Registry, &r.Endpoint, &r.ClientIP, &r.Principal, &allowed,
				&r.Step, &r.Reason, &r.RuleSetVersion, &r.Method, &r.Path); err != nil {
				return meta.AuditRecord{}, err
			}
			r.Time, r.Allowed = fromNanos(t), allowed != 0
			return r, nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit records of registry %q: %w", registry, err)
	}
	return out, nil
}
