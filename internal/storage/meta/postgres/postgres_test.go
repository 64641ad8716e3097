package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/metatest"
	"github.com/moat-registry/moat/internal/storage/meta/migrations"
	"github.com/moat-registry/moat/internal/testsupport/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t testing.TB) *Store { return open(t, pgtest.DSN(t)) }

func TestConformance(t *testing.T) {
	metatest.Run(t, func(t *testing.T) meta.Store { return newStore(t) })
}

func BenchmarkStore(b *testing.B) {
	metatest.Bench(b, func(b *testing.B) meta.Store { return newStore(b) })
}

// adminConn connects to the test's database (a superuser, as pgtest's
// DSNs are) outside the store.
func adminConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := conn.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return conn
}

func TestDatabaseCollationIsNotByteOrder(t *testing.T) {
	// The conformance suite's byte-order checks only prove the COLLATE "C"
	// clauses when the database's own collation orders differently.
	conn := adminConn(t, pgtest.DSN(t))
	var less bool
	if err := conn.QueryRow(context.Background(), `SELECT 'a' < 'B'`).Scan(&less); err != nil {
		t.Fatal(err)
	}
	if !less {
		t.Skip("the test database sorts in byte order; the byte-order checks do not exercise COLLATE \"C\"")
	}
}

func TestTwoStoresOnOneDatabaseSeeEachOthersWrites(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	if _, err := a.CreateRegistry(ctx, meta.Registry{Name: "R", SKU: "Premium"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateRegistry(ctx, meta.Registry{Name: "r"}); !errors.Is(err, meta.ErrAlreadyExists) {
		t.Fatalf("second store's CreateRegistry = %v, want ErrAlreadyExists", err)
	}
	d := digest.FromString("layer")
	if err := b.LinkBlob(ctx, "r", "app", d, 5); err != nil {
		t.Fatal(err)
	}
	if size, err := a.StatBlob(ctx, "r", "app", d); err != nil || size != 5 {
		t.Fatalf("first store's StatBlob = %d, %v; want 5", size, err)
	}
	content := []byte(`{"schemaVersion":2,"layers":[]}`)
	m := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromBytes(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: content, Blobs: []digest.Digest{d}}
	if err := a.PutManifest(ctx, m, "latest"); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetManifestByTag(ctx, "r", "app", "latest")
	if err != nil || got.Digest != m.Digest {
		t.Fatalf("second store's GetManifestByTag = %v, %v; want %s", got.Digest, err, m.Digest)
	}
	r, err := b.GetRegistry(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateRegistry(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateRegistry(ctx, r); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("stale UpdateRegistry through the other store = %v, want ErrConflict", err)
	}
	if err := b.DeleteRegistry(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetManifest(ctx, "r", "app", m.Digest); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("GetManifest after the other store deleted the registry = %v, want ErrNotFound", err)
	}
}

func TestOpen_ConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() {
			if err := stores[i].Close(); err != nil {
				t.Error(err)
			}
		})
	}
	if t.Failed() {
		t.FailNow()
	}
	ms, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	conn := adminConn(t, dsn)
	var count, max int64
	if err := conn.QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&count, &max); err != nil {
		t.Fatal(err)
	}
	if count != int64(len(ms)) || max != int64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows up to version %d, want %d", count, max, len(ms))
	}
	// And again, sequentially, on the migrated database.
	open(t, dsn)
	for _, s := range stores {
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpen_OverridesTheDatabasesIsolationDefault(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := adminConn(t, dsn)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', current_database(), 'serializable'); END $$`); err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn)
	var level string
	if err := s.pool.QueryRow(ctx, `SHOW transaction_isolation`).Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "read committed" {
		t.Fatalf("transaction_isolation = %q, want read committed", level)
	}
}

func TestOpen_ErrorsDoNotLeakThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback refuses at once.
	_, err := Open(ctx, "postgres://moat:s3cr3t-pw@127.0.0.1:1/moat?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open of a server that is not there succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if _, err := Open(ctx, "postgres://moat:s3cr3t-pw@[::1"); err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("Open of a malformed DSN = %v; want an error without the password", err)
	}
}

func TestClosedStoreFails(t *testing.T) {
	s, err := Open(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping on a closed store succeeded")
	}
	if _, err := s.GetRegistry(context.Background(), "r"); err == nil || errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("GetRegistry on a closed store = %v, want a non-sentinel error", err)
	}
}

// killBackends terminates every connection to the store's database but
// conn's own and waits until they are gone.
func killBackends(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	ctx := context.Background()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()) k`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fill makes the pool hold several connections, so that a kill leaves more
// than one dead connection idle in it.
func fill(t *testing.T, s *Store) {
	t.Helper()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := s.pool.Exec(context.Background(), `SELECT pg_sleep(0.05)`); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestKilledConnectionsRecover(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	conn := adminConn(t, dsn)
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("layer")
	if err := s.LinkBlob(ctx, "r", "app", d, 5); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		fn   func() error
	}{
		{"GetRegistry", func() error { _, err := s.GetRegistry(ctx, "r"); return err }},
		{"StatBlob", func() error { _, err := s.StatBlob(ctx, "r", "app", d); return err }},
		{"LinkBlob", func() error { return s.LinkBlob(ctx, "r", "app", digest.FromString("other"), 1) }},
		{"PutManifest", func() error {
			content := []byte(`{"schemaVersion":2}`)
			return s.PutManifest(ctx, meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromBytes(content),
				MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, Blobs: []digest.Digest{d}}, "latest")
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	// Reads and idempotent writes survive the kill without an error.
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			fill(t, s)
			if n := killBackends(t, conn); n == 0 {
				t.Fatal("no connection of the store was killed")
			}
			if err := st.fn(); err != nil {
				t.Fatalf("%s right after its connections were killed: %v", st.name, err)
			}
		})
	}
	// Other writes may fail once, as the request that met the dead
	// connection; that failure resets the pool, and the next one works and
	// finds that the failed one did nothing.
	t.Run("CreateUpload", func(t *testing.T) {
		fill(t, s)
		killBackends(t, conn)
		u := meta.Upload{ID: "u1", Registry: "r", Repository: "app"}
		if err := s.CreateUpload(ctx, u); err != nil {
			t.Logf("CreateUpload right after the kill: %v", err)
			if err := s.CreateUpload(ctx, u); err != nil {
				t.Fatalf("CreateUpload again: %v", err)
			}
		}
		if _, err := s.GetUpload(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConcurrentTagMovesAcrossStores(t *testing.T) {
	// Two replicas moving one tag between manifests while readers follow
	// it: every read sees one of the manifests whole, and the end state is
	// one of them.
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	if _, err := a.CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("layer")
	if err := a.LinkBlob(ctx, "r", "app", d, 5); err != nil {
		t.Fatal(err)
	}
	var ms []meta.Manifest
	for i := range 4 {
		content := []byte(fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i))
		ms = append(ms, meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromBytes(content),
			MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, Blobs: []digest.Digest{d}})
	}
	byDigest := map[digest.Digest][]byte{}
	for _, m := range ms {
		byDigest[m.Digest] = m.Content
	}
	if err := a.PutManifest(ctx, ms[0], "latest"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for i := range 20 {
				if err := s.PutManifest(ctx, ms[(w+i)%len(ms)], "latest"); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				m, err := s.GetManifestByTag(ctx, "r", "app", "latest")
				if err != nil {
					t.Error(err)
					return
				}
				if string(byDigest[m.Digest]) != string(m.Content) {
					t.Errorf("read %s with content %q", m.Digest, m.Content)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPutManifestWaitsForAConcurrentUnlink(t *testing.T) {
	// Another replica has deleted the blob link but not yet committed. A
	// PutManifest that only read the link would see it still committed,
	// succeed and reference a blob that is gone a moment later; locking the
	// link makes it wait for the delete and report the blob missing.
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("layer")
	if err := s.LinkBlob(ctx, "r", "app", d, 5); err != nil {
		t.Fatal(err)
	}
	conn := adminConn(t, dsn)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM blob_links WHERE registry = 'r' AND repository = 'app' AND digest = $1`, d.String()); err != nil {
		t.Fatal(err)
	}
	content := []byte(`{"schemaVersion":2}`)
	m := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromBytes(content),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, Blobs: []digest.Digest{d}}
	done := make(chan error, 1)
	go func() { done <- s.PutManifest(ctx, m, "latest") }()
	select {
	case err := <-done:
		t.Fatalf("PutManifest returned %v while the unlink was uncommitted; want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	err = <-done
	var missing *meta.MissingReferenceError
	if !errors.As(err, &missing) || missing.Digest != d {
		t.Fatalf("PutManifest after the unlink committed = %v, want the blob missing", err)
	}
	if _, err := s.GetManifestByTag(ctx, "r", "app", "latest"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("GetManifestByTag = %v, want ErrNotFound", err)
	}
}

func TestPutManifestOfAManifestBeingDeleted(t *testing.T) {
	// Another replica is deleting the manifest being put again. The put
	// waits for the delete and then stores the manifest anew, with its tag,
	// as if it had come second.
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("layer")
	if err := s.LinkBlob(ctx, "r", "app", d, 5); err != nil {
		t.Fatal(err)
	}
	content := []byte(`{"schemaVersion":2}`)
	m := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromBytes(content),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, Blobs: []digest.Digest{d}}
	if err := s.PutManifest(ctx, m, "old"); err != nil {
		t.Fatal(err)
	}
	conn := adminConn(t, dsn)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM manifests WHERE registry = 'r' AND repository = 'app' AND digest = $1`, m.Digest.String()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.PutManifest(ctx, m, "new") }()
	time.Sleep(200 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("PutManifest racing a delete of the same manifest: %v", err)
	}
	got, err := s.GetManifestByTag(ctx, "r", "app", "new")
	if err != nil || got.Digest != m.Digest {
		t.Fatalf("GetManifestByTag(new) = %v, %v; want %s", got.Digest, err, m.Digest)
	}
	if _, err := s.GetManifestByTag(ctx, "r", "app", "old"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("GetManifestByTag(old) = %v, want ErrNotFound (deleted with the manifest)", err)
	}
	var refs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM manifest_refs WHERE digest = $1`, m.Digest.String()).Scan(&refs); err != nil {
		t.Fatal(err)
	}
	if refs != 1 {
		t.Fatalf("the manifest stored anew has %d reference rows, want 1", refs)
	}
}
