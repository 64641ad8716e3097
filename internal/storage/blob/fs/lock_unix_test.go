//go:build unix

package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// While one request holds an upload, another on the same upload (from any
// process) is turned away instead of interleaving its bytes.
func TestBusyUploadIsRefused(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
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
	if _, err := newAt(t, root).Commit(ctx, id, st, digest.FromString("abc")); !errors.Is(err, blob.ErrOffsetMismatch) {
		t.Fatalf("Commit on a busy upload: %v, want ErrOffsetMismatch", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, id, st, digest.FromString("abc")); err != nil {
		t.Fatalf("Commit once the upload is free: %v", err)
	}
}
