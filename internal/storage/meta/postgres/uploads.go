package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const uploadCols = `id, registry, repository, byte_offset, hash_state, created_at, updated_at`

func scanUpload(row pgx.Row) (meta.Upload, error) {
	var u meta.Upload
	var created, updated int64
	if err := row.Scan(&u.ID, &u.Registry, &u.Repository, &u.Offset, &u.HashState, &created, &updated); err != nil {
		return meta.Upload{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromNanos(created), fromNanos(updated)
	return u, nil
}

// CreateUpload records a new upload; the store sets its timestamps.
func (s *Store) CreateUpload(ctx context.Context, u meta.Upload) error {
	if u.ID == "" {
		return errors.New("postgres: create upload: empty id")
	}
	t := nanos(now())
	err := s.write(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO uploads (`+uploadCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			u.ID, normReg(u.Registry), u.Repository, u.Offset, nullBytes(u.HashState), t, t)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create upload %s: %w", u.ID, classify(err))
	}
	return nil
}

// GetUpload returns the upload with that id.
func (s *Store) GetUpload(ctx context.Context, id string) (meta.Upload, error) {
	var u meta.Upload
	err := s.read(ctx, func() (err error) {
		u, err = scanUpload(s.pool.QueryRow(ctx, `SELECT `+uploadCols+` FROM uploads WHERE id = $1`, id))
		return err
	})
	if err != nil {
		return meta.Upload{}, fmt.Errorf("postgres: get upload %s: %w", id, classify(err))
	}
	return u, nil
}

// UpdateUpload advances the upload if its stored offset is still prevOffset.
// A concurrent update of the same upload waits for the first to commit and
// then re-checks the offset against the new row, so one of them wins.
func (s *Store) UpdateUpload(ctx context.Context, id string, prevOffset, offset int64, hashState []byte) error {
	err := s.write(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `UPDATE uploads SET byte_offset = $1, hash_state = $2, updated_at = $3
WHERE id = $4 AND byte_offset = $5`, offset, nullBytes(hashState), nanos(now()), id, prevOffset)
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if errors.Is(err, meta.ErrNotFound) {
		// Gone, or advanced by someone else.
		if _, gerr := s.GetUpload(ctx, id); gerr == nil {
			err = meta.ErrConflict
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: update upload %s from offset %d: %w", id, prevOffset, classify(err))
	}
	return nil
}

// DeleteUpload removes the upload record.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	err := s.write(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM uploads WHERE id = $1`, id)
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete upload %s: %w", id, classify(err))
	}
	return nil
}

// ListUploadsBefore returns the uploads last updated before t, oldest first.
func (s *Store) ListUploadsBefore(ctx context.Context, t time.Time) ([]meta.Upload, error) {
	var out []meta.Upload
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+uploadCols+` FROM uploads WHERE updated_at < $1
ORDER BY updated_at, id COLLATE "C"`, nanos(t))
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.Upload, error) { return scanUpload(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list uploads: %w", err)
	}
	return out, nil
}
