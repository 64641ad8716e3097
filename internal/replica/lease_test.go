package replica_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/replica"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// stores opens n Stores on one SQLite file: n processes sharing it.
func stores(t *testing.T, n int) []*sqlite.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	out := make([]*sqlite.Store, n)
	for i := range out {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		out[i] = s
	}
	return out
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// work records which replicas ran and that no two ran at once.
type work struct {
	active  atomic.Int32
	overlap atomic.Bool
	mu      sync.Mutex
	starts  []string
	started chan string
}

func newWork() *work { return &work{started: make(chan string, 16)} }

// fn is the exclusive work of replica id: it runs until canceled.
func (w *work) fn(id string) func(context.Context) {
	return func(ctx context.Context) {
		if w.active.Add(1) > 1 {
			w.overlap.Store(true)
		}
		w.mu.Lock()
		w.starts = append(w.starts, id)
		w.mu.Unlock()
		w.started <- id
		<-ctx.Done()
		w.active.Add(-1)
	}
}

func (w *work) waitStart(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case id := <-w.started:
		return id
	case <-time.After(within):
		t.Fatalf("no replica started the work within %v", within)
	}
	return ""
}

// replicaRun runs RunExclusive in the background until stop is called
// (stop waits for it to return).
func replicaRun(t *testing.T, l meta.Leaser, id string, ttl time.Duration, fn func(context.Context), opts ...replica.Option) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- replica.RunExclusive(ctx, l, "purge", ttl, fn, append(opts, replica.WithHolder(id))...)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RunExclusive(%s) = %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRunExclusive_TwoReplicasOneRuns(t *testing.T) {
	ss := stores(t, 2)
	w := newWork()
	const ttl = 600 * time.Millisecond
	replicaRun(t, ss[0], "a", ttl, w.fn("a"))
	replicaRun(t, ss[1], "b", ttl, w.fn("b"))
	first := w.waitStart(t, 2*time.Second)
	// Several ttls pass with the holder renewing: nobody else starts.
	select {
	case id := <-w.started:
		t.Fatalf("replica %s started while %s held the lease", id, first)
	case <-time.After(3 * ttl):
	}
	if w.overlap.Load() {
		t.Fatal("two replicas ran the work at once")
	}
}

// breakable is a Leaser that can be cut off from the store, as a replica
// that hangs or loses its network is.
type breakable struct {
	meta.Leaser
	broken atomic.Bool
}

var errCutOff = errors.New("cut off from the store")

func (b *breakable) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if b.broken.Load() {
		return false, errCutOff
	}
	return b.Leaser.Acquire(ctx, name, holder, ttl)
}

func (b *breakable) Renew(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if b.broken.Load() {
		return false, errCutOff
	}
	return b.Leaser.Renew(ctx, name, holder, ttl)
}

func (b *breakable) Release(ctx context.Context, name, holder string) error {
	if b.broken.Load() {
		return errCutOff
	}
	return b.Leaser.Release(ctx, name, holder)
}

func TestRunExclusive_HolderStopsRenewing_SurvivorTakesOverAfterTTL(t *testing.T) {
	ss := stores(t, 2)
	w := newWork()
	const ttl = 600 * time.Millisecond
	la := &breakable{Leaser: ss[0]}
	logA, bufA := testLogger()
	stopA := replicaRun(t, la, "a", ttl, w.fn("a"), replica.WithLogger(logA))
	if id := w.waitStart(t, 2*time.Second); id != "a" {
		t.Fatalf("%s started first, want a (b is not running yet)", id)
	}
	replicaRun(t, ss[1], "b", ttl, w.fn("b"))
	time.Sleep(ttl) // b tries and fails while a renews
	la.broken.Store(true)
	cut := time.Now()
	if id := w.waitStart(t, 3*ttl); id != "b" {
		t.Fatalf("%s started, want the survivor b", id)
	}
	took := time.Since(cut)
	// a's last renewal was at most ttl/3 before the cut; the lease expires
	// ttl after it.
	if took < ttl-ttl/3-50*time.Millisecond {
		t.Fatalf("b took over %v after a was cut off, before a's lease (ttl %v) can have expired", took, ttl)
	}
	if w.overlap.Load() {
		t.Fatal("a still ran when b started: a must stop before its lease can expire")
	}
	t.Logf("survivor took over %v after the holder was cut off (ttl %v)", took, ttl)
	stopA()
	if !strings.Contains(bufA.String(), "stopping its work here") {
		t.Fatalf("a did not log that it stopped; log:\n%s", bufA.String())
	}
}

func TestRunExclusive_CleanStopReleasesForAQuickTakeover(t *testing.T) {
	ss := stores(t, 2)
	w := newWork()
	const ttl = 3 * time.Second
	stopA := replicaRun(t, ss[0], "a", ttl, w.fn("a"))
	if id := w.waitStart(t, 2*time.Second); id != "a" {
		t.Fatalf("%s started, want a", id)
	}
	replicaRun(t, ss[1], "b", ttl, w.fn("b"))
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	stopA()
	// b retries every ttl/3 = 1s; without the release it would wait 3s.
	if id := w.waitStart(t, 2*time.Second); id != "b" {
		t.Fatalf("%s started, want b", id)
	}
	t.Logf("takeover after a clean stop: %v (ttl %v)", time.Since(start), ttl)
}

func TestRunExclusive_WorkThatReturnsReleasesTheLease(t *testing.T) {
	ss := stores(t, 1)
	ran := make(chan struct{})
	err := replica.RunExclusive(t.Context(), ss[0], "once", time.Minute, func(context.Context) { close(ran) })
	if err != nil {
		t.Fatal(err)
	}
	<-ran
	if ok, err := ss[0].Acquire(t.Context(), "once", "other", time.Minute); err != nil || !ok {
		t.Fatalf("Acquire after the work returned = %v, %v; want the lease free", ok, err)
	}
}

func TestRunExclusive_LostLeaseCancelsTheWork(t *testing.T) {
	ss := stores(t, 1)
	const ttl = 300 * time.Millisecond
	// Buffered: the work may run before the test waits, and a signal sent
	// with select-default into an unbuffered channel would be lost.
	canceled := make(chan struct{}, 1)
	started := make(chan struct{}, 1)
	stop := replicaRun(t, ss[0], "a", ttl, func(ctx context.Context) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		select {
		case canceled <- struct{}{}:
		default:
		}
	})
	<-started
	// Someone else takes the lease over (an operator, or a replica after a
	// long pause of this one): the next renewal finds out.
	if err := ss[0].Release(t.Context(), "purge", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := ss[0].Acquire(t.Context(), "purge", "intruder", time.Minute); err != nil || !ok {
		t.Fatalf("intruder's Acquire = %v, %v", ok, err)
	}
	select {
	case <-canceled:
	case <-time.After(2 * ttl):
		t.Fatal("the work was not canceled after the lease was lost")
	}
	stop()
}

func TestRunExclusive_RejectsBadArguments(t *testing.T) {
	ss := stores(t, 1)
	fn := func(context.Context) {}
	for name, err := range map[string]error{
		"no leaser":  replica.RunExclusive(t.Context(), nil, "n", time.Second, fn),
		"no fn":      replica.RunExclusive(t.Context(), ss[0], "n", time.Second, nil),
		"no name":    replica.RunExclusive(t.Context(), ss[0], "", time.Second, fn),
		"ttl zero":   replica.RunExclusive(t.Context(), ss[0], "n", 0, fn),
		"ttl too ns": replica.RunExclusive(t.Context(), ss[0], "n", time.Nanosecond, fn),
	} {
		if err == nil {
			t.Errorf("%s: RunExclusive succeeded", name)
		}
	}
}

func TestNewHolderID_Unique(t *testing.T) {
	a, b := replica.NewHolderID(), replica.NewHolderID()
	if a == b || a == "" {
		t.Fatalf("NewHolderID = %q, %q; want two different ids", a, b)
	}
}
