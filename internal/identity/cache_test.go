package identity

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestTTLCache_Expiry(t *testing.T) {
	c := newTTLCache[int](10)
	now := time.Unix(1000, 0)
	c.put("a", 1, now.Add(time.Minute), now)
	if v, ok := c.get("a", now.Add(time.Minute-time.Nanosecond)); !ok || v != 1 {
		t.Fatalf("get before expiry = %v, %v", v, ok)
	}
	if _, ok := c.get("a", now.Add(time.Minute)); ok {
		t.Fatal("get at expiry hit")
	}
	if c.len() != 0 {
		t.Fatalf("expired entry not dropped on get: len %d", c.len())
	}
	c.put("b", 2, now, now)
	if c.len() != 0 {
		t.Fatal("an already expired entry was stored")
	}
	c.put("c", 3, now.Add(time.Minute), now)
	c.put("c", 4, now.Add(time.Minute), now)
	if v, _ := c.get("c", now); v != 4 || c.len() != 1 {
		t.Fatalf("replacing put: value %d, len %d", v, c.len())
	}
	c.purge()
	if _, ok := c.get("c", now); ok || c.len() != 0 {
		t.Fatal("purge kept an entry")
	}
}

func TestTTLCache_Bounded(t *testing.T) {
	const bound = 100
	c := newTTLCache[int](bound)
	now := time.Unix(1000, 0)
	for i := range 10 * bound {
		c.put(strconv.Itoa(i), i, now.Add(time.Hour), now)
		if c.len() > bound {
			t.Fatalf("len %d after %d puts, bound %d", c.len(), i+1, bound)
		}
	}
	// The newest entry always survives its own put.
	if v, ok := c.get(strconv.Itoa(10*bound-1), now); !ok || v != 10*bound-1 {
		t.Fatal("the latest put was evicted")
	}
}

func TestTTLCache_EvictsExpiredFirst(t *testing.T) {
	const bound = 8
	c := newTTLCache[int](bound)
	now := time.Unix(1000, 0)
	c.put("keep", 0, now.Add(time.Hour), now)
	for i := range bound - 1 {
		c.put(strconv.Itoa(i), i, now.Add(time.Second), now)
	}
	later := now.Add(time.Minute)
	c.put("new", 1, later.Add(time.Hour), later)
	if _, ok := c.get("keep", later); !ok {
		t.Fatal("a live entry was evicted while expired ones were there")
	}
	if c.len() != 2 {
		t.Fatalf("len %d after evicting the expired, want 2", c.len())
	}
}

func TestTTLCache_Concurrent(t *testing.T) {
	const bound = 64
	c := newTTLCache[int](bound)
	now := time.Unix(1000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := strconv.Itoa(g*100000 + i%200)
				c.put(k, i, now.Add(time.Hour), now)
				c.get(k, now)
				if i%500 == 0 {
					c.purge()
				}
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > bound+8 {
		t.Fatalf("len %d exceeds the bound %d by more than the number of writers", n, bound)
	}
}
