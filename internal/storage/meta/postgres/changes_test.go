package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/testsupport/pgtest"
)

// twoReplicas opens two Stores on one database, as two replicas would.
func twoReplicas(t *testing.T) (*Store, *Store) {
	t.Helper()
	dsn := pgtest.DSN(t)
	return open(t, dsn), open(t, dsn)
}

// subscribeFor subscribes until the test ends and then waits for the
// subscription to finish.
func subscribeFor(t *testing.T, s *Store, report func(error), every time.Duration) <-chan meta.Change {
	t.Helper()
	return subscribeHow(t, s, report, subscription{pollEvery: every, listen: true, listenIdle: listenIdle})
}

func subscribeHow(t *testing.T, s *Store, report func(error), how subscription) <-chan meta.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.subscribe(ctx, report, how)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		// Drain until the subscription closes the channel: its goroutines
		// are gone before the store closes.
		for range ch {
		}
	})
	return ch
}

func receiveWithin(t *testing.T, ch <-chan meta.Change, d time.Duration) meta.Change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(d):
		t.Fatalf("no change within %v", d)
	}
	return meta.Change{}
}

func publish(t *testing.T, s *Store, key string) {
	t.Helper()
	if err := s.Publish(t.Context(), "registry", key); err != nil {
		t.Fatal(err)
	}
}

// listeners returns the pids of the change listeners on s's database that
// have run LISTEN.
func listeners(t *testing.T, admin *pgx.Conn, s *Store) []int32 {
	t.Helper()
	var db string
	if err := s.pool.QueryRow(t.Context(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	rows, err := admin.Query(t.Context(), `SELECT pid FROM pg_stat_activity
WHERE datname = $1 AND application_name = $2 AND query = $3`, db, listenerAppName, "LISTEN "+changesChannel)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitListening waits until s's database has n listeners and returns them.
func waitListening(t *testing.T, admin *pgx.Conn, s *Store, n int) []int32 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := listeners(t, admin, s)
		if len(pids) == n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d change listeners after 10s, want %d", len(pids), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func terminate(t *testing.T, admin *pgx.Conn, pid int32) {
	t.Helper()
	var ok bool
	if err := admin.QueryRow(t.Context(), `SELECT pg_terminate_backend($1, 5000)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

func TestChangeFeed_OtherReplicaReceivesWithinASecond(t *testing.T) {
	a, b := twoReplicas(t)
	admin := adminConn(t, pgtest.AdminDSN(t))
	ch := subscribeFor(t, b, nil, pollEvery)
	waitListening(t, admin, b, 1)
	var worst time.Duration
	for i := range 5 {
		start := time.Now()
		publish(t, a, fmt.Sprint("r", i))
		if got := receiveWithin(t, ch, time.Second); got.Topic != "registry" || got.Key != fmt.Sprint("r", i) {
			t.Fatalf("received %+v, want registry r%d", got, i)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest delivery to the other replica: %v (poll every %v)", worst, pollEvery)
}

func TestChangeFeed_ConcurrentPublishersLoseNothing(t *testing.T) {
	a, b := twoReplicas(t)
	onA, onB := subscribeFor(t, a, nil, pollEvery), subscribeFor(t, b, nil, pollEvery)
	const each = 20
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b} {
		for g := range 2 {
			wg.Go(func() {
				for i := range each {
					if err := s.Publish(context.Background(), "registry", fmt.Sprintf("%p-%d-%d", s, g, i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for name, ch := range map[string]<-chan meta.Change{"A": onA, "B": onB} {
		seen := map[string]bool{}
		var last int64
		for len(seen) < 4*each {
			c := receiveWithin(t, ch, 2*time.Second)
			if c.Seq <= last {
				t.Fatalf("%s: seq %d after %d", name, c.Seq, last)
			}
			last = c.Seq
			seen[c.Key] = true
		}
	}
}

func TestChangeFeed_KilledListener_ChangesStillArriveAndListeningRecovers(t *testing.T) {
	a, b := twoReplicas(t)
	admin := adminConn(t, pgtest.AdminDSN(t))
	rep := newReports()
	ch := subscribeFor(t, b, rep.report, pollEvery)
	pids := waitListening(t, admin, b, 1)

	terminate(t, admin, pids[0])
	start := time.Now()
	publish(t, a, "while-down")
	if got := receiveWithin(t, ch, time.Second); got.Key != "while-down" {
		t.Fatalf("received %+v, want key while-down", got)
	}
	t.Logf("delivered %v after the listener was killed", time.Since(start))
	rep.wait(t, "the lost listener", func(err error) bool { return err != nil })
	rep.wait(t, "listening again", func(err error) bool { return err == nil })
	if again := waitListening(t, admin, b, 1); again[0] == pids[0] {
		t.Fatal("the listener's backend did not change")
	}
	publish(t, a, "after")
	if got := receiveWithin(t, ch, time.Second); got.Key != "after" {
		t.Fatalf("received %+v, want key after", got)
	}
}

func TestChangeFeed_PollingAloneDeliversWithinASecond(t *testing.T) {
	a, b := twoReplicas(t)
	ch := subscribeHow(t, b, nil, subscription{pollEvery: pollEvery})
	var worst time.Duration
	for i := range 3 {
		start := time.Now()
		publish(t, a, fmt.Sprint("r", i))
		if got := receiveWithin(t, ch, time.Second); got.Key != fmt.Sprint("r", i) {
			t.Fatalf("received %+v, want key r%d", got, i)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest delivery by polling alone: %v (poll every %v)", worst, pollEvery)
}

func TestChangeFeed_ListenerAloneDeliversAndClosesTheGapOnReconnect(t *testing.T) {
	a, b := twoReplicas(t)
	admin := adminConn(t, pgtest.AdminDSN(t))
	// With an hour between polls, only notifications and the listener's
	// reconnect can deliver.
	ch := subscribeFor(t, b, nil, time.Hour)
	pids := waitListening(t, admin, b, 1)
	start := time.Now()
	publish(t, a, "notified")
	if got := receiveWithin(t, ch, time.Second); got.Key != "notified" {
		t.Fatalf("received %+v, want key notified", got)
	}
	t.Logf("delivery by notification: %v", time.Since(start))

	terminate(t, admin, pids[0])
	publish(t, a, "missed-notification")
	if got := receiveWithin(t, ch, 2*time.Second); got.Key != "missed-notification" {
		t.Fatalf("received %+v, want the change published while nobody listened", got)
	}
	waitListening(t, admin, b, 1)
	publish(t, a, "notified-again")
	if got := receiveWithin(t, ch, time.Second); got.Key != "notified-again" {
		t.Fatalf("received %+v, want key notified-again", got)
	}
}

func TestChangeFeed_PruneKeepsTheNewestSoSeqNeverGoesBack(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	old := time.Now().Add(-meta.ChangeRetention - time.Minute).UnixNano()
	for seq := int64(1); seq <= 3; seq++ {
		if _, err := s.pool.Exec(ctx, `INSERT INTO changes (seq, topic, change_key, created_at) VALUES ($1, 'registry', 'old', $2)`, seq, old); err != nil {
			t.Fatal(err)
		}
	}
	ch := subscribeFor(t, s, nil, pollEvery)
	publish(t, s, "new")
	if got := receiveWithin(t, ch, time.Second); got.Seq != 4 || got.Key != "new" {
		t.Fatalf("received %+v, want seq 4 key new", got)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM changes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d rows after pruning, want 1 (the new one)", n)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE changes SET created_at = $1`, old); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "newer")
	if got := receiveWithin(t, ch, time.Second); got.Seq != 5 {
		t.Fatalf("received %+v, want seq 5", got)
	}
}

func TestLease_TwoReplicas(t *testing.T) {
	ctx := t.Context()
	a, b := twoReplicas(t)
	const ttl = 300 * time.Millisecond
	if ok, err := a.Acquire(ctx, "purge", "replica-a", ttl); err != nil || !ok {
		t.Fatalf("A's Acquire = %v, %v", ok, err)
	}
	for range 3 {
		if ok, err := b.Acquire(ctx, "purge", "replica-b", ttl); err != nil || ok {
			t.Fatalf("B's Acquire while A renews = %v, %v", ok, err)
		}
		time.Sleep(ttl / 3)
		if ok, err := a.Renew(ctx, "purge", "replica-a", ttl); err != nil || !ok {
			t.Fatalf("A's Renew = %v, %v", ok, err)
		}
	}
	died := time.Now()
	for {
		ok, err := b.Acquire(ctx, "purge", "replica-b", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(died); took < ttl-50*time.Millisecond {
		t.Fatalf("B took over %v after A's last renewal, before the ttl %v ran out", took, ttl)
	}
	if ok, err := a.Renew(ctx, "purge", "replica-a", ttl); err != nil || ok {
		t.Fatalf("A's Renew after B took over = %v, %v; want false", ok, err)
	}
}

func TestLease_RacingAcquiresHaveOneWinner(t *testing.T) {
	a, b := twoReplicas(t)
	for round := range 5 {
		name := fmt.Sprint("job-", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for i := range 8 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				ok, err := s.Acquire(context.Background(), name, fmt.Sprint("holder-", i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					winners++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("round %d: %d holders won the lease, want 1", round, winners)
		}
	}
}

// reports collects a subscription's reports.
type reports struct {
	mu   sync.Mutex
	errs []error
	c    chan struct{}
}

func newReports() *reports { return &reports{c: make(chan struct{}, 1)} }

func (r *reports) report(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	poke(r.c)
}

// wait waits until a report satisfies ok.
func (r *reports) wait(t *testing.T, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		for _, err := range r.errs {
			if ok(err) {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		select {
		case <-r.c:
		case <-deadline:
			t.Fatalf("no report of %s within 10s", what)
		}
	}
}

func TestChangeFeed_EveryConnectionKilled_ChangesStillArrive(t *testing.T) {
	// What a database restart does to the replicas: their pooled
	// connections and the listener all die at once.
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	admin := adminConn(t, pgtest.AdminDSN(t))
	ch := subscribeFor(t, b, nil, pollEvery)
	waitListening(t, admin, b, 1)
	publish(t, a, "before")
	receiveWithin(t, ch, time.Second)
	if n := killBackends(t, adminConn(t, dsn)); n < 2 {
		t.Fatalf("killed %d backends, want the pools' and the listener's", n)
	}
	start := time.Now()
	publish(t, a, "after")
	if got := receiveWithin(t, ch, time.Second); got.Key != "after" {
		t.Fatalf("received %+v, want key after", got)
	}
	t.Logf("delivered %v after every connection was killed", time.Since(start))
	waitListening(t, admin, b, 1)
}

func TestChangeFeed_IdleListenerPingsAndKeepsItsConnection(t *testing.T) {
	a, b := twoReplicas(t)
	admin := adminConn(t, pgtest.AdminDSN(t))
	rep := newReports()
	// Idle after 100ms, polling never: the listener pings several times.
	ch := subscribeHow(t, b, rep.report, subscription{pollEvery: time.Hour, listen: true, listenIdle: 100 * time.Millisecond})
	pids := waitListening(t, admin, b, 1)
	time.Sleep(500 * time.Millisecond)
	var ping string
	// The ping (an empty statement) is now the backend's last query.
	if err := admin.QueryRow(t.Context(), `SELECT query FROM pg_stat_activity WHERE pid = $1`, pids[0]).Scan(&ping); err != nil {
		t.Fatalf("the listener's backend %d is gone after idling: %v", pids[0], err)
	}
	if ping == "LISTEN "+changesChannel {
		t.Fatal("the idle listener never pinged")
	}
	publish(t, a, "after-idle")
	if got := receiveWithin(t, ch, time.Second); got.Key != "after-idle" {
		t.Fatalf("received %+v, want key after-idle", got)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.errs) != 0 {
		t.Fatalf("idling reported %v, want nothing", rep.errs)
	}
}
