//go:build unix

package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/blob/fs"
)

// While one request holds an upload, another on the same upload (from any
// process) waits a while, then is turned away instead of interleaving its
// bytes.
func TestBusyUploadIsRefused(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	fs.SetLockWait(s, 50*time.Millisecond)
	ctx := t.Context()
	id, st := startWith(t, s, "busy", []byte("abc"))
	f, err := os.OpenFile(filepath.Join(root, "uploads", id, "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, id, st, strings.NewReader("d")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Append on a busy upload: %v, want ErrOffsetMismatch", err)
	}
	other := newAt(t, root)
	fs.SetLockWait(other, 50*time.Millisecond)
	if _, err := other.Commit(ctx, id, st, digest.FromString("abc")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit on a busy upload: %v, want ErrOffsetMismatch", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, id, st, digest.FromString("abc")); err != nil {
		t.Fatalf("Commit once the upload is free: %v", err)
	}
}

// A request on an upload that is held only briefly (as by another
// process's session finishing its writes) waits for it instead of failing.
func TestBrieflyHeldUploadIsWaitedFor(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	id, st := startWith(t, s, "brief", []byte("abc"))
	f, err := os.OpenFile(filepath.Join(root, "uploads", id, "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { _ = f.Close() })
	if _, err := s.Commit(t.Context(), id, st, digest.FromString("abc")); err != nil {
		t.Fatalf("Commit on an upload held for 100ms: %v", err)
	}
}
