package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/migrations"
)

// Store is a meta.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ meta.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string, with pgxpool's pool_* parameters if wanted) and brings its
// schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors do not repeat the password.
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	// Every statement and transaction relies on READ COMMITTED (see the
	// package doc); a server or role default of another level must not
	// change that.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	err = migrations.Apply(ctx, db)
	// Closing the *sql.DB leaves the pool open.
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers and the schema is there.
func (s *Store) Ping(ctx context.Context) error {
	var v int64
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&v)
	})
	if err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	if v == 0 {
		return errors.New("postgres: ping: schema not migrated")
	}
	return nil
}

// maxAttempts bounds how often one call runs its statements.
const maxAttempts = 3

// read runs fn, which only reads or whose writes are idempotent, again
// when it failed in a way that may have nothing to do with its statements:
// a lost connection, a deadlock or a serialization failure.
func (s *Store) read(ctx context.Context, fn func() error) error { return s.run(ctx, true, fn) }

// write runs fn, whose writes are not idempotent (a second run after a
// commit whose acknowledgement was lost would report ErrAlreadyExists or
// ErrConflict), again only when the server certainly did not apply it.
func (s *Store) write(ctx context.Context, fn func() error) error { return s.run(ctx, false, fn) }

func (s *Store) run(ctx context.Context, idempotent bool, fn func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = fn()
		if err == nil || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		lost := connectionLost(err)
		if lost {
			// A lost connection usually means the server restarted or a
			// proxy dropped every connection: the pooled ones are dead too,
			// so open new ones instead of failing on each in turn. Connections
			// in use are closed when they are returned.
			s.pool.Reset()
		}
		var again *retryOnce
		switch {
		case errors.As(err, &again): // fn asked for it
		case pgconn.SafeToRetry(err): // nothing reached the server
		case rolledBack(err): // the server undid the statement or transaction
		case lost && idempotent:
		default:
			return err
		}
	}
}

// retryOnce is an error with which fn asks run to run it again.
type retryOnce struct{ err error }

func (e *retryOnce) Error() string { return e.err.Error() }
func (e *retryOnce) Unwrap() error { return e.err }

// rolledBack reports errors after which the server has undone the whole
// statement or transaction, so running it again is always safe.
func rolledBack(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", // serialization_failure
		"40P01": // deadlock_detected
		return true
	}
	return false
}

// connectionLost reports errors that mean the connection died.
func connectionLost(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// admin_shutdown, crash_shutdown, cannot_connect_now
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &ne) && !ne.Timeout())
}

// classify maps driver errors to meta's sentinels, keeping the driver's
// message. A foreign-key violation can only mean the registry a write names
// does not exist: every other reference is checked before it is written.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if isFKViolation(err) {
		return fmt.Errorf("%w: registry does not exist: %w", meta.ErrNotFound, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return meta.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", meta.ErrAlreadyExists, err)
		}
	}
	return err
}

func isFKViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// affected returns meta.ErrNotFound when the statement changed no row.
func affected(tag pgconn.CommandTag) error {
	if tag.RowsAffected() == 0 {
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
func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// limit turns meta's "n <= 0 means all" into LIMIT NULL, which PostgreSQL
// reads as no limit.
func limit(n int) *int64 {
	if n <= 0 {
		return nil
	}
	v := int64(n)
	return &v
}

// collect reads rows into a slice with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
