package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const uploadCols = `id, registry, repository, byte_offset, hash_state, created_at, updated_at`

func scanUpload(sc scanner) (meta.Upload, error) {
	var u meta.Upload
	var created, updated int64
	if err := sc.Scan(&u.ID, &u.Registry, &u.Repository, &u.Offset, &u.HashState, &created, &updated); err != nil {
		return meta.Upload{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromNanos(created), fromNanos(updated)
	return u, nil
}

// CreateUpload records a new upload; the store sets its timestamps.
func (s *Store) CreateUpload(ctx context.Context, u meta.Upload) error {
	if u.ID == "" {
		return errors.New("sqlite: create upload: empty id")
	}
	t := nanos(now())
	_, err := s.st.createUpload.ExecContext(ctx,
		u.ID, normReg(u.Registry), u.Repository, u.Offset, nullBytes(u.HashState), t, t)
	if err != nil {
		return fmt.Errorf("sqlite: create upload %s: %w", u.ID, classify(err))
	}
	return nil
}

// GetUpload returns the upload with that id.
func (s *Store) GetUpload(ctx context.Context, id string) (meta.Upload, error) {
	u, err := scanUpload(keyRow(ctx, s.st.getUpload, id))
	if err != nil {
		return meta.Upload{}, fmt.Errorf("sqlite: get upload %s: %w", id, classify(err))
	}
	return u, nil
}

// UpdateUpload advances the upload if its stored offset is still prevOffset.
func (s *Store) UpdateUpload(ctx context.Context, id string, prevOffset, offset int64, hashState []byte) error {
	res, err := s.st.updateUpload.ExecContext(ctx, offset, nullBytes(hashState), nanos(now()), id, prevOffset)
	if err == nil {
		err = affected(res)
	}
	if errors.Is(err, meta.ErrNotFound) {
		// Gone, or advanced by someone else.
		if _, gerr := s.GetUpload(ctx, id); gerr == nil {
			err = meta.ErrConflict
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: update upload %s from offset %d: %w", id, prevOffset, classify(err))
	}
	return nil
}

// DeleteUpload removes the upload record.
func (s *Store) DeleteUpload(ctx context.Context, id string) error {
	res, err := s.st.deleteUpload.ExecContext(ctx, id)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete upload %s: %w", id, classify(err))
	}
	return nil
}

// ListUploadsBefore returns the uploads last updated before t, oldest first.
func (s *Store) ListUploadsBefore(ctx context.Context, t time.Time) ([]meta.Upload, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT `+uploadCols+` FROM uploads WHERE updated_at < $1 ORDER BY updated_at, id`, nanos(t))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list uploads: %w", err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list uploads: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list uploads: %w", err)
	}
	return out, nil
}
