package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const registryCols = `name, resource_id, location, sku, properties, tags, created_at, updated_at, version`

type scanner interface{ Scan(dest ...any) error }

func scanRegistry(sc scanner) (meta.Registry, error) {
	var r meta.Registry
	var created, updated int64
	if err := sc.Scan(&r.Name, &r.ResourceID, &r.Location, &r.SKU, &r.Properties, &r.Tags, &created, &updated, &r.Version); err != nil {
		return meta.Registry{}, err
	}
	r.CreatedAt, r.UpdatedAt = fromNanos(created), fromNanos(updated)
	return r, nil
}

// CreateRegistry stores a new registry with Version 1.
func (s *Store) CreateRegistry(ctx context.Context, r meta.Registry) (meta.Registry, error) {
	r.Name = normReg(r.Name)
	if r.Name == "" {
		return meta.Registry{}, errors.New("sqlite: create registry: empty name")
	}
	t := now()
	r.CreatedAt, r.UpdatedAt, r.Version = t, t, 1
	r.Properties, r.Tags = nonEmpty(r.Properties), nonEmpty(r.Tags)
	_, err := s.rw.ExecContext(ctx, `INSERT INTO registries (`+registryCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.Name, r.ResourceID, r.Location, r.SKU, nullBytes(r.Properties), nullBytes(r.Tags), nanos(t), nanos(t), r.Version)
	if err != nil {
		return meta.Registry{}, fmt.Errorf("sqlite: create registry %q: %w", r.Name, classify(err))
	}
	return r, nil
}

// GetRegistry returns the registry named name, in any case.
func (s *Store) GetRegistry(ctx context.Context, name string) (meta.Registry, error) {
	name = normReg(name)
	r, err := scanRegistry(keyRow(ctx, s.st.getRegistry, name))
	if err != nil {
		return meta.Registry{}, fmt.Errorf("sqlite: get registry %q: %w", name, classify(err))
	}
	return r, nil
}

// UpdateRegistry replaces the registry's mutable fields if r.Version is the
// stored version.
func (s *Store) UpdateRegistry(ctx context.Context, r meta.Registry) (meta.Registry, error) {
	name := normReg(r.Name)
	out, err := scanRegistry(s.rw.QueryRowContext(ctx, `UPDATE registries
SET resource_id = $1, location = $2, sku = $3, properties = $4, tags = $5, updated_at = $6, version = version + 1
WHERE name = $7 AND version = $8
RETURNING `+registryCols,
		r.ResourceID, r.Location, r.SKU, nullBytes(r.Properties), nullBytes(r.Tags), nanos(now()), name, r.Version))
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return meta.Registry{}, fmt.Errorf("sqlite: update registry %q: %w", name, err)
	}
	// No row matched: either there is no such registry or its version moved.
	if _, gerr := s.GetRegistry(ctx, name); gerr != nil {
		return meta.Registry{}, fmt.Errorf("sqlite: update registry %q: %w", name, gerr)
	}
	return meta.Registry{}, fmt.Errorf("sqlite: update registry %q at version %d: %w", name, r.Version, meta.ErrConflict)
}

// DeleteRegistry deletes the registry; the foreign keys cascade to
// everything stored in it.
func (s *Store) DeleteRegistry(ctx context.Context, name string) error {
	name = normReg(name)
	res, err := s.rw.ExecContext(ctx, `DELETE FROM registries WHERE name = $1`, name)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete registry %q: %w", name, classify(err))
	}
	return nil
}

// ListRegistries returns every registry by name.
func (s *Store) ListRegistries(ctx context.Context) ([]meta.Registry, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT `+registryCols+` FROM registries ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list registries: %w", err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.Registry
	for rows.Next() {
		r, err := scanRegistry(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list registries: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list registries: %w", err)
	}
	return out, nil
}
