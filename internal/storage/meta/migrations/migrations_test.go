package migrations

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"
)

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	// Deliberately the driver's defaults (deferred transactions), not the
	// sqlite store's tuned DSN: Apply must cope with any *sql.DB.
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close() //nolint:errcheck // test
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestAll_VersionsContiguousFromOne(t *testing.T) {
	ms, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range ms {
		if m.Version != int64(i)+1 {
			t.Errorf("%s: version %d, want %d", m.Name, m.Version, i+1)
		}
	}
}

func TestAll_PortableSQL(t *testing.T) {
	// Constructs that work on only one of SQLite and PostgreSQL.
	banned := map[string]*regexp.Regexp{
		"AUTOINCREMENT":                   regexp.MustCompile(`\bAUTOINCREMENT\b`),
		"SERIAL":                          regexp.MustCompile(`\b(BIG)?SERIAL\b`),
		"BLOB column (PostgreSQL: BYTEA)": regexp.MustCompile(`\w\s+BLOB\b`),
		"rowid alias":                     regexp.MustCompile(`\bINTEGER\s+PRIMARY\s+KEY\b`),
		"WITHOUT ROWID":                   regexp.MustCompile(`\bWITHOUT\s+ROWID\b`),
		"PRAGMA":                          regexp.MustCompile(`\bPRAGMA\b`),
		"TIMESTAMP (use BIGINT ns)":       regexp.MustCompile(`\bTIMESTAMP(TZ)?\b`),
		"BOOLEAN":                         regexp.MustCompile(`\bBOOL(EAN)?\b`),
		"JSON types":                      regexp.MustCompile(`\bJSONB?\b`),
		"INSERT OR":                       regexp.MustCompile(`\bINSERT\s+OR\b`),
		"COLLATE":                         regexp.MustCompile(`\bCOLLATE\b`),
		"OFFSET (reserved in PostgreSQL)": regexp.MustCompile(`\bOFFSET\b`),
	}
	ms, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			up := strings.ToUpper(s)
			for what, re := range banned {
				if re.MatchString(up) {
					t.Errorf("%s: statement uses %s, which is not portable:\n%s", m.Name, what, s)
				}
			}
		}
	}
}

func TestLoad_RejectsBadFiles(t *testing.T) {
	ok := &fstest.MapFile{Data: []byte("CREATE TABLE a (x TEXT);")}
	cases := map[string]fstest.MapFS{
		"gap":          {"0001_a.sql": ok, "0003_c.sql": ok},
		"duplicate":    {"0001_a.sql": ok, "01_b.sql": ok},
		"no version":   {"init.sql": ok},
		"zero":         {"0000_a.sql": ok},
		"letters":      {"00a1_a.sql": ok},
		"empty":        {"0001_a.sql": &fstest.MapFile{Data: []byte("-- nothing\n")}},
		"unterminated": {"0001_a.sql": &fstest.MapFile{Data: []byte("SELECT 'x;")}},
	}
	for name, fsys := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := load(fsys); err == nil {
				t.Fatal("load succeeded, want error")
			}
		})
	}
	ms, err := load(fstest.MapFS{"0002_b.sql": ok, "0001_a.sql": ok})
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Name != "0001_a.sql" || ms[1].Name != "0002_b.sql" {
		t.Fatalf("order: %s, %s", ms[0].Name, ms[1].Name)
	}
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"one without semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"two", "SELECT 1;\nSELECT 2;\n", []string{"SELECT 1", "SELECT 2"}},
		{"line comment", "-- a; b\nSELECT 1; -- c;\n", []string{"SELECT 1"}},
		{"block comment", "/* x; y */SELECT 1;", []string{"SELECT 1"}},
		{"semicolon in literal", "SELECT 'a;b''c;';SELECT 2", []string{"SELECT 'a;b''c;'", "SELECT 2"}},
		{"semicolon in identifier", `SELECT "a;""b"; SELECT 2`, []string{`SELECT "a;""b"`, "SELECT 2"}},
		{"dashes in literal", "SELECT '--x';", []string{"SELECT '--x'"}},
		{"empty statements", ";;  ;SELECT 1;;", []string{"SELECT 1"}},
		{"minus", "SELECT 1 - -1;", []string{"SELECT 1 - -1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Split(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Split(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
	for _, bad := range []string{"SELECT 'x", `SELECT "x`, "SELECT 1 /* x"} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%q) succeeded, want error", bad)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("SELECT 1;")
	f.Add("-- c\nSELECT 'a;''b'; /* x */ SELECT \"q;\";")
	f.Add("'")
	f.Add("/*")
	f.Fuzz(func(t *testing.T, s string) {
		stmts, err := Split(s)
		if err != nil {
			return
		}
		for _, st := range stmts {
			if st == "" || st != strings.TrimSpace(st) {
				t.Fatalf("statement %q is empty or untrimmed", st)
			}
		}
	})
}

func TestApply_CreatesSchemaAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "m.db"))
	for range 3 {
		if err := Apply(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"audit_records", "blob_links", "changes", "leases", "manifest_refs", "manifests", "principals", "registries", "repositories", "resources", "schema_migrations", "signing_keys", "tags", "uploads"}
	if got := tables(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("tables = %q, want %q", got, want)
	}
	ms, err := All()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != int64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestApply_ConcurrentProcessesRace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	// Separate *sql.DB values stand for separate processes: they share
	// nothing but the file.
	const n = 4
	dbs := make([]*sql.DB, n)
	for i := range dbs {
		dbs[i] = openSQLite(t, path)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range dbs {
		wg.Go(func() { errs[i] = Apply(ctx, dbs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Apply %d: %v", i, err)
		}
	}
	var count int64
	if err := dbs[0].QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	ms, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if count != int64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows, want %d", count, len(ms))
	}
}

func TestApply_RefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "m.db"))
	if err := Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, db); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Apply = %v, want ErrSchemaTooNew", err)
	}
}

func TestApply_FailedMigrationLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "m.db"))
	ms := []Migration{
		{Version: 1, Name: "0001_a.sql", Statements: []string{"CREATE TABLE a (x TEXT)"}},
		{Version: 2, Name: "0002_b.sql", Statements: []string{"CREATE TABLE b (x TEXT)", "THIS IS NOT SQL"}},
	}
	if err := apply(ctx, db, ms); err == nil {
		t.Fatal("apply succeeded, want error")
	}
	if got, want := tables(t, db), []string{"a", "schema_migrations"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tables = %q, want %q (version 2 half applied?)", got, want)
	}
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version = 2`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("version 2 recorded although it failed")
	}
	// Fixing the file lets the next start finish.
	ms[1].Statements = ms[1].Statements[:1]
	if err := apply(ctx, db, ms); err != nil {
		t.Fatal(err)
	}
}

func TestApply_BytesStayBytesInSQLite(t *testing.T) {
	// BYTEA has NUMERIC affinity in SQLite; text that looks like a number
	// would be converted, a blob never is.
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "m.db"))
	if err := Apply(ctx, db); err != nil {
		t.Fatal(err)
	}
	in := []byte("0042")
	if _, err := db.Exec(`INSERT INTO signing_keys (id, algorithm, private_key, created_at) VALUES ($1, $2, $3, $4)`, "k", "ES256", in, 1); err != nil {
		t.Fatal(err)
	}
	var typ string
	var out []byte
	if err := db.QueryRow(`SELECT typeof(private_key), private_key FROM signing_keys WHERE id = $1`, "k").Scan(&typ, &out); err != nil {
		t.Fatal(err)
	}
	if typ != "blob" || string(out) != "0042" {
		t.Fatalf("stored as %s %q, want blob \"0042\"", typ, out)
	}
}
