package fs

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// appendSettled starts upload id on s with body p and waits until its
// bytes are stored; it returns the Append's state.
func appendSettled(t *testing.T, s *Store, id string, p []byte) blob.UploadState {
	t.Helper()
	st, err := s.StartUpload(t.Context(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(t.Context(), id, st, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	return st
}

func randomBody(t *testing.T, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// An Append of a large body returns before its bytes are persisted, and
// the next Append from its pending state feeds the same session while
// they still are not: a chunked push's next PATCH does not wait for the
// previous one's writes.
func TestAppendReturnsBeforeItsBytesArePersisted(t *testing.T) {
	s := newInternal(t, t.TempDir(), false)
	gate := make(chan struct{})
	s.beforePersist = func() error { <-gate; return nil }
	ctx := t.Context()
	a, b := randomBody(t, 3*chunkSize+5), randomBody(t, chunkSize+hashSlice)
	st, err := s.StartUpload(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan error, 1)
	var st1, st2 blob.UploadState
	go func() {
		var err error
		if st1, err = s.Append(ctx, "u", st, bytes.NewReader(a)); err == nil {
			st2, err = s.Append(ctx, "u", st1, bytes.NewReader(b))
		}
		returned <- err
	}()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		close(gate)
		t.Fatal("Append waited for its bytes to be persisted")
	}
	if !isPending(st1) || !isPending(st2) || st2.Offset != int64(len(a)+len(b)) {
		t.Fatalf("states %q at %d and %q at %d, want pending ones", st1.Hash, st1.Offset, st2.Hash, st2.Offset)
	}
	s.mu.Lock()
	sessions := len(s.sessions)
	s.mu.Unlock()
	if sessions != 1 {
		t.Fatalf("%d sessions, want the one both Appends fed", sessions)
	}
	close(gate)
	d := digest.FromBytes(append(append([]byte{}, a...), b...))
	if _, err := s.Commit(ctx, "u", st2, d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// A pending state is resolved from disk by another store (standing for
// another process, or this one after a restart) once its bytes are.
func TestPendingStateResolvesOnAnotherStore(t *testing.T) {
	root := t.TempDir()
	s := newInternal(t, root, false)
	ctx := t.Context()
	p := randomBody(t, chunkSize+1)
	st := appendSettled(t, s, "u", p)
	other := newInternal(t, root, false)
	if _, err := other.Commit(ctx, "u", st, digest.FromBytes(p)); err != nil {
		t.Fatalf("Commit on another store: %v", err)
	}
}

// A pending state whose real state was never stored (the process stopped
// first: here its file is removed) is rebuilt from the data file, so the
// upload resumes; the states after it are dropped with their bytes.
func TestPendingStateNeverStoredIsRecovered(t *testing.T) {
	root := t.TempDir()
	s := newInternal(t, root, false)
	ctx := t.Context()
	a, b, c := randomBody(t, 2*hashSlice), randomBody(t, chunkSize), randomBody(t, hashSlice+9)
	st1 := appendSettled(t, s, "u", a)
	st2, err := s.Append(ctx, "u", st1, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	_, token, err := parsePending(st1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "uploads", "u", pendingPrefixFile+token)); err != nil {
		t.Fatal(err)
	}
	// A restart: another store, nothing in memory.
	other := newInternal(t, root, false)
	st3, err := other.Append(ctx, "u", st1, bytes.NewReader(c))
	if err != nil {
		t.Fatalf("Append from a pending state never stored: %v", err)
	}
	settle(t, other)
	if _, err := other.Commit(ctx, "u", st2, digest.FromBytes(append(append([]byte{}, a...), b...))); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit of the state the recovery dropped: %v, want ErrOffsetMismatch", err)
	}
	if _, err := other.Commit(ctx, "u", st3, digest.FromBytes(append(append([]byte{}, a...), c...))); err != nil {
		t.Fatalf("Commit after the recovery: %v", err)
	}
}

// A pending state beyond the bytes the data file has is refused, never
// guessed.
func TestPendingStateBeyondTheDataIsRefused(t *testing.T) {
	s := newInternal(t, t.TempDir(), false)
	ctx := t.Context()
	p := randomBody(t, 2*hashSlice)
	st := appendSettled(t, s, "u", p)
	forged, err := newPending(digest.SHA256, st.Offset+1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "u", forged, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Append from a pending state beyond the data: %v, want ErrOffsetMismatch", err)
	}
	if _, err := s.Commit(ctx, "u", st, digest.FromBytes(p)); err != nil {
		t.Fatalf("Commit of the real one: %v", err)
	}
}

// When the bytes behind a pending state cannot be stored, the upload's
// next request says why; the one after recovers the state from the data
// file.
func TestFailureToPersistIsReportedOnce(t *testing.T) {
	s := newInternal(t, t.TempDir(), false)
	diskFull := errors.New("no space left on device")
	s.beforePersist = func() error { return diskFull }
	ctx := t.Context()
	p := randomBody(t, chunkSize)
	// Settled: an Append that came before the failure would feed the
	// session and learn of it at the request after.
	st := appendSettled(t, s, "u", p)
	if _, err := s.Append(ctx, "u", st, bytes.NewReader(p)); !errors.Is(err, diskFull) {
		t.Fatalf("Append after the failure: %v, want %v", err, diskFull)
	}
	s.beforePersist = nil
	if _, err := s.Commit(ctx, "u", st, digest.FromBytes(p)); err != nil {
		t.Fatalf("Commit once the failure was reported: %v", err)
	}
}

// Abort waits for a session's writes, then removes the upload whole.
func TestAbortWhileASessionWrites(t *testing.T) {
	root := t.TempDir()
	s := newInternal(t, root, false)
	gate := make(chan struct{})
	s.beforePersist = func() error { <-gate; return nil }
	ctx := t.Context()
	st, err := s.StartUpload(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "u", st, bytes.NewReader(randomBody(t, 2*chunkSize))); err != nil {
		t.Fatal(err)
	}
	aborted := make(chan error, 1)
	go func() { aborted <- s.Abort(ctx, "u") }()
	select {
	case err := <-aborted:
		t.Fatalf("Abort returned (%v) while the session was still writing", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(gate)
	if err := <-aborted; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "uploads", "u")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("upload directory after Abort: %v", err)
	}
}

// Abort does not wait for an Append that is still reading its body; the
// session then cannot store that body's state in a directory that is gone,
// and must not keep that failure for an upload that no longer exists.
func TestAbortWhileAnAppendReads(t *testing.T) {
	root := t.TempDir()
	s := newInternal(t, root, false)
	ctx := t.Context()
	st, err := s.StartUpload(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	body := randomBody(t, 2*chunkSize)
	pr, pw := io.Pipe()
	appended := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "u", st, pr)
		appended <- err
	}()
	if _, err := pw.Write(body[:chunkSize]); err != nil {
		t.Fatal(err)
	}
	if err := s.Abort(ctx, "u"); err != nil {
		t.Fatalf("Abort while an Append reads: %v", err)
	}
	if _, err := pw.Write(body[chunkSize:]); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	if err := <-appended; err != nil {
		// Allowed: the request's upload is gone.
		t.Logf("Append after the Abort: %v", err)
	}
	settle(t, s)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err, ok := s.failures["u"]; ok {
		t.Fatalf("a failure is kept for the aborted upload: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "uploads", "u")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("upload directory after Abort: %v", err)
	}
}
