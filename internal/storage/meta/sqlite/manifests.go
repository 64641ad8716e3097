package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// LinkBlob makes blob d visible in the repository, creating the repository.
func (s *Store) LinkBlob(ctx context.Context, reg, repo string, d digest.Digest, size int64) error {
	reg = normReg(reg)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, s.st.insertRepository).ExecContext(ctx, reg, repo, nanos(now())); err != nil {
			return classify(err)
		}
		if _, err := tx.StmtContext(ctx, s.st.insertBlobLink).ExecContext(ctx, reg, repo, d.String(), size); err != nil {
			return classify(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: link blob %s in %s/%s: %w", d, reg, repo, err)
	}
	return nil
}

// StatBlob returns the size of blob d if it is linked in the repository.
func (s *Store) StatBlob(ctx context.Context, reg, repo string, d digest.Digest) (int64, error) {
	reg = normReg(reg)
	var size int64
	if err := keyRow(ctx, s.st.statBlob, reg, repo, d.String()).Scan(&size); err != nil {
		return 0, fmt.Errorf("sqlite: stat blob %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return size, nil
}

// UnlinkBlob removes blob d from the repository.
func (s *Store) UnlinkBlob(ctx context.Context, reg, repo string, d digest.Digest) error {
	reg = normReg(reg)
	res, err := s.rw.ExecContext(ctx, `DELETE FROM blob_links WHERE registry = $1 AND repository = $2 AND digest = $3`, reg, repo, d.String())
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: unlink blob %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return nil
}

// PutManifest stores m, its references and its tag in one transaction after
// checking that every reference is present in the repository.
func (s *Store) PutManifest(ctx context.Context, m meta.Manifest, tag string) error {
	reg := normReg(m.Registry)
	if reg == "" || m.Repository == "" || m.Digest == "" || len(m.Content) == 0 {
		return fmt.Errorf("sqlite: put manifest %s in %s/%s: registry, repository, digest and content are required", m.Digest, reg, m.Repository)
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if err := checkRefs(ctx, tx.StmtContext(ctx, s.st.blobLinked), reg, m.Repository, m.Blobs, false); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx.StmtContext(ctx, s.st.manifestExists), reg, m.Repository, m.Children, true); err != nil {
			return err
		}
		t := nanos(now())
		if _, err := tx.StmtContext(ctx, s.st.insertRepository).ExecContext(ctx, reg, m.Repository, t); err != nil {
			return classify(err)
		}
		res, err := tx.StmtContext(ctx, s.st.insertManifest).ExecContext(ctx,
			reg, m.Repository, m.Digest.String(), m.MediaType, m.ArtifactType, m.Subject.String(),
			nullBytes(m.Annotations), m.Content, int64(len(m.Content)), t)
		if err != nil {
			return classify(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n > 0 { // a new manifest; an existing digest already has its refs
			ins := tx.StmtContext(ctx, s.st.insertRef)
			for _, r := range []struct {
				ds   []digest.Digest
				kind string
			}{{m.Blobs, "blob"}, {m.Children, "manifest"}} {
				for _, d := range r.ds {
					if _, err := ins.ExecContext(ctx, reg, m.Repository, m.Digest.String(), d.String(), r.kind); err != nil {
						return classify(err)
					}
				}
			}
		}
		if tag != "" {
			if _, err := tx.StmtContext(ctx, s.st.upsertTag).ExecContext(ctx, reg, m.Repository, tag, m.Digest.String(), t); err != nil {
				return classify(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: put manifest %s in %s/%s: %w", m.Digest, reg, m.Repository, err)
	}
	return nil
}

// checkRefs returns a *meta.MissingReferenceError for the first of ds that
// exists returns no row for.
func checkRefs(ctx context.Context, exists *sql.Stmt, reg, repo string, ds []digest.Digest, manifest bool) error {
	for _, d := range ds {
		var one int
		err := exists.QueryRowContext(ctx, reg, repo, d.String()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return &meta.MissingReferenceError{Digest: d, Manifest: manifest}
		}
		if err != nil {
			return fmt.Errorf("check reference %s: %w", d, err)
		}
	}
	return nil
}

func scanManifest(sc scanner, reg, repo string, withContent bool) (meta.Manifest, error) {
	m := meta.Manifest{Registry: reg, Repository: repo}
	var dg, subject string
	var created int64
	dest := []any{&dg, &m.MediaType, &m.ArtifactType, &subject, &m.Annotations}
	if withContent {
		dest = append(dest, &m.Content)
	}
	dest = append(dest, &m.Size, &created)
	if err := sc.Scan(dest...); err != nil {
		return meta.Manifest{}, err
	}
	m.Digest, m.Subject, m.CreatedAt = digest.Digest(dg), digest.Digest(subject), fromNanos(created)
	return m, nil
}

// GetManifest returns the manifest with digest d in the repository.
func (s *Store) GetManifest(ctx context.Context, reg, repo string, d digest.Digest) (meta.Manifest, error) {
	reg = normReg(reg)
	m, err := scanManifest(keyRow(ctx, s.st.getManifest, reg, repo, d.String()), reg, repo, true)
	if err != nil {
		return meta.Manifest{}, fmt.Errorf("sqlite: get manifest %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return m, nil
}

// GetManifestByTag returns the manifest tag points at.
func (s *Store) GetManifestByTag(ctx context.Context, reg, repo, tag string) (meta.Manifest, error) {
	reg = normReg(reg)
	m, err := scanManifest(keyRow(ctx, s.st.getManifestByTag, reg, repo, tag), reg, repo, true)
	if err != nil {
		return meta.Manifest{}, fmt.Errorf("sqlite: get manifest %s/%s:%s: %w", reg, repo, tag, classify(err))
	}
	return m, nil
}

// DeleteManifest deletes the manifest; its tags and reference rows go with
// it through the foreign keys.
func (s *Store) DeleteManifest(ctx context.Context, reg, repo string, d digest.Digest) error {
	reg = normReg(reg)
	res, err := s.rw.ExecContext(ctx, `DELETE FROM manifests WHERE registry = $1 AND repository = $2 AND digest = $3`, reg, repo, d.String())
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete manifest %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return nil
}

// DeleteTag removes the tag.
func (s *Store) DeleteTag(ctx context.Context, reg, repo, tag string) error {
	reg = normReg(reg)
	res, err := s.rw.ExecContext(ctx, `DELETE FROM tags WHERE registry = $1 AND repository = $2 AND tag = $3`, reg, repo, tag)
	if err == nil {
		err = affected(res)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete tag %s/%s:%s: %w", reg, repo, tag, classify(err))
	}
	return nil
}

// ListTags lists the repository's tags in byte order.
func (s *Store) ListTags(ctx context.Context, reg, repo, last string, n int) ([]string, error) {
	reg = normReg(reg)
	tags, err := s.listStrings(ctx, `SELECT tag FROM tags WHERE registry = $1 AND repository = $2 AND tag > $3 ORDER BY tag LIMIT $4`,
		reg, repo, last, limit(n))
	if err == nil && len(tags) == 0 {
		// Tell an empty page from a repository that does not exist.
		var one int
		err = classify(s.ro.QueryRowContext(ctx, `SELECT 1 FROM repositories WHERE registry = $1 AND name = $2`, reg, repo).Scan(&one))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tags of %s/%s: %w", reg, repo, err)
	}
	return tags, nil
}

// ListRepositories lists the registry's repositories in byte order.
func (s *Store) ListRepositories(ctx context.Context, reg, last string, n int) ([]string, error) {
	reg = normReg(reg)
	names, err := s.listStrings(ctx, `SELECT name FROM repositories WHERE registry = $1 AND name > $2 ORDER BY name LIMIT $3`,
		reg, last, limit(n))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list repositories of %s: %w", reg, err)
	}
	return names, nil
}

func (s *Store) listStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.ro.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ListReferrers lists the repository's manifests whose subject is d.
func (s *Store) ListReferrers(ctx context.Context, reg, repo string, d digest.Digest, artifactType string) ([]meta.Manifest, error) {
	reg = normReg(reg)
	if d == "" {
		return nil, nil // subject '' is every manifest without one
	}
	rows, err := s.ro.QueryContext(ctx, `SELECT digest, media_type, artifact_type, subject, annotations, size, created_at
FROM manifests
WHERE registry = $1 AND repository = $2 AND subject = $3 AND ($4 = '' OR artifact_type = $4)
ORDER BY digest`, reg, repo, d.String(), artifactType)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list referrers of %s in %s/%s: %w", d, reg, repo, err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.Manifest
	for rows.Next() {
		m, err := scanManifest(rows, reg, repo, false)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list referrers of %s in %s/%s: %w", d, reg, repo, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list referrers of %s in %s/%s: %w", d, reg, repo, err)
	}
	return out, nil
}
