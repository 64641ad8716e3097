package fs

import "time"

// SetLockWait sets how long s waits for an upload another holds, so that
// tests of the refusal need not wait the default.
func SetLockWait(s *Store, d time.Duration) { s.lockWait = d }
