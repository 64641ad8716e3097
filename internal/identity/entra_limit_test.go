package identity

import (
	"fmt"
	"net/url"
	"testing"
)

func TestFailureLimiter(t *testing.T) {
	clock := newTestClock()
	l := newFailureLimiter(clock.Now)
	key := failureKey(KindUser, "Admin")
	if key != failureKey(KindUser, "admin") {
		t.Error("failure keys are case-sensitive")
	}
	for i := 1; i < maxFailures; i++ {
		if l.fail(key) {
			t.Fatalf("locked after %d failures", i)
		}
	}
	if l.locked(key) {
		t.Fatal("locked before maxFailures")
	}
	if !l.fail(key) || !l.locked(key) {
		t.Fatal("not locked after maxFailures")
	}
	if l.locked(failureKey(KindUser, "other")) {
		t.Error("another name is locked too")
	}
	clock.Advance(failureWindow)
	if l.locked(key) {
		t.Error("still locked after the window")
	}
	l.fail(key)
	l.succeed(key)
	if _, ok := l.m[key]; ok {
		t.Error("success did not forget the failures")
	}
}

func TestFailureLimiter_Bounded(t *testing.T) {
	clock := newTestClock()
	l := newFailureLimiter(clock.Now)
	hot := failureKey(KindUser, "victim")
	for range maxFailures {
		l.fail(hot)
	}
	for i := range 3 * maxFailureKeys {
		l.fail(failureKey(KindUser, fmt.Sprint("spray", i)))
		if len(l.m) > maxFailureKeys {
			t.Fatalf("limiter holds %d keys, bound %d", len(l.m), maxFailureKeys)
		}
	}
	if !l.locked(hot) {
		t.Error("eviction dropped the locked name before the one-failure ones")
	}
}

func TestEntraHandler_LocksOutAfterRepeatedFailures(t *testing.T) {
	f := newHandlerFixture(t)
	path := "/" + f.tenant + "/oauth2/v2.0/token"
	wrong := f.ccForm()
	wrong.Set("client_secret", "abc~wrong")
	for range maxFailures {
		if rec, body := f.do(t, "POST", path, wrong); rec.Code != 401 || body["error"] != "invalid_client" {
			t.Fatalf("wrong secret: %d %v", rec.Code, body)
		}
	}
	rec, body := f.do(t, "POST", path, f.ccForm())
	codes, _ := body["error_codes"].([]any)
	if rec.Code != 401 || len(codes) != 1 || codes[0] != float64(50053) {
		t.Fatalf("right secret while locked: %d %v, want 401 AADSTS50053", rec.Code, body)
	}

	pw := url.Values{
		"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {AdminName}, "password": {"wrong"}, "scope": {"https://management.azure.com//.default"},
	}
	for range maxFailures {
		f.do(t, "POST", path, pw)
	}
	pw.Set("password", f.adminPW)
	rec, body = f.do(t, "POST", path, pw)
	codes, _ = body["error_codes"].([]any)
	if rec.Code != 400 || body["error"] != "invalid_grant" || len(codes) != 1 || codes[0] != float64(50053) {
		t.Fatalf("right password while locked: %d %v, want 400 AADSTS50053", rec.Code, body)
	}
}
