package metatest

import (
	"context"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// propagation is meta.ChangeFeed's delivery bound.
const propagation = time.Second

// changeChecks cover meta.ChangeFeed and meta.Leaser within one store, for
// stores that implement them (the others skip). That several processes
// sharing a database see each other's changes and leases needs two stores
// on one database, which each store's own tests build.
var changeChecks = []check{
	{"ChangeFeed/DeliversLaterChangesInOrder", func(e *env) {
		f := feed(e)
		if err := f.Publish(e.ctx, "registry", "before"); err != nil {
			e.t.Fatal(err)
		}
		ch := subscribe(e.ctx, e, f)
		for _, k := range []string{"a", "b", "a"} {
			if err := f.Publish(e.ctx, "registry", k); err != nil {
				e.t.Fatal(err)
			}
		}
		if err := f.Publish(e.ctx, "other", "Key With Spaces/ünïcode"); err != nil {
			e.t.Fatal(err)
		}
		var last int64
		for _, want := range []meta.Change{{Topic: "registry", Key: "a"}, {Topic: "registry", Key: "b"},
			{Topic: "registry", Key: "a"}, {Topic: "other", Key: "Key With Spaces/ünïcode"}} {
			got := receive(e, ch)
			if got.Topic != want.Topic || got.Key != want.Key {
				e.t.Fatalf("received %+v, want topic %q key %q (a change published before Subscribe must not arrive)", got, want.Topic, want.Key)
			}
			if got.Seq <= last {
				e.t.Fatalf("Seq %d after %d: want increasing", got.Seq, last)
			}
			last = got.Seq
		}
	}},
	{"ChangeFeed/EverySubscriberReceives", func(e *env) {
		f := feed(e)
		a, b := subscribe(e.ctx, e, f), subscribe(e.ctx, e, f)
		if err := f.Publish(e.ctx, "registry", "r"); err != nil {
			e.t.Fatal(err)
		}
		for _, ch := range []<-chan meta.Change{a, b} {
			if got := receive(e, ch); got.Key != "r" {
				e.t.Fatalf("received %+v, want key r", got)
			}
		}
	}},
	{"ChangeFeed/EmptyKeyIsAllowedEmptyTopicIsNot", func(e *env) {
		f := feed(e)
		ch := subscribe(e.ctx, e, f)
		if err := f.Publish(e.ctx, "", "k"); err == nil {
			e.t.Fatal("Publish with an empty topic succeeded")
		}
		if err := f.Publish(e.ctx, "all", ""); err != nil {
			e.t.Fatal(err)
		}
		if got := receive(e, ch); got.Topic != "all" || got.Key != "" {
			e.t.Fatalf("received %+v, want topic all with an empty key", got)
		}
	}},
	{"ChangeFeed/CancelClosesTheChannel", func(e *env) {
		f := feed(e)
		ctx, cancel := context.WithCancel(e.ctx)
		ch := subscribe(ctx, e, f)
		cancel()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-timeout:
				e.t.Fatal("channel still open 5s after the subscription's context was canceled")
			}
		}
	}},
	{"Leaser/OneHolderAtATime", func(e *env) {
		l := leaser(e)
		acquire(e, l, "purge", "a", time.Minute, true)
		acquire(e, l, "purge", "b", time.Minute, false)
		acquire(e, l, "purge", "a", time.Minute, true) // re-entrant
		acquire(e, l, "other", "b", time.Minute, true) // names are independent
		renew(e, l, "purge", "a", time.Minute, true)
		renew(e, l, "purge", "b", time.Minute, false)
		if err := l.Release(e.ctx, "purge", "b"); err != nil { // not b's: no-op
			e.t.Fatal(err)
		}
		acquire(e, l, "purge", "b", time.Minute, false)
		if err := l.Release(e.ctx, "purge", "a"); err != nil {
			e.t.Fatal(err)
		}
		renew(e, l, "purge", "a", time.Minute, false)
		acquire(e, l, "purge", "b", time.Minute, true)
		if err := l.Release(e.ctx, "nothing", "a"); err != nil {
			e.t.Fatalf("Release of a lease nobody holds: %v", err)
		}
	}},
	{"Leaser/ExpiredLeaseIsTakenOver", func(e *env) {
		l := leaser(e)
		const ttl = 300 * time.Millisecond
		acquire(e, l, "purge", "a", ttl, true)
		acquire(e, l, "purge", "b", ttl, false)
		time.Sleep(ttl + 50*time.Millisecond)
		acquire(e, l, "purge", "b", time.Minute, true)
		renew(e, l, "purge", "a", time.Minute, false)
		acquire(e, l, "purge", "a", time.Minute, false)
	}},
	{"Leaser/RenewKeepsTheLease", func(e *env) {
		l := leaser(e)
		const ttl = 300 * time.Millisecond
		acquire(e, l, "purge", "a", ttl, true)
		for range 4 {
			time.Sleep(ttl / 3)
			renew(e, l, "purge", "a", ttl, true)
			acquire(e, l, "purge", "b", ttl, false)
		}
	}},
	{"Leaser/RejectsBadArguments", func(e *env) {
		l := leaser(e)
		for _, c := range []struct {
			name, holder string
			ttl          time.Duration
		}{{"", "a", time.Second}, {"n", "", time.Second}, {"n", "a", 0}, {"n", "a", -time.Second}} {
			if ok, err := l.Acquire(e.ctx, c.name, c.holder, c.ttl); err == nil || ok {
				e.t.Errorf("Acquire(%q, %q, %v) = %v, %v; want an error", c.name, c.holder, c.ttl, ok, err)
			}
		}
	}},
}

func feed(e *env) meta.ChangeFeed {
	e.t.Helper()
	f, ok := e.s.(meta.ChangeFeed)
	if !ok {
		e.t.Skip("the store is not a meta.ChangeFeed")
	}
	return f
}

func leaser(e *env) meta.Leaser {
	e.t.Helper()
	l, ok := e.s.(meta.Leaser)
	if !ok {
		e.t.Skip("the store is not a meta.Leaser")
	}
	return l
}

// subscribe subscribes for the rest of the test (or until ctx ends) and
// waits, when the test ends, for the subscription to close its channel.
func subscribe(ctx context.Context, e *env, f meta.ChangeFeed) <-chan meta.Change {
	e.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	ch, err := f.Subscribe(ctx)
	if err != nil {
		cancel()
		e.t.Fatalf("Subscribe: %v", err)
	}
	t := e.t
	t.Cleanup(func() {
		cancel()
		drain(t, ch)
	})
	return ch
}

// drain reads ch until it is closed, so that the subscription's goroutines
// are gone before the store closes.
func drain(t *testing.T, ch <-chan meta.Change) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Error("subscription channel not closed 10s after its context was canceled")
			return
		}
	}
}

func receive(e *env, ch <-chan meta.Change) meta.Change {
	e.t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			e.t.Fatal("subscription channel closed")
		}
		return c
	case <-time.After(propagation):
		e.t.Fatalf("no change within %v", propagation)
	}
	return meta.Change{}
}

func acquire(e *env, l meta.Leaser, name, holder string, ttl time.Duration, want bool) {
	e.t.Helper()
	got, err := l.Acquire(e.ctx, name, holder, ttl)
	if err != nil {
		e.t.Fatalf("Acquire(%q, %q): %v", name, holder, err)
	}
	if got != want {
		e.t.Fatalf("Acquire(%q, %q) = %v, want %v", name, holder, got, want)
	}
}

func renew(e *env, l meta.Leaser, name, holder string, ttl time.Duration, want bool) {
	e.t.Helper()
	got, err := l.Renew(e.ctx, name, holder, ttl)
	if err != nil {
		e.t.Fatalf("Renew(%q, %q): %v", name, holder, err)
	}
	if got != want {
		e.t.Fatalf("Renew(%q, %q) = %v, want %v", name, holder, got, want)
	}
}
