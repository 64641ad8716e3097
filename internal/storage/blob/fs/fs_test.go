package fs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/blob/blobtest"
	"github.com/moat-registry/moat/internal/storage/blob/fs"
)

func newAt(t testing.TB, root string) *fs.Store {
	t.Helper()
	s, err := fs.New(root)
	if err != nil {
		t.Fatalf("fs.New(%q): %v", root, err)
	}
	// No background work may outlive the test and its directory.
	t.Cleanup(func() { settle(t, s) })
	return s
}

// settle waits for s's background work.
func settle(t testing.TB, s *fs.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Settle(ctx); err != nil {
		t.Errorf("Settle: %v", err)
	}
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) (blob.Store, func() blob.Store) {
		root := t.TempDir()
		return newAt(t, root), func() blob.Store { return newAt(t, root) }
	})
}

func BenchmarkStore(b *testing.B) {
	blobtest.Bench(b, func(b *testing.B) blob.Store { return newAt(b, b.TempDir()) })
}

// BenchmarkBound measures, in the same run, the machine limits a push is held
// against: hashing alone and writing plus fsync alone.
func BenchmarkBound(b *testing.B) {
	const size = 64 << 20
	p := make([]byte, size)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	b.Run("sha256/64MiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			h := sha256.New()
			_, _ = h.Write(p)
			_ = h.Sum(nil)
		}
	})
	b.Run("sha512/64MiB", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			h := sha512.New()
			_, _ = h.Write(p)
			_ = h.Sum(nil)
		}
	})
	b.Run("write+fsync/64MiB", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			name := filepath.Join(dir, fmt.Sprint(i))
			f, err := os.Create(name)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < size; off += 1 << 20 {
				if _, err := f.Write(p[off : off+1<<20]); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.Remove(name); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

func TestNewCreatesLayoutAndReopens(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	s := newAt(t, root)
	for _, dir := range []string{"blobs", "uploads"} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	p := []byte("kept across instances")
	d := put(t, s, "u1", p)
	if got := read(t, newAt(t, root), d); !bytes.Equal(got, p) {
		t.Fatal("content differs after reopening")
	}
}

func TestNewOnAFileFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.New(f); err == nil {
		t.Fatal("fs.New on a regular file succeeded")
	}
}

func put(t *testing.T, s blob.Store, id string, p []byte) digest.Digest {
	t.Helper()
	ctx := t.Context()
	st, err := s.StartUpload(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(ctx, id, st, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(p)
	if _, err := s.Commit(ctx, id, st, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func read(t *testing.T, s blob.Store, d digest.Digest) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	p, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tree lists every path under root (relative, with a trailing / for
// directories) and each file's size.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, de iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if de.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d", rel, fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestLayoutAfterCommitAndNoLeftovers(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	ctx := t.Context()
	small := []byte("hello")
	d256 := put(t, s, "one", small)

	// A sha512 blob pushed in chunks, with a failed Append in between, and a
	// second upload of existing content: none of it may leave files behind.
	big := bytes.Repeat([]byte("0123456789abcdef"), 200_000)
	st, err := s.StartUpload(ctx, "two", digest.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(ctx, "two", st, bytes.NewReader(big[:1<<20])); err != nil {
		t.Fatal(err)
	}
	if _, err = s.Append(ctx, "two", st, io.MultiReader(bytes.NewReader(big), errReader{})); err == nil {
		t.Fatal("Append with a failing body succeeded")
	}
	if st, err = s.Append(ctx, "two", st, bytes.NewReader(big[1<<20:])); err != nil {
		t.Fatal(err)
	}
	d512 := digest.SHA512.FromBytes(big)
	if _, err := s.Commit(ctx, "two", st, d512); err != nil {
		t.Fatal(err)
	}
	put(t, s, "three", small)

	e256, e512 := d256.Encoded(), d512.Encoded()
	want := []string{
		"./",
		"blobs/",
		"blobs/sha256/",
		"blobs/sha256/" + e256[:2] + "/",
		fmt.Sprintf("blobs/sha256/%s/%s %d", e256[:2], e256, len(small)),
		"blobs/sha512/",
		"blobs/sha512/" + e512[:2] + "/",
		fmt.Sprintf("blobs/sha512/%s/%s %d", e512[:2], e512, len(big)),
		"uploads/",
	}
	sort.Strings(want)
	if got := tree(t, root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range []string{
		filepath.Join(root, "blobs", "sha256", e256[:2], e256),
		filepath.Join(root, "blobs", "sha512", e512[:2], e512),
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v readable by others", p, fi.Mode())
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestUploadLayoutAndAbort(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	ctx := t.Context()
	st, err := s.StartUpload(ctx, "up-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "up-1", st, strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, "uploads", "up-1", "data")
	if got, err := os.ReadFile(data); err != nil || string(got) != "abc" {
		t.Fatalf("upload data = %q, %v", got, err)
	}
	if err := s.Abort(ctx, "up-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(data)); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("upload dir after Abort: %v", err)
	}
}

// A request that died after writing more bytes than its caller recorded
// leaves them in the data file; both Append and Commit cut them off.
func TestCrashLeftoversBeyondOffset(t *testing.T) {
	root := t.TempDir()
	ctx := t.Context()
	a, b := []byte("first chunk|"), []byte("second chunk")
	for _, tc := range []struct {
		name string
		next []byte // appended after the crash, if any
	}{
		{"AppendDiscards", b},
		{"CommitDiscards", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newAt(t, root)
			id := "crash-" + tc.name
			st, err := s.StartUpload(ctx, id, "")
			if err != nil {
				t.Fatal(err)
			}
			if st, err = s.Append(ctx, id, st, bytes.NewReader(a)); err != nil {
				t.Fatal(err)
			}
			appendRaw(t, filepath.Join(root, "uploads", id, "data"), []byte("GARBAGE FROM A DEAD REQUEST"))

			s = newAt(t, root) // another process picks the upload up
			want := a
			if tc.next != nil {
				if st, err = s.Append(ctx, id, st, bytes.NewReader(tc.next)); err != nil {
					t.Fatal(err)
				}
				want = append(append([]byte{}, a...), tc.next...)
			}
			d := digest.FromBytes(want)
			size, err := s.Commit(ctx, id, st, d)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(want)) {
				t.Fatalf("size %d, want %d", size, len(want))
			}
			if got := read(t, s, d); !bytes.Equal(got, want) {
				t.Fatalf("blob = %q, want %q", got, want)
			}
		})
	}
}

func appendRaw(t *testing.T, name string, p []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A data file shorter than the recorded offset (bytes lost in a machine
// crash) cannot be continued or committed.
func TestCrashLostBytes(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	ctx := t.Context()
	st, err := s.StartUpload(ctx, "lost", "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(ctx, "lost", st, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(root, "uploads", "lost", "data"), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "lost", st, strings.NewReader("x")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Append: %v, want ErrOffsetMismatch", err)
	}
	if _, err := s.Commit(ctx, "lost", st, digest.FromString("0123456789")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit: %v, want ErrOffsetMismatch", err)
	}
}

// Commit with another algorithm than the upload's re-reads the bytes, so
// damage done to them after they were hashed is caught there. (With the
// upload's own algorithm Commit trusts the running sum: Append fsyncs before
// it returns a state, so the bytes a state covers are the bytes hashed.)
func TestRehashCatchesDamagedUpload(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	ctx := t.Context()
	p := []byte("the real content")
	_, st := startWith(t, s, "damaged", p)
	if err := os.WriteFile(filepath.Join(root, "uploads", "damaged", "data"), []byte("THE REAL CONTENT"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := digest.SHA512.FromBytes(p)
	if _, err := s.Commit(ctx, "damaged", st, d); !errors.Is(err, blob.ErrDigestMismatch) {
		t.Fatalf("Commit of damaged bytes: %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after failed Commit: %v", err)
	}
}

// A state superseded by a later Append from the same starting point is
// refused outright: its running sum no longer describes the data file.
func TestSupersededStateIsRefused(t *testing.T) {
	s := newAt(t, t.TempDir())
	ctx := t.Context()
	id, st0 := startWith(t, s, "sup", nil)
	stX, err := s.Append(ctx, id, st0, strings.NewReader("xxxx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, id, st0, strings.NewReader("yyyy")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, id, stX, digest.FromString("xxxx")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit of a superseded state: %v, want ErrOffsetMismatch", err)
	}
	if _, err := s.Append(ctx, id, stX, strings.NewReader("z")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Append from a superseded state: %v, want ErrOffsetMismatch", err)
	}
	// A state from another upload is refused even when the byte counts agree.
	_, other := startWith(t, s, "other", []byte("wxyz"))
	if _, err := s.Commit(ctx, id, other, digest.FromString("wxyz")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit with another upload's state: %v, want ErrOffsetMismatch", err)
	}
}

// Hostile digests and ids must neither succeed nor create, change or remove
// anything, inside or outside the root.
func TestInvalidInputsTouchNothing(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s := newAt(t, root)
	ctx := t.Context()
	// Things a traversal would hit.
	for _, p := range []string{"victim", "uploads/x/data", "blobs/sha256/aa/victim", "etc/passwd"} {
		full := filepath.Join(parent, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, st := startWith(t, s, "real", []byte("abc"))
	before := tree(t, parent)

	ids := append([]string{"../x", "../../victim", "../uploads/x", "..", "."}, blobtest.InvalidUploadIDs...)
	digests := append(append([]digest.Digest{}, blobtest.InvalidDigests...), blobtest.UnsupportedDigests...)
	for _, id := range ids {
		if _, err := s.StartUpload(ctx, id, ""); err == nil {
			t.Errorf("StartUpload(%q) succeeded", id)
		}
		if _, err := s.Append(ctx, id, st, strings.NewReader("evil")); err == nil {
			t.Errorf("Append(%q) succeeded", id)
		}
		if _, err := s.Commit(ctx, id, st, digest.FromString("abc")); err == nil {
			t.Errorf("Commit(%q) succeeded", id)
		}
		if err := s.Abort(ctx, id); err == nil {
			t.Errorf("Abort(%q) succeeded", id)
		}
	}
	for _, d := range digests {
		if _, err := s.Stat(ctx, d); err == nil {
			t.Errorf("Stat(%q) succeeded", d)
		}
		if r, err := s.Open(ctx, d); err == nil {
			_ = r.Close()
			t.Errorf("Open(%q) succeeded", d)
		}
		if err := s.Delete(ctx, d); err == nil {
			t.Errorf("Delete(%q) succeeded", d)
		}
		if _, err := s.Commit(ctx, "real", st, d); err == nil {
			t.Errorf("Commit(real, %q) succeeded", d)
		}
	}
	// Bad algorithms in the state itself.
	for _, alg := range []string{"../../x", "sha384", ""} {
		bad := blob.UploadState{Offset: 0, Hash: []byte(alg + ":\x00\x00\x00\x00\x00\x00\x00\x00")}
		if _, err := s.Append(ctx, "real", bad, strings.NewReader("x")); err == nil {
			t.Errorf("Append with state algorithm %q succeeded", alg)
		}
	}
	if after := tree(t, parent); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("tree changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

func startWith(t *testing.T, s blob.Store, id string, p []byte) (string, blob.UploadState) {
	t.Helper()
	st, err := s.StartUpload(t.Context(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(t.Context(), id, st, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	return id, st
}

// A reader open on a blob keeps its bytes even if the blob is deleted or
// replaced by a concurrent commit of the same digest.
func TestOpenReaderSurvivesDeleteAndRecommit(t *testing.T) {
	s := newAt(t, t.TempDir())
	ctx := t.Context()
	p := bytes.Repeat([]byte("x"), 100_000)
	d := put(t, s, "a", p)
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	put(t, s, "b", p)
	if err := s.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read after delete: %d bytes, %v", len(got), err)
	}
}

// countingReader is the store's Reader with Read instrumented: it counts the
// bytes that pass through user space. Every other method, SyscallConn
// included, is the store's own.
type countingReader struct {
	*fs.Reader
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// sniffLen is how many bytes net/http copies through Read before it hands the
// rest of a response body to the connection's ReadFrom (net/http.sniffLen).
const sniffLen = 512

// readFromRecorder wraps a server-side TCP connection and records what
// net/http hands to its ReadFrom.
type readFromRecorder struct {
	*net.TCPConn
	sawSyscallConn *atomic.Bool
}

func (c readFromRecorder) ReadFrom(r io.Reader) (int64, error) {
	src := r
	if lr, ok := r.(*io.LimitedReader); ok {
		src = lr.R
	}
	if _, ok := src.(syscall.Conn); ok {
		c.sawSyscallConn.Store(true)
	}
	return c.TCPConn.ReadFrom(r)
}

type recordingListener struct {
	net.Listener
	sawSyscallConn *atomic.Bool
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return readFromRecorder{TCPConn: c.(*net.TCPConn), sawSyscallConn: l.sawSyscallConn}, nil
}

// TestServeContentUsesSendfile proves zero-copy serving: http.ServeContent
// over a real loopback TCP connection delivers whole blobs and ranges of
// megabytes while at most the first 512 bytes pass through the blob reader's
// Read (net/http copies those itself before switching to ReadFrom). The rest
// can only have gone by sendfile: net's fallback copies through Read. It also
// checks that net/http handed the connection the syscall.Conn net looks for.
func TestServeContentUsesSendfile(t *testing.T) {
	s := newAt(t, t.TempDir())
	p := make([]byte, 3<<20+5)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	d := put(t, s, "served", p)

	var saw atomic.Bool
	var lastRead atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			r, err := s.Open(req.Context(), d)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			cr := &countingReader{Reader: r.(*fs.Reader)}
			defer func() {
				lastRead.Store(cr.read.Load())
				_ = cr.Close()
			}()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, req, "", time.Time{}, cr)
		}),
	}
	go func() { _ = srv.Serve(recordingListener{Listener: ln, sawSyscallConn: &saw}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})

	client := &http.Client{Transport: &http.Transport{}}
	for _, tc := range []struct {
		name, rng string
		want      []byte
	}{
		{"Whole", "", p},
		{"Range", "bytes=1000-1999999", p[1000:2000000]},
		{"Suffix", "bytes=-70000", p[len(p)-70000:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saw.Store(false)
			lastRead.Store(-1)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if cerr := resp.Body.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("body: %d bytes, want %d (status %s)", len(got), len(tc.want), resp.Status)
			}
			// The handler records its count after the last byte left, so
			// it may lag the client by a moment.
			deadline := time.Now().Add(5 * time.Second)
			for lastRead.Load() == -1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if !saw.Load() {
				t.Fatal("net/http did not hand a syscall.Conn source to the connection's ReadFrom")
			}
			switch n := lastRead.Load(); {
			case n == -1:
				t.Fatal("handler did not finish")
			case n > sniffLen:
				t.Fatalf("%d of %d bytes went through the blob reader's Read: the copy did not use sendfile", n, len(tc.want))
			}
		})
	}

	// io.Copy straight to a socket hands the copy to *os.File through
	// WriteTo, which uses sendfile too; the Reader's Read is never involved.
	t.Run("WriteToSocket", func(t *testing.T) {
		r, err := s.Open(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		cr := &countingReader{Reader: r.(*fs.Reader)}
		defer func() { _ = cr.Close() }()
		l2, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l2.Close() }()
		got := make(chan []byte, 1)
		go func() {
			c, err := l2.Accept()
			if err != nil {
				got <- nil
				return
			}
			b, _ := io.ReadAll(c)
			_ = c.Close()
			got <- b
		}()
		c, err := net.Dial("tcp", l2.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(c, cr); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, p) {
			t.Fatalf("received %d bytes, want %d", len(b), len(p))
		}
		if n := cr.read.Load(); n != 0 {
			t.Fatalf("%d bytes went through the blob reader's Read: the copy did not use sendfile", n)
		}
	})
}
