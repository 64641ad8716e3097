//go:build !unix

package fs

import (
	"errors"
	"os"
)

// lockFile fails closed where flock(2) does not exist: without the lock,
// overlapping requests on one upload could commit wrong bytes.
func lockFile(*os.File) error {
	return errors.New("upload locking is not supported on this platform")
}
