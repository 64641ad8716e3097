package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/metatest"
	"github.com/moat-registry/moat/internal/storage/meta/migrations"
)

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t testing.TB) *Store { return open(t, filepath.Join(t.TempDir(), "meta.db")) }

func TestConformance(t *testing.T) {
	metatest.Run(t, func(t *testing.T) meta.Store { return newStore(t) })
}

func BenchmarkStore(b *testing.B) {
	metatest.Bench(b, func(b *testing.B) meta.Store { return newStore(b) })
}

func pragma(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpen_Pragmas(t *testing.T) {
	s := newStore(t)
	for _, c := range []struct {
		pool       string
		db         *sql.DB
		name, want string
	}{
		{"write", s.rw, "journal_mode", "wal"},
		{"read", s.ro, "journal_mode", "wal"},
		{"write", s.rw, "foreign_keys", "1"},
		{"read", s.ro, "foreign_keys", "1"},
		{"write", s.rw, "synchronous", "1"}, // NORMAL
		{"write", s.rw, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{"read", s.ro, "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
		{"read", s.ro, "query_only", "1"},
		{"write", s.rw, "query_only", "0"},
	} {
		if got := pragma(t, c.db, c.name); got != c.want {
			t.Errorf("%s pool: PRAGMA %s = %s, want %s", c.pool, c.name, got, c.want)
		}
	}
	if got := s.rw.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("write pool MaxOpenConnections = %d, want 1", got)
	}
	if got := s.ro.Stats().MaxOpenConnections; got < 2 {
		t.Errorf("read pool MaxOpenConnections = %d, want several", got)
	}
}

func TestOpen_ReadPoolCannotWrite(t *testing.T) {
	s := newStore(t)
	if _, err := s.ro.Exec(`DELETE FROM registries`); err == nil {
		t.Fatal("a write through the read pool succeeded")
	}
}

func TestWriteTransactionsBeginImmediate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	tx, err := s.rw.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // test cleanup
	// With BEGIN IMMEDIATE the write lock is held from BEGIN on, before the
	// transaction has written anything: another writer is refused.
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close() //nolint:errcheck // test cleanup
	_, err = other.Exec(`BEGIN IMMEDIATE`)
	var se *msqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
		t.Fatalf("second BEGIN IMMEDIATE = %v, want SQLITE_BUSY", err)
	}
}

func TestPlaceholders_DollarNumberBindsByPosition(t *testing.T) {
	s := newStore(t)
	var a, b, c string
	if err := s.ro.QueryRow(`SELECT $2, $1, $1`, "one", "two").Scan(&a, &b, &c); err != nil {
		t.Fatal(err)
	}
	if a != "two" || b != "one" || c != "one" {
		t.Fatalf("SELECT $2, $1, $1 = %q %q %q, want two one one", a, b, c)
	}
}

func TestOpen_TwiceMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s1, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.CreateRegistry(t.Context(), meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	if _, err := s2.GetRegistry(t.Context(), "r"); err != nil {
		t.Fatalf("data lost on reopen: %v", err)
	}
	ms, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s2.ro.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestOpen_ConcurrentOpensOfANewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(t.Context(), path)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
}

func TestOpen_FileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s := open(t, path)
	if _, err := s.CreateRegistry(t.Context(), meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %o, want no access for group and others", filepath.Base(p), mode)
		}
	}
}

func TestOpen_RejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(t.Context(), p); err == nil {
			_ = s.Close()
			t.Errorf("Open(%q) succeeded, want error", p)
		}
	}
	if _, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing", "meta.db")); err == nil {
		t.Error("Open in a directory that does not exist succeeded")
	}
}

func TestBytesAreStoredAsBlobs(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "r", Properties: []byte("42")}); err != nil {
		t.Fatal(err)
	}
	var typ string
	if err := s.ro.QueryRow(`SELECT typeof(properties) FROM registries`).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "blob" {
		t.Fatalf("properties stored as %s, want blob", typ)
	}
}

func TestHotQueriesUseIndexes(t *testing.T) {
	s := newStore(t)
	for name, q := range map[string]string{
		"GetManifest":      qGetManifest,
		"GetManifestByTag": qGetManifestByTag,
		"StatBlob":         qStatBlob,
		"GetRegistry":      qGetRegistry,
	} {
		n := strings.Count(q, "$")
		args := make([]any, n)
		for i := range args {
			args[i] = "x"
		}
		rows, err := s.ro.Query(`EXPLAIN QUERY PLAN `+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN") {
				t.Errorf("%s scans a table: %q", name, plan)
			}
		}
	}
}

func TestTwoStoresOnOneFileSeeEachOthersWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	a, b := open(t, path), open(t, path)
	ctx := t.Context()
	if _, err := a.CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("layer")
	if err := b.LinkBlob(ctx, "r", "app", d, 5); err != nil {
		t.Fatalf("b.LinkBlob into a's registry: %v", err)
	}
	if size, err := a.StatBlob(ctx, "r", "app", d); err != nil || size != 5 {
		t.Fatalf("a.StatBlob = %d, %v", size, err)
	}
	m := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromString("{}"), MediaType: "application/vnd.oci.image.index.v1+json", Content: []byte("{}")}
	if err := a.PutManifest(ctx, m, "latest"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetManifestByTag(ctx, "r", "app", "latest"); err != nil || got.Digest != m.Digest {
		t.Fatalf("b.GetManifestByTag = %s, %v", got.Digest, err)
	}
	if err := b.DeleteRegistry(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetManifestByTag(ctx, "r", "app", "latest"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a.GetManifestByTag after b deleted the registry: %v", err)
	}
}

func TestTwoStoresWritingConcurrentlyDoNotGetBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	stores := []*Store{open(t, path), open(t, path)}
	ctx := t.Context()
	if _, err := stores[0].CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	const writers, ops = 4, 25
	var wg sync.WaitGroup
	errc := make(chan error, len(stores)*writers)
	for si, s := range stores {
		for w := range writers {
			wg.Go(func() {
				repo := fmt.Sprintf("repo-%d-%d", si, w)
				id := "upload-" + repo
				if err := s.CreateUpload(ctx, meta.Upload{ID: id, Registry: "r", Repository: repo}); err != nil {
					errc <- err
					return
				}
				for i := range ops {
					d := digest.FromString(fmt.Sprint(repo, i))
					content := fmt.Appendf(nil, `{"n":%q}`, d)
					m := meta.Manifest{Registry: "r", Repository: repo, Digest: digest.FromBytes(content),
						MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content, Blobs: []digest.Digest{d}}
					for _, err := range []error{
						s.LinkBlob(ctx, "r", repo, d, 1),
						s.PutManifest(ctx, m, "latest"),
						s.UpdateUpload(ctx, id, int64(i), int64(i+1), content),
					} {
						if err != nil {
							errc <- err
							return
						}
					}
					// and a read on the other store
					if _, err := stores[1-si].StatBlob(ctx, "r", repo, d); err != nil {
						errc <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	repos, err := stores[1].ListRepositories(ctx, "r", "", 0)
	if err != nil || len(repos) != len(stores)*writers {
		t.Fatalf("ListRepositories = %q, %v", repos, err)
	}
}

func TestClosedStoreFails(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func TestManifestRefsFollowTheirManifest(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "r"}); err != nil {
		t.Fatal(err)
	}
	cfg, layer := digest.FromString("config"), digest.FromString("layer")
	for _, d := range []digest.Digest{cfg, layer} {
		if err := s.LinkBlob(ctx, "r", "app", d, 1); err != nil {
			t.Fatal(err)
		}
	}
	img := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromString("img"), MediaType: "m", Content: []byte("img"),
		Blobs: []digest.Digest{cfg, layer}}
	idx := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromString("idx"), MediaType: "m", Content: []byte("idx"),
		Children: []digest.Digest{img.Digest}}
	for _, m := range []meta.Manifest{img, idx, img} {
		if err := s.PutManifest(ctx, m, ""); err != nil {
			t.Fatal(err)
		}
	}
	refs := func() []string {
		t.Helper()
		rows, err := s.ro.Query(`SELECT digest, ref_kind, ref_digest FROM manifest_refs ORDER BY digest, ref_kind, ref_digest`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close() //nolint:errcheck // test
		var out []string
		for rows.Next() {
			var d, kind, ref string
			if err := rows.Scan(&d, &kind, &ref); err != nil {
				t.Fatal(err)
			}
			out = append(out, d+" "+kind+" "+ref)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := []string{
		string(img.Digest) + " blob " + string(cfg),
		string(img.Digest) + " blob " + string(layer),
		string(idx.Digest) + " manifest " + string(img.Digest),
	}
	if got := refs(); strings.Join(got, "\n") != strings.Join(sortedCopy(want), "\n") {
		t.Fatalf("manifest_refs =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(sortedCopy(want), "\n"))
	}
	if err := s.DeleteManifest(ctx, "r", "app", idx.Digest); err != nil {
		t.Fatal(err)
	}
	if got := refs(); len(got) != 2 {
		t.Fatalf("after deleting the index, manifest_refs = %q, want the image's two", got)
	}
	if err := s.DeleteRegistry(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if got := refs(); len(got) != 0 {
		t.Fatalf("after deleting the registry, manifest_refs = %q", got)
	}
}

func sortedCopy(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}
