package replica

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// Resubscribing after a failed or ended subscription backs off from
// resubscribeMin to resubscribeMax.
const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
)

// Fanout delivers the changes of a meta.ChangeFeed to the callbacks
// registered for their topics, for as long as Run runs.
type Fanout struct {
	feed meta.ChangeFeed
	log  *slog.Logger

	mu       sync.Mutex
	handlers map[string][]func(key string)
	resyncs  []func()

	ready     chan struct{}
	readyOnce sync.Once

	reportMu sync.Mutex
	reports  failureLog
}

// NewFanout returns a Fanout over feed. Register callbacks with Handle and
// OnResync, then start Run. Of the options, WithLogger applies.
func NewFanout(feed meta.ChangeFeed, opts ...Option) *Fanout {
	o := applyOptions(opts)
	return &Fanout{feed: feed, log: o.log.With("component", "change-fanout"),
		handlers: map[string][]func(string){}, ready: make(chan struct{})}
}

// Handle calls fn with the key of every change of topic. fn runs on Run's
// goroutine and must return quickly (drop a cache entry, wake a worker).
func (f *Fanout) Handle(topic string, fn func(key string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[topic] = append(f.handlers[topic], fn)
}

// OnResync calls fn after a break in the subscription, when changes may
// have been missed: fn should drop everything it caches from the store.
func (f *Fanout) OnResync(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resyncs = append(f.resyncs, fn)
}

// Ready is closed once Run has subscribed for the first time: changes
// published after that are delivered.
func (f *Fanout) Ready() <-chan struct{} { return f.ready }

// Run subscribes to the feed and dispatches its changes until ctx is done.
func (f *Fanout) Run(ctx context.Context) {
	backoff := resubscribeMin
	broken := false // a change may have been missed since the last subscription
	for {
		ch, err := f.subscribe(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.log.Warn("subscribing to configuration changes failed; trying again", "in", backoff, "error", err)
			broken = true
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, resubscribeMax)
			continue
		}
		backoff = resubscribeMin
		f.readyOnce.Do(func() { close(f.ready) })
		if broken {
			f.log.Info("subscribed to configuration changes again; dropping cached configuration")
			f.resync()
		}
		if !f.drain(ctx, ch) {
			return
		}
		f.log.Warn("the configuration change subscription ended; subscribing again")
		broken = true
	}
}

// drain dispatches the subscription's changes until it ends; it reports
// whether ctx is still live. It does not rely on the feed closing the
// channel when ctx is done.
func (f *Fanout) drain(ctx context.Context, ch <-chan meta.Change) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case c, ok := <-ch:
			if !ok {
				return ctx.Err() == nil
			}
			f.dispatch(c)
		}
	}
}

func (f *Fanout) subscribe(ctx context.Context) (<-chan meta.Change, error) {
	if rf, ok := f.feed.(meta.ReportingChangeFeed); ok {
		return rf.SubscribeReporting(ctx, f.report)
	}
	return f.feed.Subscribe(ctx)
}

// report logs the failures a subscription recovers from by itself: the
// first of a streak, then at most every failureLogEvery, and the recovery.
func (f *Fanout) report(err error) {
	f.reportMu.Lock()
	defer f.reportMu.Unlock()
	if err != nil {
		f.reports.fail(f.log, "configuration changes are delayed: the change feed failed; it retries by itself", err)
		return
	}
	f.reports.ok(f.log, "the change feed works again")
}

func (f *Fanout) dispatch(c meta.Change) {
	f.mu.Lock()
	hs := f.handlers[c.Topic]
	f.mu.Unlock()
	for _, h := range hs {
		f.call(fmt.Sprintf("handler of topic %q", c.Topic), func() { h(c.Key) }, "key", c.Key)
	}
}

func (f *Fanout) resync() {
	f.mu.Lock()
	rs := f.resyncs
	f.mu.Unlock()
	for _, r := range rs {
		f.call("resync callback", r)
	}
}

// call runs fn, logging a panic instead of ending the fan-out: one broken
// callback must not stop every other cache from hearing of changes.
func (f *Fanout) call(what string, fn func(), attrs ...any) {
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("a configuration change callback panicked", append(attrs, "callback", what, "panic", p, "stack", string(debug.Stack()))...)
		}
	}()
	fn()
}

// sleep waits for d or ctx; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
