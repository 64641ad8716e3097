package main

import "runtime"

// extraProcs is how many more Ps (Go's GOMAXPROCS) than CPUs moat serve
// runs with. A large push writes its chunks to the disk with O_DIRECT
// (internal/storage/blob/fs), and each such write blocks its thread for a
// millisecond or more; so does the fsync that ends a PATCH. While a thread
// blocks in a system call it keeps its P until the runtime's sysmon takes
// it back, which on a busy 2-core machine meant that the request's reader
// and hasher, and every other request, shared the one P left for much of a
// push. Two more Ps cover the writer and the fsync of an upload; they cost
// nothing while unused, since a P without a runnable goroutine runs no
// thread. Measured with 512 MiB pushes on the project's 2-core machine:
// GOMAXPROCS=4 was 8–15% faster than the default 2, 3 only in some runs,
// and 6 or 8 no better than 4.
const extraProcs = 2

// serveProcs returns the GOMAXPROCS moat serve sets, given Go's default
// and whether the GOMAXPROCS variable was set; 0 means leave it: an
// operator's GOMAXPROCS is kept as it is.
func serveProcs(goDefault int, envSet bool) int {
	if envSet {
		return 0
	}
	return goDefault + extraProcs
}

// applyServeProcs raises GOMAXPROCS for moat serve (see extraProcs) unless
// lookupEnv finds GOMAXPROCS set, and returns Go's default.
func applyServeProcs(lookupEnv func(string) (string, bool)) int {
	goDefault := runtime.GOMAXPROCS(0)
	v, set := lookupEnv("GOMAXPROCS")
	set = set && v != "" // as for MOAT_* variables, empty is unset (Go ignores it too)
	if n := serveProcs(goDefault, set); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return goDefault
}
