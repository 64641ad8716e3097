package replica_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/replica"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// runFanout runs f until the test ends.
func runFanout(t *testing.T, f *replica.Fanout) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-f.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Fanout not subscribed within 5s")
	}
}

// keys collects the keys a handler is called with.
type keys struct {
	mu sync.Mutex
	k  []string
	c  chan string
}

func newKeys() *keys { return &keys{c: make(chan string, 100)} }

func (k *keys) add(key string) {
	k.mu.Lock()
	k.k = append(k.k, key)
	k.mu.Unlock()
	k.c <- key
}

func (k *keys) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case key := <-k.c:
		return key
	case <-time.After(within):
		t.Fatalf("no callback within %v", within)
	}
	return ""
}

func TestFanout_ChangeOnOneReplicaInvalidatesTheOther(t *testing.T) {
	ss := stores(t, 2)
	log, _ := testLogger()
	f := replica.NewFanout(ss[1], replica.WithLogger(log))
	registries, other := newKeys(), newKeys()
	f.Handle("registry", registries.add)
	f.Handle("network-rule", other.add)
	runFanout(t, f)

	start := time.Now()
	if err := ss[0].Publish(t.Context(), "registry", "myregistry"); err != nil {
		t.Fatal(err)
	}
	if got := registries.next(t, time.Second); got != "myregistry" {
		t.Fatalf("registry handler got %q, want myregistry", got)
	}
	t.Logf("published on one replica, handled on the other after %v", time.Since(start))
	if err := ss[0].Publish(t.Context(), "unhandled-topic", "x"); err != nil {
		t.Fatal(err)
	}
	if err := ss[0].Publish(t.Context(), "network-rule", "r2"); err != nil {
		t.Fatal(err)
	}
	if got := other.next(t, time.Second); got != "r2" {
		t.Fatalf("network-rule handler got %q, want r2", got)
	}
	registries.mu.Lock()
	defer registries.mu.Unlock()
	if len(registries.k) != 1 {
		t.Fatalf("registry handler called with %q, want only myregistry", registries.k)
	}
}

// fakeFeed is a ChangeFeed whose subscriptions the test controls.
type fakeFeed struct {
	mu        sync.Mutex
	failures  int // Subscribe fails this many more times
	subs      []chan meta.Change
	reports   []func(error)
	subscribe chan struct{}
}

func newFakeFeed(failures int) *fakeFeed {
	return &fakeFeed{failures: failures, subscribe: make(chan struct{}, 10)}
}

func (f *fakeFeed) Publish(context.Context, string, string) error { return nil }

func (f *fakeFeed) Subscribe(ctx context.Context) (<-chan meta.Change, error) {
	return f.SubscribeReporting(ctx, nil)
}

func (f *fakeFeed) SubscribeReporting(ctx context.Context, report func(error)) (<-chan meta.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return nil, errors.New("database is down")
	}
	ch := make(chan meta.Change, 10)
	f.subs = append(f.subs, ch)
	f.reports = append(f.reports, report)
	f.subscribe <- struct{}{}
	return ch, nil
}

// current returns the newest subscription's channel and report function.
func (f *fakeFeed) current() (chan meta.Change, func(error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs[len(f.subs)-1], f.reports[len(f.reports)-1]
}

var _ meta.ReportingChangeFeed = (*fakeFeed)(nil)

func TestFanout_SubscribeFailuresAreRetriedAndFollowedByAResync(t *testing.T) {
	feed := newFakeFeed(2)
	log, buf := testLogger()
	f := replica.NewFanout(feed, replica.WithLogger(log))
	resyncs := make(chan struct{}, 10)
	f.OnResync(func() { resyncs <- struct{}{} })
	runFanout(t, f)
	select {
	case <-resyncs:
	case <-time.After(time.Second):
		t.Fatal("no resync after subscribing failed: changes made meanwhile could be missed")
	}
	if n := strings.Count(buf.String(), "subscribing to configuration changes failed"); n != 2 {
		t.Fatalf("logged %d subscribe failures, want 2; log:\n%s", n, buf.String())
	}
}

func TestFanout_FirstSubscriptionNeedsNoResync(t *testing.T) {
	feed := newFakeFeed(0)
	log, _ := testLogger()
	f := replica.NewFanout(feed, replica.WithLogger(log))
	resynced := false
	var mu sync.Mutex
	f.OnResync(func() { mu.Lock(); resynced = true; mu.Unlock() })
	got := newKeys()
	f.Handle("registry", got.add)
	runFanout(t, f)
	ch, _ := feed.current()
	ch <- meta.Change{Topic: "registry", Key: "r", Seq: 1}
	got.next(t, time.Second)
	mu.Lock()
	defer mu.Unlock()
	if resynced {
		t.Fatal("resync on the first subscription")
	}
}

func TestFanout_EndedSubscriptionIsRenewedAndResyncs(t *testing.T) {
	feed := newFakeFeed(0)
	log, buf := testLogger()
	f := replica.NewFanout(feed, replica.WithLogger(log))
	resyncs := make(chan struct{}, 10)
	f.OnResync(func() { resyncs <- struct{}{} })
	got := newKeys()
	f.Handle("registry", got.add)
	runFanout(t, f)
	<-feed.subscribe
	first, _ := feed.current()
	close(first)
	select {
	case <-feed.subscribe:
	case <-time.After(2 * time.Second):
		t.Fatal("no new subscription after the first one ended")
	}
	select {
	case <-resyncs:
	case <-time.After(time.Second):
		t.Fatal("no resync after the subscription ended")
	}
	second, _ := feed.current()
	second <- meta.Change{Topic: "registry", Key: "after"}
	if k := got.next(t, time.Second); k != "after" {
		t.Fatalf("handler got %q, want after", k)
	}
	if !strings.Contains(buf.String(), "subscription ended") {
		t.Fatalf("the ended subscription was not logged; log:\n%s", buf.String())
	}
}

func TestFanout_ReportsAreLoggedOncePerStreak(t *testing.T) {
	feed := newFakeFeed(0)
	log, buf := testLogger()
	f := replica.NewFanout(feed, replica.WithLogger(log))
	runFanout(t, f)
	_, report := feed.current()
	for range 5 {
		report(errors.New("poll failed"))
	}
	report(nil)
	report(nil)
	out := buf.String()
	if n := strings.Count(out, "the change feed failed"); n != 1 {
		t.Fatalf("logged the failure %d times, want once per streak; log:\n%s", n, out)
	}
	if n := strings.Count(out, "works again"); n != 1 {
		t.Fatalf("logged the recovery %d times, want once; log:\n%s", n, out)
	}
}

func TestFanout_APanickingHandlerDoesNotStopTheOthers(t *testing.T) {
	feed := newFakeFeed(0)
	log, buf := testLogger()
	f := replica.NewFanout(feed, replica.WithLogger(log))
	f.Handle("registry", func(key string) {
		if key == "bad" {
			panic("handler bug")
		}
	})
	got := newKeys()
	f.Handle("registry", got.add)
	runFanout(t, f)
	ch, _ := feed.current()
	ch <- meta.Change{Topic: "registry", Key: "bad"}
	ch <- meta.Change{Topic: "registry", Key: "good"}
	if k := got.next(t, time.Second); k != "bad" {
		t.Fatalf("second handler got %q first, want bad (handlers of one change all run)", k)
	}
	if k := got.next(t, time.Second); k != "good" {
		t.Fatalf("handler got %q, want good", k)
	}
	if !strings.Contains(buf.String(), "panicked") {
		t.Fatalf("the panic was not logged; log:\n%s", buf.String())
	}
}
