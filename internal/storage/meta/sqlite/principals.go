package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const principalCols = `id, kind, name, secret_hash, properties, created_at, updated_at`

func scanPrincipal(sc scanner) (meta.Principal, error) {
	var p meta.Principal
	var created, updated int64
	if err := sc.Scan(&p.ID, &p.Kind, &p.Name, &p.SecretHash, &p.Properties, &created, &updated); err != nil {
		return meta.Principal{}, err
	}
	p.CreatedAt, p.UpdatedAt = fromNanos(created), fromNanos(updated)
	return p, nil
}

// PutPrincipal creates or replaces the principal with p.ID, keeping its
// CreatedAt when it replaces.
func (s *Store) PutPrincipal(ctx context.Context, p meta.Principal) error {
	if p.ID == "" {
		return errors.New("sqlite: put principal: empty id")
	}
	t := nanos(now())
	_, err := s.rw.ExecContext(ctx, `INSERT INTO principals (`+principalCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, secret_hash = excluded.secret_hash,
  properties = excluded.properties, updated_at = excluded.updated_at`,
		p.ID, p.Kind, p.Name, nullBytes(p.SecretHash), nullBytes(p.Properties), t, t)
	if err != nil {
		return fmt.Errorf("sqlite: put principal %s (%s %q): %w", p.ID, p.Kind, p.Name, classify(err))
	}
	return nil
}

// GetPrincipal returns the principal with that id.
func (s *Store) GetPrincipal(ctx context.Context, id string) (meta.Principal, error) {
	p, err := scanPrincipal(s.ro.QueryRowContext(ctx, `SELECT `+principalCols+` FROM principals WHERE id = $1`, id))
	if err != nil {
		return meta.Principal{}, fmt.Errorf("sqlite: get principal %s: %w", id, classify(err))
	}
	return p, nil
}

// GetPrincipalByName returns the principal of that kind and name.
func (s *Store) GetPrincipalByName(ctx context.Context, kind, name string) (meta.Principal, error) {
	p, err := scanPrincipal(s.ro.QueryRowContext(ctx, `SELECT `+principalCols+` FROM principals WHERE kind = $1 AND name = $2`, kind, name))
	if err != nil {
		return meta.Principal{}, fmt.Errorf("sqlite: get principal %s %q: %w", kind, name, classify(err))
	}
	return p, nil
}

// ListPrincipals returns the principals of kind ("" for all) by name.
func (s *Store) ListPrincipals(ctx context.Context, kind string) ([]meta.Principal, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT `+principalCols+` FROM principals
WHERE $1 = '' OR kind = $1 ORDER BY name, kind, id`, kind)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list principals: %w", err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.Principal
	for rows.Next() {
		p, err := scanPrincipal(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list principals: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list principals: %w", err)
	}
	return out, nil
}

// DeletePrincipal removes the principal.
func (s *Store) DeletePrincipal(ctx context.Context, id string) error {
	res, err := s.rw.ExecContext(ctx, `DELETE FROM principals WHERE id = $1`, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete principal %s: %w", id, classify(err))
	}
	return nil
}

// AddSigningKey stores a new key. A zero CreatedAt means now.
func (s *Store) AddSigningKey(ctx context.Context, k meta.SigningKey) error {
	if k.ID == "" {
		return errors.New("sqlite: add signing key: empty id")
	}
	created := k.CreatedAt
	if created.IsZero() {
		created = now()
	}
	var retired any
	if k.RetiredAt != nil {
		retired = nanos(*k.RetiredAt)
	}
	_, err := s.rw.ExecContext(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, created_at, retired_at)
VALUES ($1, $2, $3, $4, $5)`, k.ID, k.Algorithm, k.PrivateKey, nanos(created), retired)
	if err != nil {
		return fmt.Errorf("sqlite: add signing key %s: %w", k.ID, classify(err))
	}
	return nil
}

// ListSigningKeys returns every key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]meta.SigningKey, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT id, algorithm, private_key, created_at, retired_at FROM signing_keys
ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.SigningKey
	for rows.Next() {
		var k meta.SigningKey
		var created int64
		var retired sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &created, &retired); err != nil {
			return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
		}
		k.CreatedAt = fromNanos(created)
		if retired.Valid {
			at := fromNanos(retired.Int64)
			k.RetiredAt = &at
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
	}
	return out, nil
}

// RetireSigningKey sets the key's RetiredAt.
func (s *Store) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.rw.ExecContext(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE id = $2`, nanos(at), id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: retire signing key %s: %w", id, classify(err))
	}
	return nil
}
