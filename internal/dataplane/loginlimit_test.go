package dataplane

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// wantLocked checks a 429 answer's Retry-After: whole seconds, at most the
// lockout's length.
func (r *response) wantLocked(t testing.TB) *response {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || n < 1 || n > int(identity.LoginWindow.Seconds()) {
		t.Fatalf("%s %s: Retry-After %q", r.Request.Method, r.Request.URL.Path, r.Header.Get("Retry-After"))
	}
	return r
}

func tokenQuery(scope string) string {
	return "/oauth2/token?" + url.Values{"service": {"moat.localhost"}, "scope": {scope}}.Encode()
}

// TestLoginLimit_UserLockout locks a user name with wrong passwords over
// every password login of the data plane and checks that each then answers
// 429 in its protocol's format, the right password too, and that the
// lockout is audited.
func TestLoginLimit_UserLockout(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice", "alices-password")
	wrong := basicAuth("alice", "guess")
	pwForm := func(pass string) url.Values {
		return url.Values{"grant_type": {"password"}, "service": {"moat.localhost"}, "username": {"alice"}, "password": {pass}}
	}
	for i := 1; i < identity.LoginMaxUserFailures; i++ {
		switch i % 3 {
		case 0:
			e.do(http.MethodGet, "/v2/", wrong).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		case 1:
			e.do(http.MethodGet, tokenQuery("repository:app:pull"), wrong).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		case 2:
			e.do(http.MethodPost, "/oauth2/token", formPost("/oauth2/token", pwForm("guess"))...).wantOAuthError(t, http.StatusUnauthorized, oauthInvalidGrant)
		}
	}
	// The failure that reaches the limit is answered 429 already.
	e.do(http.MethodGet, "/v2/", wrong).wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS").wantLocked(t)

	right := basicAuth("alice", "alices-password")
	e.do(http.MethodGet, "/v2/", right).wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS").wantLocked(t)
	e.do(http.MethodGet, "/v2/app/tags/list", right).wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS").wantLocked(t)
	e.do(http.MethodGet, tokenQuery("repository:app:pull"), right).wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS").wantLocked(t)
	r := e.do(http.MethodPost, "/oauth2/token", formPost("/oauth2/token", pwForm("alices-password"))...)
	r.wantOAuthError(t, http.StatusTooManyRequests, oauthInvalidGrant)
	r.wantLocked(t)

	// Others are not locked: another name, and the same (deployment) user
	// at another registry, which counts its logins apart.
	e.do(http.MethodGet, "/v2/").wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/", right, host(hostOther)).wantStatus(t, http.StatusOK)

	if err := e.h.Close(); err != nil { // flushes the audit queue
		t.Fatal(err)
	}
	rs, err := e.meta.ListAuditRecords(context.Background(), testDefault, meta.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var started, refused int
	for _, rec := range rs {
		if rec.Step != auditStepAuthentication || rec.Principal != "alice" || rec.Allowed || rec.ClientIP != "127.0.0.1" {
			t.Errorf("unexpected audit record %+v", rec)
			continue
		}
		switch {
		case strings.Contains(rec.Reason, "locked for"):
			started++
		case strings.HasPrefix(rec.Reason, "1 login attempts") && strings.Contains(rec.Reason, "refused while locked"):
			refused++
		default:
			t.Errorf("audit reason %q", rec.Reason)
		}
	}
	// Refused attempts are reported in batches: the first at once, the
	// other four within the minute are left for the next report.
	if started != 1 || refused != 1 {
		t.Fatalf("audit records %+v: want one lockout and one batch of refusals", rs)
	}
}

func TestLoginLimit_SuccessResets(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		for i := 1; i < identity.LoginMaxUserFailures; i++ {
			e.do(http.MethodGet, "/v2/", basicAuth(identity.AdminName, "guess")).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		}
		e.do(http.MethodGet, "/v2/").wantStatus(t, http.StatusOK)
	}
}

// TestLoginLimit_AddressLockout sprays one wrong password over many names
// from one address: the address is locked, for every name, and others are
// not.
func TestLoginLimit_AddressLockout(t *testing.T) {
	e := newEnv(t)
	get := func(source string, user, pass string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pass)
		resp, err := clientFrom(source).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	for i := 1; i < identity.LoginMaxIPFailures; i++ {
		if resp := get("127.0.0.2", fmt.Sprint("user", i), "guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, resp.StatusCode)
		}
	}
	if resp := get("127.0.0.2", "last", "guess"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("failure that reaches the limit: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := get("127.0.0.2", identity.AdminName, adminPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password from the locked address: %d", resp.StatusCode)
	}
	if resp := get("127.0.0.3", identity.AdminName, adminPassword); resp.StatusCode != http.StatusOK {
		t.Fatalf("right password from another address: %d", resp.StatusCode)
	}
}

func TestLoginLimit_AdminUserAndRefreshTokens(t *testing.T) {
	e := newEnv(t)
	e.setProperties(testDefault, "Premium", `{"adminUserEnabled":true}`)
	creds := e.adminPasswords(testDefault)
	for range identity.LoginMaxUserFailures - 1 {
		e.do(http.MethodGet, tokenQuery("repository:app:pull"), basicAuth(creds.Username, "guess")).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	}
	e.do(http.MethodGet, tokenQuery("repository:app:pull"), basicAuth(creds.Username, "guess")).wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	e.do(http.MethodGet, tokenQuery("repository:app:pull"), basicAuth(creds.Username, creds.Passwords[0].Value)).
		wantError(t, http.StatusTooManyRequests, "TOOMANYREQUESTS").wantLocked(t)

	// Refresh tokens are signed, not guessable: refusing them counts
	// nothing, and the refresh-token user name is never locked.
	for range identity.LoginMaxUserFailures + 2 {
		e.do(http.MethodGet, tokenQuery("repository:app:pull"), basicAuth(identity.RefreshTokenUser, "not.a.token")).
			wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	}
}
