// Package atomicfile owns writing files durably: small files (keys,
// certificates, passwords) that are either whole or absent, so a crash or a
// full disk never leaves half a secret behind; and, for large files written
// in a stream (blobs, export archives), the hint that starts their writeback
// early so the final fsync has little left to do (StartWriteback), and the
// one that drops their pages from the page cache once durable (DropCache).
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to a temporary file beside path with mode perm, syncs it
// and renames it over path.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp) // best effort; the write already failed
		}
	}()
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
