// Package pgtest owns the PostgreSQL server that tests run against: DSN
// gives each caller a fresh, empty database of its own and drops it when the
// test ends.
//
// The server comes from MOAT_TEST_POSTGRES_DSN when it is set: a superuser
// DSN (URL or key=value form) to an existing server, as scripts/test.sh and
// CI provide. Otherwise the first DSN call of a test process starts a
// throw-away cluster with initdb and pg_ctl from PATH, in a temporary
// directory, listening on a free 127.0.0.1 port with its unix socket inside
// that directory, and with fsync off (its data is thrown away); Main stops it
// and removes the directory when the tests finish. When the process runs as
// root (initdb refuses to), the cluster runs as the "postgres" user, or
// "nobody" if there is none, and the directory is theirs.
//
// Invariants:
//
//   - A package that calls DSN has a TestMain that calls Main: DSN fails the
//     test otherwise, so a started cluster is stopped when the tests end; a
//     watchdog process stops it and removes its directory if the test
//     process dies without getting there (a timeout panic, a kill).
//   - Every database is created from template0 under a linguistic ICU
//     collation when the server has ICU, so that code which forgets
//     COLLATE "C" where it needs byte order fails its tests rather than
//     production.
//   - When no server can be found or started, DSN skips the test, except
//     with CI=true, where it fails: CI never silently skips PostgreSQL.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/moat-registry/moat/internal/testsupport/missing"
)

// EnvDSN names the environment variable with an existing server's
// superuser DSN.
const EnvDSN = "MOAT_TEST_POSTGRES_DSN"

var (
	mainCalled atomic.Bool

	mu      sync.Mutex
	srv     *server // the server once found or started
	srvErr  error   // why there is none, once tried
	tried   bool
	counter atomic.Int64
)

// server is where the tests' databases are created.
type server struct {
	admin   string // superuser DSN
	icu     bool   // the server can create ICU-collated databases
	cluster *cluster
}

// Main runs the package's tests and stops the throw-away cluster, if one was
// started, when they end. Call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	mainCalled.Store(true)
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if srv != nil && srv.cluster != nil {
		if err := srv.cluster.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		srv = nil
	}
	return code
}

// DSN returns a DSN to a new, empty database that only the calling test
// uses; the database is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	s := need(t, "DSN")
	name, err := s.createDatabase(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(s.admin, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// AdminDSN returns the superuser DSN of the server (for tests that need to
// act on it, such as terminating connections); it skips or fails like DSN.
func AdminDSN(t testing.TB) string {
	t.Helper()
	return need(t, "AdminDSN").admin
}

// need returns the server for caller (DSN, AdminDSN or Restart): it fails
// the test when the package's TestMain did not call Main, and skips it (or
// fails it under CI=true) when there is no server.
func need(t testing.TB, caller string) *server {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatalf("pgtest: %s needs the package's TestMain to call pgtest.Main", caller)
	}
	s, err := get()
	if err != nil {
		missing.Skip(t, "pgtest: no PostgreSQL for the tests: %v (set %s or put initdb and pg_ctl on PATH)", err, EnvDSN)
	}
	return s
}

// Restart stops the server with a fast shutdown (every session is
// terminated and committed work is flushed, as in a planned restart), keeps
// it down for down, and starts it again on the same address, for tests of
// how clients recover. Only a cluster pgtest started can be restarted: with
// MOAT_TEST_POSTGRES_DSN the test is skipped. Tests that restart the server
// must not run in parallel with other tests of the same process.
func Restart(t testing.TB, down time.Duration) {
	t.Helper()
	s := need(t, "Restart")
	mu.Lock()
	c := s.cluster
	mu.Unlock()
	if c == nil {
		t.Skipf("pgtest: the server comes from %s and is not ours to restart", EnvDSN)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := filepath.Join(c.dir, "data")
	if out, err := c.run(ctx, "pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", "60"); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	time.Sleep(down)
	if out, err := c.run(ctx, "pg_ctl", "start", "-D", data, "-w", "-t", "60", "-l", filepath.Join(c.dir, "server.log"), "-o", c.opts); err != nil {
		t.Fatalf("pgtest: pg_ctl start: %v\n%s%s", err, out, c.log())
	}
}

// get finds or starts the server once per process.
func get() (*server, error) {
	mu.Lock()
	defer mu.Unlock()
	if tried {
		return srv, srvErr
	}
	tried = true
	srv, srvErr = find()
	return srv, srvErr
}

func find() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := &server{admin: os.Getenv(EnvDSN)}
	if s.admin == "" {
		c, err := startCluster(ctx)
		if err != nil {
			return nil, err
		}
		s.admin, s.cluster = c.dsn, c
	}
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		err = fmt.Errorf("connect to the test server: %w", err)
		if s.cluster != nil {
			err = errors.Join(err, s.cluster.stop())
		}
		return nil, err
	}
	defer conn.Close(ctx) //nolint:errcheck // closing a read-only probe connection
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_collation WHERE collprovider = 'i'`).Scan(&n); err == nil {
		s.icu = n > 0
	}
	return s, nil
}

func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	return errors.Join(err, conn.Close(ctx))
}

// createDatabase creates a database with a name no other test process on
// the same server uses.
func (s *server) createDatabase(ctx context.Context) (string, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	name := fmt.Sprintf("moat_test_%d_%d_%s", os.Getpid(), counter.Add(1), hex.EncodeToString(rnd[:]))
	q := `CREATE DATABASE ` + pgx.Identifier{name}.Sanitize() + ` TEMPLATE template0 ENCODING 'UTF8'`
	if s.icu {
		// und-x-icu: the root collation, where "a" < "B" and punctuation
		// weighs less than letters, unlike byte order.
		q += ` LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'`
	}
	err := s.exec(ctx, q)
	if err != nil && s.icu {
		// A server without the C.UTF-8 libc locale: let it pick its own.
		err = s.exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'und'`)
	}
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path = "/" + name
		q := u.Query()
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// key=value form: the last occurrence of a key wins.
	return dsn + " dbname=" + name, nil
}

// cluster is a throw-away PostgreSQL cluster run by pg_ctl.
type cluster struct {
	dir  string // data directory, also the unix socket directory
	dsn  string
	opts string              // the server options it was started with
	cred *syscall.Credential // whom initdb and pg_ctl run as; nil: as us
}

func startCluster(ctx context.Context) (*cluster, error) {
	for _, tool := range []string{"initdb", "pg_ctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("start a throw-away cluster: %w", err)
		}
	}
	c := &cluster{}
	var uid, gid int
	if os.Geteuid() == 0 {
		var err error
		c.cred, uid, gid, err = unprivileged()
		if err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "moat-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("start a throw-away cluster: %w", err)
	}
	c.dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, errors.Join(fmt.Errorf("start a throw-away cluster: %w", err), os.RemoveAll(dir))
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync",
		"--encoding=UTF8", "--locale=C.UTF-8"); err != nil {
		return nil, errors.Join(fmt.Errorf("initdb: %w\n%s", err, out), os.RemoveAll(dir))
	}
	// A port found free can be taken before the server binds it; try a few.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, errors.Join(err, os.RemoveAll(dir))
		}
		opts := strings.Join([]string{
			"-c listen_addresses=127.0.0.1",
			"-c port=" + strconv.Itoa(port),
			"-c unix_socket_directories=" + dir,
			"-c fsync=off",
			"-c synchronous_commit=off",
			"-c full_page_writes=off",
			"-c max_connections=300",
		}, " ")
		out, err := c.run(ctx, "pg_ctl", "start", "-D", data, "-w", "-t", "60", "-l", filepath.Join(dir, "server.log"), "-o", opts)
		if err == nil {
			c.opts = opts
			c.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			if err := c.watch(); err != nil {
				return nil, errors.Join(err, c.stop())
			}
			return c, nil
		}
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s%s", err, out, c.log())
	}
	return nil, errors.Join(lastErr, os.RemoveAll(dir))
}

// watchdog stops the cluster and removes its directory once the process
// that started it is gone, however it ended (Main's stop does it first when
// the tests end normally; a timeout panic or a kill skips Main).
const watchdog = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/postmaster.pid" 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
rm -rf "$3"`

// watch starts the watchdog in a process group of its own, so that a ^C to
// the tests' group does not stop it before it cleans up.
func (c *cluster) watch() error {
	//nolint:gosec // a fixed script; its arguments are our pid and our temp dir
	cmd := exec.Command("/bin/sh", "-c", watchdog, "pgtest-watchdog", strconv.Itoa(os.Getpid()), filepath.Join(c.dir, "data"), c.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the cluster's watchdog: %w", err)
	}
	// It outlives this process on purpose; nothing waits for it.
	if err := cmd.Process.Release(); err != nil {
		return fmt.Errorf("start the cluster's watchdog: %w", err)
	}
	return nil
}

func (c *cluster) log() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return ""
	}
	return string(b)
}

// stop stops the cluster at once (its data is thrown away) and removes it.
func (c *cluster) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if out, serr := c.run(ctx, "pg_ctl", "stop", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w"); serr != nil {
		err = fmt.Errorf("pg_ctl stop: %w\n%s", serr, out)
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

func (c *cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // name is initdb or pg_ctl, args are built here
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "TZ=UTC")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// unprivileged returns the user to run the cluster as when we are root.
func unprivileged() (*syscall.Credential, int, int, error) {
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", name, err))
			continue
		}
		if uid == 0 {
			continue
		}
		cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		return cred, int(uid), int(gid), nil
	}
	return nil, 0, 0, fmt.Errorf("running as root and no unprivileged user to run initdb as: %w", errors.Join(errs...))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}
