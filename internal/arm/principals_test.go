package arm

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/rbac"
)

const (
	spsPath   = "/providers/Moat.Identity/servicePrincipals"
	usersPath = "/providers/Moat.Identity/users"
)

// rootAssign gives principal role at "/".
func (e *env) rootAssign(name, role, principal string) {
	e.t.Helper()
	res, err := rbac.ToResource(rbac.Assignment{Name: name, Scope: "/", RoleDefinitionID: rbac.DefinitionID("", role), PrincipalID: principal, PrincipalType: "ServicePrincipal"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.PutResource(e.t.Context(), res); err != nil {
		e.t.Fatal(err)
	}
}

func TestServicePrincipalLifecycle(t *testing.T) {
	e, ids := withIdentities(t)
	ctx := context.Background()

	e.want(e.do("POST", spsPath, "", `{}`), http.StatusBadRequest, "InvalidRequestContent", "displayName is required")
	e.want(e.do("POST", spsPath, "", `{"displayName":`), http.StatusBadRequest, "InvalidRequestContent", "")
	e.want(e.do("POST", spsPath, "", `{"displayName":"bad\u0001name"}`), http.StatusBadRequest, "InvalidRequestContent", "display name")

	r := e.do("POST", spsPath, "", `{"displayName":"ci"}`)
	e.want(r, http.StatusCreated, "", "")
	appID, objID, pw := sget(r.body, "appId"), sget(r.body, "objectId"), sget(r.body, "password")
	tenant, _ := ids.TenantID(ctx)
	if appID == "" || objID == "" || pw == "" || sget(r.body, "displayName") != "ci" || sget(r.body, "tenant") != tenant {
		t.Fatalf("created %s", r.raw)
	}
	if _, err := ids.AuthenticateServicePrincipal(ctx, appID, pw); err != nil {
		t.Fatalf("the returned secret does not authenticate: %v", err)
	}

	// Reads never show a secret.
	r = e.do("GET", spsPath+"/"+appID, "", "")
	e.want(r, http.StatusOK, "", "")
	if strings.Contains(r.raw, pw) || sget(r.body, "password") != "" || sget(r.body, "objectId") != objID {
		t.Fatalf("get %s", r.raw)
	}
	r = e.do("GET", spsPath, "", "")
	e.want(r, http.StatusOK, "", "")
	if v, _ := r.body["value"].([]any); len(v) != 1 || strings.Contains(r.raw, pw) {
		t.Fatalf("list %s", r.raw)
	}

	// Reset: a new secret works, the old one stops at once.
	r = e.do("POST", spsPath+"/"+appID+"/resetCredentials", "", "")
	e.want(r, http.StatusOK, "", "")
	pw2 := sget(r.body, "password")
	if pw2 == "" || pw2 == pw {
		t.Fatalf("reset %s", r.raw)
	}
	if _, err := ids.AuthenticateServicePrincipal(ctx, appID, pw); err == nil {
		t.Fatal("the old secret still authenticates after a reset")
	}
	if _, err := ids.AuthenticateServicePrincipal(ctx, appID, pw2); err != nil {
		t.Fatalf("the new secret: %v", err)
	}

	// Deleting removes the principal's role assignments with it.
	e.assign(rgScope, rbac.AcrPullID, objID)
	e.want(e.do("DELETE", spsPath+"/"+appID, "", ""), http.StatusNoContent, "", "")
	e.want(e.do("GET", spsPath+"/"+appID, "", ""), http.StatusNotFound, "PrincipalNotFound", "")
	e.want(e.do("DELETE", spsPath+"/"+appID, "", ""), http.StatusNotFound, "PrincipalNotFound", "")
	e.want(e.do("POST", spsPath+"/"+appID+"/resetCredentials", "", ""), http.StatusNotFound, "PrincipalNotFound", "")
	all, err := rbac.Load(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if strings.EqualFold(a.PrincipalID, objID) {
			t.Fatalf("assignment %s of the deleted principal is left", a.ID())
		}
	}

	// Paths and methods moat does not serve.
	e.want(e.do("GET", "/providers/Moat.Identity/groups", "", ""), http.StatusNotFound, "InvalidResourceType", "")
	e.want(e.do("POST", spsPath+"/"+appID+"/resetPassword", "", ""), http.StatusNotFound, "NotFound", "")
	e.want(e.do("PUT", spsPath+"/"+appID, "", "{}"), http.StatusMethodNotAllowed, "HttpMethodNotSupported", "")
}

func TestUserLifecycle(t *testing.T) {
	e, ids := withIdentities(t)
	ctx := context.Background()

	e.want(e.do("POST", usersPath, "", `{"password":"long-enough-pw"}`), http.StatusBadRequest, "InvalidRequestContent", "userPrincipalName is required")
	e.want(e.do("POST", usersPath, "", `{"userPrincipalName":"alice@moat","password":"short"}`), http.StatusBadRequest, "PasswordPolicyViolation", "at least 12")
	e.want(e.do("POST", usersPath, "", `{"userPrincipalName":"al ice","password":"long-enough-pw"}`), http.StatusBadRequest, "InvalidRequestContent", "")
	e.want(e.do("PUT", usersPath+"/bob", "", `{"userPrincipalName":"carol"}`), http.StatusBadRequest, "InvalidRequestContent", "differs")

	r := e.do("POST", usersPath, "", `{"userPrincipalName":"alice@moat","password":"long-enough-pw","displayName":"Alice"}`)
	e.want(r, http.StatusCreated, "", "")
	if sget(r.body, "password") != "" || sget(r.body, "displayName") != "Alice" || sget(r.body, "objectId") == "" {
		t.Fatalf("created %s (a chosen password is not echoed)", r.raw)
	}
	objID := sget(r.body, "objectId")
	e.want(e.do("POST", usersPath, "", `{"userPrincipalName":"alice@moat","password":"another-long-pw"}`), http.StatusConflict, "PrincipalAlreadyExists", "")
	if _, err := ids.AuthenticateBasic(ctx, "alice@moat", "long-enough-pw"); err != nil {
		t.Fatalf("alice cannot sign in: %v", err)
	}

	// PUT without a password generates one and shows it once.
	r = e.do("PUT", usersPath+"/bob", "", `{}`)
	e.want(r, http.StatusCreated, "", "")
	bobPW := sget(r.body, "password")
	if len(bobPW) < identity.MinPasswordLen {
		t.Fatalf("generated %s", r.raw)
	}
	r = e.do("GET", usersPath, "", "")
	e.want(r, http.StatusOK, "", "")
	if v, _ := r.body["value"].([]any); len(v) != 2 || strings.Contains(r.raw, bobPW) {
		t.Fatalf("list %s", r.raw) // alice and bob (this env has no admin)
	}
	e.want(e.do("GET", usersPath+"/bob", "", ""), http.StatusOK, "", "")

	// A password reset takes effect at once, even over a cached sign-in.
	e.want(e.do("POST", usersPath+"/alice@moat/resetPassword", "", `{"password":"tiny"}`), http.StatusBadRequest, "PasswordPolicyViolation", "")
	e.want(e.do("POST", usersPath+"/alice@moat/resetPassword", "", `{"password":"a-new-long-password"}`), http.StatusOK, "", "")
	if _, err := ids.AuthenticateBasic(ctx, "alice@moat", "long-enough-pw"); err == nil {
		t.Fatal("the old password still works")
	}
	if _, err := ids.AuthenticateBasic(ctx, "alice@moat", "a-new-long-password"); err != nil {
		t.Fatalf("the new password: %v", err)
	}

	// Delete: sign-in fails at once; assignments go too.
	e.assign(rgScope, rbac.ReaderID, objID)
	e.want(e.do("DELETE", usersPath+"/alice@moat", "", ""), http.StatusNoContent, "", "")
	if _, err := ids.AuthenticateBasic(ctx, "alice@moat", "a-new-long-password"); err == nil {
		t.Fatal("a deleted user still signs in")
	}
	e.want(e.do("GET", usersPath+"/alice@moat", "", ""), http.StatusNotFound, "PrincipalNotFound", "")
	e.want(e.do("DELETE", usersPath+"/alice@moat", "", ""), http.StatusNotFound, "PrincipalNotFound", "")
	e.want(e.do("POST", usersPath+"/nobody/resetPassword", "", `{"password":"long-enough-pw"}`), http.StatusNotFound, "PrincipalNotFound", "")

	// The deployment admin cannot be deleted.
	if _, _, err := ids.EnsureAdmin(ctx, "admin-password-1"); err != nil {
		t.Fatal(err)
	}
	admin, err := ids.GetUser(ctx, identity.AdminName)
	if err != nil {
		t.Fatal(err)
	}
	e.assign(rgScope, rbac.ReaderID, admin.ObjectID)
	e.want(e.do("DELETE", usersPath+"/admin", "", ""), http.StatusConflict, "PrincipalProtected", "")
	all, err := rbac.Load(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	kept := false
	for _, a := range all {
		kept = kept || strings.EqualFold(a.PrincipalID, admin.ObjectID)
	}
	if !kept {
		t.Fatal("the refused deletion of the admin removed its role assignments")
	}
}

// TestPrincipalAdminRoles: Owner administers principals, Contributor (whose
// notActions exclude Microsoft.Authorization/*/Write) and Reader only read.
func TestPrincipalAdminRoles(t *testing.T) {
	e, _ := withIdentities(t)
	const contributor = "0c000000-0000-0000-0000-0000000000c7"
	e.rootAssign("00000000-0000-0000-0000-0000000000a7", rbac.ContributorID, contributor)
	r := e.do("POST", spsPath, "", `{"displayName":"x"}`)
	e.want(r, http.StatusCreated, "", "")
	app := sget(r.body, "appId")
	for _, tok := range []string{"as:" + contributor, "reader"} {
		e.want(e.doAs(tok, "POST", spsPath, "", `{"displayName":"y"}`), http.StatusForbidden, "AuthorizationFailed", "principals/write")
		e.want(e.doAs(tok, "POST", spsPath+"/"+app+"/resetCredentials", "", ""), http.StatusForbidden, "AuthorizationFailed", "")
		e.want(e.doAs(tok, "DELETE", spsPath+"/"+app, "", ""), http.StatusForbidden, "AuthorizationFailed", "")
		e.want(e.doAs(tok, "PUT", usersPath+"/mallory", "", `{"password":"long-enough-pw"}`), http.StatusForbidden, "AuthorizationFailed", "")
		e.want(e.doAs(tok, "GET", spsPath, "", ""), http.StatusOK, "", "")
		e.want(e.doAs(tok, "GET", usersPath, "", ""), http.StatusOK, "", "")
	}
	// A principal with no role reads nothing either.
	e.want(e.doAs("as:0c000000-0000-0000-0000-0000000000c9", "GET", spsPath, "", ""), http.StatusForbidden, "AuthorizationFailed", "")
}

func FuzzParsePrincipalRoute(f *testing.F) {
	for _, s := range []string{spsPath, spsPath + "/x/resetCredentials", usersPath + "/a@b/resetPassword", "/providers/moat.identity/", "/providers/Moat.Identity//x", "/other"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		pr, ok, err := parsePrincipalRoute(path)
		if !ok && err != nil {
			t.Fatalf("%q: not ours but an error %v", path, err)
		}
		if ok && err == nil && strings.Contains(pr.name, "/") {
			t.Fatalf("%q: name %q has a slash", path, pr.name)
		}
	})
}

func sget(m map[string]any, path string) string {
	s, _ := get(m, path).(string)
	return s
}
