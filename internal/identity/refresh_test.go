package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	regA   = "rega"
	loginA = "rega.moat.test"
	regB   = "regb"
	loginB = "regb.moat.test"
)

// entraTokenFor mints an Entra access token for p as the Entra endpoint does.
func entraTokenFor(t *testing.T, s *Service, p Principal, aud string) string {
	t.Helper()
	ctx := context.Background()
	tenant, err := s.TenantID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := s.issueEntraToken(ctx, "https://moat.test", tenant, entraSubject{p: p, appID: p.Name}, aud)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func wantRefreshRefused(t *testing.T, s *Service, raw, registry, login string) {
	t.Helper()
	if p, err := s.VerifyRefreshToken(context.Background(), raw, registry, login); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("VerifyRefreshToken = %+v, %v; want ErrUnauthenticated", p, err)
	}
}

func TestExchange_RoundTrip(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	for _, aud := range ExchangeAudiences {
		rt, err := s.ExchangeEntraToken(ctx, entraTokenFor(t, s, admin, aud), "", regA, loginA)
		if err != nil {
			t.Fatalf("ExchangeEntraToken(aud %s): %v", aud, err)
		}
		if want := clock.Now().Add(RefreshTokenLifetime); !rt.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %s, want %s", rt.ExpiresAt, want)
		}
		p, err := s.VerifyRefreshToken(ctx, rt.Token, regA, loginA)
		if err != nil {
			t.Fatalf("VerifyRefreshToken: %v", err)
		}
		if p.ID != admin.ID || p.Kind != KindUser || p.Name != AdminName {
			t.Errorf("principal = %+v, want the admin", p)
		}
		// Login servers compare case-insensitively, as hosts do.
		if _, err := s.VerifyRefreshToken(ctx, rt.Token, "RegA", "REGA.moat.test"); err != nil {
			t.Errorf("VerifyRefreshToken with other case: %v", err)
		}
	}
	tenant, _ := s.TenantID(ctx)
	if _, err := s.ExchangeEntraToken(ctx, entraTokenFor(t, s, admin, AudienceARM), tenant, regA, loginA); err != nil {
		t.Errorf("exchange naming the deployment tenant: %v", err)
	}
}

func TestExchange_Refusals(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	good := entraTokenFor(t, s, admin, AudienceARM)
	for name, tc := range map[string]struct{ tok, tenant string }{
		"other tenant":      {good, "11111111-1111-1111-1111-111111111111"},
		"wrong audience":    {entraTokenFor(t, s, admin, "https://vault.azure.net"), ""},
		"not a token":       {"abc", ""},
		"empty":             {"", ""},
		"id token audience": {entraTokenFor(t, s, admin, "04b07795-8ddb-461a-bbee-02f9e1bf7b46"), ""},
	} {
		if _, err := s.ExchangeEntraToken(ctx, tc.tok, tc.tenant, regA, loginA); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: err = %v, want ErrUnauthenticated", name, err)
		}
	}
	// A refresh token is not an Entra token either.
	rt, err := s.ExchangeEntraToken(ctx, good, "", regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExchangeEntraToken(ctx, rt.Token, "", regA, loginA); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("refresh token exchanged as an Entra token: %v", err)
	}
}

func TestRefreshToken_NotInterchangeableWithAccessTokens(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	rt, err := s.IssueRefreshToken(ctx, admin, regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	// A refresh token is no access token, for any service name.
	for _, svc := range []string{loginA, refreshAudience(loginA)} {
		if _, err := s.VerifyAccessToken(ctx, rt.Token, svc); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("refresh token accepted as an access token for %q: %v", svc, err)
		}
	}
	// An access token is no refresh token.
	at, err := s.IssueAccessToken(ctx, admin, regA, loginA, []Access{acc("repository", "a", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, at.Token, regA, loginA)
	// Nor is an access token minted for the refresh audience.
	at2, err := s.IssueAccessToken(ctx, admin, regA, refreshAudience(loginA), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, at2.Token, regA, loginA)
	// Nor an Entra token.
	wantRefreshRefused(t, s, entraTokenFor(t, s, admin, AudienceContainerRegistry), regA, loginA)
}

func TestRefreshToken_Refusals(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	rt, err := s.IssueRefreshToken(ctx, admin, regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(rt.Token, ".")

	// Bound to one registry: refused at B, and at A's login under B's name.
	wantRefreshRefused(t, s, rt.Token, regB, loginB)
	wantRefreshRefused(t, s, rt.Token, regB, loginA)
	wantRefreshRefused(t, s, rt.Token, regA, loginB)

	// Malformed.
	for _, raw := range []string{"", "x", "a.b", "a.b.c", parts[0] + "." + parts[1], rt.Token + "x", rt.Token + ".", strings.Repeat("a", maxTokenLen+1)} {
		wantRefreshRefused(t, s, raw, regA, loginA)
	}
	// Payload changed (registry rebound), signature kept.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	rebound := strings.Replace(string(payload), `"reg":"rega"`, `"reg":"regb"`, 1)
	if rebound == string(payload) {
		t.Fatalf("payload %s names no registry", payload)
	}
	wantRefreshRefused(t, s, parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(rebound))+"."+parts[2], regB, loginA)

	// Signed by a stranger's key under the right kid, and alg none.
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := refreshClaims{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	forged.Header["kid"], forged.Header["typ"] = s.keys.signer.id, refreshTokenType
	raw, err := forged.SignedString(stranger)
	if err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, raw, regA, loginA)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	none.Header["kid"], none.Header["typ"] = s.keys.signer.id, refreshTokenType
	raw, err = none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, raw, regA, loginA)
	// Signed by moat's key but without the refresh type header.
	untyped := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	untyped.Header["kid"] = s.keys.signer.id
	raw, err = untyped.SignedString(s.keys.signer.priv)
	if err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, raw, regA, loginA)
	// Typed, signed by moat, but not a refresh grant.
	claims.GrantType = "access_token"
	typed := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	typed.Header["kid"], typed.Header["typ"] = s.keys.signer.id, refreshTokenType
	raw, err = typed.SignedString(s.keys.signer.priv)
	if err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, raw, regA, loginA)

	// Still good before it expires; refused after.
	clock.Advance(RefreshTokenLifetime - time.Minute)
	if _, err := s.VerifyRefreshToken(ctx, rt.Token, regA, loginA); err != nil {
		t.Fatalf("VerifyRefreshToken before expiry: %v", err)
	}
	clock.Advance(time.Minute + clockSkew + time.Second)
	wantRefreshRefused(t, s, rt.Token, regA, loginA)

	// Not yet valid (issued "in the future" by a skewed clock).
	fresh, err := s.IssueRefreshToken(ctx, admin, regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(-time.Hour)
	wantRefreshRefused(t, s, fresh.Token, regA, loginA)
	clock.Advance(time.Hour)

	// The principal deleted: refused from the next use on.
	if _, err := s.VerifyRefreshToken(ctx, fresh.Token, regA, loginA); err != nil {
		t.Fatalf("VerifyRefreshToken: %v", err)
	}
	if err := store.DeletePrincipal(ctx, admin.ID); err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, fresh.Token, regA, loginA)
}

func TestRefreshToken_DeletedServicePrincipal(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{ID: sp.ObjectID, Kind: KindServicePrincipal, Name: sp.AppID}
	rt, err := s.ExchangeEntraToken(ctx, entraTokenFor(t, s, p, AudienceContainerRegistry), "", regA, loginA)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if got, err := s.VerifyRefreshToken(ctx, rt.Token, regA, loginA); err != nil || got.ID != sp.ObjectID {
		t.Fatalf("VerifyRefreshToken = %+v, %v", got, err)
	}
	if err := s.DeleteServicePrincipal(ctx, sp.AppID); err != nil {
		t.Fatal(err)
	}
	wantRefreshRefused(t, s, rt.Token, regA, loginA)
}

// A managed identity's resource id travels from the refresh token into the
// access tokens made from it.
func TestRefreshToken_CarriesResourceID(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	const mirid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/ci?x~y"
	// A stored principal (the admin stands in for a managed identity) with
	// the resource id its Entra token named.
	p := admin
	p.ResourceID = mirid
	rt, err := s.IssueRefreshToken(ctx, p, regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.VerifyRefreshToken(ctx, rt.Token, regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceID != mirid {
		t.Errorf("ResourceID = %q, want %q", got.ResourceID, mirid)
	}
	at, err := s.IssueAccessToken(ctx, got, regA, loginA, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.VerifyAccessToken(ctx, at.Token, loginA)
	if err != nil {
		t.Fatal(err)
	}
	if c.Principal.ResourceID != mirid {
		t.Errorf("access token xms_mirid = %q, want %q", c.Principal.ResourceID, mirid)
	}
}

// azcontainerregistry reads the refresh token's exp with standard base64.
func TestRefreshToken_PayloadIsStandardBase64(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	for _, name := range []string{"a?b", "x~y", "?~?~?", "plain", "\x7f", "é?"} {
		p := Principal{ID: "id", Kind: KindUser, Name: name, ResourceID: name + name}
		rt, err := s.IssueRefreshToken(ctx, p, regA, loginA)
		if err != nil {
			t.Fatal(err)
		}
		seg := strings.Split(rt.Token, ".")[1]
		if pad := len(seg) % 4; pad > 0 {
			seg += strings.Repeat("=", 4-pad)
		}
		b, err := base64.StdEncoding.DecodeString(seg)
		if err != nil {
			t.Fatalf("name %q: payload is not standard base64: %v", name, err)
		}
		var c refreshClaims
		if err := json.Unmarshal(b, &c); err != nil || c.Name != name || c.ExpiresAt == nil {
			t.Errorf("name %q: payload %s decodes to %+v, %v", name, b, c, err)
		}
	}
}

func TestRefreshToken_SurvivesKeyRotation(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	rt, err := s.IssueRefreshToken(ctx, admin, regA, loginA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	// Past the access-token window of a retired key, inside the refresh
	// token's life.
	clock.Advance(2 * time.Hour)
	if _, err := s.VerifyRefreshToken(ctx, rt.Token, regA, loginA); err != nil {
		t.Errorf("refresh token signed by a retired key, 2h later: %v", err)
	}
}

func TestStdBase64SafeJSON(t *testing.T) {
	for _, in := range []string{`{}`, `{"a":"?"}`, `{"a":"~\u007f?"}`, `["x?y~z"]`} {
		out := stdBase64SafeJSON([]byte(in))
		var a, b any
		if err := json.Unmarshal([]byte(in), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("%s → %s: %v", in, out, err)
		}
		if ja, jb := mustJSON(t, a), mustJSON(t, b); ja != jb {
			t.Errorf("%s → %s changes the value", in, out)
		}
		if strings.ContainsAny(string(out), "?~\x7f") {
			t.Errorf("%s → %s still has an unsafe byte", in, out)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzStdBase64SafeJSON: for any string value, the escaped JSON means the
// same and its base64url is also valid standard base64.
func FuzzStdBase64SafeJSON(f *testing.F) {
	for _, s := range []string{"", "?", "~", "\x7f", "a?b~c", "é", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := json.Marshal(map[string]string{"v": s})
		if err != nil {
			t.Skip()
		}
		out := stdBase64SafeJSON(in)
		var got map[string]string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q → %s: %v", s, out, err)
		}
		var want map[string]string
		_ = json.Unmarshal(in, &want)
		if got["v"] != want["v"] {
			t.Fatalf("%q: value changed to %q", want["v"], got["v"])
		}
		enc := base64.RawURLEncoding.EncodeToString(out)
		if pad := len(enc) % 4; pad > 0 {
			enc += strings.Repeat("=", 4-pad)
		}
		if _, err := base64.StdEncoding.DecodeString(enc); err != nil {
			t.Fatalf("%q: payload not standard base64: %v", s, err)
		}
	})
}

// FuzzVerifyRefreshToken: arbitrary input is refused, never a panic, never
// a principal.
func FuzzVerifyRefreshToken(f *testing.F) {
	_, _, s, admin, _ := newAdmin(f)
	rt, err := s.IssueRefreshToken(context.Background(), admin, regA, loginA)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rt.Token[:len(rt.Token)-2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		if raw == rt.Token {
			t.Skip()
		}
		if p, err := s.VerifyRefreshToken(context.Background(), raw, regA, loginA); err == nil {
			t.Fatalf("accepted %q as %+v", raw, p)
		}
	})
}
