package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// DefaultBcryptCost is the bcrypt cost of stored password hashes.
	DefaultBcryptCost = 12
	// DefaultTokenLifetime is how long an access token is valid.
	DefaultTokenLifetime = time.Hour
	// DefaultIssuer is the "iss" of access tokens when Options.Issuer is empty.
	DefaultIssuer = "moat"

	// maxPasswordLen is bcrypt's limit. bcrypt ignores bytes past it, so a
	// longer presented password is refused rather than checked by its prefix.
	maxPasswordLen = 72
	// maxUsernameLen bounds the user names AuthenticateBasic looks up.
	maxUsernameLen = 256

	// basicCacheTTL is how long a successful Basic verification is reused:
	// long enough that a busy client pays bcrypt about once a minute, short
	// enough that a password reset on another replica takes effect soon.
	basicCacheTTL     = time.Minute
	basicCacheEntries = 1024
)

// Options configure a Service. The zero value is usable.
type Options struct {
	// Issuer is the "iss" of data-plane tokens; DefaultIssuer when empty.
	Issuer string
	// TokenLifetime is how long access tokens are valid; DefaultTokenLifetime
	// when zero. (ACR's access tokens live 75 minutes.)
	TokenLifetime time.Duration
	// BcryptCost is the cost of new password hashes; DefaultBcryptCost when
	// zero. Tests use bcrypt.MinCost.
	BcryptCost int
	// Logger receives key and admin lifecycle events; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock, for tests; time.Now when nil.
	Now func() time.Time
	// MaxConcurrentPasswordChecks bounds the bcrypt verifications running at
	// once (bcryptlimit.go); GOMAXPROCS*2 when zero.
	MaxConcurrentPasswordChecks int
}

// Service authenticates principals, authorizes them and issues and verifies
// their access tokens. It is safe for concurrent use. Several Services (in
// several processes) may share one metadata store.
type Service struct {
	store    meta.Store
	issuer   string
	lifetime time.Duration
	cost     int
	log      *slog.Logger
	now      func() time.Time

	keys keyring

	// adminID is the stored admin principal's ID once known.
	adminID atomic.Pointer[string]
	// scannerID is the Defender scanner principal's ID once known.
	scannerID atomic.Pointer[string]

	dummyOnce sync.Once
	dummyHash []byte

	// basicGen counts password changes made by this process; a cached Basic
	// verification from an older generation is ignored.
	basicGen   atomic.Uint64
	basicCache *ttlCache[basicEntry]
	flightMu   sync.Mutex
	flights    map[string]*basicFlight

	tokenCache *ttlCache[Claims]

	// roles caches role assignments for data-plane authorization (roles.go).
	roles roleCache

	// logins are the data plane's brute-force limits (loginlimit.go).
	logins loginLimits
	// bcryptSlots bounds concurrent bcrypt verifications (bcryptlimit.go).
	bcryptSlots chan struct{}
}

type basicEntry struct {
	p   Principal
	gen uint64
}

// basicFlight is one bcrypt verification that concurrent requests with the
// same credentials wait for instead of each paying for their own.
type basicFlight struct {
	done chan struct{}
	p    Principal
	err  error
}

// New returns a Service over store. It loads the token-signing keys, creating
// the first one when the store has none.
func New(ctx context.Context, store meta.Store, opts Options) (*Service, error) {
	if store == nil {
		return nil, errors.New("identity: nil metadata store")
	}
	s := &Service{
		store:      store,
		issuer:     opts.Issuer,
		lifetime:   opts.TokenLifetime,
		cost:       opts.BcryptCost,
		log:        opts.Logger,
		now:        opts.Now,
		flights:    make(map[string]*basicFlight),
		basicCache: newTTLCache[basicEntry](basicCacheEntries),
		tokenCache: newTTLCache[Claims](tokenCacheEntries),
	}
	if s.issuer == "" {
		s.issuer = DefaultIssuer
	}
	if s.lifetime == 0 {
		s.lifetime = DefaultTokenLifetime
	}
	if s.lifetime < 0 {
		return nil, fmt.Errorf("identity: negative token lifetime %s", s.lifetime)
	}
	if s.cost == 0 {
		s.cost = DefaultBcryptCost
	}
	if s.cost < bcrypt.MinCost || s.cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("identity: bcrypt cost %d outside %d..%d", s.cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.logins = newLoginLimits(s.now)
	checks := opts.MaxConcurrentPasswordChecks
	if checks == 0 {
		checks = defaultPasswordChecks()
	}
	if checks < 0 {
		return nil, fmt.Errorf("identity: negative MaxConcurrentPasswordChecks %d", checks)
	}
	s.bcryptSlots = make(chan struct{}, checks)
	if err := s.reloadKeys(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// EnsureAdmin makes sure the deployment admin exists. If it does not, it is
// created with password (or a generated one when password is ""), and the
// password actually set is returned with created=true. If it exists and
// password != "", the password is reset to it (returned, created=false); when
// password is "" nothing changes and "" is returned.
//
// Creation is safe against a concurrent creator in another process: the
// store refuses a second "user"/"admin" with a different ID, and the loser
// adopts the winner's record.
func (s *Service) EnsureAdmin(ctx context.Context, password string) (pw string, created bool, err error) {
	if len(password) > maxPasswordLen {
		return "", false, fmt.Errorf("identity: admin password longer than %d bytes", maxPasswordLen)
	}
	existing, err := s.store.GetPrincipalByName(ctx, KindUser, AdminName)
	switch {
	case err == nil:
		return s.resetAdmin(ctx, existing, password)
	case !errors.Is(err, meta.ErrNotFound):
		return "", false, fmt.Errorf("identity: reading the admin: %w", err)
	}

	pw = password
	if pw == "" {
		if pw, err = GeneratePassword(); err != nil {
			return "", false, err
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), s.cost)
	if err != nil {
		return "", false, fmt.Errorf("identity: hashing the admin password: %w", err)
	}
	p := meta.Principal{ID: uuid.NewString(), Kind: KindUser, Name: AdminName, SecretHash: hash}
	err = s.store.PutPrincipal(ctx, p)
	if errors.Is(err, meta.ErrAlreadyExists) {
		existing, err := s.store.GetPrincipalByName(ctx, KindUser, AdminName)
		if err != nil {
			return "", false, fmt.Errorf("identity: reading the admin another process created: %w", err)
		}
		return s.resetAdmin(ctx, existing, password)
	}
	if err != nil {
		return "", false, fmt.Errorf("identity: creating the admin: %w", err)
	}
	s.setAdminID(p.ID)
	s.log.InfoContext(ctx, "created the deployment admin", "principal", p.ID, "generated_password", password == "")
	if err := s.ensureAdminOwner(ctx, p.ID); err != nil {
		return "", false, err
	}
	return pw, true, nil
}

// resetAdmin sets the existing admin's password to password unless it is ""
// or already the password (at the configured cost), so restarting with the
// same MOAT_ADMIN_PASSWORD writes nothing.
func (s *Service) resetAdmin(ctx context.Context, existing meta.Principal, password string) (string, bool, error) {
	s.setAdminID(existing.ID)
	if err := s.ensureAdminOwner(ctx, existing.ID); err != nil {
		return "", false, err
	}
	if password == "" {
		return "", false, nil
	}
	if bcrypt.CompareHashAndPassword(existing.SecretHash, []byte(password)) == nil {
		if cost, err := bcrypt.Cost(existing.SecretHash); err == nil && cost >= s.cost {
			return password, false, nil
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return "", false, fmt.Errorf("identity: hashing the admin password: %w", err)
	}
	existing.SecretHash = hash
	if err := s.store.PutPrincipal(ctx, existing); err != nil {
		return "", false, fmt.Errorf("identity: resetting the admin password: %w", err)
	}
	s.invalidateBasic()
	s.log.InfoContext(ctx, "reset the deployment admin's password", "principal", existing.ID)
	return password, false, nil
}

// GeneratePassword returns 32 random bytes from crypto/rand, base64url
// without padding (43 characters).
func GeneratePassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("identity: generating a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// AuthenticateBasic checks a username and password. Every kind of wrong
// credentials wraps ErrUnauthenticated; any other error means the check could
// not be made (the store failed) and is not the caller's fault.
//
// Unknown users cost the same bcrypt work as known ones, so timing does not
// tell which names exist. Successful verifications are cached for
// basicCacheTTL under a sha256 of user and password (see basicKey), so Basic
// auth on every /v2 request pays bcrypt about once a minute; concurrent first
// requests with the same credentials share one bcrypt run. Failures are never
// cached.
//
// Only users (today: the admin) sign in with a password; service principals
// and repository tokens will be looked up here too.
func (s *Service) AuthenticateBasic(ctx context.Context, user, pass string) (Principal, error) {
	if user == "" || pass == "" {
		return Principal{}, fmt.Errorf("%w: empty username or password", ErrUnauthenticated)
	}
	if len(user) > maxUsernameLen || len(pass) > maxPasswordLen {
		return Principal{}, fmt.Errorf("%w: username or password too long", ErrUnauthenticated)
	}
	// A service principal signs in to the data plane with its application
	// id and a client secret, as on ACR. Not cached: a deleted principal or
	// removed secret stops working at once.
	if p, ok, err := s.authenticateServicePrincipalBasic(ctx, user, pass); ok {
		return p, err
	}
	key := basicKey(user, pass)
	if e, ok := s.basicCache.get(key, s.now()); ok && e.gen == s.basicGen.Load() {
		return e.p, nil
	}

	for {
		s.flightMu.Lock()
		f, ok := s.flights[key]
		if !ok {
			break // with flightMu held
		}
		s.flightMu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return Principal{}, fmt.Errorf("identity: waiting for a password check: %w", ctx.Err())
		}
		// The leader's request ended before a bcrypt slot was free: the
		// check was not made, so make it for this request.
		if errors.Is(f.err, errPasswordCheckWait) && ctx.Err() == nil {
			continue
		}
		return f.p, f.err
	}
	f := &basicFlight{done: make(chan struct{})}
	s.flights[key] = f
	s.flightMu.Unlock()

	f.p, f.err = s.verifyPassword(ctx, key, user, pass)
	s.flightMu.Lock()
	delete(s.flights, key)
	s.flightMu.Unlock()
	close(f.done)
	return f.p, f.err
}

// verifyPassword does the real check and caches a success. Others may be
// waiting on this flight, so the caller's cancellation must not fail the
// store lookup for them; only the wait for a bcrypt slot follows ctx (and
// the waiters then check for themselves).
func (s *Service) verifyPassword(ctx context.Context, key, user, pass string) (Principal, error) {
	gen := s.basicGen.Load() // before reading the hash: a reset after this makes the entry stale
	stored, err := s.store.GetPrincipalByName(context.WithoutCancel(ctx), KindUser, user)
	if errors.Is(err, meta.ErrNotFound) {
		if err := s.burnBcrypt(ctx, pass); err != nil {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("%w: wrong username or password", ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("identity: looking up user %q: %w", user, err)
	}
	if len(stored.SecretHash) == 0 {
		if err := s.burnBcrypt(ctx, pass); err != nil {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("%w: wrong username or password", ErrUnauthenticated)
	}
	if err := s.compareHash(ctx, stored.SecretHash, pass); err != nil {
		if errors.Is(err, errPasswordCheckWait) {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("%w: wrong username or password", ErrUnauthenticated)
	}
	p := Principal{ID: stored.ID, Kind: stored.Kind, Name: stored.Name}
	if p.Name == AdminName && p.Kind == KindUser {
		s.setAdminID(p.ID)
	}
	now := s.now()
	s.basicCache.put(key, basicEntry{p: p, gen: gen}, now.Add(basicCacheTTL), now)
	return p, nil
}

// burnBcrypt spends the time a real password check would (in a bcrypt slot,
// like one). Its only error is the wait for the slot ending.
func (s *Service) burnBcrypt(ctx context.Context, pass string) error {
	s.dummyOnce.Do(func() {
		// The dummy's password is random so that nothing matches it.
		b := make([]byte, 16)
		_, _ = rand.Read(b) // crypto/rand.Read never returns an error since Go 1.24
		h, err := bcrypt.GenerateFromPassword(b, s.cost)
		if err == nil {
			s.dummyHash = h
		}
	})
	if s.dummyHash != nil {
		// Always a mismatch; only the time matters.
		if err := s.compareHash(ctx, s.dummyHash, pass); errors.Is(err, errPasswordCheckWait) {
			return err
		}
	}
	return nil
}

func (s *Service) invalidateBasic() {
	s.basicGen.Add(1)
	s.basicCache.purge()
}

func (s *Service) setAdminID(id string) {
	if cur := s.adminID.Load(); cur == nil || *cur != id {
		s.adminID.Store(&id)
	}
}

// basicKey is the cache key of a user/password pair: sha256 over the user's
// length, ':', the user, NUL and the password. The length keeps "a\x00b"/"c"
// and "a"/"b\x00c" apart.
func basicKey(user, pass string) string {
	b := make([]byte, 0, 8+len(user)+len(pass))
	b = strconv.AppendInt(b, int64(len(user)), 10)
	b = append(b, ':')
	b = append(b, user...)
	b = append(b, 0)
	b = append(b, pass...)
	sum := sha256.Sum256(b)
	return string(sum[:])
}
