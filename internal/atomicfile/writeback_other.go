//go:build !linux

package atomicfile

import "os"

// StartWriteback is a no-op where sync_file_range does not exist; the fsync
// that ends the write does all the flushing.
func StartWriteback(*os.File, int64, int64) {}

// DropCache is a no-op where posix_fadvise is not used.
func DropCache(*os.File, int64, int64) {}
