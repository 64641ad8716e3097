package dataplane

// Brute-force protection of password logins (identity/loginlimit.go holds
// the counters and the numbers): a locked user name or client address is
// answered 429 with Retry-After, in the protocol's error format (OCI error
// JSON TOOMANYREQUESTS on /v2 and GET /oauth2/token, RFC 6749 JSON
// invalid_grant on POST /oauth2/token, as Entra answers its smart lockout),
// and audited: one record when a lockout starts, then one per batch of
// refused attempts (at most one a minute per locked name or address).

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// auditStepAuthentication is the audit step of login lockouts.
const auditStepAuthentication = "authentication"

// registryLogin checks user/pass against the request's registry behind the
// login limits, auditing a lockout.
func (h *Handler) registryLogin(q *request, user, pass string) (identity.Principal, error) {
	p, err := h.id.AuthenticateRegistryLimited(q.r.Context(), q.registry, user, pass, q.ip)
	if lo := lockout(err); lo != nil {
		h.auditLockout(q, lo)
	}
	return p, err
}

// lockout returns the lockout err is, or nil.
func lockout(err error) *identity.LockoutError {
	var lo *identity.LockoutError
	if errors.As(err, &lo) {
		return lo
	}
	return nil
}

// retryAfter is Retry-After's delay-seconds for d, rounded up and at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

func lockoutMessage(lo *identity.LockoutError) string {
	what := "this user name"
	if lo.ByAddress {
		what = "this client address"
	}
	return fmt.Sprintf("too many failed logins for %s; retry after %s seconds", what, retryAfter(lo.RetryAfter))
}

// tooManyLogins answers a lockout with the OCI error.
func (h *Handler) tooManyLogins(q *request, lo *identity.LockoutError) {
	q.decision = decisionUnauthenticated
	q.Header().Set("Retry-After", retryAfter(lo.RetryAfter))
	q.fail(&apiError{Code: codeTooManyRequests, Message: lockoutMessage(lo), Cause: lo})
}

// oauthTooManyLogins answers a lockout with the RFC 6749 error.
func (q *request) oauthTooManyLogins(lo *identity.LockoutError) {
	q.Header().Set("Retry-After", retryAfter(lo.RetryAfter))
	q.oauthFail(http.StatusTooManyRequests, oauthInvalidGrant, lockoutMessage(lo), lo)
	q.decision = decisionUnauthenticated
}

// auditLockout records a lockout that started, or a due batch of refused
// attempts; other refusals are only counted.
func (h *Handler) auditLockout(q *request, lo *identity.LockoutError) {
	var reason string
	what := fmt.Sprintf("user %q", lo.User)
	if lo.ByAddress {
		what = "client address"
	}
	switch {
	case lo.Started && lo.ByAddress:
		reason = fmt.Sprintf("%s locked for %s after %d failed logins", what, identity.LoginWindow, identity.LoginMaxIPFailures)
	case lo.Started:
		reason = fmt.Sprintf("%s locked for %s after %d failed logins", what, identity.LoginWindow, identity.LoginMaxUserFailures)
	case lo.Refused > 0:
		reason = fmt.Sprintf("%d login attempts for %s refused while locked (%ss left)", lo.Refused, what, retryAfter(lo.RetryAfter))
	default:
		return
	}
	client := "unknown"
	if q.ip.IsValid() {
		client = q.ip.Unmap().String()
	}
	h.audit.record(meta.AuditRecord{
		Time:      h.now(),
		Registry:  q.registry,
		Endpoint:  auditEndpoint(q),
		ClientIP:  client,
		Principal: cleanText(lo.User, 256),
		Step:      auditStepAuthentication,
		Reason:    cleanText(reason, 512),
		Method:    cleanText(q.r.Method, 32),
		Path:      cleanText(q.r.URL.Path, maxAuditPath),
	})
}
