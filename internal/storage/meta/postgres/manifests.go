package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// LinkBlob makes blob d visible in the repository, creating the repository.
// One statement: the repository insert runs as a CTE, and the blob link's
// foreign key, checked at the end of the statement, sees it.
func (s *Store) LinkBlob(ctx context.Context, reg, repo string, d digest.Digest, size int64) error {
	reg = normReg(reg)
	err := s.read(ctx, func() error { // idempotent: linking twice is not an error
		_, err := s.pool.Exec(ctx, `WITH repo AS (
  INSERT INTO repositories (registry, name, created_at) VALUES ($1, $2, $5)
  ON CONFLICT (registry, name) DO NOTHING
)
INSERT INTO blob_links (registry, repository, digest, size) VALUES ($1, $2, $3, $4)
ON CONFLICT (registry, repository, digest) DO NOTHING`, reg, repo, d.String(), size, nanos(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: link blob %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return nil
}

// StatBlob returns the size of blob d if it is linked in the repository.
func (s *Store) StatBlob(ctx context.Context, reg, repo string, d digest.Digest) (int64, error) {
	reg = normReg(reg)
	var size int64
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT size FROM blob_links WHERE registry = $1 AND repository = $2 AND digest = $3`,
			reg, repo, d.String()).Scan(&size)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: stat blob %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return size, nil
}

// UnlinkBlob removes blob d from the repository. It waits for a PutManifest
// that checked the link (and holds a lock on it) to commit.
func (s *Store) UnlinkBlob(ctx context.Context, reg, repo string, d digest.Digest) error {
	reg = normReg(reg)
	err := s.write(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM blob_links WHERE registry = $1 AND repository = $2 AND digest = $3`, reg, repo, d.String())
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if err != nil {
		return fmt.Errorf("postgres: unlink blob %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return nil
}

// qPutManifest is PutManifest in one statement, so one round trip and no
// explicit transaction. fb and fm find (and lock FOR KEY SHARE until the
// statement commits) the referenced blob links ($11) and child manifests
// ($12) that are present; only when all are present does ok let the writes
// run: the repository (if new), the manifest (if new), its reference rows
// (only when the manifest is new: an existing digest already has them) and
// the tag (when $13 is not empty). The statement returns what it found, from
// which the caller names the first missing reference. Foreign keys are
// checked at the end of the statement and see the CTEs' rows.
const qPutManifest = `WITH fb AS (
  SELECT digest FROM blob_links
  WHERE registry = $1 AND repository = $2 AND digest = ANY($11::text[])
  FOR KEY SHARE
), fm AS (
  SELECT digest FROM manifests
  WHERE registry = $1 AND repository = $2 AND digest = ANY($12::text[])
  FOR KEY SHARE
), ok AS (
  SELECT (SELECT count(*) FROM fb) = (SELECT count(DISTINCT x) FROM unnest($11::text[]) AS x)
     AND (SELECT count(*) FROM fm) = (SELECT count(DISTINCT x) FROM unnest($12::text[]) AS x) AS ok
), repo AS (
  INSERT INTO repositories (registry, name, created_at)
  SELECT $1, $2, $10 FROM ok WHERE ok.ok
  ON CONFLICT (registry, name) DO NOTHING
), m AS (
  INSERT INTO manifests (registry, repository, digest, media_type, artifact_type, subject, annotations, content, size, created_at)
  SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM ok WHERE ok.ok
  ON CONFLICT (registry, repository, digest) DO NOTHING
  RETURNING digest
), refs AS (
  INSERT INTO manifest_refs (registry, repository, digest, ref_digest, ref_kind)
  SELECT $1, $2, m.digest, r.d, r.k FROM m, (
    SELECT unnest($11::text[]) AS d, 'blob' AS k
    UNION ALL
    SELECT unnest($12::text[]), 'manifest'
  ) AS r
  ON CONFLICT (registry, repository, digest, ref_digest, ref_kind) DO NOTHING
), t AS (
  INSERT INTO tags (registry, repository, tag, digest, updated_at)
  SELECT $1, $2, $13::text, $3, $10 FROM ok WHERE ok.ok AND $13::text <> ''
  ON CONFLICT (registry, repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at
)
SELECT false, digest FROM fb
UNION ALL
SELECT true, digest FROM fm`

// PutManifest stores m, its references and its tag atomically (one
// statement, see qPutManifest) if every reference is present in the
// repository. The references it finds stay locked until it commits, so an
// UnlinkBlob or DeleteManifest of one of them waits, as it would behind
// SQLite's single writer, and one that was uncommitted when PutManifest
// looked is waited for and then counts as missing: a manifest never commits
// referencing a blob link or child that was removed meanwhile.
func (s *Store) PutManifest(ctx context.Context, m meta.Manifest, tag string) error {
	reg := normReg(m.Registry)
	if reg == "" || m.Repository == "" || m.Digest == "" || len(m.Content) == 0 {
		return fmt.Errorf("postgres: put manifest %s in %s/%s: registry, repository, digest and content are required", m.Digest, reg, m.Repository)
	}
	retried := false
	err := s.read(ctx, func() (err error) { // idempotent: putting the same manifest and tag again changes nothing
		defer func() {
			// The tag's foreign key also fails when the manifest existed
			// (so the statement did not insert it) and a DeleteManifest
			// removed it before the tag was checked. Run again: this time
			// the statement inserts it. A registry that does not exist fails
			// the same way again.
			if !retried && isFKViolation(err) {
				retried = true
				err = &retryOnce{err}
			}
		}()
		rows, err := s.pool.Query(ctx, qPutManifest,
			reg, m.Repository, m.Digest.String(), m.MediaType, m.ArtifactType, m.Subject.String(),
			nullBytes(m.Annotations), m.Content, int64(len(m.Content)), nanos(now()),
			digestStrings(m.Blobs), digestStrings(m.Children), tag)
		if err != nil {
			return err
		}
		type ref struct {
			manifest bool
			digest   string
		}
		found, err := collect(rows, func(r pgx.Rows) (ref, error) {
			var f ref
			err := r.Scan(&f.manifest, &f.digest)
			return f, err
		})
		if err != nil {
			return err
		}
		present := make(map[ref]bool, len(found))
		for _, f := range found {
			present[f] = true
		}
		for _, r := range []struct {
			ds       []digest.Digest
			manifest bool
		}{{m.Blobs, false}, {m.Children, true}} {
			for _, d := range r.ds {
				if !present[ref{r.manifest, d.String()}] {
					return &meta.MissingReferenceError{Digest: d, Manifest: r.manifest}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: put manifest %s in %s/%s: %w", m.Digest, reg, m.Repository, classify(err))
	}
	return nil
}

// digestStrings returns ds as strings, empty rather than nil so that the
// array binds as '{}' and not as NULL.
func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

const manifestCols = `digest, media_type, artifact_type, subject, annotations, content, size, created_at`

func scanManifest(row pgx.Row, reg, repo string, withContent bool) (meta.Manifest, error) {
	m := meta.Manifest{Registry: reg, Repository: repo}
	var dg, subject string
	var created int64
	dest := []any{&dg, &m.MediaType, &m.ArtifactType, &subject, &m.Annotations}
	if withContent {
		dest = append(dest, &m.Content)
	}
	dest = append(dest, &m.Size, &created)
	if err := row.Scan(dest...); err != nil {
		return meta.Manifest{}, err
	}
	m.Digest, m.Subject, m.CreatedAt = digest.Digest(dg), digest.Digest(subject), fromNanos(created)
	return m, nil
}

// GetManifest returns the manifest with digest d in the repository.
func (s *Store) GetManifest(ctx context.Context, reg, repo string, d digest.Digest) (meta.Manifest, error) {
	reg = normReg(reg)
	var m meta.Manifest
	err := s.read(ctx, func() (err error) {
		m, err = scanManifest(s.pool.QueryRow(ctx, `SELECT `+manifestCols+` FROM manifests
WHERE registry = $1 AND repository = $2 AND digest = $3`, reg, repo, d.String()), reg, repo, true)
		return err
	})
	if err != nil {
		return meta.Manifest{}, fmt.Errorf("postgres: get manifest %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return m, nil
}

// GetManifestByTag returns the manifest tag points at.
func (s *Store) GetManifestByTag(ctx context.Context, reg, repo, tag string) (meta.Manifest, error) {
	reg = normReg(reg)
	var m meta.Manifest
	err := s.read(ctx, func() (err error) {
		m, err = scanManifest(s.pool.QueryRow(ctx, `SELECT m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.content, m.size, m.created_at
FROM tags t JOIN manifests m
  ON m.registry = t.registry AND m.repository = t.repository AND m.digest = t.digest
WHERE t.registry = $1 AND t.repository = $2 AND t.tag = $3`, reg, repo, tag), reg, repo, true)
		return err
	})
	if err != nil {
		return meta.Manifest{}, fmt.Errorf("postgres: get manifest %s/%s:%s: %w", reg, repo, tag, classify(err))
	}
	return m, nil
}

// DeleteManifest deletes the manifest; its tags and reference rows go with
// it through the foreign keys.
func (s *Store) DeleteManifest(ctx context.Context, reg, repo string, d digest.Digest) error {
	reg = normReg(reg)
	err := s.write(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM manifests WHERE registry = $1 AND repository = $2 AND digest = $3`, reg, repo, d.String())
		if err != nil {
			return err
		}
		return affected(tag)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete manifest %s in %s/%s: %w", d, reg, repo, classify(err))
	}
	return nil
}

// DeleteTag removes the tag.
func (s *Store) DeleteTag(ctx context.Context, reg, repo, tag string) error {
	reg = normReg(reg)
	err := s.write(ctx, func() error {
		ct, err := s.pool.Exec(ctx, `DELETE FROM tags WHERE registry = $1 AND repository = $2 AND tag = $3`, reg, repo, tag)
		if err != nil {
			return err
		}
		return affected(ct)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete tag %s/%s:%s: %w", reg, repo, tag, classify(err))
	}
	return nil
}

// ListTags lists the repository's tags in byte order. COLLATE "C" makes
// both the comparison with last and the order bytewise whatever the
// database's collation.
func (s *Store) ListTags(ctx context.Context, reg, repo, last string, n int) ([]string, error) {
	reg = normReg(reg)
	var tags []string
	err := s.read(ctx, func() (err error) {
		tags, err = s.listStrings(ctx, `SELECT tag FROM tags
WHERE registry = $1 AND repository = $2 AND tag COLLATE "C" > $3
ORDER BY tag COLLATE "C" LIMIT $4`, reg, repo, last, limit(n))
		if err != nil || len(tags) > 0 {
			return err
		}
		// Tell an empty page from a repository that does not exist.
		var one int
		return s.pool.QueryRow(ctx, `SELECT 1 FROM repositories WHERE registry = $1 AND name = $2`, reg, repo).Scan(&one)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list tags of %s/%s: %w", reg, repo, classify(err))
	}
	return tags, nil
}

// ListRepositories lists the registry's repositories in byte order.
func (s *Store) ListRepositories(ctx context.Context, reg, last string, n int) ([]string, error) {
	reg = normReg(reg)
	var names []string
	err := s.read(ctx, func() (err error) {
		names, err = s.listStrings(ctx, `SELECT name FROM repositories
WHERE registry = $1 AND name COLLATE "C" > $2
ORDER BY name COLLATE "C" LIMIT $3`, reg, last, limit(n))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list repositories of %s: %w", reg, err)
	}
	return names, nil
}

func (s *Store) listStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(r pgx.Rows) (string, error) {
		var v string
		err := r.Scan(&v)
		return v, err
	})
}

// ListReferrers lists the repository's manifests whose subject is d, in
// byte order of digest.
func (s *Store) ListReferrers(ctx context.Context, reg, repo string, d digest.Digest, artifactType string) ([]meta.Manifest, error) {
	reg = normReg(reg)
	if d == "" {
		return nil, nil // subject '' is every manifest without one
	}
	var out []meta.Manifest
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT digest, media_type, artifact_type, subject, annotations, size, created_at
FROM manifests
WHERE registry = $1 AND repository = $2 AND subject = $3 AND ($4::text = '' OR artifact_type = $4::text)
ORDER BY digest COLLATE "C"`, reg, repo, d.String(), artifactType)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.Manifest, error) { return scanManifest(r, reg, repo, false) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list referrers of %s in %s/%s: %w", d, reg, repo, err)
	}
	return out, nil
}
