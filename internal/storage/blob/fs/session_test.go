package fs

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

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
	st, err := s.StartUpload(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(ctx, "u", st, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	other := newInternal(t, root, false)
	if _, err := other.Commit(ctx, "u", st, digest.FromBytes(p)); err != nil {
		t.Fatalf("Commit on another store: %v", err)
	}
}

// A pending state whose bytes never reached the disk (here: one this
// upload never returned, at an offset its data file does have) is
// refused, never guessed.
func TestUnknownPendingStateIsRefused(t *testing.T) {
	s := newInternal(t, t.TempDir(), false)
	ctx := t.Context()
	p := randomBody(t, 2*hashSlice)
	st, err := s.StartUpload(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Append(ctx, "u", st, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	forged, err := newPending(st.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "u", forged, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Append from an unknown pending state: %v, want ErrOffsetMismatch", err)
	}
	if _, err := s.Commit(ctx, "u", forged, digest.FromBytes(p)); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit of an unknown pending state: %v, want ErrOffsetMismatch", err)
	}
	if _, err := s.Commit(ctx, "u", st, digest.FromBytes(p)); err != nil {
		t.Fatalf("Commit of the real one: %v", err)
	}
}

// When the bytes behind a pending state cannot be stored, the upload's
// next request says why, rather than just refusing the state.
func TestFailureToPersistIsReported(t *testing.T) {
	s := newInternal(t, t.TempDir(), false)
	diskFull := errors.New("no space left on device")
	s.beforePersist = func() error { return diskFull }
	ctx := t.Context()
	st, err := s.StartUpload(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	p := randomBody(t, chunkSize)
	if st, err = s.Append(ctx, "u", st, bytes.NewReader(p)); err != nil {
		t.Fatal(err)
	}
	// (An Append that came before the failure would feed the session and
	// learn of it at the request after.)
	settle(t, s)
	if _, err := s.Append(ctx, "u", st, bytes.NewReader(p)); !errors.Is(err, diskFull) {
		t.Fatalf("Append after the failure: %v, want %v", err, diskFull)
	}
	if _, err := s.Commit(ctx, "u", st, digest.FromBytes(p)); !errors.Is(err, diskFull) {
		t.Fatalf("Commit after the failure: %v, want %v", err, diskFull)
	}
	if err := s.Abort(ctx, "u"); err != nil {
		t.Fatal(err)
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
