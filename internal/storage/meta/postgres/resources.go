package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const resourceCols = `id, type, name, location, properties, tags, sku, identity, created_at, updated_at, version`

func scanResource(row pgx.Row) (meta.Resource, error) {
	var r meta.Resource
	var created, updated int64
	if err := row.Scan(&r.ID, &r.Type, &r.Name, &r.Location, &r.Properties, &r.Tags, &r.SKU, &r.Identity, &created, &updated, &r.Version); err != nil {
		return meta.Resource{}, err
	}
	r.CreatedAt, r.UpdatedAt = fromNanos(created), fromNanos(updated)
	return r, nil
}

// resourceKey is the lookup form of an ARM id: lower-case, without a
// trailing slash.
func resourceKey(id string) string { return strings.ToLower(strings.TrimRight(id, "/")) }

// PutResource creates or replaces the resource (see meta.ResourceStore).
func (s *Store) PutResource(ctx context.Context, r meta.Resource) (meta.Resource, error) {
	key := resourceKey(r.ID)
	if key == "" {
		return meta.Resource{}, errors.New("postgres: put resource: empty id")
	}
	var out meta.Resource
	err := s.write(ctx, func() error {
		t := nanos(now())
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			old, err := scanResource(tx.QueryRow(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = $1 FOR UPDATE`, key))
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				if r.Version != 0 {
					return meta.ErrNotFound
				}
				// ON CONFLICT: a concurrent create of the same id wins
				// the race and this one replaces it, as an unconditional
				// put would have anyway.
				_, err = tx.Exec(ctx, `INSERT INTO resources (id_key, type_key, `+resourceCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)
ON CONFLICT (id_key) DO UPDATE SET type_key = excluded.type_key, type = excluded.type, name = excluded.name,
  location = excluded.location, properties = excluded.properties, tags = excluded.tags, sku = excluded.sku,
  identity = excluded.identity, updated_at = excluded.updated_at, version = resources.version + 1`,
					key, strings.ToLower(r.Type), r.ID, r.Type, r.Name, r.Location, nullBytes(r.Properties), nullBytes(r.Tags),
					nullBytes(r.SKU), nullBytes(r.Identity), t, t)
				if err != nil {
					return err
				}
			case err != nil:
				return err
			default:
				if r.Version != 0 && r.Version != old.Version {
					return fmt.Errorf("at version %d, stored %d: %w", r.Version, old.Version, meta.ErrConflict)
				}
				_, err = tx.Exec(ctx, `UPDATE resources SET type_key = $1, type = $2, name = $3, location = $4,
  properties = $5, tags = $6, sku = $7, identity = $8, updated_at = $9, version = version + 1
WHERE id_key = $10`,
					strings.ToLower(r.Type), r.Type, r.Name, r.Location, nullBytes(r.Properties), nullBytes(r.Tags),
					nullBytes(r.SKU), nullBytes(r.Identity), t, key)
				if err != nil {
					return err
				}
			}
			out, err = scanResource(tx.QueryRow(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = $1`, key))
			return err
		})
	})
	if err != nil {
		return meta.Resource{}, fmt.Errorf("postgres: put resource %q: %w", r.ID, classify(err))
	}
	return out, nil
}

// GetResource returns the resource with that id, in any case.
func (s *Store) GetResource(ctx context.Context, id string) (meta.Resource, error) {
	var r meta.Resource
	err := s.read(ctx, func() (err error) {
		r, err = scanResource(s.pool.QueryRow(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = $1`, resourceKey(id)))
		return err
	})
	if err != nil {
		return meta.Resource{}, fmt.Errorf("postgres: get resource %q: %w", id, classify(err))
	}
	return r, nil
}

// ListResources returns the resources below parentPrefix of type typ, in
// byte order of their lower-cased ids.
func (s *Store) ListResources(ctx context.Context, parentPrefix, typ string) ([]meta.Resource, error) {
	prefix := ""
	if p := resourceKey(parentPrefix); p != "" {
		prefix = p + "/"
	}
	var out []meta.Resource
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+resourceCols+` FROM resources
WHERE substr(id_key, 1, $1) = $2 AND ($3 = '' OR type_key = $3)
ORDER BY id_key COLLATE "C"`, utf8.RuneCountInString(prefix), prefix, strings.ToLower(typ))
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.Resource, error) { return scanResource(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list resources under %q: %w", parentPrefix, err)
	}
	return out, nil
}

// DeleteResource removes the resource and everything below it.
func (s *Store) DeleteResource(ctx context.Context, id string) error {
	key := resourceKey(id)
	child := key + "/"
	err := s.write(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM resources WHERE id_key = $1`, key)
			if err == nil {
				err = affected(tag)
			}
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `DELETE FROM resources WHERE substr(id_key, 1, $1) = $2`, utf8.RuneCountInString(child), child)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("postgres: delete resource %q: %w", id, classify(err))
	}
	return nil
}
