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

// failureLimiter counts failures per key in a window that starts with the
// first failure; the failure that reaches max locks the key for a whole
// window from then. The data plane's login limits (loginlimit.go) use it too,
// with their own bounds.
type failureLimiter struct {
	now    func() time.Time
	max    int
	window time.Duration
	mu     sync.Mutex
	m      map[string]*failureCount
}

type failureCount struct {
	n     int
	until time.Time // the window's (or the lockout's) end
	// refused counts attempts refused while locked and not yet reported;
	// reportedAt is when they last were (see refuse).
	refused    int
	reportedAt time.Time
}

func newFailureLimiter(now func() time.Time) *failureLimiter {
	return newFailureLimiterWith(now, maxFailures, failureWindow)
}

func newFailureLimiterWith(now func() time.Time, maxN int, window time.Duration) *failureLimiter {
	return &failureLimiter{now: now, max: maxN, window: window, m: make(map[string]*failureCount)}
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
	return c.n >= l.max
}

// lockedFor reports whether key is locked and for how much longer.
func (l *failureLimiter) lockedFor(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[key]
	if !ok {
		return 0, false
	}
	now := l.now()
	if !now.Before(c.until) {
		delete(l.m, key)
		return 0, false
	}
	if c.n < l.max {
		return 0, false
	}
	return c.until.Sub(now), true
}

// refuse counts an attempt refused because key is locked. When the refused
// attempts not yet reported are due for a report (the first one, then at
// most one report per every), it returns their number and starts a new
// batch; otherwise 0.
func (l *failureLimiter) refuse(key string, every time.Duration) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[key]
	if !ok {
		return 0
	}
	c.refused++
	now := l.now()
	if !c.reportedAt.IsZero() && now.Sub(c.reportedAt) < every {
		return 0
	}
	n := c.refused
	c.refused, c.reportedAt = 0, now
	return n
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
		c = &failureCount{until: now.Add(l.window)}
		l.m[key] = c
	}
	c.n++
	if c.n == l.max {
		// A lockout lasts a whole window, however late in its window the
		// failure that caused it came.
		c.until = now.Add(l.window)
	}
	return c.n >= l.max
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
	for threshold := 1; threshold <= l.max+1; threshold++ {
		for k, c := range l.m {
			if len(l.m) <= target {
				return
			}
			// The last pass (threshold > l.max) takes any entry.
			if c.n <= threshold || threshold > l.max {
				delete(l.m, k)
			}
		}
	}
}
