package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		if err := conn.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return conn
}

func TestDSN_FreshEmptyDatabasePerCall(t *testing.T) {
	ctx := context.Background()
	var names []string
	t.Run("first", func(t *testing.T) {
		a, b := DSN(t), DSN(t)
		if a == b {
			t.Fatalf("two calls returned the same DSN %s", a)
		}
		for _, dsn := range []string{a, b} {
			conn := connect(t, dsn)
			var name string
			var tables int
			if err := conn.QueryRow(ctx, `SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("database %s has %d tables, want none", name, tables)
			}
			names = append(names, name)
			if _, err := conn.Exec(ctx, `CREATE TABLE x (a TEXT)`); err != nil {
				t.Fatal(err)
			}
		}
	})
	if len(names) != 2 {
		if t.Failed() {
			t.FailNow()
		}
		t.Skip("no databases (the subtest skipped)")
	}
	admin := connect(t, AdminDSN(t))
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = ANY($1)`, names).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d of the databases %q survived their test", n, names)
	}
}

func TestDSN_CollationIsNotByteOrder(t *testing.T) {
	conn := connect(t, DSN(t))
	var provider string
	if err := conn.QueryRow(context.Background(), `SELECT datlocprovider::text FROM pg_database WHERE datname = current_database()`).Scan(&provider); err != nil {
		t.Fatal(err)
	}
	if provider != "i" {
		t.Skipf("server without ICU (provider %q)", provider)
	}
	var less bool
	if err := conn.QueryRow(context.Background(), `SELECT 'a' < 'B'`).Scan(&less); err != nil {
		t.Fatal(err)
	}
	if !less {
		t.Fatal(`'a' < 'B' is false: the database sorts in byte order, so it cannot catch a missing COLLATE "C"`)
	}
}

func TestWithDatabase(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p@127.0.0.1:5432/db1?sslmode=disable"},
		{"postgresql://u@h/x?dbname=y&sslmode=disable", "postgresql://u@h/db1?sslmode=disable"},
		{"postgres://u@h:1", "postgres://u@h:1/db1"},
		{"host=127.0.0.1 port=5432 user=u dbname=postgres", "host=127.0.0.1 port=5432 user=u dbname=postgres dbname=db1"},
	}
	for _, c := range cases {
		got, err := withDatabase(c.in, "db1")
		if err != nil {
			t.Fatalf("withDatabase(%q): %v", c.in, err)
		}
		if got != c.want {
			t.Errorf("withDatabase(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := withDatabase("postgres://[::1", "db1"); err == nil {
		t.Error("withDatabase accepted a malformed URL")
	}
}

// TestDSN_NoServer runs this package's tests again in a child process that
// can find no PostgreSQL: without CI they skip, with CI=true they fail.
func TestDSN_NoServer(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "" {
		t.Skip("in the child")
	}
	for _, c := range []struct {
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"", false, "--- SKIP: TestDSN_FreshEmptyDatabasePerCall"},
		{"true", true, "CI=true, so this fails instead of skipping"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDSN_FreshEmptyDatabasePerCall$", "-test.v", "-test.count=1") //nolint:gosec // re-runs this test binary
		var env []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if k != "PATH" && k != EnvDSN && k != "CI" {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "PATH="+t.TempDir(), "PGTEST_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != c.wantFail {
			t.Errorf("CI=%q: child failed=%v (%v), want %v\n%s", c.ci, failed, err, c.wantFail, out)
		}
		if !strings.Contains(string(out), c.wantOut) {
			t.Errorf("CI=%q: child output lacks %q:\n%s", c.ci, c.wantOut, out)
		}
	}
}

func TestRestart_KeepsCommittedDataAndAddress(t *testing.T) {
	dsn := DSN(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx) //nolint:errcheck // the server closed it
	if _, err := c.Exec(ctx, `CREATE TABLE t (v int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	Restart(t, 100*time.Millisecond)
	if err := c.Ping(ctx); err == nil {
		t.Fatal("a connection from before the restart still works: the server did not restart")
	}
	var v int
	if err := connect(t, dsn).QueryRow(ctx, `SELECT v FROM t`).Scan(&v); err != nil || v != 42 {
		t.Fatalf("after the restart: %d, %v", v, err)
	}
}
