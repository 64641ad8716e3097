package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Queries use $N placeholders, which SQLite binds by position as modernc
// passes them, so they read the same as a PostgreSQL store's.

const manifestCols = `digest, media_type, artifact_type, subject, annotations, content, size, created_at`

const (
	qGetManifest = `SELECT ` + manifestCols + ` FROM manifests
WHERE registry = $1 AND repository = $2 AND digest = $3`

	qGetManifestByTag = `SELECT m.digest, m.media_type, m.artifact_type, m.subject, m.annotations, m.content, m.size, m.created_at
FROM tags t JOIN manifests m
  ON m.registry = t.registry AND m.repository = t.repository AND m.digest = t.digest
WHERE t.registry = $1 AND t.repository = $2 AND t.tag = $3`

	qStatBlob = `SELECT size FROM blob_links WHERE registry = $1 AND repository = $2 AND digest = $3`

	qGetRegistry = `SELECT ` + registryCols + ` FROM registries WHERE name = $1`

	qInsertRepository = `INSERT INTO repositories (registry, name, created_at) VALUES ($1, $2, $3)
ON CONFLICT (registry, name) DO NOTHING`

	qInsertBlobLink = `INSERT INTO blob_links (registry, repository, digest, size) VALUES ($1, $2, $3, $4)
ON CONFLICT (registry, repository, digest) DO NOTHING`

	qBlobLinked = `SELECT 1 FROM blob_links WHERE registry = $1 AND repository = $2 AND digest = $3`

	qManifestExists = `SELECT 1 FROM manifests WHERE registry = $1 AND repository = $2 AND digest = $3`

	qInsertManifest = `INSERT INTO manifests
  (registry, repository, digest, media_type, artifact_type, subject, annotations, content, size, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (registry, repository, digest) DO NOTHING`

	qInsertRef = `INSERT INTO manifest_refs (registry, repository, digest, ref_digest, ref_kind) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (registry, repository, digest, ref_digest, ref_kind) DO NOTHING`

	qGetUpload = `SELECT ` + uploadCols + ` FROM uploads WHERE id = $1`

	qCreateUpload = `INSERT INTO uploads (` + uploadCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`

	qUpdateUpload = `UPDATE uploads SET byte_offset = $1, hash_state = $2, updated_at = $3
WHERE id = $4 AND byte_offset = $5`

	qDeleteUpload = `DELETE FROM uploads WHERE id = $1`

	qUpsertTag = `INSERT INTO tags (registry, repository, tag, digest, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (registry, repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`
)

// keyRow runs one of the read pool's lookups of one row by its key (the hot
// reads) without the caller's cancellation. A cancellable context costs
// database/sql and the driver a goroutine each per query (to close the rows,
// to interrupt SQLite) and the driver a progress handler: together more than
// the lookup itself, which a cancellation could not shorten. A context that
// is already done still fails the call before the query, as database/sql
// would, and a wait for a lock is still bounded by busy_timeout.
func keyRow(ctx context.Context, st *sql.Stmt, args ...any) scanner {
	if err := ctx.Err(); err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(context.WithoutCancel(ctx), args...)
}

// errRow is a row whose query never ran.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// statements are prepared once per Store; database/sql prepares each again
// on every pool connection that first runs it and keeps it there.
type statements struct {
	// read pool: the hot paths (manifest GET, blob HEAD, every request's
	// registry, every upload request's upload)
	getManifest, getManifestByTag, statBlob, getRegistry, getUpload *sql.Stmt
	// write connection: PutManifest, LinkBlob and the uploads (a chunked
	// push writes its upload once per PATCH; parsing the UPDATE again each
	// time cost as much as running it)
	insertRepository, insertBlobLink, blobLinked, manifestExists, insertManifest, insertRef, upsertTag *sql.Stmt
	createUpload, updateUpload, deleteUpload                                                           *sql.Stmt

	all []*sql.Stmt
}

func (st *statements) prepare(ctx context.Context, rw, ro *sql.DB) error {
	for _, p := range []struct {
		db  *sql.DB
		dst **sql.Stmt
		q   string
	}{
		{ro, &st.getManifest, qGetManifest},
		{ro, &st.getManifestByTag, qGetManifestByTag},
		{ro, &st.statBlob, qStatBlob},
		{ro, &st.getRegistry, qGetRegistry},
		{ro, &st.getUpload, qGetUpload},
		{rw, &st.insertRepository, qInsertRepository},
		{rw, &st.insertBlobLink, qInsertBlobLink},
		{rw, &st.blobLinked, qBlobLinked},
		{rw, &st.manifestExists, qManifestExists},
		{rw, &st.insertManifest, qInsertManifest},
		{rw, &st.insertRef, qInsertRef},
		{rw, &st.upsertTag, qUpsertTag},
		{rw, &st.createUpload, qCreateUpload},
		{rw, &st.updateUpload, qUpdateUpload},
		{rw, &st.deleteUpload, qDeleteUpload},
	} {
		s, err := p.db.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.q, err)
		}
		*p.dst = s
		st.all = append(st.all, s)
	}
	return nil
}

func (st *statements) close() error {
	var err error
	for _, s := range st.all {
		err = errors.Join(err, s.Close())
	}
	st.all = nil
	return err
}
