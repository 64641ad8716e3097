package identity

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newService returns a Service over store with cheap bcrypt and clock.
func newService(t testing.TB, store meta.Store, clock *testClock, mod ...func(*Options)) *Service {
	t.Helper()
	opts := Options{Issuer: "moat", BcryptCost: bcrypt.MinCost, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mod {
		m(&opts)
	}
	s, err := New(context.Background(), store, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// newAdmin returns a fresh store, a Service over it and the admin with its
// password.
func newAdmin(t testing.TB) (meta.Store, *testClock, *Service, Principal, string) {
	t.Helper()
	store := openStore(t)
	clock := newTestClock()
	s := newService(t, store, clock)
	ctx := context.Background()
	pw, created, err := s.EnsureAdmin(ctx, "")
	if err != nil || !created {
		t.Fatalf("EnsureAdmin = %v, %v", created, err)
	}
	p, err := s.AuthenticateBasic(ctx, AdminName, pw)
	if err != nil {
		t.Fatalf("AuthenticateBasic(admin): %v", err)
	}
	return store, clock, s, p, pw
}

// openStore opens a real SQLite metadata store in a temporary directory.
func openStore(t testing.TB) meta.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return st
}

// countingStore wraps the real store to count the calls the caches should
// save, and to make some of them fail on demand.
type countingStore struct {
	meta.Store
	listKeys     atomic.Int64
	byName       atomic.Int64
	failListKeys atomic.Bool
	failByName   atomic.Bool
}

var errInjected = errors.New("injected store failure")

func (c *countingStore) ListSigningKeys(ctx context.Context) ([]meta.SigningKey, error) {
	c.listKeys.Add(1)
	if c.failListKeys.Load() {
		return nil, errInjected
	}
	return c.Store.ListSigningKeys(ctx)
}

func (c *countingStore) GetPrincipalByName(ctx context.Context, kind, name string) (meta.Principal, error) {
	c.byName.Add(1)
	if c.failByName.Load() {
		return meta.Principal{}, errInjected
	}
	return c.Store.GetPrincipalByName(ctx, kind, name)
}
