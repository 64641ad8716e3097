// Package postgres owns moat's scale-out metadata store: meta.Store on a
// PostgreSQL database (15 or later) through pgx's connection pool, with the
// schema from the shared migrations package, applied at Open. Several moat
// replicas, each with its own Store, share one database.
//
// Connections. The DSN may carry pgxpool's pool_max_conns (default: the
// larger of 4 and the number of CPUs), pool_min_conns and friends. Queries
// use pgx's per-connection prepared-statement cache; behind a connection
// pooler in transaction mode that does not keep prepared statements, add
// default_query_exec_mode=exec to the DSN.
//
// Isolation. Every statement and transaction runs at READ COMMITTED (Open
// sets it per connection, whatever the server's default), and each write is
// written so that READ COMMITTED serializes it:
//
//   - Optimistic and compare-and-swap updates (UpdateRegistry, UpdateUpload)
//     are one UPDATE ... WHERE version (offset) = $old. A second updater of
//     the same row waits for the first to commit and then re-evaluates its
//     WHERE against the new row, so exactly one wins; the others see no row
//     and report meta.ErrConflict.
//   - Inserts that may race (LinkBlob, the repository row, the manifest and
//     its reference rows, the tag) are INSERT ... ON CONFLICT, which waits
//     for a concurrent inserter of the same key and then does nothing (or
//     moves the tag), so concurrent identical writes all succeed.
//   - PutManifest is one transaction: it reads the blob links and child
//     manifests it needs with SELECT ... FOR KEY SHARE, which locks them
//     until commit (UnlinkBlob and DeleteManifest of one of them wait, as
//     they would behind SQLite's single writer), then writes the repository,
//     manifest, reference rows and tag in one statement. A manifest therefore
//     never commits referencing a blob link or child that was removed while
//     it was being put.
//   - Writing into a registry that does not exist, or one deleted
//     concurrently, fails on the foreign key (SQLSTATE 23503), reported as
//     meta.ErrNotFound; the foreign-key check locks the registry row, so
//     DeleteRegistry's cascade cannot miss a concurrently inserted row.
//
// SERIALIZABLE with retries would give the same results but abort and
// repeat transactions under contention, which pushes and tag moves on one
// repository have plenty of.
//
// Failures. A call whose statements failed because the connection died
// (the server restarted, an administrator or proxy killed it) resets the
// pool, so the following calls get new connections, and is run once more
// when that is safe: always for reads and for idempotent writes (LinkBlob,
// PutManifest, PutPrincipal, RetireSigningKey), and for other writes only
// when pgx reports that nothing reached the server. Deadlocks and
// serialization failures, after which the server has undone the statement,
// are retried too. Otherwise the error is returned; the client's retry of
// the request then runs on a fresh connection.
//
// Invariants beyond meta's:
//
//   - Byte order: every ORDER BY and range comparison on text (tags,
//     repository, registry and principal names, digests, ids) is
//     COLLATE "C", so listings and pagination match the SQLite store under
//     any database collation. Those sorts do not use the primary-key
//     indexes unless the database itself was created with the C collation.
//   - Everything a registry holds cascades from its registries row through
//     the foreign keys; deleting a manifest deletes its tags and reference
//     rows the same way.
//   - GetManifest and GetManifestByTag return Blobs and Children empty.
//   - Empty byte slices are stored as NULL and come back nil.
//   - "No limit" is LIMIT NULL, never SQLite's LIMIT -1.
//   - Errors never include the DSN (it may hold a password).
package postgres
