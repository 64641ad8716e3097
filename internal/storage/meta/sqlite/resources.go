package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const resourceCols = `id, type, name, location, properties, tags, sku, identity, created_at, updated_at, version`

func scanResource(sc scanner) (meta.Resource, error) {
	var r meta.Resource
	var created, updated int64
	if err := sc.Scan(&r.ID, &r.Type, &r.Name, &r.Location, &r.Properties, &r.Tags, &r.SKU, &r.Identity, &created, &updated, &r.Version); err != nil {
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
		return meta.Resource{}, errors.New("sqlite: put resource: empty id")
	}
	t := nanos(now())
	var out meta.Resource
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		old, err := scanResource(tx.QueryRowContext(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = $1`, key))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if r.Version != 0 {
				return meta.ErrNotFound
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO resources (id_key, type_key, `+resourceCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				key, strings.ToLower(r.Type), r.ID, r.Type, r.Name, r.Location, nullBytes(r.Properties), nullBytes(r.Tags),
				nullBytes(r.SKU), nullBytes(r.Identity), t, t, 1)
			if err != nil {
				return classify(err)
			}
		case err != nil:
			return err
		default:
			if r.Version != 0 && r.Version != old.Version {
				return fmt.Errorf("at version %d, stored %d: %w", r.Version, old.Version, meta.ErrConflict)
			}
			_, err = tx.ExecContext(ctx, `UPDATE resources SET type_key = $1, type = $2, name = $3, location = $4,
  properties = $5, tags = $6, sku = $7, identity = $8, updated_at = $9, version = version + 1
WHERE id_key = $10`,
				strings.ToLower(r.Type), r.Type, r.Name, r.Location, nullBytes(r.Properties), nullBytes(r.Tags),
				nullBytes(r.SKU), nullBytes(r.Identity), t, key)
			if err != nil {
				return err
			}
		}
		out, err = scanResource(tx.QueryRowContext(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = $1`, key))
		return err
	})
	if err != nil {
		return meta.Resource{}, fmt.Errorf("sqlite: put resource %q: %w", r.ID, err)
	}
	return out, nil
}

// GetResource returns the resource with that id, in any case.
func (s *Store) GetResource(ctx context.Context, id string) (meta.Resource, error) {
	r, err := scanResource(s.ro.QueryRowContext(ctx, `SELECT `+resourceCols+` FROM resources WHERE id_key = $1`, resourceKey(id)))
	if err != nil {
		return meta.Resource{}, fmt.Errorf("sqlite: get resource %q: %w", id, classify(err))
	}
	return r, nil
}

// ListResources returns the resources below parentPrefix of type typ.
func (s *Store) ListResources(ctx context.Context, parentPrefix, typ string) ([]meta.Resource, error) {
	prefix := ""
	if p := resourceKey(parentPrefix); p != "" {
		prefix = p + "/"
	}
	// substr counts characters on both SQLite and PostgreSQL, so the prefix
	// test is exact for any id; LIKE would need its wildcards escaped.
	rows, err := s.ro.QueryContext(ctx, `SELECT `+resourceCols+` FROM resources
WHERE substr(id_key, 1, $1) = $2 AND ($3 = '' OR type_key = $3)
ORDER BY id_key`, utf8.RuneCountInString(prefix), prefix, strings.ToLower(typ))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list resources under %q: %w", parentPrefix, err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list resources under %q: %w", parentPrefix, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list resources under %q: %w", parentPrefix, err)
	}
	return out, nil
}

// DeleteResource removes the resource and everything below it.
func (s *Store) DeleteResource(ctx context.Context, id string) error {
	key := resourceKey(id)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM resources WHERE id_key = $1`, key)
		if err == nil {
			err = affected(res)
		}
		if err != nil {
			return err
		}
		child := key + "/"
		_, err = tx.ExecContext(ctx, `DELETE FROM resources WHERE substr(id_key, 1, $1) = $2`, utf8.RuneCountInString(child), child)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete resource %q: %w", id, err)
	}
	return nil
}
