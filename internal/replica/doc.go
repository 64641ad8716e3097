// Package replica owns what lets several moat processes (replicas) share
// one metadata store as if they were one: background work that runs on
// exactly one of them (RunExclusive, on a meta.Leaser), and the fan-out of
// configuration changes published by any of them to this process's caches
// (Fanout, on a meta.ChangeFeed).
//
// Invariants:
//
//   - RunExclusive runs its work only while this process holds the lease,
//     and stops it (cancels its context) before the lease can have expired
//     on the store: when renewals fail for most of the ttl, the work is
//     stopped about a third of the ttl before another replica may take the
//     lease. A replica that dies without releasing is replaced once its
//     ttl runs out; one that stops cleanly releases, and is replaced
//     within a third of the ttl.
//   - Exactly once holds as long as the work returns promptly when its
//     context is canceled.
//   - Fanout keeps a subscription open for as long as it runs: a
//     subscription that cannot be opened or that ends is opened again with
//     backoff, and after such a break, when changes may have been missed,
//     the resync callbacks run (drop everything cached).
//   - Handlers run one at a time on Fanout's goroutine, in the order of the
//     changes; a panicking handler is logged and does not stop the fan-out.
package replica
