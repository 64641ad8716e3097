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

// racingStore invalidates the cache between reading a registry and
// returning it, as a change notification arriving mid-lookup would.
type racingStore struct {
	meta.Store
	c     *registryCache
	reads atomic.Int32
}

func (s *racingStore) GetRegistry(ctx context.Context, name string) (meta.Registry, error) {
	s.reads.Add(1)
	r, err := s.Store.GetRegistry(ctx, name)
	s.c.invalidate(name)
	return r, err
}

// TestRegistryCache_InvalidationDuringLookupIsNotOverwritten: a lookup that
// read the store before an invalidation does not cache its (possibly stale)
// answer; InvalidateAll forgets everything.
func TestRegistryCache_InvalidationDuringLookupIsNotOverwritten(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newRegistryCache(time.Minute, 10)
	rs := &racingStore{Store: e.meta, c: c}
	now := time.Now()
	for range 2 {
		if _, err := c.lookup(ctx, rs, "moat", now); err != nil {
			t.Fatal(err)
		}
	}
	if n := rs.reads.Load(); n != 2 {
		t.Fatalf("store read %d times, want 2 (the raced answer must not be cached)", n)
	}
	// Without the race the answer is cached, and InvalidateAll drops it.
	if _, err := c.lookup(ctx, e.meta, "moat", now); err != nil {
		t.Fatal(err)
	}
	if len(c.m) != 1 {
		t.Fatalf("cache has %d entries, want 1", len(c.m))
	}
	c.invalidateAll()
	if len(c.m) != 0 {
		t.Fatalf("InvalidateAll left %d entries", len(c.m))
	}
}
