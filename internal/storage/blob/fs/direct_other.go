//go:build !linux

package fs

import "os"

// openDirect returns nil: direct writes are used on Linux only.
func openDirect(string) *os.File { return nil }

func addrAligned([]byte, uintptr) bool { return false }
