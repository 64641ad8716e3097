package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/migrations"
)

// busyTimeout is how long a writer waits for another process's write lock
// before SQLite gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a meta.Store on one SQLite file.
type Store struct {
	rw *sql.DB // exactly one connection: SQLite's single writer
	ro *sql.DB // query-only connections for reads
	st statements
}

var _ meta.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path and brings its
// schema up to date. path is a file name; the directory must exist.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		// In-memory databases are per connection and cannot be shared by the
		// two pools; '?' would start the DSN's parameters.
		return nil, fmt.Errorf("sqlite: open %q: want a plain file path", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous(NORMAL)")
	wq.Set("_txlock", "immediate")
	rw, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rw.SetMaxOpenConns(1)
	rw.SetMaxIdleConns(1)
	rw.SetConnMaxLifetime(0)
	rw.SetConnMaxIdleTime(0)
	s := &Store{rw: rw}
	if err := migrations.Apply(ctx, rw); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: migrate %s: %w", path, err), rw.Close())
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	ro, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), rw.Close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	ro.SetMaxOpenConns(n)
	ro.SetMaxIdleConns(n)
	ro.SetConnMaxLifetime(0)
	ro.SetConnMaxIdleTime(0)
	s.ro = ro
	if err := s.st.prepare(ctx, rw, ro); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), s.Close())
	}
	return s, nil
}

// createPrivate creates the database file with mode 0600 unless it exists,
// so that SQLite (which gives its -wal and -shm files the database's mode)
// never makes a world-readable copy of keys and secret hashes.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // path is the operator's configured database file
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return nil
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Close closes both pools.
func (s *Store) Close() error {
	err := s.st.close()
	if s.ro != nil {
		err = errors.Join(err, s.ro.Close())
	}
	return errors.Join(err, s.rw.Close())
}

// Ping checks that the file can be read and the schema is there.
func (s *Store) Ping(ctx context.Context) error {
	var v int64
	if err := s.ro.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if v == 0 {
		return errors.New("sqlite: ping: schema not migrated")
	}
	return nil
}

// writeTx runs fn in one write transaction (BEGIN IMMEDIATE on the single
// write connection) and commits it if fn succeeds.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.rw.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// classify maps driver errors to meta's sentinels, keeping the driver's
// message. A foreign-key violation can only mean the registry a write names
// does not exist: every other reference is checked before it is written.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return meta.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", meta.ErrAlreadyExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: registry does not exist: %w", meta.ErrNotFound, err)
		}
	}
	return err
}

// affected returns meta.ErrNotFound when res changed no row.
func affected(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return meta.ErrNotFound
	}
	return nil
}

func normReg(name string) string { return strings.ToLower(name) }

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// now is the store's clock, truncated to what it stores so that what a
// method returns equals what a later read returns.
func now() time.Time { return fromNanos(time.Now().UnixNano()) }

// nullBytes stores an empty slice as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nonEmpty returns nil for an empty slice (NULL reads back as nil already).
func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// limit turns meta's "n <= 0 means all" into SQLite's LIMIT -1.
func limit(n int) int64 {
	if n <= 0 {
		return -1
	}
	return int64(n)
}
