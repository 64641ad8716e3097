package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// StartWriteback asks the kernel to begin writing [off, off+n) of f to disk
// without waiting for it, so the disk works while the writer still produces
// data and the fsync that ends the write has little left to flush. It is only
// a hint: errors are ignored because that fsync reports them.
func StartWriteback(f *os.File, off, n int64) {
	hint(f, func(fd int) error { return unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

// DropCache tells the kernel that [off, off+n) of f, already written back
// (after an fsync), will not be read soon, so its pages can be freed now
// rather than when memory runs short. Also only a hint.
func DropCache(f *os.File, off, n int64) {
	hint(f, func(fd int) error { return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) })
}

// hint runs call on f's descriptor and ignores what fails: the callers'
// calls are advice to the kernel, whose errors the next fsync reports.
func hint(f *os.File, call func(fd int) error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { _ = call(int(fd)) })
}
