//go:build !unix

package bicep

import "time"

func cpuTime() (time.Duration, bool) { return 0, false }
