package postgres

// The change feed and leases (meta.ChangeFeed, meta.Leaser) on PostgreSQL.
//
// A change is a row of the changes table, written with a NOTIFY on
// changesChannel in the same transaction (delivered at commit). Each
// subscription holds one dedicated connection (not from the pool, named
// listenerAppName in pg_stat_activity) that LISTENs and wakes the
// subscription's poller on every notification; the poller reads the rows
// past the last seq it delivered, at every wake-up and at least every
// pollEvery. The notification is only a wake-up: what is delivered always
// comes from the table, so a lost notification (the listening connection
// died, a pooler in transaction mode drops LISTEN) delays a change by at
// most pollEvery, and a listener that reconnects wakes the poller at once to
// close the gap. A connection that dies silently is found by a ping after
// listenIdle without a notification.
//
// Publish takes LOCK TABLE changes in SHARE ROW EXCLUSIVE mode (which
// conflicts only with itself and writers, not with the pollers' reads), so
// seqs are assigned as max(seq) + 1 in commit order and a poller never
// finds a smaller seq after a larger one.
//
// Lease expiry is measured on the database server's clock (dbNow), so the
// replicas' clocks do not matter.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	changesChannel  = "moat_changes"
	listenerAppName = "moat-change-listener"
	// pollEvery bounds the delay of a change when no notification arrives.
	pollEvery = 500 * time.Millisecond
	// pollBatch bounds the rows one poll reads; a poll that fills it reads
	// again at once.
	pollBatch = 256
	// subscriptionBuffer is how many changes wait for a slow receiver
	// before the subscription stops polling until it catches up.
	subscriptionBuffer = 64
	// listenIdle is how long the listener waits for a notification before
	// it pings its connection to find out whether it is still alive.
	listenIdle = 30 * time.Second
	// listenTimeout bounds connecting, LISTEN and the idle ping.
	listenTimeout = 10 * time.Second
	// Reconnecting the listener backs off from listenRetryMin to
	// listenRetryMax; polling goes on meanwhile.
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// dbNow is the server's clock in unix nanoseconds (microsecond precision).
const dbNow = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000000)::bigint`

var (
	_ meta.ReportingChangeFeed = (*Store)(nil)
	_ meta.Leaser              = (*Store)(nil)
)

// Publish records the change and notifies the listeners.
func (s *Store) Publish(ctx context.Context, topic, key string) error {
	if topic == "" {
		return errors.New("postgres: publish: empty topic")
	}
	// Running it twice after a lost acknowledgement publishes the change
	// twice, which the feed allows.
	err := s.read(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `LOCK TABLE changes IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
			var seq int64
			if err := tx.QueryRow(ctx, `INSERT INTO changes (seq, topic, change_key, created_at)
SELECT COALESCE(MAX(seq), 0) + 1, $1::text, $2::text, `+dbNow+` FROM changes RETURNING seq`, topic, key).Scan(&seq); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM changes WHERE created_at < `+dbNow+` - $1::bigint AND seq < $2`,
				meta.ChangeRetention.Nanoseconds(), seq); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, strconv.FormatInt(seq, 10))
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("postgres: publish %s %q: %w", topic, key, err)
	}
	return nil
}

// Subscribe starts a subscription: a listening connection and a poller.
func (s *Store) Subscribe(ctx context.Context) (<-chan meta.Change, error) {
	return s.subscribe(ctx, nil, defaultSubscription)
}

// SubscribeReporting is Subscribe that reports failed polls and lost or
// failed listening connections.
func (s *Store) SubscribeReporting(ctx context.Context, report func(error)) (<-chan meta.Change, error) {
	return s.subscribe(ctx, report, defaultSubscription)
}

// subscription is how a subscription polls and listens; tests change it to
// see each part work alone.
type subscription struct {
	pollEvery  time.Duration
	listen     bool
	listenIdle time.Duration
}

var defaultSubscription = subscription{pollEvery: pollEvery, listen: true, listenIdle: listenIdle}

func (s *Store) subscribe(ctx context.Context, report func(error), how subscription) (<-chan meta.Change, error) {
	var last int64
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&last)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: subscribe: %w", err)
	}
	rep := &reporter{fn: report}
	wake := make(chan struct{}, 1)
	out := make(chan meta.Change, subscriptionBuffer)
	var wg sync.WaitGroup
	if how.listen {
		wg.Go(func() { s.listen(ctx, how.listenIdle, wake, rep) })
	}
	wg.Go(func() { s.poll(ctx, last, how.pollEvery, wake, out, rep) })
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}

// reporter serialises the listener's and the poller's reports.
type reporter struct {
	mu sync.Mutex
	fn func(error)
}

func (r *reporter) report(err error) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(err)
}

// poke wakes the poller without waiting: a pending wake-up covers this one.
func poke(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// poll delivers the changes after seq last to out until ctx is done (see
// meta.PollChanges).
func (s *Store) poll(ctx context.Context, last int64, every time.Duration, wake <-chan struct{}, out chan<- meta.Change, rep *reporter) {
	meta.PollChanges(ctx, last, pollBatch, every, wake, s.changesAfter, out, func(err error) {
		if err != nil {
			err = fmt.Errorf("postgres: poll changes: %w", err)
		}
		rep.report(err)
	})
}

func (s *Store) changesAfter(ctx context.Context, seq int64) ([]meta.Change, error) {
	var out []meta.Change
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT seq, topic, change_key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, pollBatch)
		if err != nil {
			return err
		}
		out, err = collect(rows, func(r pgx.Rows) (meta.Change, error) {
			var c meta.Change
			err := r.Scan(&c.Seq, &c.Topic, &c.Key)
			return c, err
		})
		return err
	})
	return out, err
}

// listen keeps a LISTENing connection until ctx is done, waking the poller
// on every notification and whenever it (re)starts listening.
func (s *Store) listen(ctx context.Context, idle time.Duration, wake chan<- struct{}, rep *reporter) {
	backoff := listenRetryMin
	failed := false
	for {
		err := s.listenOnce(ctx, idle, wake, func() {
			backoff = listenRetryMin
			if failed {
				rep.report(nil)
				failed = false
			}
		})
		if ctx.Err() != nil {
			return
		}
		rep.report(fmt.Errorf("postgres: change listener (polling every %v meanwhile): %w", pollEvery, err))
		failed = true
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenRetryMax)
	}
}

// listenOnce connects, LISTENs, calls listening, and then wakes the poller
// on each notification until the connection fails or ctx is done.
func (s *Store) listenOnce(ctx context.Context, idle time.Duration, wake chan<- struct{}, listening func()) error {
	cfg := s.pool.Config().ConnConfig // a copy
	cfg.RuntimeParams["application_name"] = listenerAppName
	cctx, cancel := context.WithTimeout(ctx, listenTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		// The connection may be dead already; its Close error says nothing new.
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(cctx, `LISTEN `+changesChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	// Changes published while nobody listened are found by this poll.
	poke(wake)
	for {
		wctx, cancel := context.WithTimeout(ctx, idle)
		_, err := conn.WaitForNotification(wctx)
		timedOut := errors.Is(wctx.Err(), context.DeadlineExceeded)
		cancel()
		switch {
		case err == nil:
			poke(wake)
		case ctx.Err() != nil:
			return ctx.Err()
		case timedOut:
			// Idle: a timeout leaves the connection usable; is it alive?
			pctx, cancel := context.WithTimeout(ctx, listenTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
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
// Concurrent Acquires of a free lease conflict on its primary key; ON
// CONFLICT makes the losers re-check the winner's row, so exactly one wins.
func (s *Store) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return false, fmt.Errorf("postgres: acquire lease: %w", err)
	}
	var got bool
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, `+dbNow+` + $3::bigint)
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= `+dbNow+`
RETURNING holder`, name, holder, ttl.Nanoseconds())
		if err != nil {
			return err
		}
		held, err := collect(rows, func(r pgx.Rows) (string, error) {
			var h string
			err := r.Scan(&h)
			return h, err
		})
		got = len(held) == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: acquire lease %q: %w", name, err)
	}
	return got, nil
}

// Renew extends holder's lease, if it still holds it.
func (s *Store) Renew(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return false, fmt.Errorf("postgres: renew lease: %w", err)
	}
	var got bool
	err := s.read(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = `+dbNow+` + $3::bigint WHERE name = $1 AND holder = $2`,
			name, holder, ttl.Nanoseconds())
		got = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: renew lease %q: %w", name, err)
	}
	return got, nil
}

// Release gives up holder's lease.
func (s *Store) Release(ctx context.Context, name, holder string) error {
	err := s.read(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release lease %q: %w", name, err)
	}
	return nil
}
