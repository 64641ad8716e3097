package dataplane

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestRegistryCache_TTLAndInvalidate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newRegistryCache(time.Minute, 10)
	t0 := time.Now()

	if _, err := c.lookup(ctx, e.meta, "moat", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.lookup(ctx, e.meta, "later", t0); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("unknown registry: %v", err)
	}
	if _, err := e.meta.CreateRegistry(ctx, meta.Registry{Name: "later", SKU: "Basic"}); err != nil {
		t.Fatal(err)
	}
	if err := e.meta.DeleteRegistry(ctx, "moat"); err != nil {
		t.Fatal(err)
	}
	// Within the TTL both answers stand.
	if _, err := c.lookup(ctx, e.meta, "moat", t0.Add(30*time.Second)); err != nil {
		t.Errorf("cached registry: %v", err)
	}
	if _, err := c.lookup(ctx, e.meta, "later", t0.Add(30*time.Second)); !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("cached absence: %v", err)
	}
	// After it, or after Invalidate, the store is asked again.
	if _, err := c.lookup(ctx, e.meta, "moat", t0.Add(2*time.Minute)); !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("expired entry: %v", err)
	}
	c.invalidate("later")
	if _, err := c.lookup(ctx, e.meta, "later", t0.Add(30*time.Second)); err != nil {
		t.Errorf("invalidated absence: %v", err)
	}
}

func TestRegistryCache_Bounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newRegistryCache(time.Minute, 8)
	now := time.Now()
	for i := range 100 {
		_, _ = c.lookup(ctx, e.meta, "ghost"+strconv.Itoa(i), now)
		if len(c.m) > 8 {
			t.Fatalf("cache grew to %d entries", len(c.m))
		}
	}
}

func TestKeyedMutex(t *testing.T) {
	k := keyedMutex{m: map[string]*keyedLock{}}
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "a"
			if i%2 == 1 {
				key = "b"
			}
			unlock := k.lock(key)
			if key == "a" {
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
			}
			unlock()
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Errorf("%d holders of one key at once", maxInside.Load())
	}
	if len(k.m) != 0 {
		t.Errorf("%d locks left behind", len(k.m))
	}
}
