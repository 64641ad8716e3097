package identity

import (
	"sync"
	"sync/atomic"
	"time"
)

// ttlCache is a bounded map from string keys to values that expire.
//
// It sits on the path of every data-plane request, so lookups take no lock
// (sync.Map is read-mostly friendly). Its size is bounded whatever callers
// send: a put into a full cache first drops expired entries and then
// arbitrary ones down to three quarters of the bound. Concurrent puts may
// overshoot the bound by at most the number of goroutines racing. purge swaps
// in an empty map, so a put racing with a purge is lost with the old map;
// callers that must not let such a put survive carry their own generation in
// the value (see basicEntry).
type ttlCache[V any] struct {
	max     int
	cur     atomic.Pointer[ttlMap[V]]
	evictMu sync.Mutex
}

type ttlMap[V any] struct {
	m sync.Map // string -> *ttlEntry[V]
	n atomic.Int64
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[V any](maxEntries int) *ttlCache[V] {
	c := &ttlCache[V]{max: max(maxEntries, 1)}
	c.cur.Store(new(ttlMap[V]))
	return c
}

// get returns the value stored under key if it has not expired at now.
func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	var zero V
	m := c.cur.Load()
	raw, ok := m.m.Load(key)
	if !ok {
		return zero, false
	}
	e := raw.(*ttlEntry[V])
	if !now.Before(e.expires) {
		if m.m.CompareAndDelete(key, raw) {
			m.n.Add(-1)
		}
		return zero, false
	}
	return e.v, true
}

// put stores v under key until expires. Entries already expired at now are
// not stored.
func (c *ttlCache[V]) put(key string, v V, expires, now time.Time) {
	if !now.Before(expires) {
		return
	}
	m := c.cur.Load()
	if m.n.Load() >= int64(c.max) {
		c.evict(m, now)
	}
	if _, loaded := m.m.Swap(key, &ttlEntry[V]{v: v, expires: expires}); !loaded {
		m.n.Add(1)
	}
}

// evict makes room in m: expired entries first, then arbitrary ones (sync.Map
// ranges in hash order, which is as good as random for this purpose).
func (c *ttlCache[V]) evict(m *ttlMap[V], now time.Time) {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	if m.n.Load() < int64(c.max) {
		return // another put made room while we waited
	}
	m.m.Range(func(k, raw any) bool {
		if !now.Before(raw.(*ttlEntry[V]).expires) && m.m.CompareAndDelete(k, raw) {
			m.n.Add(-1)
		}
		return true
	})
	target := int64(c.max) * 3 / 4
	m.m.Range(func(k, _ any) bool {
		if m.n.Load() <= target {
			return false
		}
		if _, ok := m.m.LoadAndDelete(k); ok {
			m.n.Add(-1)
		}
		return true
	})
}

// purge drops every entry.
func (c *ttlCache[V]) purge() {
	c.cur.Store(new(ttlMap[V]))
}

// len is the number of entries, expired ones included until they are dropped.
func (c *ttlCache[V]) len() int {
	return int(c.cur.Load().n.Load())
}
