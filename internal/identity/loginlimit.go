package identity

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Brute-force protection of the data plane's password logins (Basic on /v2
// and GET /oauth2/token, the password grant of POST /oauth2/token): every
// credential AuthenticateRegistry checks (admin user, repository tokens,
// users, service principals).
//
// Two counters, each a failureLimiter: per (registry, user name), and per
// client address (an IPv6 client counts by its /64, which one host usually
// owns whole). LoginMaxUserFailures wrong passwords for one name, or
// LoginMaxIPFailures from one address, within LoginWindow lock that name or
// address for LoginWindow from the failure that locked it. While locked,
// attempts are refused before any check, the correct password too: a limit
// that a lucky guess escapes protects nothing. A success forgets the name's
// failures but not the address's, so an attacker's own valid account cannot
// launder a password spray. The address limit is set well above the name
// limit because many honest clients can share one address (a NAT, a CI
// fleet); the trade-off, as for Entra's smart lockout, is that whoever
// knows a name, or shares an address, can keep it locked.
//
// The state is per process (every replica counts on its own, so N replicas
// allow N times the attempts) and bounded (maxFailureKeys per counter).
// Refresh tokens are not counted: they are signed, not guessable.
const (
	// LoginMaxUserFailures is how many wrong passwords for one user name of
	// one registry lock that name.
	LoginMaxUserFailures = 10
	// LoginMaxIPFailures is how many wrong passwords from one client address
	// lock that address.
	LoginMaxIPFailures = 50
	// LoginWindow is the window the failures are counted in, and how long a
	// lockout lasts.
	LoginWindow = 5 * time.Minute
	// loginReportEvery is how often attempts refused during a lockout are
	// reported for the audit trail: one record per batch, not per attempt.
	loginReportEvery = time.Minute
)

// ErrLockedOut means a login was refused without checking it because the
// user name or client address failed too often. Maps to 429.
var ErrLockedOut = errors.New("identity: too many failed logins")

// LockoutError is a login refused (or a failure that started a lockout),
// with what the caller should answer and audit.
type LockoutError struct {
	Registry string
	User     string
	// ByAddress is true when the client address is locked, false when the
	// user name is.
	ByAddress bool
	// RetryAfter is how long the lockout lasts from now.
	RetryAfter time.Duration
	// Started is true when this attempt's failure caused the lockout.
	Started bool
	// Refused is the number of refused attempts to report now (see
	// loginReportEvery); 0 when none is due.
	Refused int
}

func (e *LockoutError) Error() string {
	what := fmt.Sprintf("user %q of registry %q", e.User, e.Registry)
	if e.ByAddress {
		what = "the client address"
	}
	return fmt.Sprintf("%s: %s is locked for %s after too many failed logins", ErrLockedOut, what, e.RetryAfter.Round(time.Second))
}

func (e *LockoutError) Unwrap() error { return ErrLockedOut }

// loginLimits are the two counters of the data plane's logins.
type loginLimits struct {
	users *failureLimiter
	addrs *failureLimiter
}

func newLoginLimits(now func() time.Time) loginLimits {
	return loginLimits{
		users: newFailureLimiterWith(now, LoginMaxUserFailures, LoginWindow),
		addrs: newFailureLimiterWith(now, LoginMaxIPFailures, LoginWindow),
	}
}

func loginUserKey(registry, user string) string {
	return failureKey("registry:"+strings.ToLower(registry), user)
}

// loginAddrKey is the counter key of a client address, "" when it is not
// known (then only the user name counts).
func loginAddrKey(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// AuthenticateRegistryLimited is AuthenticateRegistry behind the login
// limits: a locked user name or client address gets a *LockoutError
// (wrapping ErrLockedOut, not ErrUnauthenticated) without its credentials
// being checked; a wrong password counts against both, and the one that
// locks either returns a *LockoutError with Started set.
func (s *Service) AuthenticateRegistryLimited(ctx context.Context, registry, user, pass string, ip netip.Addr) (Principal, error) {
	ukey, akey := loginUserKey(registry, user), loginAddrKey(ip)
	if d, ok := s.logins.users.lockedFor(ukey); ok {
		return Principal{}, &LockoutError{Registry: registry, User: user, RetryAfter: d,
			Refused: s.logins.users.refuse(ukey, loginReportEvery)}
	}
	if akey != "" {
		if d, ok := s.logins.addrs.lockedFor(akey); ok {
			return Principal{}, &LockoutError{Registry: registry, User: user, ByAddress: true, RetryAfter: d,
				Refused: s.logins.addrs.refuse(akey, loginReportEvery)}
		}
	}
	p, err := s.AuthenticateRegistry(ctx, registry, user, pass)
	if err == nil {
		s.logins.users.succeed(ukey)
		return p, nil
	}
	if !errors.Is(err, ErrUnauthenticated) {
		return Principal{}, err // not the caller's fault: nothing to count
	}
	userLocked := s.logins.users.fail(ukey)
	addrLocked := akey != "" && s.logins.addrs.fail(akey)
	switch {
	case userLocked:
		d, _ := s.logins.users.lockedFor(ukey)
		s.log.WarnContext(ctx, "data-plane login locked after repeated failures", "registry", registry, "user", truncate(user, 64), "client", akey)
		return Principal{}, &LockoutError{Registry: registry, User: user, RetryAfter: d, Started: true}
	case addrLocked:
		d, _ := s.logins.addrs.lockedFor(akey)
		s.log.WarnContext(ctx, "data-plane logins from a client address locked after repeated failures", "registry", registry, "client", akey)
		return Principal{}, &LockoutError{Registry: registry, User: user, ByAddress: true, RetryAfter: d, Started: true}
	}
	return Principal{}, err
}
