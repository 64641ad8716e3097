package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

type handlerFixture struct {
	s       *Service
	h       http.Handler
	tenant  string
	sp      ServicePrincipal
	secret  string
	adminPW string
}

func newHandlerFixture(t *testing.T) handlerFixture {
	t.Helper()
	_, _, s, _, pw := newAdmin(t)
	ctx := context.Background()
	sp, secret, err := s.CreateServicePrincipal(ctx, "app")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	return handlerFixture{s: s, h: s.EntraHandler(), tenant: tenant, sp: sp, secret: secret, adminPW: pw}
}

func (f handlerFixture) do(t *testing.T, method, path string, form url.Values, mod ...func(*http.Request)) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.Host = "moat.test:8443"
	for _, m := range mod {
		m(req)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil && rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, path, rec.Body.String(), err)
	}
	return rec, body
}

func (f handlerFixture) ccForm() url.Values {
	return url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {f.sp.AppID},
		"client_secret": {f.secret},
		"scope":         {"https://management.core.windows.net//.default openid offline_access profile"},
		"claims":        {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
		"client_info":   {"1"},
	}
}

func TestEntraHandler_Discovery(t *testing.T) {
	f := newHandlerFixture(t)
	for _, tenant := range []string{f.tenant, strings.ToUpper(f.tenant), "common", "organizations"} {
		rec, body := f.do(t, "GET", "/"+tenant+"/v2.0/.well-known/openid-configuration", nil)
		if rec.Code != 200 {
			t.Fatalf("discovery for %s: %d %s", tenant, rec.Code, rec.Body)
		}
		want := map[string]string{
			"issuer":                 "http://moat.test:8443/" + f.tenant + "/v2.0",
			"token_endpoint":         "http://moat.test:8443/" + tenant + "/oauth2/v2.0/token",
			"authorization_endpoint": "http://moat.test:8443/" + tenant + "/oauth2/v2.0/authorize",
			"jwks_uri":               "http://moat.test:8443/" + tenant + "/discovery/v2.0/keys",
		}
		for k, v := range want {
			if body[k] != v {
				t.Errorf("%s: %s = %v, want %s", tenant, k, body[k], v)
			}
		}
	}

	// Over TLS the endpoints are https with the server's host:port.
	srv := httptest.NewTLSServer(f.h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/" + f.tenant + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["token_endpoint"] != srv.URL+"/"+f.tenant+"/oauth2/v2.0/token" || doc["issuer"] != srv.URL+"/"+f.tenant+"/v2.0" {
		t.Errorf("TLS discovery = %v", doc)
	}
}

func TestEntraHandler_JWKSVerifiesIssuedTokens(t *testing.T) {
	f := newHandlerFixture(t)
	rec, body := f.do(t, "POST", "/"+f.tenant+"/oauth2/v2.0/token", f.ccForm())
	if rec.Code != 200 {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	raw := body["access_token"].(string)
	rec, _ = f.do(t, "GET", "/"+f.tenant+"/discovery/v2.0/keys", nil)
	if rec.Code != 200 {
		t.Fatalf("keys: %d %s", rec.Code, rec.Body)
	}
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: %v", rec.Body, err)
	}
	_, err := jwt.Parse(raw, func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] && k.Kty == "EC" && k.Crv == "P-256" && k.Alg == "ES256" {
				return jwkPublicKey(t, k), nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		t.Errorf("token does not verify with the published JWKS: %v", err)
	}

	// A rotated key is published next to the old one, which still verifies.
	if _, err := f.s.RotateSigningKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, _ = f.do(t, "GET", "/common/discovery/v2.0/keys", nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Errorf("JWKS after rotation: %s (%v)", rec.Body, err)
	}
}

func jwkPublicKey(t *testing.T, k jwk) *ecdsa.PublicKey {
	t.Helper()
	x, err1 := base64.RawURLEncoding.DecodeString(k.X)
	y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad JWK coordinates: %v %v", err1, err2)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatalf("JWK is not a P-256 point: %v", err)
	}
	return pub
}

func TestEntraHandler_ClientCredentials(t *testing.T) {
	f := newHandlerFixture(t)
	ctx := context.Background()
	check := func(t *testing.T, rec *httptest.ResponseRecorder, body map[string]any) {
		t.Helper()
		if rec.Code != 200 {
			t.Fatalf("token: %d %s", rec.Code, rec.Body)
		}
		if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) || body["ext_expires_in"] != float64(3600) {
			t.Errorf("response %v", body)
		}
		if _, ok := body["scope"]; ok {
			t.Errorf("response carries a scope (MSAL would count openid etc. as declined): %v", body["scope"])
		}
		if _, ok := body["id_token"]; ok {
			t.Errorf("client credentials answered with an id token")
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q", rec.Header().Get("Cache-Control"))
		}
		p, err := f.s.VerifyManagementToken(ctx, body["access_token"].(string))
		if err != nil || p.ID != f.sp.ObjectID {
			t.Errorf("VerifyManagementToken = %+v, %v", p, err)
		}
	}
	t.Run("form", func(t *testing.T) {
		rec, body := f.do(t, "POST", "/"+f.tenant+"/oauth2/v2.0/token", f.ccForm())
		check(t, rec, body)
	})
	t.Run("basic", func(t *testing.T) {
		form := f.ccForm()
		form.Del("client_secret")
		rec, body := f.do(t, "POST", "/organizations/oauth2/v2.0/token", form, func(r *http.Request) {
			r.SetBasicAuth(url.QueryEscape(f.sp.AppID), url.QueryEscape(f.secret))
		})
		check(t, rec, body)
	})
}

func TestEntraHandler_Password(t *testing.T) {
	f := newHandlerFixture(t)
	form := url.Values{
		"grant_type":  {"password"},
		"client_id":   {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username":    {AdminName},
		"password":    {f.adminPW},
		"scope":       {"https://management.core.windows.net//.default openid offline_access profile"},
		"client_info": {"1"},
	}
	rec, body := f.do(t, "POST", "/common/oauth2/v2.0/token", form)
	if rec.Code != 200 {
		t.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	p, err := f.s.VerifyManagementToken(context.Background(), body["access_token"].(string))
	if err != nil || p.Kind != KindUser || p.Name != AdminName {
		t.Errorf("VerifyManagementToken = %+v, %v", p, err)
	}
	idTok, _ := body["id_token"].(string)
	if idTok == "" || body["client_info"] == nil {
		t.Fatalf("no id_token or client_info in %v", body)
	}
	var ci map[string]string
	raw, _ := base64.RawURLEncoding.DecodeString(body["client_info"].(string))
	if err := json.Unmarshal(raw, &ci); err != nil || ci["uid"] != p.ID || ci["utid"] != f.tenant {
		t.Errorf("client_info = %s (%v)", raw, err)
	}
	if _, err := f.s.VerifyManagementToken(context.Background(), idTok); err == nil {
		t.Error("the id token was accepted as a management token")
	}
}

func TestEntraHandler_Errors(t *testing.T) {
	f := newHandlerFixture(t)
	tokenPath := "/" + f.tenant + "/oauth2/v2.0/token"
	with := func(mod func(url.Values)) url.Values {
		v := f.ccForm()
		mod(v)
		return v
	}
	pwForm := func(mod func(url.Values)) url.Values {
		v := url.Values{
			"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
			"username": {AdminName}, "password": {f.adminPW}, "scope": {"https://management.azure.com//.default"},
		}
		mod(v)
		return v
	}
	tests := []struct {
		name   string
		path   string
		form   url.Values
		mod    func(*http.Request)
		status int
		code   string
		aadsts float64
	}{
		{"unknown client", tokenPath, with(func(v url.Values) { v.Set("client_id", "00000000-0000-0000-0000-000000000001") }), nil, 400, "unauthorized_client", 700016},
		{"wrong secret", tokenPath, with(func(v url.Values) { v.Set("client_secret", "abc~def") }), nil, 401, "invalid_client", 7000215},
		{"no secret", tokenPath, with(func(v url.Values) { v.Del("client_secret") }), nil, 401, "invalid_client", 7000216},
		{"client assertion", tokenPath, with(func(v url.Values) {
			v.Del("client_secret")
			v.Set("client_assertion", "x")
		}), nil, 401, "invalid_client", 700027},
		{"no client id", tokenPath, with(func(v url.Values) { v.Del("client_id") }), nil, 400, "invalid_request", 900144},
		{"unsupported grant", tokenPath, with(func(v url.Values) { v.Set("grant_type", "authorization_code") }), nil, 400, "unsupported_grant_type", 70003},
		{"no grant", tokenPath, with(func(v url.Values) { v.Del("grant_type") }), nil, 400, "invalid_request", 900144},
		{"missing scope", tokenPath, with(func(v url.Values) { v.Del("scope") }), nil, 400, "invalid_request", 900144},
		{"scope without .default", tokenPath, with(func(v url.Values) { v.Set("scope", "https://management.azure.com/user_impersonation") }), nil, 400, "invalid_scope", 1002012},
		{"unknown resource", tokenPath, with(func(v url.Values) { v.Set("scope", "https://graph.microsoft.com/.default") }), nil, 400, "invalid_resource", 500011},
		{"bad tenant", "/11111111-1111-1111-1111-111111111111/oauth2/v2.0/token", f.ccForm(), nil, 400, "invalid_request", 90002},
		{"consumers tenant", "/consumers/oauth2/v2.0/token", f.ccForm(), nil, 400, "invalid_request", 90002},
		{"basic and form disagree", tokenPath, f.ccForm(), func(r *http.Request) { r.SetBasicAuth("other", f.secret) }, 400, "invalid_request", 900144},
		{"bad host header", tokenPath, f.ccForm(), func(r *http.Request) { r.Host = "evil/path" }, 400, "invalid_request", 90023},
		{"wrong password", tokenPath, pwForm(func(v url.Values) { v.Set("password", "nope") }), nil, 400, "invalid_grant", 50126},
		{"unknown user", tokenPath, pwForm(func(v url.Values) { v.Set("username", "nobody") }), nil, 400, "invalid_grant", 50126},
		{"password without client id", tokenPath, pwForm(func(v url.Values) { v.Del("client_id") }), nil, 400, "invalid_request", 900144},
		{"password with a non-GUID client id", tokenPath, pwForm(func(v url.Values) { v.Set("client_id", "https://management.azure.com/") }), nil, 400, "unauthorized_client", 700016},
		{"password without username", tokenPath, pwForm(func(v url.Values) { v.Del("username") }), nil, 400, "invalid_request", 900144},
		{"password without password", tokenPath, pwForm(func(v url.Values) { v.Del("password") }), nil, 400, "invalid_request", 900144},
		{"discovery for a bad tenant", "/nope/v2.0/.well-known/openid-configuration", nil, func(r *http.Request) { r.Method = "GET" }, 400, "invalid_request", 90002},
		{"keys for a bad tenant", "/nope/discovery/v2.0/keys", nil, func(r *http.Request) { r.Method = "GET" }, 400, "invalid_request", 90002},
		{"unknown path", "/" + f.tenant + "/oauth2/v2.0/devicecode", url.Values{}, nil, 404, "invalid_request", 90100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mods []func(*http.Request)
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			rec, body := f.do(t, "POST", tc.path, tc.form, mods...)
			if rec.Code != tc.status || body["error"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", rec.Code, body["error"], tc.status, tc.code)
			}
			codes, _ := body["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != tc.aadsts {
				t.Errorf("error_codes = %v, want [%v]", body["error_codes"], tc.aadsts)
			}
			desc, _ := body["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || body["trace_id"] == nil || body["correlation_id"] == nil || body["timestamp"] == nil {
				t.Errorf("error body %v lacks Entra's fields", body)
			}
			if _, ok := body["access_token"]; ok {
				t.Error("an error answer carries a token")
			}
		})
	}
}

func TestEntraHandler_CorrelationIDEchoed(t *testing.T) {
	f := newHandlerFixture(t)
	const corr = "5e3c1a7f-4b0e-4c1e-9f57-6a3b2c1d0e9f"
	_, body := f.do(t, "POST", "/nope/oauth2/v2.0/token", f.ccForm(), func(r *http.Request) { r.Header.Set("client-request-id", corr) })
	if body["correlation_id"] != corr {
		t.Errorf("correlation_id = %v, want %s", body["correlation_id"], corr)
	}
	_, body = f.do(t, "POST", "/nope/oauth2/v2.0/token", f.ccForm(), func(r *http.Request) { r.Header.Set("client-request-id", "<script>") })
	if body["correlation_id"] == "<script>" {
		t.Error("a non-GUID client-request-id was echoed")
	}
}

func TestEntraHandler_OversizedBody(t *testing.T) {
	f := newHandlerFixture(t)
	form := f.ccForm()
	form.Set("claims", strings.Repeat("x", maxTokenRequestBytes))
	rec, body := f.do(t, "POST", "/"+f.tenant+"/oauth2/v2.0/token", form)
	if rec.Code != 400 || body["error"] != "invalid_request" {
		t.Errorf("oversized body: %d %v", rec.Code, body)
	}
}

func TestEntraHandler_UserRealm(t *testing.T) {
	f := newHandlerFixture(t)
	for user, domain := range map[string]string{"admin": "moat.test", "alice@contoso.example": "contoso.example"} {
		rec, body := f.do(t, "GET", "/common/UserRealm/"+url.PathEscape(user)+"?api-version=1.0", nil)
		if rec.Code != 200 {
			t.Fatalf("UserRealm(%s): %d %s", user, rec.Code, rec.Body)
		}
		want := map[string]string{"account_type": "Managed", "domain_name": domain, "cloud_instance_name": "moat.test", "cloud_audience_urn": "urn:federation:MicrosoftOnline", "ver": "1.0"}
		for k, v := range want {
			if body[k] != v {
				t.Errorf("UserRealm(%s).%s = %v, want %s", user, k, body[k], v)
			}
		}
	}
}

func FuzzRequestAuthority(f *testing.F) {
	f.Add("moat.test:8443")
	f.Add("[::1]:443")
	f.Add("evil/path")
	f.Add("a@b")
	f.Add("")
	f.Fuzz(func(t *testing.T, host string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		auth, err := requestAuthority(r)
		if err != nil {
			return
		}
		u, perr := url.Parse(auth)
		if perr != nil || u.Host != host || u.Path != "" || u.User != nil || auth != "http://"+host {
			t.Fatalf("requestAuthority(%q) = %q, which does not parse back to that host", host, auth)
		}
	})
}

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"moat.test": true, "moat.test:8443": true, "127.0.0.1:1": true, "[::1]": true, "[::1]:443": true, "my_host-1": true,
		"": false, "::": false, "[::1]x": false, "[127.0.0.1]": false, "host:": false, "host:99999x": false, "a@b": false,
		"a/b": false, "a b": false, "[::1": false, ":80": false, "host:123456": false,
	} {
		if got := validHost(h); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	}
}
