package sqlite

// The change feed and leases (meta.ChangeFeed, meta.Leaser) on the SQLite
// file.
//
// Several processes may share one file, so a change is a row of the changes
// table and every subscription polls that table for rows past the last seq
// it delivered: one indexed range query on the read pool every pollEvery.
// Within one Store, Publish also wakes the Store's own subscriptions, so a
// change reaches them at once instead of at their next poll. Publish prunes
// rows older than meta.ChangeRetention, keeping the newest so that max(seq)
// never goes back.
//
// Leases compare expiry times on this machine's clock, which every process
// sharing the file also reads.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// pollEvery is how often a subscription looks for changes published by
	// another process; it bounds their delay.
	pollEvery = 200 * time.Millisecond
	// pollBatch bounds the rows one poll reads; a poll that fills it reads
	// again at once.
	pollBatch = 256
	// subscriptionBuffer is how many changes wait for a slow receiver
	// before the subscription stops polling until it catches up.
	subscriptionBuffer = 64
)

var (
	_ meta.ReportingChangeFeed = (*Store)(nil)
	_ meta.Leaser              = (*Store)(nil)
)

// wakers holds the wake channels of each Store's subscriptions, for
// Publish's in-process fast path. It lives outside Store because the
// subscriptions come and go with their contexts, not with the Store; a
// Store with no subscription has no entry.
var wakers = struct {
	sync.Mutex
	m map[*Store]map[chan struct{}]struct{}
}{m: map[*Store]map[chan struct{}]struct{}{}}

func addWaker(s *Store, c chan struct{}) {
	wakers.Lock()
	defer wakers.Unlock()
	if wakers.m[s] == nil {
		wakers.m[s] = map[chan struct{}]struct{}{}
	}
	wakers.m[s][c] = struct{}{}
}

func removeWaker(s *Store, c chan struct{}) {
	wakers.Lock()
	defer wakers.Unlock()
	delete(wakers.m[s], c)
	if len(wakers.m[s]) == 0 {
		delete(wakers.m, s)
	}
}

func wakeAll(s *Store) {
	wakers.Lock()
	defer wakers.Unlock()
	for c := range wakers.m[s] {
		poke(c)
	}
}

// poke wakes a poller without waiting: a pending wake-up covers this one.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Publish records the change and wakes this Store's subscriptions.
func (s *Store) Publish(ctx context.Context, topic, key string) error {
	if topic == "" {
		return errors.New("sqlite: publish: empty topic")
	}
	t := time.Now().UnixNano()
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		// The write transaction holds SQLite's write lock, so max(seq) + 1
		// is this process's alone and commits in seq order.
		var seq int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO changes (seq, topic, change_key, created_at)
SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3 FROM changes RETURNING seq`, topic, key, t).Scan(&seq); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE created_at < $1 AND seq < $2`,
			t-meta.ChangeRetention.Nanoseconds(), seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: publish %s %q: %w", topic, key, err)
	}
	wakeAll(s)
	return nil
}

// Subscribe starts a subscription that polls every pollEvery.
func (s *Store) Subscribe(ctx context.Context) (<-chan meta.Change, error) {
	return s.subscribe(ctx, nil, pollEvery)
}

// SubscribeReporting is Subscribe that reports failed polls.
func (s *Store) SubscribeReporting(ctx context.Context, report func(error)) (<-chan meta.Change, error) {
	return s.subscribe(ctx, report, pollEvery)
}

func (s *Store) subscribe(ctx context.Context, report func(error), every time.Duration) (<-chan meta.Change, error) {
	if report == nil {
		report = func(error) {}
	}
	wake := make(chan struct{}, 1)
	// Registered before the starting point is read, so that no change of
	// this Store falls between the two unseen until the next poll.
	addWaker(s, wake)
	var last int64
	if err := s.ro.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&last); err != nil {
		removeWaker(s, wake)
		return nil, fmt.Errorf("sqlite: subscribe: %w", err)
	}
	out := make(chan meta.Change, subscriptionBuffer)
	go func() {
		defer close(out)
		defer removeWaker(s, wake)
		s.poll(ctx, last, every, wake, out, report)
	}()
	return out, nil
}

// poll delivers the changes after seq last to out until ctx is done (see
// meta.PollChanges).
func (s *Store) poll(ctx context.Context, last int64, every time.Duration, wake <-chan struct{}, out chan<- meta.Change, report func(error)) {
	meta.PollChanges(ctx, last, pollBatch, every, wake, s.changesAfter, out, func(err error) {
		if err != nil {
			err = fmt.Errorf("sqlite: poll changes: %w", err)
		}
		report(err)
	})
}

func (s *Store) changesAfter(ctx context.Context, seq int64) ([]meta.Change, error) {
	rows, err := s.ro.QueryContext(ctx, `SELECT seq, topic, change_key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, pollBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close() //nolint:errcheck // read-only; rows.Err reports failures
	var out []meta.Change
	for rows.Next() {
		var c meta.Change
		if err := rows.Scan(&c.Seq, &c.Topic, &c.Key); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func checkLease(name, holder string, ttl time.Duration) error {
	switch {
	case name == "":
		return errors.New("empty lease name")
	case holder == "":
		return errors.New("empty holder")
	case ttl <= 0:
		return fmt.Errorf("lease ttl %v is not positive", ttl)
	}
	return nil
}

// Acquire takes the lease if it is free, expired or already holder's.
func (s *Store) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return false, fmt.Errorf("sqlite: acquire lease: %w", err)
	}
	t := time.Now().UnixNano()
	var got string
	err := s.rw.QueryRowContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
RETURNING holder`, name, holder, t+ttl.Nanoseconds(), t).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlite: acquire lease %q: %w", name, err)
	}
	return true, nil
}

// Renew extends holder's lease, if it still holds it.
func (s *Store) Renew(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return false, fmt.Errorf("sqlite: renew lease: %w", err)
	}
	res, err := s.rw.ExecContext(ctx, `UPDATE leases SET expires_at = $3 WHERE name = $1 AND holder = $2`,
		name, holder, time.Now().UnixNano()+ttl.Nanoseconds())
	if err != nil {
		return false, fmt.Errorf("sqlite: renew lease %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: renew lease %q: %w", name, err)
	}
	return n == 1, nil
}

// Release gives up holder's lease.
func (s *Store) Release(ctx context.Context, name, holder string) error {
	if _, err := s.rw.ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("sqlite: release lease %q: %w", name, err)
	}
	return nil
}
