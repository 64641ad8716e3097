package identity

import (
	"strings"
	"sync"
	"time"
)

// Brute-force protection for the token endpoint: after maxFailures wrong
// credentials for one client id or user name within failureWindow, further
// attempts for it are refused without checking them (no bcrypt) until the
// window ends, as Entra's smart lockout does (AADSTS50053). The state is per
// process and per EntraHandler; a locked-out name cannot lock out others.
// The trade-off is Entra's too: someone who knows a name can keep it locked.
const (
	maxFailures      = 10
	failureWindow    = 5 * time.Minute
	maxFailureKeys   = 10000
	failureKeyMaxLen = 300
)

type failureLimiter struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*failureCount
}

type failureCount struct {
	n     int
	until time.Time // the window's end
}

func newFailureLimiter(now func() time.Time) *failureLimiter {
	return &failureLimiter{now: now, m: make(map[string]*failureCount)}
}

func failureKey(kind, name string) string {
	return truncate(kind+":"+strings.ToLower(name), failureKeyMaxLen)
}

// locked reports whether key has used up its failures in the current window.
func (l *failureLimiter) locked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[key]
	if !ok {
		return false
	}
	if !l.now().Before(c.until) {
		delete(l.m, key)
		return false
	}
	return c.n >= maxFailures
}

// fail records a failure for key and reports whether key is now locked.
func (l *failureLimiter) fail(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c, ok := l.m[key]
	if !ok || !now.Before(c.until) {
		if len(l.m) >= maxFailureKeys {
			l.evictLocked(now)
		}
		c = &failureCount{until: now.Add(failureWindow)}
		l.m[key] = c
	}
	c.n++
	return c.n >= maxFailures
}

// succeed forgets key's failures.
func (l *failureLimiter) succeed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

// evictLocked drops expired windows, then, if the map is still full (a
// spray of distinct names), the ones with the fewest failures first, down to
// three quarters of the bound, so names near lockout are kept longest.
func (l *failureLimiter) evictLocked(now time.Time) {
	for k, c := range l.m {
		if !now.Before(c.until) {
			delete(l.m, k)
		}
	}
	target := maxFailureKeys * 3 / 4
	for threshold := 1; threshold <= maxFailures+1; threshold++ {
		for k, c := range l.m {
			if len(l.m) <= target {
				return
			}
			// The last pass (threshold > maxFailures) takes any entry.
			if c.n <= threshold || threshold > maxFailures {
				delete(l.m, k)
			}
		}
	}
}
