package dataplane

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestPing_AnonymousGetsChallengeWithScope(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/v2/", anon()).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	want := `Bearer realm="http://` + strings.TrimPrefix(e.srv.URL, "http://") +
		`/oauth2/token",service="moat.localhost",scope="registry:catalog:*"`
	r.wantHeader(t, "WWW-Authenticate", want)
	r.wantHeader(t, "Docker-Distribution-Api-Version", "registry/2.0")
}

func TestPing_BasicAuthenticated(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/v2/").wantStatus(t, http.StatusOK)
	if string(r.body) != "{}" {
		t.Errorf("body %q, want {}", r.body)
	}
	e.do(http.MethodGet, "/v2/", basicAuth(identity.AdminName, "wrong")).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	e.do(http.MethodGet, "/v2/", header("Authorization", "Digest abc")).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
}

func TestChallenge_NamesTheRouteScope(t *testing.T) {
	e := newEnv(t)
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		method, path, scope string
	}{
		{http.MethodGet, "/v2/lib/app/manifests/latest", "repository:lib/app:pull"},
		{http.MethodHead, "/v2/lib/app/blobs/" + d, "repository:lib/app:pull"},
		{http.MethodGet, "/v2/lib/app/tags/list", "repository:lib/app:pull"},
		{http.MethodGet, "/v2/lib/app/referrers/" + d, "repository:lib/app:pull"},
		{http.MethodPut, "/v2/lib/app/manifests/latest", "repository:lib/app:pull,push"},
		{http.MethodPost, "/v2/lib/app/blobs/uploads/", "repository:lib/app:pull,push"},
		{http.MethodPatch, "/v2/lib/app/blobs/uploads/abc", "repository:lib/app:pull,push"},
		{http.MethodDelete, "/v2/lib/app/manifests/" + d, "repository:lib/app:delete"},
		{http.MethodDelete, "/v2/lib/app/blobs/" + d, "repository:lib/app:delete"},
		{http.MethodGet, "/v2/_catalog", "registry:catalog:*"},
		{http.MethodPost, "/v2/lib/app/blobs/uploads/?mount=" + d + "&from=lib/base", "repository:lib/app:pull,push repository:lib/base:pull"},
	}
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, anon(), host(hostOther)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		want := `Bearer realm="http://other.localhost:5443/oauth2/token",service="other.localhost",scope="` + tt.scope + `"`
		if got := r.Header.Get("WWW-Authenticate"); got != want {
			t.Errorf("%s %s: challenge %q, want %q", tt.method, tt.path, got, want)
		}
	}
}

func TestTokenFlow_BasicThenBearer(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:app:pull,push").wantStatus(t, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Token == "" || tr.AccessToken != tr.Token || tr.ExpiresIn <= 0 {
		t.Fatalf("token response %s", r.body)
	}
	if _, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil {
		t.Errorf("issued_at %q: %v", tr.IssuedAt, err)
	}
	r.wantHeader(t, "Cache-Control", "no-store")

	img := e.pushImage("app", "1")
	e.putManifest("app", "v1", img.manifest, "application/vnd.oci.image.manifest.v1+json", bearer(tr.Token)).
		wantStatus(t, http.StatusCreated)
	e.do(http.MethodGet, "/v2/app/manifests/v1", bearer(tr.Token)).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/", bearer(tr.Token)).wantStatus(t, http.StatusOK)

	// The token names one repository and two actions, nothing more.
	r = e.do(http.MethodDelete, "/v2/app/manifests/v1", bearer(tr.Token)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	if got := r.Header.Get("WWW-Authenticate"); !strings.Contains(got, `scope="repository:app:delete"`) ||
		!strings.Contains(got, `error="insufficient_scope"`) {
		t.Errorf("challenge %q", got)
	}
	e.do(http.MethodGet, "/v2/other/manifests/v1", bearer(tr.Token)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	e.do(http.MethodGet, "/v2/_catalog", bearer(tr.Token)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
}

func TestTokenFlow_TokenIsBoundToItsRegistry(t *testing.T) {
	e := newEnv(t)
	tok := e.token("moat.localhost", "repository:app:pull")
	r := e.do(http.MethodGet, "/v2/app/tags/list", bearer(tok), host(hostOther)).
		wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	if got := r.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("challenge %q", got)
	}
	e.do(http.MethodGet, "/v2/", bearer("not.a.token")).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
}

func TestTokenEndpoint_Errors(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/oauth2/token?service=moat.localhost", anon()).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	r.wantHeader(t, "WWW-Authenticate", `Basic realm="moat"`)
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost", basicAuth("admin", "nope")).
		wantError(t, http.StatusUnauthorized, "UNAUTHORIZED").wantHeader(t, "WWW-Authenticate", `Basic realm="moat"`)
	e.do(http.MethodGet, "/oauth2/token?service=other.localhost").wantError(t, http.StatusBadRequest, "UNSUPPORTED")
	e.do(http.MethodGet, "/oauth2/token").wantError(t, http.StatusBadRequest, "UNSUPPORTED")
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=nonsense").wantError(t, http.StatusBadRequest, "UNSUPPORTED")
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:Bad/Name:pull").wantError(t, http.StatusBadRequest, "NAME_INVALID")
	e.do(http.MethodGet, "/oauth2/token?service=nope.localhost", host("nope.localhost")).wantError(t, http.StatusNotFound, "NAME_UNKNOWN")

	r = e.do(http.MethodPost, "/oauth2/token", body([]byte("grant_type=client_credentials&service=moat.localhost")),
		header("Content-Type", "application/x-www-form-urlencoded")).wantStatus(t, http.StatusBadRequest)
	var oe oauthError
	if err := json.Unmarshal(r.body, &oe); err != nil || oe.Error != "unsupported_grant_type" {
		t.Errorf("POST answer %s (%v)", r.body, err)
	}
	e.do(http.MethodPut, "/oauth2/token").wantError(t, http.StatusMethodNotAllowed, "UNSUPPORTED")
}

func TestTokenEndpoint_SeveralScopesInOneParameter(t *testing.T) {
	e := newEnv(t)
	scope := "repository:a:pull,push repository:b:pull"
	tok := e.token("other.localhost", scope)
	claims, err := e.id.VerifyAccessToken(t.Context(), tok, "other.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if !claims.Allows("repository", "a", "push") || !claims.Allows("repository", "b", "pull") {
		t.Errorf("claims %+v", claims.Access)
	}
	// The service must be the login server of the registry the Host names.
	e.do(http.MethodGet, "/oauth2/token?"+url.Values{"service": {"other.localhost"}, "scope": {scope}}.Encode()).
		wantError(t, http.StatusBadRequest, "UNSUPPORTED")
}

func TestCatalog_NeedsCatalogScope(t *testing.T) {
	e := newEnv(t)
	tok := e.token("moat.localhost", "registry:catalog:*")
	e.do(http.MethodGet, "/v2/_catalog", bearer(tok)).wantStatus(t, http.StatusOK)
	// A catalog token is no repository token.
	r := e.do(http.MethodGet, "/v2/app/tags/list", bearer(tok)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	if got := r.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) {
		t.Errorf("challenge %q", got)
	}
}

func TestCovers(t *testing.T) {
	pull := identity.Access{Type: "repository", Name: "a", Actions: []string{"pull"}}
	pullPush := identity.Access{Type: "repository", Name: "a", Actions: []string{"pull", "push"}}
	star := identity.Access{Type: "repository", Name: "a", Actions: []string{"*"}}
	other := identity.Access{Type: "repository", Name: "b", Actions: []string{"pull", "push"}}
	empty := identity.Access{Type: "repository", Name: "a", Actions: []string{}}
	tests := []struct {
		granted, need []identity.Access
		want          bool
	}{
		{[]identity.Access{pullPush}, []identity.Access{pull}, true},
		{[]identity.Access{pull}, []identity.Access{pullPush}, false},
		{[]identity.Access{star}, []identity.Access{pullPush}, true},
		{[]identity.Access{other}, []identity.Access{pull}, false},
		{[]identity.Access{empty}, []identity.Access{pull}, false},
		{nil, []identity.Access{pull}, false},
		{[]identity.Access{pull}, []identity.Access{pull, other}, false},
		{nil, nil, true},
	}
	for i, tt := range tests {
		if got := covers(tt.granted, tt.need); got != tt.want {
			t.Errorf("case %d: covers = %v, want %v", i, got, tt.want)
		}
	}
}

// addUser stores a user without any role: it can sign in but may do nothing.
func (e *env) addUser(name, password string) {
	e.t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.meta.PutPrincipal(context.Background(), meta.Principal{
		ID: "00000000-0000-4000-8000-00000000beef", Kind: identity.KindUser, Name: name, SecretHash: hash,
	}); err != nil {
		e.t.Fatal(err)
	}
}

func TestBasic_AuthenticatedButNotAllowedIsDenied(t *testing.T) {
	e := newEnv(t)
	e.addUser("reader", "reader-pw")
	as := basicAuth("reader", "reader-pw")
	e.do(http.MethodGet, "/v2/", as).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/app/tags/list", as).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodPost, "/v2/app/blobs/uploads/", as).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodGet, "/v2/_catalog", as).wantError(t, http.StatusForbidden, "DENIED")
	if !strings.Contains(e.logs.String(), `"decision":"denied"`) {
		t.Error("denial not logged")
	}

	// Its token carries the scope with no actions: a bearer request is sent
	// back for a better token.
	r := e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:app:pull", as).wantStatus(t, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	e.do(http.MethodGet, "/v2/app/tags/list", bearer(tr.Token)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED").
		wantHeader(t, "WWW-Authenticate", `Bearer realm="http://`+strings.TrimPrefix(e.srv.URL, "http://")+
			`/oauth2/token",service="moat.localhost",scope="repository:app:pull",error="insufficient_scope"`)
}

func TestMount_SourceRefusedFallsBackToUpload(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("secret", randomBytes(t, 10))
	path := "/v2/app/blobs/uploads/?mount=" + d.String() + "&from=secret"
	// A token that asked for the source and was refused it: no mount, and no
	// loop of challenges either.
	claims := identity.Claims{Access: []identity.Access{
		{Type: "repository", Name: "app", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "secret", Actions: []string{}},
	}}
	q := &request{r: httptest.NewRequest(http.MethodPost, path, nil)}
	ok, ae := e.h.mayPullSource(q, caller{claims: &claims}, identity.Access{Type: "repository", Name: "secret", Actions: actionsPull}, nil)
	if ok || ae != nil {
		t.Fatalf("mayPullSource = %v, %v; want a quiet refusal", ok, ae)
	}
	// End to end with the admin it mounts.
	e.do(http.MethodPost, path).wantStatus(t, http.StatusCreated)
}
