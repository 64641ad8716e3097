// Package sqlite owns moat's embedded metadata store: meta.Store on one
// SQLite file (modernc.org/sqlite, no cgo), with the schema from the shared
// migrations package.
//
// Concurrency. SQLite lets one connection write at a time. A Store therefore
// keeps two pools on the file: a write pool of exactly one connection, whose
// transactions begin IMMEDIATE (they take the write lock at BEGIN, so a
// transaction that reads and then writes cannot fail halfway with
// SQLITE_BUSY), and a read pool of several query-only connections. In WAL
// mode readers never block the writer nor each other, so the hot paths
// (GetManifest, GetManifestByTag, StatBlob: one prepared statement each) scale
// with the read pool while writes queue in Go on the one write connection
// instead of spinning on SQLite's lock. Several processes (or Store values)
// may share a file: across them the write lock is arbitrated by SQLite, and
// busy_timeout makes a writer wait for it rather than fail. The hot reads
// run without the caller's cancellation (keyRow): watching a context cost
// more per query than the lookup.
//
// Durability. The file runs in WAL mode with synchronous=NORMAL: a commit is
// written to the WAL but not fsynced; the WAL is fsynced at checkpoints. A
// crash of the process loses nothing; a crash of the machine (power loss,
// kernel panic) can roll back the last transactions before the most recent
// checkpoint, but never corrupts the file or leaves a transaction half
// applied. For a registry that means at worst a just-pushed tag or blob link
// is gone after power loss and the client pushes it again; the blob bytes
// themselves are fsynced by the blob store. FULL would fsync on every commit
// and cap manifest and blob-link writes at the disk's fsync rate.
//
// Invariants beyond meta's:
//
//   - Foreign keys are on for every connection: everything a registry holds
//     (repositories, blob links, manifests, their references and tags,
//     uploads) cascades from its registries row, so DeleteRegistry is one
//     statement and a registry re-created under the same name starts empty.
//     Writing into a registry that does not exist fails with meta.ErrNotFound
//     (a foreign-key violation) instead of leaving orphaned rows.
//   - Deleting a manifest deletes its tags and reference rows by the same
//     cascade.
//   - GetManifest and GetManifestByTag return Blobs and Children empty: they
//     are PutManifest's input; the references live in manifest_refs and the
//     caller has Content.
//   - Empty byte slices are stored as NULL and come back nil.
//   - The database file is created with mode 0600: it holds signing keys
//     and secret hashes. SQLite gives its -wal and -shm files the same mode.
package sqlite
