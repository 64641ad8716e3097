package dataplane

// Attacks on the token flow over real HTTP (issue 3's list): forged access
// tokens on /v2, odd scope syntax at both token endpoints, refresh tokens
// replayed after their principal lost its role. Every answer is the
// protocol's error body; none is a 500.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/rbac"
)

// signingKey returns the env's active signing key and its kid, read from
// the metadata store as any replica would.
func (e *env) signingKey() (*ecdsa.PrivateKey, string) {
	e.t.Helper()
	keys, err := e.meta.ListSigningKeys(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range keys {
		if k.RetiredAt != nil {
			continue
		}
		priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
		if err != nil {
			e.t.Fatal(err)
		}
		return priv.(*ecdsa.PrivateKey), k.ID
	}
	e.t.Fatal("no active signing key")
	return nil, ""
}

// catalogClaims are the claims of a token that may list the default
// registry's catalog, valid now, with fields changed by mod.
func catalogClaims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": identity.DefaultIssuer, "sub": uuid.NewString(), "aud": "moat.localhost",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Unix(), "iat": now.Unix(), "jti": uuid.NewString(),
		"access": []identity.Access{{Type: identity.TypeRegistry, Name: identity.CatalogName, Actions: []string{identity.ActionAll}}},
		"kind":   identity.KindUser, "name": identity.AdminName,
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBearer_ForgedTokensAreRefused(t *testing.T) {
	e := newEnv(t)
	priv, kid := e.signingKey()
	// The real key and these claims make a good token: what each case
	// changes is the only reason for its refusal.
	e.do(http.MethodGet, "/v2/_catalog", bearer(sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(nil)))).wantStatus(t, http.StatusOK)

	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	spkiPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	point, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(nil))
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	hour := time.Hour
	var otherTok tokenResponse
	r := e.do(http.MethodGet, "/oauth2/token?service=other.localhost&scope=registry:catalog:*", host(hostOther)).wantStatus(t, http.StatusOK)
	if err := json.Unmarshal(r.body, &otherTok); err != nil {
		t.Fatal(err)
	}
	otherRegistry := otherTok.Token

	cases := map[string]string{
		"garbage":          "garbage",
		"two parts":        parts[0] + "." + parts[1],
		"empty signature":  parts[0] + "." + parts[1] + ".",
		"bad base64":       parts[0] + ".!!!." + parts[2],
		"payload not JSON": parts[0] + "." + b64([]byte("[1,2")) + "." + parts[2],
		"16 KiB":           strings.Repeat("a", 16<<10+1),
		"tampered payload": parts[0] + "." + b64([]byte(`{"sub":"x","aud":"moat.localhost","access":[{"type":"registry","name":"catalog","actions":["*"]}]}`)) + "." + parts[2],
		"expired": sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-hour).Unix()
			c["iat"], c["nbf"] = time.Now().Add(-2*hour).Unix(), time.Now().Add(-2*hour).Unix()
		})),
		"not yet valid":        sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(hour).Unix() })),
		"issued in the future": sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(hour).Unix() })),
		"no exp":               sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"other audience":       sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { c["aud"] = "other.localhost" })),
		"Entra audience":       sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { c["aud"] = "https://containerregistry.azure.net" })),
		"other issuer":         sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })),
		"other registry's":     otherRegistry,
		"stranger's key":       sign(t, jwt.SigningMethodES256, stranger, kid, catalogClaims(nil)),
		"unknown kid":          sign(t, jwt.SigningMethodES256, stranger, "not-a-key", catalogClaims(nil)),
		"no kid":               sign(t, jwt.SigningMethodES256, priv, "", catalogClaims(nil)),
		"alg none":             sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, catalogClaims(nil)),
		"alg none, handmade":   b64([]byte(`{"alg":"none","kid":"`+kid+`"}`)) + "." + parts[1] + ".",
		"HS256, SPKI DER":      sign(t, jwt.SigningMethodHS256, spki, kid, catalogClaims(nil)),
		"HS256, SPKI PEM":      sign(t, jwt.SigningMethodHS256, spkiPEM, kid, catalogClaims(nil)),
		"HS256, point":         sign(t, jwt.SigningMethodHS256, point, kid, catalogClaims(nil)),
		"ES384":                sign(t, jwt.SigningMethodES384, mustP384(t), kid, catalogClaims(nil)),
		"no subject":           sign(t, jwt.SigningMethodES256, priv, kid, catalogClaims(func(c jwt.MapClaims) { delete(c, "sub"); delete(c, "kind") })),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v2/_catalog", bearer(tok)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
			ch := r.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `Bearer realm="`) || !strings.Contains(ch, `scope="registry:catalog:*"`) || !strings.Contains(ch, `error="invalid_token"`) {
				t.Errorf("challenge %q", ch)
			}
		})
	}
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTokenEndpoints_OddScopes sends scope strings of odd syntax to both
// token endpoints: each is a 400 in the endpoint's format, or (empty) a
// token granting nothing.
func TestTokenEndpoints_OddScopes(t *testing.T) {
	e := newEnv(t)
	rt := e.refreshToken(hostDefault, "moat.localhost")
	cases := map[string]struct {
		scope   string
		getCode string // OCI code of the GET answer; "" for 200
	}{
		"empty":             {"", ""},
		"spaces only":       {"   ", ""},
		"empty name":        {"repository::pull", "UNSUPPORTED"},
		"empty actions":     {"repository:app:", "UNSUPPORTED"},
		"colons only":       {":::", "UNSUPPORTED"},
		"unicode name":      {"repository:äpp:pull", "UNSUPPORTED"},
		"unicode action":    {"repository:app:püll", "UNSUPPORTED"},
		"RTL override":      {"repository:app\u202e:pull", "UNSUPPORTED"},
		"NUL":               {"repository:app\x00:pull", "UNSUPPORTED"},
		"invalid UTF-8":     {"repository:app\xff:pull", "UNSUPPORTED"},
		"upper-case name":   {"repository:App:pull", "NAME_INVALID"},
		"path traversal":    {"repository:../etc:pull", "UNSUPPORTED"},
		"10 KB name":        {"repository:" + strings.Repeat("a", 10<<10) + ":pull", "UNSUPPORTED"},
		"10 KB of scopes":   {strings.Repeat("repository:a:pull ", 600), "UNSUPPORTED"},
		"unknown type":      {"bogus:x:pull", ""},
		"tag in the scope":  {"repository:app:latest:pull", "UNSUPPORTED"},
		"wildcard action":   {"repository:app:**", "UNSUPPORTED"},
		"trailing comma":    {"repository:app:pull,", "UNSUPPORTED"},
		"plugin type":       {"repository(plugin):app:pull", ""},
		"catalog, odd case": {"Registry:catalog:*", "UNSUPPORTED"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			get := e.do(http.MethodGet, "/oauth2/token?"+url.Values{"service": {"moat.localhost"}, "scope": {c.scope}}.Encode())
			post := e.do(http.MethodPost, "/oauth2/token", formPost("", url.Values{
				"grant_type": {"refresh_token"}, "service": {"moat.localhost"}, "refresh_token": {rt}, "scope": {c.scope},
			})...)
			if c.getCode == "" {
				for _, r := range []*response{get, post} {
					r.wantStatus(t, http.StatusOK)
					var tr tokenResponse
					if err := json.Unmarshal(r.body, &tr); err != nil || tr.AccessToken == "" {
						t.Fatalf("token answer %s: %v", r.body, err)
					}
				}
				return
			}
			get.wantError(t, http.StatusBadRequest, c.getCode)
			post.wantOAuthError(t, http.StatusBadRequest, oauthInvalidScope)
		})
	}
}

// TestRefreshToken_RoleRemoved replays a refresh token after its principal
// lost its role: the next token request grants no actions (ACR's answer to a
// scope the caller may not have), and the token it gets opens nothing.
func TestRefreshToken_RoleRemoved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, secret, err := e.id.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	a := rbac.Assignment{
		Name: uuid.NewString(), Scope: "/", RoleDefinitionID: rbac.DefinitionID("/", rbac.AcrPullID),
		PrincipalID: sp.ObjectID, PrincipalType: "ServicePrincipal",
	}
	res, err := rbac.ToResource(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.meta.PutResource(ctx, res); err != nil {
		t.Fatal(err)
	}
	e.id.InvalidateRoleAssignments()
	e.pushImage("app", "x")

	r := e.do(http.MethodPost, "/oauth2/exchange", formPost("", url.Values{
		"grant_type": {"access_token"}, "service": {"moat.localhost"}, "access_token": {e.entraTokenCC(sp.AppID, secret)},
	})...).wantStatus(t, http.StatusOK)
	var rr refreshTokenResponse
	if err := json.Unmarshal(r.body, &rr); err != nil {
		t.Fatal(err)
	}
	accessFor := func() (string, []identity.Access) {
		t.Helper()
		r := e.do(http.MethodPost, "/oauth2/token", formPost("", url.Values{
			"grant_type": {"refresh_token"}, "service": {"moat.localhost"}, "refresh_token": {rr.RefreshToken}, "scope": {"repository:app:pull"},
		})...).wantStatus(t, http.StatusOK)
		var tr tokenResponse
		if err := json.Unmarshal(r.body, &tr); err != nil {
			t.Fatal(err)
		}
		c, err := e.id.VerifyAccessToken(ctx, tr.AccessToken, "moat.localhost")
		if err != nil {
			t.Fatal(err)
		}
		return tr.AccessToken, c.Access
	}
	tok, acc := accessFor()
	if len(acc) != 1 || len(acc[0].Actions) != 1 || acc[0].Actions[0] != identity.ActionPull {
		t.Fatalf("with AcrPull: access %+v", acc)
	}
	e.do(http.MethodGet, "/v2/app/tags/list", bearer(tok)).wantStatus(t, http.StatusOK)

	// Removed as another replica's management plane would: no
	// invalidation here, so it takes effect within the role cache's second.
	if err := e.meta.DeleteResource(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, acc = accessFor()
		if len(acc) == 1 && len(acc[0].Actions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the role was removed: access %+v", acc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r = e.do(http.MethodGet, "/v2/app/tags/list", bearer(tok)).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
	if ch := r.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Errorf("challenge %q", ch)
	}
	// Basic with the refresh token straight on /v2: denied.
	e.do(http.MethodGet, "/v2/app/tags/list", basicAuth(identity.RefreshTokenUser, rr.RefreshToken)).wantError(t, http.StatusForbidden, "DENIED")
}

// TestMalformedAuthorization: Authorization headers that are not valid
// credentials of any scheme are 401 in the registry's error format, on /v2
// and on the GET token endpoint, never a 500.
func TestMalformedAuthorization(t *testing.T) {
	e := newEnv(t)
	for name, v := range map[string]string{
		"bearer without token": "Bearer",
		"bearer spaces":        "Bearer    ",
		"basic not base64":     "Basic !!!",
		"basic without colon":  "Basic " + base64.StdEncoding.EncodeToString([]byte("admin")),
		"basic empty":          "Basic ",
		"basic NUL user":       "Basic " + base64.StdEncoding.EncodeToString([]byte("ad\x00min:"+adminPassword)),
		"basic 100 KB":         "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+strings.Repeat("x", 100<<10))),
		"unknown scheme":       "Digest username=admin",
		"no scheme":            "admin",
	} {
		t.Run(name, func(t *testing.T) {
			set := header("Authorization", v)
			e.do(http.MethodGet, "/v2/_catalog", set).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
			e.do(http.MethodGet, tokenQuery("repository:app:pull"), set).wantError(t, http.StatusUnauthorized, "UNAUTHORIZED")
		})
	}
}
