package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const auditCols = `id, event_time, registry, endpoint, client_ip, principal, allowed, step, reason, rule_set_version, method, path`

// AddAuditRecord stores r and prunes expired records in the same
// transaction (an index range on event_time, empty almost always).
func (s *Store) AddAuditRecord(ctx context.Context, r meta.AuditRecord) error {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("sqlite: add audit record: %w", err)
	}
	t := now()
	if !r.Time.IsZero() {
		t = r.Time
	}
	allowed := 0
	if r.Allowed {
		allowed = 1
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_records (`+auditCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			hex.EncodeToString(id[:]), nanos(t), strings.ToLower(r.Registry), r.Endpoint, r.ClientIP, r.Principal,
			allowed, r.Step, r.Reason, r.RuleSetVersion, r.Method, r.Path); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_records WHERE event_time < $1`,
			nanos(now().Add(-meta.AuditRetention)))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: add audit record of registry %q: %w", r.Registry, err)
	}
	return nil
}

// ListAuditRecords returns the registry's records matching f, newest first.
func (s *Store) ListAuditRecords(ctx context.Context, registry string, f meta.AuditFilter) ([]meta.AuditRecord, error) {
	var since int64
	if !f.Since.IsZero() {
		since = nanos(f.Since)
	}
	limit := -1 // SQLite: no limit
	if f.Limit > 0 {
		limit = f.Limit
	}
	denied := 0
	if f.DeniedOnly {
		denied = 1
	}
	rows, err := s.ro.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_records
WHERE registry = $1 AND event_time >= $2 AND ($3 = 0 OR allowed = 0)
ORDER BY event_time DESC, id DESC LIMIT $4`, strings.ToLower(registry), since, denied, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit records of registry %q: %w", registry, err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.AuditRecord
	for rows.Next() {
		var r meta.AuditRecord
		var t, allowed int64
		if err := rows.Scan(&r.ID, &t, &r.Registry, &r.Endpoint, &r.ClientIP, &r.Principal, &allowed,
			&r.Step, &r.Reason, &r.RuleSetVersion, &r.Method, &r.Path); err != nil {
			return nil, fmt.Errorf("sqlite: list audit records of registry %q: %w", registry, err)
		}
		r.Time, r.Allowed = fromNanos(t), allowed != 0
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list audit records of registry %q: %w", registry, err)
	}
	return out, nil
}
