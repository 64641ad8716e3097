package identity

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestNew_Options(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	if _, err := New(ctx, nil, Options{}); err == nil {
		t.Error("New with a nil store succeeded")
	}
	if _, err := New(ctx, store, Options{BcryptCost: bcrypt.MaxCost + 1}); err == nil {
		t.Error("New with bcrypt cost above the maximum succeeded")
	}
	if _, err := New(ctx, store, Options{BcryptCost: 1}); err == nil {
		t.Error("New with bcrypt cost below the minimum succeeded")
	}
	if _, err := New(ctx, store, Options{TokenLifetime: -time.Second}); err == nil {
		t.Error("New with a negative token lifetime succeeded")
	}
	s, err := New(ctx, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.issuer != DefaultIssuer || s.lifetime != DefaultTokenLifetime || s.cost != DefaultBcryptCost {
		t.Errorf("defaults = %q, %s, %d", s.issuer, s.lifetime, s.cost)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		pw, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.DecodeString(pw)
		if err != nil || len(b) != 32 {
			t.Fatalf("GeneratePassword() = %q: not 32 bytes of base64url (%v)", pw, err)
		}
		if seen[pw] {
			t.Fatalf("GeneratePassword repeated %q", pw)
		}
		seen[pw] = true
	}
}

func TestEnsureAdmin_CreatesOnceThenStable(t *testing.T) {
	store := openStore(t)
	s := newService(t, store, newTestClock())
	ctx := context.Background()

	pw, created, err := s.EnsureAdmin(ctx, "")
	if err != nil || !created {
		t.Fatalf("first EnsureAdmin = %q, %v, %v; want a generated password, created", pw, created, err)
	}
	if len(pw) != 43 {
		t.Errorf("generated password %q has %d characters, want 43", pw, len(pw))
	}
	stored, err := store.GetPrincipalByName(ctx, KindUser, AdminName)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.SecretHash, []byte(pw)) {
		t.Fatal("the stored secret contains the password")
	}
	if cost, err := bcrypt.Cost(stored.SecretHash); err != nil || cost != bcrypt.MinCost {
		t.Errorf("stored hash cost = %d, %v; want %d", cost, err, bcrypt.MinCost)
	}

	pw2, created, err := s.EnsureAdmin(ctx, "")
	if err != nil || created || pw2 != "" {
		t.Fatalf("second EnsureAdmin = %q, %v, %v; want nothing to change", pw2, created, err)
	}
	again, err := store.GetPrincipalByName(ctx, KindUser, AdminName)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != stored.ID || !bytes.Equal(again.SecretHash, stored.SecretHash) {
		t.Fatal("second EnsureAdmin changed the admin")
	}
	p, err := s.AuthenticateBasic(ctx, AdminName, pw)
	if err != nil {
		t.Fatalf("the generated password does not authenticate: %v", err)
	}
	if want := (Principal{ID: stored.ID, Kind: KindUser, Name: AdminName}); p != want {
		t.Fatalf("AuthenticateBasic = %+v, want %+v", p, want)
	}
}

func TestEnsureAdmin_ExplicitPasswordOnCreate(t *testing.T) {
	s := newService(t, openStore(t), newTestClock())
	ctx := context.Background()
	pw, created, err := s.EnsureAdmin(ctx, "s3cret-admin")
	if err != nil || !created || pw != "s3cret-admin" {
		t.Fatalf("EnsureAdmin = %q, %v, %v", pw, created, err)
	}
	if _, err := s.AuthenticateBasic(ctx, AdminName, "s3cret-admin"); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureAdmin_ResetRefusesOldPassword(t *testing.T) {
	store, clock, s, _, old := newAdmin(t)
	ctx := context.Background()
	// The old password is now in the Basic cache of s.
	if _, err := s.AuthenticateBasic(ctx, AdminName, old); err != nil {
		t.Fatal(err)
	}
	pw, created, err := s.EnsureAdmin(ctx, "new-password")
	if err != nil || created || pw != "new-password" {
		t.Fatalf("reset EnsureAdmin = %q, %v, %v", pw, created, err)
	}
	if _, err := s.AuthenticateBasic(ctx, AdminName, old); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old password after reset: err = %v, want ErrUnauthenticated", err)
	}
	if _, err := s.AuthenticateBasic(ctx, AdminName, "new-password"); err != nil {
		t.Fatalf("new password after reset: %v", err)
	}
	// Another process over the same store sees the new password too.
	other := newService(t, store, clock)
	if _, err := other.AuthenticateBasic(ctx, AdminName, old); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old password on another Service: err = %v", err)
	}
	if _, err := other.AuthenticateBasic(ctx, AdminName, "new-password"); err != nil {
		t.Fatalf("new password on another Service: %v", err)
	}
}

func TestEnsureAdmin_SamePasswordWritesNothing(t *testing.T) {
	store := openStore(t)
	s := newService(t, store, newTestClock())
	ctx := context.Background()
	if _, _, err := s.EnsureAdmin(ctx, "same"); err != nil {
		t.Fatal(err)
	}
	before, err := store.GetPrincipalByName(ctx, KindUser, AdminName)
	if err != nil {
		t.Fatal(err)
	}
	pw, created, err := s.EnsureAdmin(ctx, "same")
	if err != nil || created || pw != "same" {
		t.Fatalf("EnsureAdmin(same) = %q, %v, %v", pw, created, err)
	}
	after, err := store.GetPrincipalByName(ctx, KindUser, AdminName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before.SecretHash, after.SecretHash) {
		t.Fatal("EnsureAdmin with the current password rewrote the hash")
	}

	// A stronger configured cost rehashes the same password.
	strong := newService(t, store, newTestClock(), func(o *Options) { o.BcryptCost = bcrypt.MinCost + 1 })
	if _, _, err := strong.EnsureAdmin(ctx, "same"); err != nil {
		t.Fatal(err)
	}
	rehashed, err := store.GetPrincipalByName(ctx, KindUser, AdminName)
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(rehashed.SecretHash); cost != bcrypt.MinCost+1 {
		t.Fatalf("hash cost after EnsureAdmin at a higher cost = %d", cost)
	}
}

func TestEnsureAdmin_PasswordTooLong(t *testing.T) {
	s := newService(t, openStore(t), newTestClock())
	if _, _, err := s.EnsureAdmin(context.Background(), strings.Repeat("x", 73)); err == nil {
		t.Fatal("EnsureAdmin accepted a 73-byte password that bcrypt would truncate")
	}
}

func TestEnsureAdmin_ConcurrentCreators(t *testing.T) {
	store := openStore(t)
	clock := newTestClock()
	const n = 4
	services := make([]*Service, n)
	for i := range services {
		services[i] = newService(t, store, clock)
	}
	type result struct {
		pw      string
		created bool
		err     error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i, s := range services {
		wg.Go(func() {
			pw, created, err := s.EnsureAdmin(context.Background(), "")
			results[i] = result{pw, created, err}
		})
	}
	wg.Wait()
	winners := 0
	var pw string
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("EnsureAdmin #%d: %v", i, r.err)
		}
		if r.created {
			winners++
			pw = r.pw
		}
	}
	if winners != 1 {
		t.Fatalf("%d creators won, want exactly 1", winners)
	}
	for i, s := range services {
		if _, err := s.AuthenticateBasic(context.Background(), AdminName, pw); err != nil {
			t.Fatalf("Service #%d refuses the winner's password: %v", i, err)
		}
	}
	all, err := store.ListPrincipals(context.Background(), KindUser)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 {
		t.Fatalf("%d users stored, want 1", len(all))
	}
}

func TestAuthenticateBasic_Refusals(t *testing.T) {
	store, clock, s, _, pw := newAdmin(t)
	ctx := context.Background()
	// A principal with no secret can never sign in with a password.
	if err := store.PutPrincipal(ctx, meta.Principal{ID: "9d3c5c3e-5d40-4c51-9a2c-2f3f7e0b1a11", Kind: KindUser, Name: "nosecret"}); err != nil {
		t.Fatal(err)
	}
	// A 72-byte password: bcrypt's limit. A 73-byte one with the same prefix
	// must not pass as it.
	long := strings.Repeat("p", 72)
	if _, _, err := s.EnsureAdmin(ctx, long); err != nil {
		t.Fatal(err)
	}
	fresh := newService(t, store, clock)
	if _, err := fresh.AuthenticateBasic(ctx, AdminName, long); err != nil {
		t.Fatalf("72-byte password refused: %v", err)
	}
	tests := []struct{ name, user, pass string }{
		{"wrong password", AdminName, pw},
		{"unknown user", "alice", long},
		{"user with no secret", "nosecret", long},
		{"empty user", "", long},
		{"empty password", AdminName, ""},
		{"user name case differs", "Admin", long},
		{"password prefix", AdminName, long[:71]},
		{"password past bcrypt's limit", AdminName, long + "x"},
		{"huge user name", strings.Repeat("u", 10000), long},
		{"NUL trick", AdminName + "\x00" + long[:10], long[10:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, svc := range []*Service{s, fresh} {
				p, err := svc.AuthenticateBasic(ctx, tt.user, tt.pass)
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("AuthenticateBasic(%q, %q) = %+v, %v; want ErrUnauthenticated", tt.user, tt.pass, p, err)
				}
				if p != (Principal{}) {
					t.Fatalf("refusal returned principal %+v", p)
				}
			}
		})
	}
}

func TestAuthenticateBasic_FailureNeverCached(t *testing.T) {
	_, _, s, _, pw := newAdmin(t)
	ctx := context.Background()
	for range 3 {
		if _, err := s.AuthenticateBasic(ctx, AdminName, "wrong"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
			t.Fatalf("right password: %v", err)
		}
	}
	if n := s.basicCache.len(); n != 1 {
		t.Fatalf("basic cache holds %d entries, want 1 (only the success)", n)
	}
}

// TestAuthenticateBasic_CacheTTL changes the hash behind the Service's back:
// the cached success answers until basicCacheTTL, then the store decides.
func TestAuthenticateBasic_CacheTTL(t *testing.T) {
	store, clock, s, _, pw := newAdmin(t)
	ctx := context.Background()
	stored, err := store.GetPrincipalByName(ctx, KindUser, AdminName)
	if err != nil {
		t.Fatal(err)
	}
	stored.SecretHash, err = bcrypt.GenerateFromPassword([]byte("changed-elsewhere"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutPrincipal(ctx, stored); err != nil {
		t.Fatal(err)
	}
	clock.Advance(basicCacheTTL - time.Second)
	if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
		t.Fatalf("cached success not used within the TTL: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := s.AuthenticateBasic(ctx, AdminName, pw); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("cached success used past the TTL: err = %v", err)
	}
	if _, err := s.AuthenticateBasic(ctx, AdminName, "changed-elsewhere"); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticateBasic_Concurrent(t *testing.T) {
	_, _, s, admin, pw := newAdmin(t)
	s.invalidateBasic() // start cold so the requests share one bcrypt run
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			pass := pw
			if i%4 == 0 {
				pass = "wrong"
			}
			p, err := s.AuthenticateBasic(context.Background(), AdminName, pass)
			switch {
			case pass == pw && (err != nil || p != admin):
				errs <- err
			case pass != pw && !errors.Is(err, ErrUnauthenticated):
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent AuthenticateBasic: %v", err)
	}
}

// TestAuthenticateBasic_CanceledWaiter: a request waiting for another's
// bcrypt run gives up with its own context, and the run still completes for
// the others.
func TestAuthenticateBasic_CanceledWaiter(t *testing.T) {
	_, _, s, _, pw := newAdmin(t)
	s.invalidateBasic()
	key := basicKey(AdminName, pw)
	// Pretend a verification is in flight.
	f := &basicFlight{done: make(chan struct{})}
	s.flightMu.Lock()
	s.flights[key] = f
	s.flightMu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AuthenticateBasic(ctx, AdminName, pw); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: err = %v, want context.Canceled", err)
	}
	f.err = errors.New("flight result")
	s.flightMu.Lock()
	delete(s.flights, key)
	s.flightMu.Unlock()
	close(f.done)
	if _, err := s.AuthenticateBasic(context.Background(), AdminName, pw); err != nil {
		t.Fatal(err)
	}
}

func TestBasicKey_Unambiguous(t *testing.T) {
	if basicKey("a\x00b", "c") == basicKey("a", "b\x00c") {
		t.Fatal("basicKey collides for user/password pairs that differ in where NUL is")
	}
	if basicKey("a", "b") == basicKey("a", "c") {
		t.Fatal("basicKey ignores the password")
	}
}

func TestAuthenticateBasic_CacheSavesStoreAndBcrypt(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	s := newService(t, cs, newTestClock())
	ctx := context.Background()
	pw, _, err := s.EnsureAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	before := cs.byName.Load()
	for range 10 {
		if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
			t.Fatal(err)
		}
	}
	if n := cs.byName.Load() - before; n != 1 {
		t.Fatalf("10 Basic checks with the same credentials read the store %d times, want 1", n)
	}
}

func TestAuthenticateBasic_StoreFailureIsNotAWrongPassword(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	s := newService(t, cs, newTestClock())
	ctx := context.Background()
	pw, _, err := s.EnsureAdmin(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	s.invalidateBasic()
	cs.failByName.Store(true)
	_, err = s.AuthenticateBasic(ctx, AdminName, pw)
	if err == nil || errors.Is(err, ErrUnauthenticated) || !errors.Is(err, errInjected) {
		t.Fatalf("store failure: err = %v; want the store's error, not ErrUnauthenticated", err)
	}
	cs.failByName.Store(false)
	if _, err := s.AuthenticateBasic(ctx, AdminName, pw); err != nil {
		t.Fatalf("a failure was cached: %v", err)
	}
}

// TestAuthenticateBasic_LateSuccessAfterReset: a verification that read the
// old hash before a reset and stores its success after it must not let the
// old password in.
func TestAuthenticateBasic_LateSuccessAfterReset(t *testing.T) {
	_, clock, s, admin, old := newAdmin(t)
	ctx := context.Background()
	genBefore := s.basicGen.Load()
	if _, _, err := s.EnsureAdmin(ctx, "new-password"); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	s.basicCache.put(basicKey(AdminName, old), basicEntry{p: admin, gen: genBefore}, now.Add(basicCacheTTL), now)
	if _, err := s.AuthenticateBasic(ctx, AdminName, old); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old password via a late cache entry: err = %v", err)
	}
}
