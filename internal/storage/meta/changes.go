package meta

import (
	"context"
	"time"
)

// Change announces that something named Key of kind Topic changed (for
// example topic "registry", key "myregistry"). It says nothing about what
// changed: a subscriber drops what it cached about the key and reads it
// again.
type Change struct {
	Topic string
	Key   string
	// Seq is the store-assigned position of the change in the feed. It
	// grows in the order the changes were committed; it is not contiguous.
	Seq int64
}

// TopicRegistry is the topic of a change to a registry's record (its
// properties: network rules, public access, export policy, ...); the key is
// the registry's name, lower-case.
const TopicRegistry = "registry"

// ChangeFeed carries configuration changes between the processes (moat
// replicas) that share one metadata store, so that each drops its cached
// copy of what another one changed. A Store may implement it; callers find
// it with a type assertion, and a process that shares its store with no
// other needs only its own in-process invalidation.
//
// Semantics every implementation keeps:
//
//   - Every subscription, in every process sharing the store, receives
//     every change published after Subscribe returned, within one second
//     of Publish returning while the store is reachable.
//   - At least once: a change may be delivered twice, and in the order of
//     Seq otherwise. Receivers only invalidate, so a duplicate costs a
//     reload.
//   - A subscription survives store failures by itself (a lost connection,
//     a restarted database): once the store is reachable again it delivers
//     what was published meanwhile, as long as the changes are still kept
//     (ChangeRetention).
//   - The channel is closed when the subscription's ctx is done. Cancel it
//     before closing the store.
type ChangeFeed interface {
	// Publish records a change and wakes the subscribers. Call it after the
	// change it announces is committed.
	Publish(ctx context.Context, topic, key string) error
	// Subscribe starts a subscription. It fails when the store cannot be
	// reached; after that, failures are retried inside the subscription.
	Subscribe(ctx context.Context) (<-chan Change, error)
}

// ReportingChangeFeed is a ChangeFeed whose subscriptions can also tell
// their owner about the failures they recover from, for logging.
type ReportingChangeFeed interface {
	ChangeFeed
	// SubscribeReporting is Subscribe that calls report with each failure
	// the subscription meets (a failed poll, a lost listening connection)
	// and with nil when a part that failed works again. Calls of report are
	// never concurrent and must return quickly.
	SubscribeReporting(ctx context.Context, report func(error)) (<-chan Change, error)
}

// ChangeRetention is how long a store keeps published changes: a
// subscription cut off from the store for longer may miss changes.
const ChangeRetention = time.Hour

// Leaser hands out named leases, each held by at most one holder until it
// expires, so that one process among those sharing the store does a piece of
// background work. A Store may implement it.
//
// Semantics every implementation keeps:
//
//   - A lease is held by one holder at a time; it expires ttl after it was
//     last acquired or renewed, measured by one clock for every process
//     (the database server's, where there is one), so clock skew between
//     replicas does not make two holders.
//   - Nothing is lost by a crash: a holder that stops renewing loses the
//     lease at expiry, and another holder's Acquire then succeeds.
type Leaser interface {
	// Acquire takes the lease called name for holder for ttl, if nobody
	// holds it, its holder's time ran out, or holder already holds it (then
	// it is extended). It reports whether holder now holds the lease.
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// Renew extends holder's lease by ttl from now. It reports false when
	// holder no longer holds it (another holder took it after it expired,
	// or it was released).
	Renew(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// Release gives the lease up if holder holds it, so that another holder
	// may take it at once; releasing a lease one does not hold is not an
	// error.
	Release(ctx context.Context, name, holder string) error
}

// PollChanges is the delivery loop every ChangeFeed implementation shares:
// it reads the changes after seq last with fetch (at most batch per call),
// sends them to out, and reads again at every tick of every and at every
// wake-up, until ctx is done. A failed read is reported and retried at the
// next tick from the same seq, so nothing is skipped; report(nil) says a
// failing read works again. A read that fills the batch is followed at once
// by the next.
func PollChanges(ctx context.Context, last int64, batch int, every time.Duration, wake <-chan struct{},
	fetch func(ctx context.Context, after int64) ([]Change, error), out chan<- Change, report func(error)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	failing := false
	for {
		got, err := fetch(ctx, last)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			report(err)
			failing = true
		case failing:
			report(nil)
			failing = false
		}
		for _, c := range got {
			select {
			case out <- c:
				last = c.Seq
			case <-ctx.Done():
				return
			}
		}
		if len(got) == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}
