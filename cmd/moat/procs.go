package main

import (
	"fmt"
	"runtime"
	"strconv"
)

// extraProcs is how many more Ps (Go's GOMAXPROCS) than CPUs moat serve
// runs with. A large push writes its chunks to the disk with O_DIRECT
// (internal/storage/blob/fs), and each such write blocks its thread for a
// millisecond or more; so does the fsync that ends a PATCH. While a thread
// blocks in a system call it keeps its P until the runtime's sysmon takes
// it back, which on a busy 2-core machine meant that the request's reader
// and hasher, and every other request, shared the one P left for much of a
// push. Two more Ps cover the writer and the fsync of an upload; they cost
// nothing while unused, since a P without a runnable goroutine runs no
// thread. Measured with 512 MiB pushes on the project's 2-core machine
// (medians of interleaved rounds): GOMAXPROCS=4 was 6–17% faster than the
// default 2, 3 only in some rounds, 5 about the same as 4, and 6 or 8 no
// better than 4.
const extraProcs = 2

// serveProcs returns the GOMAXPROCS moat serve sets, given Go's default
// and the GOMAXPROCS variable (env, and whether it is set); 0 means leave
// it: an operator's GOMAXPROCS is kept as it is. As for MOAT_* variables,
// an empty value counts as unset. A value Go would silently ignore (not a
// positive integer) is an error rather than a quiet fallback.
func serveProcs(goDefault int, env string, envSet bool) (int, error) {
	if !envSet || env == "" {
		return goDefault + extraProcs, nil
	}
	if n, err := strconv.Atoi(env); err != nil || n < 1 {
		return 0, fmt.Errorf("GOMAXPROCS %q is not a positive integer", env)
	}
	return 0, nil
}

// applyServeProcs raises GOMAXPROCS for moat serve (see extraProcs) unless
// lookupEnv finds GOMAXPROCS set, and returns Go's default.
func applyServeProcs(lookupEnv func(string) (string, bool)) (int, error) {
	goDefault := runtime.GOMAXPROCS(0)
	v, set := lookupEnv("GOMAXPROCS")
	n, err := serveProcs(goDefault, v, set)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return goDefault, nil
}
