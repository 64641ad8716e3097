package fs

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openDirect opens path for writing with O_DIRECT, or returns nil where the
// file system refuses it (tmpfs, some network file systems): direct writes
// are only a faster way to the same bytes.
func openDirect(path string) *os.File {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

// addrAligned reports whether p starts at a multiple of align in memory,
// as O_DIRECT requires of the buffer.
func addrAligned(p []byte, align uintptr) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))%align == 0 //nolint:gosec // the address is only tested, never dereferenced
}
