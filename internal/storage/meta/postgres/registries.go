package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const registryCols = `name, resource_id, location, sku, properties, tags, created_at, updated_at, version`

func scanRegistry(row pgx.Row) (meta.Registry, error) {
	var r meta.Registry
	var created, updated int64
	if err := row.Scan(&r.Name, &r.ResourceID, &r.Location, &r.SKU, &r.Properties, &r.Tags, &created, &updated, &r.Version); err != nil {
		return meta.Registry{}, err
	}
	r.CreatedAt, r.UpdatedAt = fromNanos(created), fromNanos(updated)
	return r, nil
}

// CreateRegistry stores a new registry with Version 1.
func (s *Store) CreateRegistry(ctx context.Context, r meta.Registry) (meta.Registry, error) {
	r.Name = normReg(r.Name)
	if r.Name == "" {
		return meta.Registry{}, errors.New("postgres: create registry: empty name")
	}
	t := now()
	r.CreatedAt, r.UpdatedAt, r.Version = t, t, 1
	r.Properties, r.Tags = nullBytes(r.Properties), nullBytes(r.Tags)
	err := s.write(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO registries (`+registryCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			r.Name, r.ResourceID, r.Location, r.SKU, r.Properties, r.Tags, nanos(t), nanos(t), r.Version)
		return err
	})
	if err != nil {
		return meta.Registry{}, fmt.Errorf("postgres: create registry %q: %w", r.Name, classify(err))
	}
	return r, nil
}

// GetRegistry returns the registry named name, in any case.
func (s *Store) GetRegistry(ctx context.Context, name string) (meta.Registry, error) {
	name = normReg(name)
	var r meta.Registry
	err := s.read(ctx, func() (err error) {
		r, err = scanRegistry(s.pool.QueryRow(ctx, `SELECT `+registryCols+` FROM registries WHERE name = $1`, name))
		return err
	})
	if err != nil {
		return meta.Registry{}, fmt.Errorf("postgres: get registry %q: %w", name, classify(err))
	}
	return r, nil
}

// UpdateRegistry replaces the registry's mutable fields if r.Version is the
// stored version. Under READ COMMITTED a concurrent update of the same row
// waits for the first to commit and then re-checks the version against the
// new row, so exactly one of several updates from one version wins.
func (s *Store) UpdateRegistry(ctx context.Context, r meta.Registry) (meta.Registry, error) {
	name := normReg(r.Name)
	var out meta.Registry
	err := s.write(ctx, func() (err error) {
		out, err = scanRegistry(s.pool.QueryRow(ctx, `UPDATE registries
SET resource_id = $1, location = $2, sku = $3, properties = $4, tags = $5, updated_at = $6, version = version + 1
WHERE name = $7 AND version = $8
RETURNING `+registryCols,
			r.ResourceID, r.Location, r.SKU, nullBytes(r.Properties), nullBytes(r.Tags), nanos(now()), name, r.Version))
		return err
	})
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return meta.Registry{}, fmt.Errorf("postgres: update registry %q: %w", name, err)
	}
	// No row matched: either there is no such registry or its version moved.
	if _, gerr := s.GetRegistry(ctx, name); gerr != nil {
		return meta.Registry{}, fmt.Errorf("postgres: update registry %q: %w", name, gerr)
	}
	return meta.Registry{}, fmt.Errorf("postgres: update registry %q at version %d: %w", name, r.Version, meta.ErrConflict)
}

// DeleteRegistry deletes the registry; the foreign keys cascade to
// everything stored in it.
func (s *Store) DeleteRegistry(ctx context.Context, name string) error {
	name = normReg(name)
	err := s.write(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM registries WHERE name = $1`, name)
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete registry %q: %w", name, classify(err))
	}
	return nil
}

// ListRegistries returns every registry in byte order of name.
func (s *Store) ListRegistries(ctx context.Context) ([]meta.Registry, error) {
	var out []meta.Registry
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+registryCols+` FROM registries ORDER BY name COLLATE "C"`)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.Registry, error) { return scanRegistry(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list registries: %w", err)
	}
	return out, nil
}
