package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Drop-behind: once an Append is durable its bytes leave the page cache, so
// pushes neither evict what pulls keep hot nor make the page cache grow
// by every pushed byte. mincore shows which pages of a file are cached.
func TestAppendedBytesLeaveThePageCache(t *testing.T) {
	root := t.TempDir()
	s := newAt(t, root)
	ctx := t.Context()
	data := bytes.Repeat([]byte("moat drop-behind "), (8<<20)/17)
	id, st := startWith(t, s, "drop", data[:4<<20])
	path := filepath.Join(root, "uploads", id, "data")
	// An Append of more than a hash slice finishes in the background.
	settle(t, s)
	if got := cachedPages(t, path); got != 0 {
		t.Fatalf("after the first Append %d pages of the upload are cached, want 0", got)
	}
	var err error
	if st, err = s.Append(ctx, id, st, bytes.NewReader(data[4<<20:])); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if got := cachedPages(t, path); got != 0 {
		t.Fatalf("after the second Append %d pages of the upload are cached, want 0", got)
	}
	d := digest.FromBytes(data)
	if _, err := s.Commit(ctx, id, st, d); err != nil {
		t.Fatal(err)
	}
	e := d.Encoded()
	blobPath := filepath.Join(root, "blobs", "sha256", e[:2], e)
	if got := cachedPages(t, blobPath); got != 0 {
		t.Fatalf("the committed blob has %d pages cached, want 0", got)
	}
	// Reading brings pages back: the cache is dropped, not bypassed.
	if _, err := os.ReadFile(blobPath); err != nil {
		t.Fatal(err)
	}
	if got := cachedPages(t, blobPath); got == 0 {
		t.Fatal("no page cached after reading the blob; mincore does not see the cache here")
	}
}

// cachedPages counts the pages of the file at path in the page cache.
func cachedPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(mem) }()
	pages := (len(mem) + os.Getpagesize() - 1) / os.Getpagesize()
	vec := make([]byte, pages)
	// x/sys/unix has no wrapper for mincore(2); both pointers are live
	// slices for the call's duration.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 { //nolint:gosec // see above
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
