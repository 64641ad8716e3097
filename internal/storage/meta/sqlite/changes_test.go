package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// twoStores opens two Stores on one file: to SQLite they are two processes.
func twoStores(t *testing.T) (*Store, *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	return open(t, path), open(t, path)
}

// subscribeFor subscribes until the test ends and then waits for the
// subscription to finish.
func subscribeFor(t *testing.T, s *Store, report func(error), every time.Duration) <-chan meta.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.subscribe(ctx, report, every)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		// Drain until the subscription closes the channel: its goroutine
		// is gone before the store closes.
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

func TestChangeFeed_OtherProcessReceivesWithinASecond(t *testing.T) {
	ctx := t.Context()
	a, b := twoStores(t)
	onA, onB := subscribeFor(t, a, nil, pollEvery), subscribeFor(t, b, nil, pollEvery)
	var worst time.Duration
	for i := range 5 {
		start := time.Now()
		if err := a.Publish(ctx, "registry", "r"); err != nil {
			t.Fatal(err)
		}
		if got := receiveWithin(t, onB, time.Second); got.Topic != "registry" || got.Key != "r" {
			t.Fatalf("B received %+v, want registry r", got)
		}
		worst = max(worst, time.Since(start))
		receiveWithin(t, onA, time.Second)
		if i == 2 {
			// And the other way round.
			if err := b.Publish(ctx, "registry", "s"); err != nil {
				t.Fatal(err)
			}
			if got := receiveWithin(t, onA, time.Second); got.Key != "s" {
				t.Fatalf("A received %+v, want key s", got)
			}
			receiveWithin(t, onB, time.Second)
		}
	}
	t.Logf("slowest delivery to the other process: %v (poll every %v)", worst, pollEvery)
}

func TestChangeFeed_PublishWakesTheStoresOwnSubscriptions(t *testing.T) {
	s := newStore(t)
	// With an hour between polls, only Publish's wake-up can deliver.
	ch := subscribeFor(t, s, nil, time.Hour)
	start := time.Now()
	if err := s.Publish(t.Context(), "registry", "r"); err != nil {
		t.Fatal(err)
	}
	receiveWithin(t, ch, time.Second)
	t.Logf("in-process delivery: %v", time.Since(start))
}

func TestChangeFeed_PruneKeepsTheNewestSoSeqNeverGoesBack(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	old := time.Now().Add(-meta.ChangeRetention - time.Minute).UnixNano()
	for seq := int64(1); seq <= 3; seq++ {
		if _, err := s.rw.ExecContext(ctx, `INSERT INTO changes (seq, topic, change_key, created_at) VALUES ($1, 'registry', 'old', $2)`, seq, old); err != nil {
			t.Fatal(err)
		}
	}
	ch := subscribeFor(t, s, nil, pollEvery)
	if err := s.Publish(ctx, "registry", "new"); err != nil {
		t.Fatal(err)
	}
	if got := receiveWithin(t, ch, time.Second); got.Seq != 4 || got.Key != "new" {
		t.Fatalf("received %+v, want seq 4 key new", got)
	}
	var n int
	if err := s.ro.QueryRowContext(ctx, `SELECT count(*) FROM changes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d rows after pruning, want 1 (the new one)", n)
	}
	// All rows old now: the newest must survive so that seq continues.
	if _, err := s.rw.ExecContext(ctx, `UPDATE changes SET created_at = $1`, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, "registry", "newer"); err != nil {
		t.Fatal(err)
	}
	if got := receiveWithin(t, ch, time.Second); got.Seq != 5 {
		t.Fatalf("received %+v, want seq 5", got)
	}
}

// reports collects a subscription's reports.
type reports struct {
	mu   sync.Mutex
	errs []error
	c    chan struct{}
}

func newReports() *reports { return &reports{c: make(chan struct{}, 100)} }

func (r *reports) report(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	poke(r.c)
}

// wait waits until a report satisfies ok.
func (r *reports) wait(t *testing.T, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
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
			t.Fatalf("no report of %s within 5s", what)
		}
	}
}

func TestChangeFeed_FailedPollsAreReportedAndNothingIsSkipped(t *testing.T) {
	ctx := t.Context()
	a, b := twoStores(t)
	rep := newReports()
	ch := subscribeFor(t, b, rep.report, pollEvery)
	// Take the table away under B's subscription: its polls fail.
	if _, err := a.rw.ExecContext(ctx, `ALTER TABLE changes RENAME TO changes_away`); err != nil {
		t.Fatal(err)
	}
	rep.wait(t, "a failure", func(err error) bool { return err != nil })
	if _, err := a.rw.ExecContext(ctx, `INSERT INTO changes_away (seq, topic, change_key, created_at) VALUES (1, 'registry', 'during', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.rw.ExecContext(ctx, `ALTER TABLE changes_away RENAME TO changes`); err != nil {
		t.Fatal(err)
	}
	if got := receiveWithin(t, ch, time.Second); got.Key != "during" {
		t.Fatalf("received %+v, want the change made while polls failed", got)
	}
	rep.wait(t, "recovery", func(err error) bool { return err == nil })
	if err := a.Publish(ctx, "registry", "after"); err != nil {
		t.Fatal(err)
	}
	if got := receiveWithin(t, ch, time.Second); got.Key != "after" {
		t.Fatalf("received %+v, want key after", got)
	}
}

func TestChangeFeed_SubscribeOnAClosedStoreFails(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(t.Context()); err == nil {
		t.Fatal("Subscribe on a closed store succeeded")
	}
	wakers.Lock()
	defer wakers.Unlock()
	if _, ok := wakers.m[s]; ok {
		t.Fatal("a failed Subscribe left its wake channel registered")
	}
}

func TestLease_TwoProcesses(t *testing.T) {
	ctx := t.Context()
	a, b := twoStores(t)
	const ttl = 300 * time.Millisecond
	okA, errA := a.Acquire(ctx, "purge", "replica-a", ttl)
	okB, errB := b.Acquire(ctx, "purge", "replica-b", ttl)
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	if !okA || okB {
		t.Fatalf("Acquire: a=%v b=%v, want only a", okA, okB)
	}
	// A renews for a while; B keeps failing.
	for range 3 {
		time.Sleep(ttl / 3)
		if ok, err := a.Renew(ctx, "purge", "replica-a", ttl); err != nil || !ok {
			t.Fatalf("A's Renew = %v, %v", ok, err)
		}
		if ok, err := b.Acquire(ctx, "purge", "replica-b", ttl); err != nil || ok {
			t.Fatalf("B's Acquire while A renews = %v, %v", ok, err)
		}
	}
	// A dies (stops renewing): B takes over once the ttl has run out.
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
