package dataplane

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// registryCacheTTL is how long a registry lookup (found or not) is
	// reused. It bounds how long another replica serves a registry that was
	// just deleted or created; the management plane calls Invalidate on its
	// own replica.
	registryCacheTTL = 5 * time.Second
	// registryCacheMax bounds the cache: names come from Host headers, which
	// anyone can make up, and negative answers are cached too.
	registryCacheMax = 4096
)

// registryCache remembers registry lookups for a short time, so that the
// request path does not query the metadata store for the registry on every
// request.
type registryCache struct {
	ttl time.Duration
	max int
	mu  sync.RWMutex
	m   map[string]registryEntry
	// gen counts invalidations. A lookup that read the store before an
	// invalidation must not cache what it read after it: the read may be
	// older than the change that caused the invalidation.
	gen uint64
}

type registryEntry struct {
	reg     meta.Registry
	found   bool
	expires time.Time
	// policy is the registry's compiled network policy; policyErr is set
	// instead when its configuration does not compile (requests are then
	// refused).
	policy    *netrule.Policy
	policyErr error
}

func newRegistryCache(ttl time.Duration, maxEntries int) *registryCache {
	return &registryCache{ttl: ttl, max: maxEntries, m: make(map[string]registryEntry)}
}

// lookup returns the registry named name (lower-case) with its compiled
// network policy, from the cache or the store. A registry that does not exist
// is meta.ErrNotFound; other store errors are returned and not cached.
func (c *registryCache) lookup(ctx context.Context, store meta.Store, name string, now time.Time) (registryEntry, error) {
	c.mu.RLock()
	e, ok := c.m[name]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		if !e.found {
			return registryEntry{}, meta.ErrNotFound
		}
		return e, nil
	}
	reg, err := store.GetRegistry(ctx, name)
	switch {
	case err == nil:
		eps, err := privatelink.ForRegistry(ctx, store, reg.ResourceID)
		if err != nil {
			return registryEntry{}, err
		}
		e := registryEntry{reg: reg, found: true, expires: now.Add(c.ttl)}
		e.policy, e.policyErr = compilePolicy(reg, eps)
		c.put(name, e, gen, now)
		return e, nil
	case errors.Is(err, meta.ErrNotFound):
		c.put(name, registryEntry{expires: now.Add(c.ttl)}, gen, now)
		return registryEntry{}, meta.ErrNotFound
	default:
		return registryEntry{}, err
	}
}

func (c *registryCache) put(name string, e registryEntry, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // invalidated while we read: what we read may be stale
	}
	if _, ok := c.m[name]; !ok && len(c.m) >= c.max {
		for k, v := range c.m {
			if !now.Before(v.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			// Flooded with live entries: start over rather than grow.
			clear(c.m)
		}
	}
	c.m[name] = e
}

func (c *registryCache) invalidate(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.gen++
	c.mu.Unlock()
}

// invalidateAll forgets every lookup (after a break in change
// notifications, when any registry may have changed unseen).
func (c *registryCache) invalidateAll() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

// keyedMutex serialises requests for the same upload within this process,
// so two chunks of one upload can never interleave their writes. Unrelated
// uploads never wait for each other.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns the function that unlocks it.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		l = &keyedLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
