// Package migrations owns moat's metadata schema: the numbered SQL files
// embedded in it and Apply, which brings a database up to date.
//
// One set of files serves every metadata store. Each file NNNN_name.sql is
// written to run unchanged on SQLite (modernc.org/sqlite) and PostgreSQL 15:
// TEXT and BIGINT columns, BYTEA for bytes (SQLite gives that type name
// NUMERIC affinity, which never converts a BLOB value, so bytes bound as
// []byte stay bytes), timestamps as BIGINT unix nanoseconds, composite
// primary keys instead of AUTOINCREMENT, and ON DELETE CASCADE foreign keys
// from everything a registry holds up to its registries row. SQLite enforces
// those only with PRAGMA foreign_keys=ON on every connection; a store that
// opens SQLite must set it.
//
// Invariants:
//
//   - Versions start at 1 and are contiguous; a file, once released, is
//     never edited: a schema change is a new file.
//   - Apply records each version in schema_migrations in the same
//     transaction as the file's statements, so a version is applied entirely
//     or not at all.
//   - Apply is idempotent and safe when several processes run it at once: a
//     version is claimed by inserting its schema_migrations row first, which
//     blocks (PostgreSQL) or takes the write lock (SQLite) until a concurrent
//     claimant finishes; the loser sees the row and skips the version. Any
//     other failure of a racing start is retried a few times.
//   - Apply refuses a database that has a version newer than this binary
//     knows: an older moat must not write to a schema it does not understand.
//
// Listing order: tags and repository names are listed in byte order. SQLite's
// default BINARY collation is byte order; a PostgreSQL store must get the same
// order, either from a database created with LC_COLLATE "C" or by ordering
// with COLLATE "C" in its queries.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed *.sql
var files embed.FS

// Migration is one schema version.
type Migration struct {
	// Version is the number the file name starts with.
	Version int64
	// Name is the file name.
	Name string
	// Statements are the file's SQL statements, in order, without the
	// terminating semicolons.
	Statements []string
}

// ErrSchemaTooNew reports a database migrated by a newer moat.
var ErrSchemaTooNew = errors.New("migrations: database schema is newer than this binary")

// All returns the embedded migrations ordered by version.
func All() ([]Migration, error) {
	return load(files)
}

func load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: list files: %w", err)
	}
	ms := make([]Migration, 0, len(names))
	for _, name := range names {
		v, err := parseVersion(name)
		if err != nil {
			return nil, err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", name, err)
		}
		stmts, err := Split(string(b))
		if err != nil {
			return nil, fmt.Errorf("migrations: %s: %w", name, err)
		}
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migrations: %s has no statements", name)
		}
		ms = append(ms, Migration{Version: v, Name: name, Statements: stmts})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != int64(i)+1 {
			return nil, fmt.Errorf("migrations: %s: want version %d (versions start at 1 and are contiguous)", m.Name, i+1)
		}
	}
	return ms, nil
}

// parseVersion reads the version from a file name of the form NNNN_name.sql.
func parseVersion(name string) (int64, error) {
	prefix, rest, ok := strings.Cut(name, "_")
	if !ok || rest == ".sql" || prefix == "" {
		return 0, fmt.Errorf("migrations: file name %q is not NNNN_name.sql", name)
	}
	for _, c := range prefix {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("migrations: file name %q is not NNNN_name.sql", name)
		}
	}
	v, err := strconv.ParseInt(prefix, 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("migrations: file name %q has no positive version", name)
	}
	return v, nil
}

// Split cuts a SQL script into statements at the semicolons that end them,
// skipping -- and /* */ comments and semicolons inside '...' literals and
// "..." identifiers. Drivers differ in whether one Exec may carry several
// statements; one statement per Exec works on all of them.
func Split(script string) ([]string, error) {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			end := strings.IndexByte(script[i:], '\n')
			if end < 0 {
				i = len(script)
			} else {
				i += end
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			end := strings.Index(script[i+2:], "*/")
			if end < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			cur.WriteByte(' ')
			i += 2 + end + 2
		case c == '\'' || c == '"':
			n, err := quotedLen(script[i:], c)
			if err != nil {
				return nil, err
			}
			cur.WriteString(script[i : i+n])
			i += n
		case c == ';':
			flush()
			i++
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return stmts, nil
}

// quotedLen returns the length of the quoted token at the start of s,
// quotes included; a doubled quote inside it is an escaped quote.
func quotedLen(s string, q byte) (int, error) {
	for i := 1; i < len(s); i++ {
		if s[i] != q {
			continue
		}
		if i+1 < len(s) && s[i+1] == q {
			i++
			continue
		}
		return i + 1, nil
	}
	return 0, fmt.Errorf("unterminated %c quote", q)
}

// attempts bounds Apply's retries of a start that raced another process.
const attempts = 5

// Apply creates schema_migrations if needed and applies the migrations the
// database does not have yet, in order, each in its own transaction.
func Apply(ctx context.Context, db *sql.DB) error {
	ms, err := All()
	if err != nil {
		return err
	}
	return apply(ctx, db, ms)
}

func apply(ctx context.Context, db *sql.DB, ms []Migration) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = applyOnce(ctx, db, ms)
		if err == nil || errors.Is(err, ErrSchemaTooNew) || attempt == attempts {
			return err
		}
		// Concurrent first starts can collide (on PostgreSQL, two CREATE TABLE
		// IF NOT EXISTS may both try to create the table); the next attempt
		// sees what the winner committed.
		t := time.NewTimer(time.Duration(attempt) * 50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func applyOnce(ctx context.Context, db *sql.DB, ms []Migration) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT NOT NULL PRIMARY KEY,
    applied_at BIGINT NOT NULL
)`); err != nil {
		return fmt.Errorf("migrations: create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, db)
	if err != nil {
		return err
	}
	known := int64(len(ms))
	for v := range applied {
		if v > known {
			return fmt.Errorf("%w: it has version %d, this binary knows up to %d", ErrSchemaTooNew, v, known)
		}
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if err := applyOne(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, db *sql.DB) (map[int64]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("migrations: read schema_migrations: %w", err)
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err below reports failures
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrations: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrations: read schema_migrations: %w", err)
	}
	return applied, nil
}

// applyOne claims m's version by inserting its row first: a concurrent
// claimant waits on that row (or on SQLite's write lock) and then finds it,
// so exactly one process runs the statements.
func applyOne(ctx context.Context, db *sql.DB, m Migration) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrations: %s: begin: %w", m.Name, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	res, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING`,
		m.Version, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("migrations: %s: claim version: %w", m.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("migrations: %s: claim version: %w", m.Name, err)
	}
	if n == 0 {
		// Another process applied it since we looked.
		return ignoreDone(tx.Rollback())
	}
	for i, s := range m.Statements {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrations: %s: statement %d: %w", m.Name, i+1, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrations: %s: commit: %w", m.Name, err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
