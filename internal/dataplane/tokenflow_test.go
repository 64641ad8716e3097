package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/containers/azcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/moat-registry/moat/internal/identity"
)

// azureCLIClientID is the public client az uses for the password grant.
const azureCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// formPost sends a form to the env's server.
func formPost(path string, form url.Values, opts ...reqOpt) []reqOpt {
	b := []byte(form.Encode())
	return append([]reqOpt{anon(), body(b), header("Content-Type", "application/x-www-form-urlencoded")}, opts...)
}

// oauthAnswer decodes an RFC 6749 error body, failing unless it is one with
// the wanted status and code.
func (r *response) wantOAuthError(t testing.TB, status int, code string) {
	t.Helper()
	var oe oauthError
	if r.StatusCode != status || json.Unmarshal(r.body, &oe) != nil || oe.Error != code || oe.Description == "" {
		t.Fatalf("%s %s: %d %s; want %d with error %q", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body, status, code)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on a token answer", cc)
	}
}

// entraToken gets an Entra access token for aud from moat's Entra endpoint
// with the password grant.
func (e *env) entraToken(user, pass, aud string) string {
	e.t.Helper()
	tenant, err := e.id.TenantID(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	form := url.Values{
		"grant_type": {"password"}, "client_id": {azureCLIClientID},
		"username": {user}, "password": {pass}, "scope": {aud + "/.default"},
	}
	req := httptest.NewRequest(http.MethodPost, "https://moat.test/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.id.EntraHandler().ServeHTTP(rec, req)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.AccessToken == "" {
		e.t.Fatalf("Entra token: %d %s", rec.Code, rec.Body)
	}
	return out.AccessToken
}

// refreshToken exchanges an Entra token of the deployment admin at the
// registry reached through h (a Host header value).
func (e *env) refreshToken(h, service string) string {
	e.t.Helper()
	at := e.entraToken(identity.AdminName, adminPassword, "https://management.azure.com")
	r := e.do(http.MethodPost, "/oauth2/exchange", formPost("", url.Values{
		"grant_type": {"access_token"}, "service": {service}, "access_token": {at},
	}, host(h))...).wantStatus(e.t, http.StatusOK)
	var out refreshTokenResponse
	if err := json.Unmarshal(r.body, &out); err != nil || out.RefreshToken == "" {
		e.t.Fatalf("exchange answer %s: %v", r.body, err)
	}
	return out.RefreshToken
}

// setProperties replaces a registry's stored properties (and SKU) and drops
// the data plane's cached copy, as the management plane does.
func (e *env) setProperties(name, sku, props string) {
	e.t.Helper()
	ctx := context.Background()
	reg, err := e.meta.GetRegistry(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	reg.SKU, reg.Properties = sku, []byte(props)
	if _, err := e.meta.UpdateRegistry(ctx, reg); err != nil {
		e.t.Fatal(err)
	}
	e.h.Invalidate(name)
}

func (e *env) adminPasswords(name string) identity.AdminCredentials {
	e.t.Helper()
	reg, err := e.meta.GetRegistry(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := identity.ListAdminCredentials(context.Background(), e.meta, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// dialTo makes every connection go to addr, so a client can name a
// registry by its host name.
func dialTo(addr string) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return tr
}

// ggcrRef names repo:tag at hostport over plain HTTP.
func ggcrRef(t *testing.T, hostport, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(hostport+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func wantTransportStatus(t *testing.T, err error, status int) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != status {
		t.Fatalf("err = %v, want an HTTP %d", err, status)
	}
}

func TestExchange_HTTPFlow(t *testing.T) {
	e := newEnv(t)
	rt := e.refreshToken(hostDefault, "moat.localhost")

	// refresh_token grant: the intersection of the scope and the admin's roles.
	r := e.do(http.MethodPost, "/oauth2/token", formPost("", url.Values{
		"grant_type": {"refresh_token"}, "service": {"moat.localhost"}, "refresh_token": {rt},
		"scope": {"repository:app:pull,push registry:catalog:* bogus:x:pull"},
	})...).wantStatus(t, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token answer %s: %v", r.body, err)
	}
	c, err := e.id.VerifyAccessToken(context.Background(), tr.AccessToken, "moat.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Access) != 3 || len(c.Access[0].Actions) != 2 || len(c.Access[1].Actions) != 1 || len(c.Access[2].Actions) != 0 {
		t.Errorf("access = %+v", c.Access)
	}
	e.do(http.MethodGet, "/v2/_catalog", bearer(tr.AccessToken)).wantStatus(t, http.StatusOK)

	// GET with Basic: the refresh-token user name.
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:app:pull",
		basicAuth(identity.RefreshTokenUser, rt)).wantStatus(t, http.StatusOK)
	// Basic straight on /v2 too.
	e.do(http.MethodGet, "/v2/_catalog", basicAuth(identity.RefreshTokenUser, rt)).wantStatus(t, http.StatusOK)

	// A service principal without roles gets a token granting nothing.
	sp, secret, err := e.id.CreateServicePrincipal(context.Background(), "ci")
	if err != nil {
		t.Fatal(err)
	}
	spTok := e.entraTokenCC(sp.AppID, secret)
	r = e.do(http.MethodPost, "/oauth2/exchange", formPost("", url.Values{
		"grant_type": {"access_token"}, "service": {"moat.localhost"}, "access_token": {spTok},
	})...).wantStatus(t, http.StatusOK)
	var rr refreshTokenResponse
	if err := json.Unmarshal(r.body, &rr); err != nil {
		t.Fatal(err)
	}
	r = e.do(http.MethodPost, "/oauth2/token", formPost("", url.Values{
		"grant_type": {"refresh_token"}, "service": {"moat.localhost"}, "refresh_token": {rr.RefreshToken},
		"scope": {"repository:app:pull"},
	})...).wantStatus(t, http.StatusOK)
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatal(err)
	}
	if c, err := e.id.VerifyAccessToken(context.Background(), tr.AccessToken, "moat.localhost"); err != nil || len(c.Access) != 1 || len(c.Access[0].Actions) != 0 {
		t.Errorf("service principal without roles got %+v, %v", c.Access, err)
	}

	// The service principal deleted: its refresh token is refused from
	// the next token request on.
	if err := e.id.DeleteServicePrincipal(context.Background(), sp.AppID); err != nil {
		t.Fatal(err)
	}
	e.do(http.MethodPost, "/oauth2/token", formPost("", url.Values{
		"grant_type": {"refresh_token"}, "service": {"moat.localhost"}, "refresh_token": {rr.RefreshToken}, "scope": {"repository:app:pull"},
	})...).wantOAuthError(t, http.StatusUnauthorized, "invalid_grant")
}

// entraTokenCC gets a service principal's Entra token for ACR.
func (e *env) entraTokenCC(appID, secret string) string {
	e.t.Helper()
	tenant, err := e.id.TenantID(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {secret},
		"scope": {"https://containerregistry.azure.net/.default"},
	}
	req := httptest.NewRequest(http.MethodPost, "https://moat.test/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.id.EntraHandler().ServeHTTP(rec, req)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		e.t.Fatalf("Entra token: %d %s", rec.Code, rec.Body)
	}
	return out.AccessToken
}

func TestTokenFlow_BadInput(t *testing.T) {
	e := newEnv(t)
	rtDefault := e.refreshToken(hostDefault, "moat.localhost")
	rtOther := e.refreshToken(hostOther, "other.localhost")
	access := e.token("moat.localhost", "repository:app:pull")
	entra := e.entraToken(identity.AdminName, adminPassword, "https://management.azure.com")

	tampered := rtDefault[:len(rtDefault)-4] + "AAAA"
	type tc struct {
		path   string
		form   url.Values
		status int
		code   string
	}
	tok := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	cases := map[string]tc{
		"no grant_type":         {"/oauth2/token", tok("service", "moat.localhost"), 400, "invalid_request"},
		"unknown grant":         {"/oauth2/token", tok("grant_type", "client_credentials", "service", "moat.localhost"), 400, "unsupported_grant_type"},
		"no service":            {"/oauth2/token", tok("grant_type", "refresh_token", "refresh_token", rtDefault), 400, "invalid_request"},
		"other service":         {"/oauth2/token", tok("grant_type", "refresh_token", "service", "other.localhost", "refresh_token", rtDefault), 400, "invalid_request"},
		"no refresh_token":      {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost"), 400, "invalid_request"},
		"malformed refresh":     {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", "not.a.jwt"), 401, "invalid_grant"},
		"wrongly signed":        {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", tampered), 401, "invalid_grant"},
		"access as refresh":     {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", access), 401, "invalid_grant"},
		"entra as refresh":      {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", entra), 401, "invalid_grant"},
		"other registry's":      {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", rtOther), 401, "invalid_grant"},
		"bad scope":             {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", rtDefault, "scope", "nonsense"), 400, "invalid_scope"},
		"bad repo in scope":     {"/oauth2/token", tok("grant_type", "refresh_token", "service", "moat.localhost", "refresh_token", rtDefault, "scope", "repository:Bad/Name:pull"), 400, "invalid_scope"},
		"duplicate param":       {"/oauth2/token", tok("grant_type", "refresh_token", "grant_type", "password", "service", "moat.localhost"), 400, "invalid_request"},
		"password no pass":      {"/oauth2/token", tok("grant_type", "password", "service", "moat.localhost", "username", "admin"), 400, "invalid_request"},
		"password wrong":        {"/oauth2/token", tok("grant_type", "password", "service", "moat.localhost", "username", "admin", "password", "nope"), 401, "invalid_grant"},
		"password anon, off":    {"/oauth2/token", tok("grant_type", "password", "service", "moat.localhost"), 401, "invalid_grant"},
		"refresh user, garbage": {"/oauth2/token", tok("grant_type", "password", "service", "moat.localhost", "username", identity.RefreshTokenUser, "password", "x"), 401, "invalid_grant"},
		"exchange no grant":     {"/oauth2/exchange", tok("service", "moat.localhost", "access_token", entra), 400, "invalid_request"},
		"exchange wrong grant":  {"/oauth2/exchange", tok("grant_type", "refresh_token", "service", "moat.localhost", "access_token", entra), 400, "unsupported_grant_type"},
		"exchange no token":     {"/oauth2/exchange", tok("grant_type", "access_token", "service", "moat.localhost"), 400, "invalid_request"},
		"exchange no service":   {"/oauth2/exchange", tok("grant_type", "access_token", "access_token", entra), 400, "invalid_request"},
		"exchange garbage":      {"/oauth2/exchange", tok("grant_type", "access_token", "service", "moat.localhost", "access_token", "garbage"), 401, "invalid_grant"},
		"exchange refresh tok":  {"/oauth2/exchange", tok("grant_type", "access_token", "service", "moat.localhost", "access_token", rtDefault), 401, "invalid_grant"},
		"exchange access tok":   {"/oauth2/exchange", tok("grant_type", "access_token", "service", "moat.localhost", "access_token", access), 401, "invalid_grant"},
		"exchange other tenant": {"/oauth2/exchange", tok("grant_type", "access_token", "service", "moat.localhost", "access_token", entra, "tenant", "11111111-1111-1111-1111-111111111111"), 401, "invalid_grant"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e.do(http.MethodPost, c.path, formPost("", c.form)...).wantOAuthError(t, c.status, c.code)
		})
	}
	// Not a form at all.
	e.do(http.MethodPost, "/oauth2/token", anon(), body([]byte("%zz")), header("Content-Type", "application/x-www-form-urlencoded")).
		wantOAuthError(t, http.StatusBadRequest, "invalid_request")
	e.do(http.MethodPost, "/oauth2/exchange", anon(), body([]byte(`{"grant_type":"access_token"}`)), header("Content-Type", "application/json")).
		wantOAuthError(t, http.StatusBadRequest, "invalid_request")
	// Oversized.
	e.do(http.MethodPost, "/oauth2/token", formPost("", url.Values{"x": {strings.Repeat("a", maxFormBody)}})...).
		wantOAuthError(t, http.StatusBadRequest, "invalid_request")

	// The GET flow with a refresh token keeps the Docker error shape.
	for _, pw := range []string{"garbage", tampered, access, rtOther} {
		e.do(http.MethodGet, "/oauth2/token?service=moat.localhost", basicAuth(identity.RefreshTokenUser, pw)).
			wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		e.do(http.MethodGet, "/v2/_catalog", basicAuth(identity.RefreshTokenUser, pw)).
			wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	}
	// A refresh token is no bearer token.
	e.do(http.MethodGet, "/v2/_catalog", bearer(rtDefault)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
}

func TestAzcontainerregistry_ExchangeFlow(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "sdk")
	e.putManifest("app", "v1", img.manifest, mtOCIManifest).wantStatus(t, http.StatusCreated)

	// One TLS server for the Entra endpoint and the data plane, as a
	// deployment serves them.
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2") || strings.HasPrefix(r.URL.Path, "/oauth2/") {
			e.h.ServeHTTP(w, r)
			return
		}
		e.id.EntraHandler().ServeHTTP(w, r)
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	tenant, err := e.id.TenantID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	azOpts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL + "/"},
		Transport: srv.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
	//nolint:staticcheck // deprecated in azidentity, still used by clients moat must serve
	cred, err := azidentity.NewUsernamePasswordCredential(tenant, azureCLIClientID, identity.AdminName, adminPassword,
		&azidentity.UsernamePasswordCredentialOptions{ClientOptions: azOpts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	regOpts := azcore.ClientOptions{Transport: srv.Client(), Retry: policy.RetryOptions{MaxRetries: -1}}
	client, err := azcontainerregistry.NewClient(srv.URL, cred, &azcontainerregistry.ClientOptions{ClientOptions: regOpts})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := client.GetManifest(ctx, "app", "v1", &azcontainerregistry.ClientGetManifestOptions{Accept: new(mtOCIManifest)})
	if err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	b, _ := io.ReadAll(got.ManifestData)
	if !bytes.Equal(b, img.manifest) {
		t.Errorf("manifest = %s", b)
	}
	// A push through the same flow (pull,push scope).
	if _, err := client.UploadManifest(ctx, "app", "v2", azcontainerregistry.ContentTypeApplicationVndOciImageManifestV1JSON,
		streaming.NopCloser(bytes.NewReader(img.manifest)), nil); err != nil {
		t.Fatalf("UploadManifest: %v", err)
	}
	blobs, err := azcontainerregistry.NewBlobClient(srv.URL, cred, &azcontainerregistry.BlobClientOptions{ClientOptions: regOpts})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := blobs.GetBlob(ctx, "app", img.layer.String(), nil)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	b, _ = io.ReadAll(blob.BlobData)
	if string(b) != "layer sdk" {
		t.Errorf("blob = %q", b)
	}

	// A service principal through ClientSecretCredential: the exchange
	// works, and with no role the registry answers 401 (the token grants
	// nothing), not an error of the flow.
	sp, secret, err := e.id.CreateServicePrincipal(ctx, "sdk")
	if err != nil {
		t.Fatal(err)
	}
	spCred, err := azidentity.NewClientSecretCredential(tenant, sp.AppID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azOpts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	spClient, err := azcontainerregistry.NewClient(srv.URL, spCred, &azcontainerregistry.ClientOptions{ClientOptions: regOpts})
	if err != nil {
		t.Fatal(err)
	}
	_, err = spClient.GetManifest(ctx, "app", "v1", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Fatalf("service principal without a role: %v, want 401", err)
	}
	if !strings.Contains(e.logs.String(), `"principal":"`+sp.AppID+`"`) {
		t.Error("no request was logged as the service principal: the exchange did not happen")
	}

	// Anonymous (no credential): refused until anonymous pull is on.
	anonClient, err := azcontainerregistry.NewClient(srv.URL, nil, &azcontainerregistry.ClientOptions{ClientOptions: regOpts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anonClient.GetManifest(ctx, "app", "v1", nil); !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous SDK client with anonymous pull off: %v, want 401", err)
	}
	e.setProperties(testDefault, "Standard", `{"anonymousPullEnabled":true}`)
	anonClient, _ = azcontainerregistry.NewClient(srv.URL, nil, &azcontainerregistry.ClientOptions{ClientOptions: regOpts})
	if _, err := anonClient.GetManifest(ctx, "app", "v1", &azcontainerregistry.ClientGetManifestOptions{Accept: new(mtOCIManifest)}); err != nil {
		t.Fatalf("anonymous SDK client with anonymous pull on: %v", err)
	}
}

func TestAdminUser_Crane(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.setProperties(testDefault, "Premium", `{"adminUserEnabled":true}`)
	e.setProperties(testOther, "Premium", `{"adminUserEnabled":true}`)
	creds := e.adminPasswords(testDefault)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range creds.Passwords {
		auth := remote.WithAuth(&authn.Basic{Username: creds.Username, Password: pw.Value})
		ref := ggcrRef(t, addr, "admin/app:"+pw.Name)
		if err := remote.Write(ref, img, auth, remote.WithContext(ctx)); err != nil {
			t.Fatalf("push as admin user (%s): %v", pw.Name, err)
		}
		if _, err := remote.Image(ref, auth); err != nil {
			t.Fatalf("pull as admin user: %v", err)
		}
		if err := remote.Delete(ref, auth); err != nil {
			t.Fatalf("delete as admin user: %v", err)
		}
		reg, _ := name.NewRegistry(addr, name.Insecure)
		if _, err := remote.Catalog(ctx, reg, auth); err != nil {
			t.Fatalf("catalog as admin user: %v", err)
		}
		// The same credentials at the other registry: nothing.
		other := ggcrRef(t, hostOther, "admin/app:x")
		_, err := remote.Image(other, auth, remote.WithTransport(dialTo(addr)))
		wantTransportStatus(t, err, http.StatusUnauthorized)
	}
	// Wrong password.
	_, err = remote.Image(ggcrRef(t, addr, "admin/app:password"), remote.WithAuth(&authn.Basic{Username: creds.Username, Password: "nope"}))
	wantTransportStatus(t, err, http.StatusUnauthorized)

	// The admin user's bearer token dies with the setting.
	tok := e.tokenAs("moat.localhost", basicAuth(creds.Username, creds.Passwords[0].Value), "repository:admin/app:pull")
	e.do(http.MethodGet, "/v2/admin/app/tags/list", bearer(tok)).wantStatus(t, http.StatusOK)
	e.setProperties(testDefault, "Premium", `{"adminUserEnabled":false}`)
	e.do(http.MethodGet, "/v2/admin/app/tags/list", bearer(tok)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	_, err = remote.Image(ggcrRef(t, addr, "admin/app:password"), remote.WithAuth(&authn.Basic{Username: creds.Username, Password: creds.Passwords[0].Value}))
	wantTransportStatus(t, err, http.StatusUnauthorized)
}

// tokenAs gets a token from the GET endpoint with the given credentials.
func (e *env) tokenAs(service string, as reqOpt, scopes ...string) string {
	e.t.Helper()
	v := url.Values{"service": {service}, "scope": scopes}
	r := e.do(http.MethodGet, "/oauth2/token?"+v.Encode(), as).wantStatus(e.t, http.StatusOK)
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		e.t.Fatal(err)
	}
	return tr.Token
}

func TestRefreshTokenUser_Crane(t *testing.T) {
	e := newEnv(t)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	rt := e.refreshToken(addr, "moat.localhost")
	auth := remote.WithAuth(&authn.Basic{Username: identity.RefreshTokenUser, Password: rt})
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := ggcrRef(t, addr, "rt/app:1")
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatalf("push with a refresh token: %v", err)
	}
	if _, err := remote.Image(ref, auth); err != nil {
		t.Fatalf("pull with a refresh token: %v", err)
	}
	// The same refresh token at the other registry is refused.
	_, err = remote.Image(ggcrRef(t, hostOther, "rt/app:1"), auth, remote.WithTransport(dialTo(addr)))
	wantTransportStatus(t, err, http.StatusUnauthorized)
}

func TestAnonymousPull(t *testing.T) {
	e := newEnv(t)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := ggcrRef(t, addr, "pub/app:1")
	admin := remote.WithAuth(&authn.Basic{Username: identity.AdminName, Password: adminPassword})
	if err := remote.Write(ref, img, admin); err != nil {
		t.Fatal(err)
	}
	anonAuth := remote.WithAuth(authn.Anonymous)

	// Off: the challenge stays.
	_, err = remote.Image(ref, anonAuth)
	wantTransportStatus(t, err, http.StatusUnauthorized)
	e.do(http.MethodGet, "/v2/pub/app/manifests/1", anon()).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED").
		wantHeader(t, "WWW-Authenticate", `Bearer realm="`+e.srv.URL+`/oauth2/token",service="moat.localhost",scope="repository:pub/app:pull"`)

	// Basic SKU: the setting does nothing.
	e.setProperties(testDefault, "Basic", `{"anonymousPullEnabled":true}`)
	_, err = remote.Image(ref, anonAuth)
	wantTransportStatus(t, err, http.StatusUnauthorized)

	e.setProperties(testDefault, "Standard", `{"anonymousPullEnabled":true}`)
	pulled, err := remote.Image(ref, anonAuth)
	if err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}
	if _, err := pulled.RawManifest(); err != nil {
		t.Fatal(err)
	}
	layers, _ := pulled.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("anonymous blob pull: %v", err)
		}
		_, _ = io.Copy(io.Discard, rc)
		_ = rc.Close()
	}
	// Without any token at all, too.
	e.do(http.MethodGet, "/v2/pub/app/manifests/1", anon(), header("Accept", mtOCIManifest+",application/vnd.docker.distribution.manifest.v2+json")).wantStatus(t, http.StatusOK)
	// Only pull: no push, no delete, no catalog, and the anonymous token
	// grants pull alone whatever is asked.
	err = remote.Write(ggcrRef(t, addr, "pub/app:2"), img, anonAuth)
	wantTransportStatus(t, err, http.StatusUnauthorized)
	reg, _ := name.NewRegistry(addr, name.Insecure)
	_, err = remote.Catalog(context.Background(), reg, anonAuth)
	wantTransportStatus(t, err, http.StatusUnauthorized)
	e.do(http.MethodDelete, "/v2/pub/app/manifests/1", anon()).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	tok := e.tokenAs("moat.localhost", anon(), "repository:pub/app:pull,push,delete,*", "registry:catalog:*")
	c, err := e.id.VerifyAccessToken(context.Background(), tok, "moat.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Access) != 2 || len(c.Access[0].Actions) != 1 || c.Access[0].Actions[0] != "pull" || len(c.Access[1].Actions) != 0 {
		t.Errorf("anonymous token grants %+v", c.Access)
	}
	// The other registry does not have it on.
	e.do(http.MethodGet, "/v2/pub/app/manifests/1", anon(), host(hostOther)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")

	// The network decision still comes first. With the trusted-services
	// bypass on (the default) a bare request is challenged, as a trusted
	// service's client needs, but the token endpoint then refuses the
	// anonymous caller: nothing leaks. With the bypass off, DENIED at once.
	e.setProperties(testDefault, "Standard", `{"anonymousPullEnabled":true,"publicNetworkAccess":"Disabled"}`)
	e.do(http.MethodGet, "/v2/pub/app/manifests/1", anon()).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	e.do(http.MethodGet, "/oauth2/token?service=moat.localhost&scope=repository:pub/app:pull", anon()).wantError(t, http.StatusForbidden, "DENIED")
	e.do(http.MethodPost, "/oauth2/token", anon(), header("Content-Type", "application/x-www-form-urlencoded"),
		body([]byte("grant_type=password&service=moat.localhost&scope=repository:pub/app:pull"))).wantError(t, http.StatusForbidden, "DENIED")
	_, err = remote.Image(ref, anonAuth)
	wantTransportStatus(t, err, http.StatusForbidden)
	e.setProperties(testDefault, "Standard", `{"anonymousPullEnabled":true,"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}`)
	e.do(http.MethodGet, "/v2/pub/app/manifests/1", anon()).wantError(t, http.StatusForbidden, "DENIED")

	// Off again: the anonymous token issued before stops working.
	e.setProperties(testDefault, "Standard", `{"anonymousPullEnabled":false}`)
	e.do(http.MethodGet, "/v2/pub/app/manifests/1", bearer(tok)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	_, err = remote.Image(ref, anonAuth)
	wantTransportStatus(t, err, http.StatusUnauthorized)
}
