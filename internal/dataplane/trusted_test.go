package dataplane

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

const (
	tsGroup = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/apps"
	tsACI   = tsGroup + "/providers/Microsoft.ContainerInstance/containerGroups/puller"
	tsSite  = tsGroup + "/providers/Microsoft.Web/sites/webapp"
	tsML    = tsGroup + "/providers/Microsoft.MachineLearningServices/workspaces/mlw"
	tsTask  = tsGroup + "/providers/Microsoft.ContainerRegistry/registries/moat/tasks/build"
	tsUAI   = tsGroup + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared"
)

// miToken issues a data-plane access token for a managed identity running
// on instance (identity resource idRes), as /oauth2/exchange + /oauth2/token
// would for the principal VerifyEntraToken answers.
func (e *env) miToken(idRes, instance string, userAssigned bool, service string) string {
	e.t.Helper()
	ctx := context.Background()
	mi, err := e.id.EnsureManagedIdentity(ctx, idRes, userAssigned)
	if err != nil {
		e.t.Fatal(err)
	}
	p := identity.Principal{ID: mi.PrincipalID, Kind: identity.KindManagedIdentity, Name: idRes, ResourceID: instance}
	tok, err := e.id.IssueAccessToken(ctx, p, testDefault, service,
		[]identity.Access{{Type: identity.TypeRepository, Name: "app", Actions: []string{identity.ActionPull}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.Token
}

// pullWith GETs the manifest with a bearer token and returns the status and
// the error code.
func (e *env) pullWith(tok string) (int, string) {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v2/app/manifests/v1", bearer(tok), host(hostDefault))
	var eb struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	_ = json.Unmarshal(r.body, &eb)
	code := ""
	if len(eb.Errors) > 0 {
		code = eb.Errors[0].Code
	}
	return r.StatusCode, code
}

// TestTrustedServices_ManagedIdentities: with public access disabled and
// AzureServices bypass, a verified container-group (or ML) identity's token
// passes the network decision (and then meets RBAC: without a role it gets
// 401 insufficient scope, not 403 DENIED); App Service never passes; a task
// only with networkRuleBypassAllowedForTasks; nothing with bypass None; a
// token moat did not sign, or for another registry, is denied.
func TestTrustedServices_ManagedIdentities(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "trusted")
	e.putManifest("app", "v1", img.manifest, "application/vnd.oci.image.manifest.v1+json").wantStatus(t, http.StatusCreated)
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"AzureServices"}`)

	const login = "moat.localhost"
	aci := e.miToken(tsACI, tsACI, false, login)
	uaiOnACI := e.miToken(tsUAI, tsACI, true, login)
	uaiOnSite := e.miToken(tsUAI, tsSite, true, login)
	site := e.miToken(tsSite, tsSite, false, login)
	ml := e.miToken(tsML, tsML, false, login)
	task := e.miToken(tsTask, tsTask, false, login)
	otherReg := e.miToken(tsACI, tsACI, false, "other.localhost")

	// A token with the same claims signed by another deployment's keys.
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "forger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	forger, err := identity.New(context.Background(), st, identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.IssueAccessToken(context.Background(),
		identity.Principal{ID: "x", Kind: identity.KindManagedIdentity, Name: tsACI, ResourceID: tsACI}, testDefault, login, nil)
	if err != nil {
		t.Fatal(err)
	}

	passes := func(label, tok string) {
		t.Helper()
		if code, ec := e.pullWith(tok); code != http.StatusUnauthorized || ec != "UNAUTHORIZED" {
			t.Errorf("%s: %d %s, want 401 UNAUTHORIZED (network passed, no role)", label, code, ec)
		}
	}
	denied := func(label, tok string) {
		t.Helper()
		if code, ec := e.pullWith(tok); code != http.StatusForbidden || ec != "DENIED" {
			t.Errorf("%s: %d %s, want 403 DENIED", label, code, ec)
		}
	}
	passes("container group", aci)
	passes("user-assigned identity on a container group", uaiOnACI)
	passes("ML workspace", ml)
	denied("App Service", site)
	denied("user-assigned identity on App Service", uaiOnSite)
	denied("task without networkRuleBypassAllowedForTasks", task)
	denied("forged token", forged.Token)
	denied("token for another registry", otherReg)
	denied("garbage", "not-a-jwt")

	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"AzureServices","networkRuleBypassAllowedForTasks":true}`)
	passes("task with networkRuleBypassAllowedForTasks", task)
	denied("App Service, tasks allowed", site)

	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None","networkRuleBypassAllowedForTasks":true}`)
	denied("container group with bypass None", aci)
	denied("task with bypass None", task)
	if logs := e.logs.String(); !strings.Contains(logs, "trusted-services bypass is off") {
		t.Errorf("the denial does not say the bypass was off:\n%.1500s", logs)
	}
}

// TestTrustedServices_DefenderScannerPulls: the built-in scanner principal
// pulls through a registry whose public access is disabled, without any
// role assignment, with a stock client (go-containerregistry); it cannot
// push; with bypass None it is denied like anyone.
func TestTrustedServices_DefenderScannerPulls(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "scan")
	e.putManifest("app", "v1", img.manifest, "application/vnd.oci.image.manifest.v1+json").wantStatus(t, http.StatusCreated)
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled"}`)
	ctx := context.Background()
	var secret string
	if _, err := e.id.EnsureDefenderScanner(ctx, func(s string) error { secret = s; return nil }); err != nil {
		t.Fatal(err)
	}
	p, err := e.id.AuthenticateServicePrincipal(ctx, identity.DefenderScannerAppID, secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.id.IssueAccessToken(ctx, p, testDefault, "moat.localhost",
		[]identity.Access{{Type: identity.TypeRepository, Name: "app", Actions: []string{identity.ActionPull, identity.ActionPush}}})
	if err != nil {
		t.Fatal(err)
	}
	if acts := tok.Access[0].Actions; len(acts) != 1 || acts[0] != identity.ActionPull {
		t.Fatalf("scanner granted %v, want pull only", acts)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(e.srv.URL, "http://") + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	// Every request carries the token, the ping included: with public
	// access disabled an anonymous request is denied before anything else,
	// so a trusted caller must name itself from the first request on.
	desc, err := remote.Get(ref, remote.WithAuth(authn.FromConfig(authn.AuthConfig{RegistryToken: tok.Token})),
		remote.WithTransport(bearerTransport{tok.Token}))
	if err != nil {
		t.Fatalf("scanner pull through disabled public access: %v", err)
	}
	if desc.Digest.String() != img.digest.String() {
		t.Errorf("pulled %s, want %s", desc.Digest, img.digest)
	}
	// Read-only: a push is refused by authorization, not by the network.
	r := e.putManifest("app", "v2", img.manifest, "application/vnd.oci.image.manifest.v1+json", bearer(tok.Token), host(hostDefault))
	r.wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")

	// Another service principal is not the scanner.
	sp, spSecret, err := e.id.CreateServicePrincipal(ctx, "someone")
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.id.AuthenticateServicePrincipal(ctx, sp.AppID, spSecret)
	if err != nil {
		t.Fatal(err)
	}
	otherTok, err := e.id.IssueAccessToken(ctx, other, testDefault, "moat.localhost", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, ec := e.pullWith(otherTok.Token); code != http.StatusForbidden || ec != "DENIED" {
		t.Errorf("ordinary service principal: %d %s, want 403 DENIED", code, ec)
	}

	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}`)
	if code, ec := e.pullWith(tok.Token); code != http.StatusForbidden || ec != "DENIED" {
		t.Errorf("scanner with bypass None: %d %s, want 403 DENIED", code, ec)
	}
}

// TestTrustedServices_ExchangeForm: the Entra token a managed identity
// presents to /oauth2/exchange (obtained from moat's MSI endpoint) is
// verified and classified, and the form stays readable for the handler; a
// wrong or missing token classifies as None.
func TestTrustedServices_ExchangeForm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled"}`)
	for _, id := range []string{tsGroup, tsACI, tsSite} {
		if _, err := e.meta.PutResource(ctx, meta.Resource{ID: id, Type: "test", Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	msi := httptest.NewServer(e.id.ManagedIdentityHandler())
	t.Cleanup(msi.Close)
	entraToken := func(instance string) string {
		mi, err := e.id.EnsureManagedIdentity(ctx, instance, false)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := e.id.SetIdentityHost(ctx, instance, mi.PrincipalID, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, msi.URL+identity.MSIPath+"?api-version=2019-08-01&resource=https://containerregistry.azure.net", nil)
		req.Header.Set("X-IDENTITY-HEADER", secret)
		resp, err := msi.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
			t.Fatalf("MSI token: %d %v", resp.StatusCode, err)
		}
		return body.AccessToken
	}
	classify := func(form string, contentType string) (netrule.TrustedService, string) {
		r := httptest.NewRequest(http.MethodPost, exchangePath, strings.NewReader(form))
		r.Header.Set("Content-Type", contentType)
		q := &request{r: r, login: "moat.localhost", registry: testDefault}
		ts := e.h.trustedService(q)
		rest, _ := io.ReadAll(r.Body)
		return ts, string(rest)
	}
	const formCT = "application/x-www-form-urlencoded"
	aciForm := url.Values{"grant_type": {"access_token"}, "service": {"moat.localhost"}, "access_token": {entraToken(tsACI)}}.Encode()
	if ts, rest := classify(aciForm, formCT); ts != netrule.ContainerInstances || rest != aciForm {
		t.Errorf("container group exchange: %v, body after %q", ts, rest)
	}
	siteForm := url.Values{"grant_type": {"access_token"}, "access_token": {entraToken(tsSite)}}.Encode()
	if ts, _ := classify(siteForm, formCT); ts != netrule.AppService {
		t.Errorf("site exchange: %v, want AppService (which Decide never lets through)", ts)
	}
	for _, c := range []struct{ form, ct string }{
		{"access_token=garbage", formCT},
		{aciForm, "application/json"},
		{"%zz", formCT},
		{"access_token=" + strings.Repeat("a", maxExchangeForm), formCT},
	} {
		if ts, _ := classify(c.form, c.ct); ts != netrule.None {
			t.Errorf("form %.40q (%s): %v, want None", c.form, c.ct, ts)
		}
	}
	// A request the rules allow is not classified at all: the network
	// check admits it without reading (or verifying) its token.
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Enabled"}`)
	entry, err := e.h.registries.lookup(ctx, e.meta, testDefault, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, exchangePath, strings.NewReader(aciForm))
	r.Header.Set("Content-Type", formCT)
	q := &request{r: r, login: "moat.localhost", registry: testDefault, ip: netip.MustParseAddr("192.0.2.7")}
	allowed := e.h.checkNetwork(q, entry)
	rest, _ := io.ReadAll(r.Body)
	if !allowed || string(rest) != aciForm || r.Form != nil {
		t.Errorf("open registry: allowed %v, body after %q, form parsed %v", allowed, rest, r.Form != nil)
	}
}

// bearerTransport sends a bearer token on every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// miRefreshToken issues a refresh token for a managed identity running on
// instance, bound to registry reg at login, as /oauth2/exchange would.
func (e *env) miRefreshToken(idRes, instance, reg, login string) string {
	e.t.Helper()
	ctx := context.Background()
	mi, err := e.id.EnsureManagedIdentity(ctx, idRes, false)
	if err != nil {
		e.t.Fatal(err)
	}
	p := identity.Principal{ID: mi.PrincipalID, Kind: identity.KindManagedIdentity, Name: idRes, ResourceID: instance}
	rt, err := e.id.IssueRefreshToken(ctx, p, reg, login)
	if err != nil {
		e.t.Fatal(err)
	}
	return rt.Token
}

// TestTrustedServices_RefreshTokens: the refresh token a trusted service's
// identity got from /oauth2/exchange is verified and classified at POST
// /oauth2/token (grant_type=refresh_token) and as Basic credentials with
// the refresh-token user, so the whole ACR token flow passes a registry
// with public access disabled; a refresh token of App Service, of a task
// without networkRuleBypassAllowedForTasks, bound to another registry,
// signed by another deployment or mangled is denied, and so is any grant
// but refresh_token.
func TestTrustedServices_RefreshTokens(t *testing.T) {
	e := newEnv(t)
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"AzureServices"}`)
	const login = "moat.localhost"
	aci := e.miRefreshToken(tsACI, tsACI, testDefault, login)
	site := e.miRefreshToken(tsSite, tsSite, testDefault, login)
	task := e.miRefreshToken(tsTask, tsTask, testDefault, login)
	otherReg := e.miRefreshToken(tsACI, tsACI, testOther, "other.localhost")

	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "forger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	forger, err := identity.New(context.Background(), st, identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mi, err := e.id.GetManagedIdentity(context.Background(), tsACI)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.IssueRefreshToken(context.Background(),
		identity.Principal{ID: mi.PrincipalID, Kind: identity.KindManagedIdentity, Name: tsACI, ResourceID: tsACI}, testDefault, login)
	if err != nil {
		t.Fatal(err)
	}

	refresh := func(rt string, grant string) *response {
		return e.do(http.MethodPost, tokenPath, formPost("", url.Values{
			"grant_type": {grant}, "service": {login}, "scope": {"repository:app:pull"}, "refresh_token": {rt},
		}, host(hostDefault))...)
	}
	refresh(aci, "refresh_token").wantStatus(t, http.StatusOK)
	for label, rt := range map[string]string{
		"App Service": site, "task without networkRuleBypassAllowedForTasks": task,
		"another registry's": otherReg, "forged": forged.Token, "mangled": aci[:len(aci)-4] + "AAAA", "empty": "",
	} {
		if r := refresh(rt, "refresh_token"); r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.body), "DENIED") {
			t.Errorf("%s refresh token: %d %s, want 403 DENIED", label, r.StatusCode, r.body)
		}
	}
	// A genuine refresh token under another grant is not classified.
	if r := refresh(aci, "password"); r.StatusCode != http.StatusForbidden {
		t.Errorf("refresh token under grant_type=password: %d %s, want 403", r.StatusCode, r.body)
	}

	// Basic credentials with the refresh-token user, on the token GET and on /v2.
	basicRT := func(rt string) reqOpt {
		return func(r *http.Request) { r.SetBasicAuth(identity.RefreshTokenUser, rt) }
	}
	e.do(http.MethodGet, "/oauth2/token?service="+login+"&scope=repository:app:pull", basicRT(aci), host(hostDefault)).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/oauth2/token?service="+login+"&scope=repository:app:pull", basicRT(site), host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodGet, "/v2/", basicRT(aci), host(hostDefault)).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/", basicRT(forged.Token), host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")

	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"AzureServices","networkRuleBypassAllowedForTasks":true}`)
	refresh(task, "refresh_token").wantStatus(t, http.StatusOK)
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}`)
	refresh(aci, "refresh_token").wantError(t, http.StatusForbidden, "DENIED")
}

// TestTrustedServices_ChallengeRevealsAndAllowsNothing: with public access
// disabled and the bypass on, a request without credentials gets the
// ordinary Bearer challenge (what azcontainerregistry and crane need to
// reach the token step), naming only what the path says, the same for a
// repository that does not exist; the token endpoints still refuse anyone
// who is not a verified trusted service; requests with other credentials,
// and everything once the bypass is off, get 403 DENIED.
func TestTrustedServices_ChallengeRevealsAndAllowsNothing(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "challenge")
	e.putManifest("app", "v1", img.manifest, "application/vnd.oci.image.manifest.v1+json").wantStatus(t, http.StatusCreated)
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"AzureServices","anonymousPullEnabled":true}`)

	for _, c := range []struct{ method, path, scope string }{
		{http.MethodGet, "/v2/", `scope="registry:catalog:*"`},
		{http.MethodGet, "/v2/_catalog", `scope="registry:catalog:*"`},
		{http.MethodGet, "/v2/app/manifests/v1", `scope="repository:app:pull"`},
		{http.MethodHead, "/v2/app/manifests/v1", `scope="repository:app:pull"`},
		{http.MethodGet, "/v2/nothing/here/manifests/v1", `scope="repository:nothing/here:pull"`},
		{http.MethodGet, "/v2/app/blobs/" + img.digest.String(), `scope="repository:app:pull"`},
		{http.MethodPut, "/v2/app/manifests/v2", `scope="repository:app:pull,push"`},
		{http.MethodPost, "/v2/app/blobs/uploads/", `scope="repository:app:pull,push"`},
		{http.MethodDelete, "/v2/app/manifests/v1", `scope="repository:app:delete"`},
	} {
		r := e.do(c.method, c.path, anon(), host(hostDefault)).wantStatus(t, http.StatusUnauthorized)
		ch := r.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(ch, `Bearer realm="http://moat.localhost/oauth2/token",service="moat.localhost"`) || !strings.Contains(ch, c.scope) || strings.Contains(ch, "error=") {
			t.Errorf("%s %s: challenge %q, want one naming %s", c.method, c.path, ch, c.scope)
		}
		if c.method != http.MethodHead && strings.Contains(string(r.body), "MANIFEST") {
			t.Errorf("%s %s: the challenge tells about the content: %s", c.method, c.path, r.body)
		}
		if c.method != http.MethodHead && !strings.Contains(string(r.body), "is not allowed access") {
			t.Errorf("%s %s: the challenge's body does not say the address is refused: %s", c.method, c.path, r.body)
		}
	}
	// The way on is closed to everyone but a verified trusted service.
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:app:pull", anon(), host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:app:pull", host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodPost, tokenPath, formPost("", url.Values{"grant_type": {"password"}, "service": {"moat.localhost"}, "scope": {"repository:app:pull"}}, host(hostDefault))...).
		wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodPost, exchangePath, formPost("", url.Values{"grant_type": {"access_token"}, "service": {"moat.localhost"}, "access_token": {"x.y.z"}}, host(hostDefault))...).
		wantError(t, http.StatusForbidden, "DENIED")
	// Credentials that are not a trusted service's: DENIED, not challenged.
	e.do(http.MethodGet, "/v2/app/manifests/v1", host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodGet, "/v2/app/manifests/v1", bearer("not-a-token"), host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	// The challenge is a refusal, and says why in the log.
	if logs := e.logs.String(); !strings.Contains(logs, "challenged for a trusted service") {
		t.Errorf("the challenged request is not logged as refused:\n%.1500s", logs)
	}

	// Nothing could pass: DENIED at once.
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None","anonymousPullEnabled":true}`)
	e.do(http.MethodGet, "/v2/", anon(), host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodGet, "/v2/app/manifests/v1", anon(), host(hostDefault)).wantError(t, http.StatusForbidden, "DENIED")
	// An allowed network is not concerned: anonymous pull works as before.
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Enabled","anonymousPullEnabled":true}`)
	e.do(http.MethodGet, "/v2/app/manifests/v1", anon(), host(hostDefault), header("Accept", "application/vnd.oci.image.manifest.v1+json")).wantStatus(t, http.StatusOK)
}

// TestTrustedServices_ExpiredTokensAreNotTrusted: a container group's
// access token, refresh token and Entra token, all genuine (moat's keys,
// same store), are classified while valid and refused with 403 DENIED once
// expired: an expired token classifies as nobody.
func TestTrustedServices_ExpiredTokensAreNotTrusted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"AzureServices"}`)
	for _, id := range []string{tsGroup, tsACI} {
		if _, err := e.meta.PutResource(ctx, meta.Resource{ID: id, Type: "test", Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// Another replica of the identity service whose clock the test sets.
	var clock time.Time
	past, err := identity.New(ctx, e.meta, identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	mi, err := past.EnsureManagedIdentity(ctx, tsACI, false)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := past.SetIdentityHost(ctx, tsACI, mi.PrincipalID, nil)
	if err != nil {
		t.Fatal(err)
	}
	msi := httptest.NewServer(past.ManagedIdentityHandler())
	t.Cleanup(msi.Close)
	const login = "moat.localhost"
	p := identity.Principal{ID: mi.PrincipalID, Kind: identity.KindManagedIdentity, Name: tsACI, ResourceID: tsACI}
	tokens := func() (access, refresh, entra string) {
		at, err := past.IssueAccessToken(ctx, p, testDefault, login, nil)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := past.IssueRefreshToken(ctx, p, testDefault, login)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, msi.URL+identity.MSIPath+"?api-version=2019-08-01&resource=https://containerregistry.azure.net", nil)
		req.Header.Set("X-IDENTITY-HEADER", secret)
		resp, err := msi.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
			t.Fatalf("MSI token: %d %v", resp.StatusCode, err)
		}
		return at.Token, rt.Token, body.AccessToken
	}
	status := func(at, rt, et string) [3]int {
		a := e.do(http.MethodGet, "/v2/app/manifests/v1", bearer(at), host(hostDefault)).StatusCode
		r := e.do(http.MethodPost, tokenPath, formPost("", url.Values{
			"grant_type": {"refresh_token"}, "service": {login}, "refresh_token": {rt}}, host(hostDefault))...).StatusCode
		x := e.do(http.MethodPost, exchangePath, formPost("", url.Values{
			"grant_type": {"access_token"}, "service": {login}, "access_token": {et}}, host(hostDefault))...).StatusCode
		return [3]int{a, r, x}
	}
	clock = time.Now()
	// Valid: the network lets them through (the access token then lacks
	// a role: 401, not 403).
	if got := status(tokens()); got != [3]int{http.StatusUnauthorized, http.StatusOK, http.StatusOK} {
		t.Fatalf("valid tokens: %v, want [401 200 200]", got)
	}
	clock = time.Now().Add(-identity.RefreshTokenLifetime - 24*time.Hour)
	if got := status(tokens()); got != [3]int{http.StatusForbidden, http.StatusForbidden, http.StatusForbidden} {
		t.Fatalf("expired tokens: %v, want 403 DENIED for each", got)
	}
}

// FuzzFormField: reading a field for classification never panics, gives
// back exactly the body it read (the token handlers read it again), and
// gives "" unless the grant matches.
func FuzzFormField(f *testing.F) {
	f.Add("grant_type=refresh_token&refresh_token=abc&service=x", "application/x-www-form-urlencoded")
	f.Add("grant_type=password&refresh_token=abc", "application/x-www-form-urlencoded; charset=utf-8")
	f.Add("refresh_token=%zz", "application/x-www-form-urlencoded")
	f.Add("grant_type=refresh_token&grant_type=refresh_token&refresh_token=a&refresh_token=b", "APPLICATION/X-WWW-FORM-URLENCODED")
	f.Add(`{"refresh_token":"abc"}`, "application/json")
	f.Fuzz(func(t *testing.T, body, ct string) {
		r := httptest.NewRequest(http.MethodPost, tokenPath, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		got := formField(r, "refresh_token", "refresh_token")
		rest, err := io.ReadAll(r.Body)
		if err != nil || string(rest) != body {
			t.Fatalf("body after classification %q (%v), want %q", rest, err, body)
		}
		if got == "" {
			return
		}
		form, err := url.ParseQuery(body)
		if err != nil || form.Get("grant_type") != "refresh_token" || form.Get("refresh_token") != got {
			t.Fatalf("formField(%q) = %q, but the form says %v (%v)", body, got, form, err)
		}
	})
}
