package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const principalCols = `id, kind, name, secret_hash, properties, created_at, updated_at`

func scanPrincipal(row pgx.Row) (meta.Principal, error) {
	var p meta.Principal
	var created, updated int64
	if err := row.Scan(&p.ID, &p.Kind, &p.Name, &p.SecretHash, &p.Properties, &created, &updated); err != nil {
		return meta.Principal{}, err
	}
	p.CreatedAt, p.UpdatedAt = fromNanos(created), fromNanos(updated)
	return p, nil
}

// PutPrincipal creates or replaces the principal with p.ID, keeping its
// CreatedAt when it replaces.
func (s *Store) PutPrincipal(ctx context.Context, p meta.Principal) error {
	if p.ID == "" {
		return errors.New("postgres: put principal: empty id")
	}
	t := nanos(now())
	err := s.read(ctx, func() error { // idempotent: an upsert of the same values
		_, err := s.pool.Exec(ctx, `INSERT INTO principals (`+principalCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, secret_hash = excluded.secret_hash,
  properties = excluded.properties, updated_at = excluded.updated_at`,
			p.ID, p.Kind, p.Name, nullBytes(p.SecretHash), nullBytes(p.Properties), t, t)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put principal %s (%s %q): %w", p.ID, p.Kind, p.Name, classify(err))
	}
	return nil
}

// GetPrincipal returns the principal with that id.
func (s *Store) GetPrincipal(ctx context.Context, id string) (meta.Principal, error) {
	var p meta.Principal
	err := s.read(ctx, func() (err error) {
		p, err = scanPrincipal(s.pool.QueryRow(ctx, `SELECT `+principalCols+` FROM principals WHERE id = $1`, id))
		return err
	})
	if err != nil {
		return meta.Principal{}, fmt.Errorf("postgres: get principal %s: %w", id, classify(err))
	}
	return p, nil
}

// GetPrincipalByName returns the principal of that kind and name.
func (s *Store) GetPrincipalByName(ctx context.Context, kind, name string) (meta.Principal, error) {
	var p meta.Principal
	err := s.read(ctx, func() (err error) {
		p, err = scanPrincipal(s.pool.QueryRow(ctx, `SELECT `+principalCols+` FROM principals WHERE kind = $1 AND name = $2`, kind, name))
		return err
	})
	if err != nil {
		return meta.Principal{}, fmt.Errorf("postgres: get principal %s %q: %w", kind, name, classify(err))
	}
	return p, nil
}

// ListPrincipals returns the principals of kind ("" for all) in byte order
// of name.
func (s *Store) ListPrincipals(ctx context.Context, kind string) ([]meta.Principal, error) {
	var out []meta.Principal
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+principalCols+` FROM principals
WHERE $1::text = '' OR kind = $1::text ORDER BY name COLLATE "C", kind COLLATE "C", id COLLATE "C"`, kind)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.Principal, error) { return scanPrincipal(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list principals: %w", err)
	}
	return out, nil
}

// DeletePrincipal removes the principal.
func (s *Store) DeletePrincipal(ctx context.Context, id string) error {
	err := s.write(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM principals WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete principal %s: %w", id, classify(err))
	}
	return nil
}

// AddSigningKey stores a new key. A zero CreatedAt means now.
func (s *Store) AddSigningKey(ctx context.Context, k meta.SigningKey) error {
	if k.ID == "" {
		return errors.New("postgres: add signing key: empty id")
	}
	created := k.CreatedAt
	if created.IsZero() {
		created = now()
	}
	var retired *int64
	if k.RetiredAt != nil {
		v := nanos(*k.RetiredAt)
		retired = &v
	}
	err := s.write(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, created_at, retired_at)
VALUES ($1, $2, $3, $4, $5)`, k.ID, k.Algorithm, k.PrivateKey, nanos(created), retired)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: add signing key %s: %w", k.ID, classify(err))
	}
	return nil
}

// ListSigningKeys returns every key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]meta.SigningKey, error) {
	var out []meta.SigningKey
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT id, algorithm, private_key, created_at, retired_at FROM signing_keys
ORDER BY created_at DESC, id COLLATE "C" DESC`)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.SigningKey, error) {
			var k meta.SigningKey
			var created int64
			var retired *int64
			if err := r.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &created, &retired); err != nil {
				return meta.SigningKey{}, err
			}
			k.CreatedAt = fromNanos(created)
			if retired != nil {
				at := fromNanos(*retired)
				k.RetiredAt = &at
			}
			return k, nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list signing keys: %w", err)
	}
	return out, nil
}

// RetireSigningKey sets the key's RetiredAt.
func (s *Store) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	err := s.read(ctx, func() error { // idempotent: sets the same value again
		tag, err := s.pool.Exec(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE id = $2`, nanos(at), id)
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if err != nil {
		return fmt.Errorf("postgres: retire signing key %s: %w", id, classify(err))
	}
	return nil
}
