package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testAuthority = "https://moat.example:8443"

func TestNormaliseResource(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://management.core.windows.net/", AudienceManagement},
		{"https://management.core.windows.net", AudienceManagement},
		{"HTTPS://Management.Core.Windows.Net//", AudienceManagement},
		{"https://management.azure.com", AudienceARM},
		{"https://management.azure.com/", AudienceARM},
		{"https://containerregistry.azure.net", AudienceContainerRegistry},
		{"http://management.azure.com", ""},
		{"https://management.azure.com:443", ""},
		{"https://management.azure.com/subscriptions", ""},
		{"https://management.azure.com/?x=1", ""},
		{"https://user@management.azure.com", ""},
		{"https://graph.microsoft.com", ""},
		{"", ""},
		{"::", ""},
	}
	for _, tc := range tests {
		if got := normaliseResource(tc.in); got != tc.want {
			t.Errorf("normaliseResource(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		scope, grant string
		want         string
		code         string
	}{
		{"https://management.core.windows.net//.default openid offline_access profile", grantClientCredentials, AudienceManagement, ""},
		{"https://management.azure.com/.default", grantClientCredentials, AudienceARM, ""},
		{"https://management.azure.com//.default https://management.azure.com/.default", grantClientCredentials, AudienceARM, ""},
		{"https://containerregistry.azure.net/.default", grantClientCredentials, AudienceContainerRegistry, ""},
		{"https://management.core.windows.net//user_impersonation openid", grantPassword, AudienceManagement, ""},
		{"https://management.core.windows.net//user_impersonation", grantClientCredentials, "", "invalid_scope"},
		{"openid profile", grantPassword, "", "invalid_scope"},
		{"https://graph.microsoft.com/.default", grantClientCredentials, "", "invalid_resource"},
		{"https://management.azure.com/.default https://containerregistry.azure.net/.default", grantClientCredentials, "", "invalid_scope"},
		{"User.Read", grantPassword, "", "invalid_scope"},
	}
	for _, tc := range tests {
		got, err := parseScope(tc.scope, tc.grant)
		var ee *entraError
		switch {
		case tc.code == "" && (err != nil || got != tc.want):
			t.Errorf("parseScope(%q, %s) = %q, %v; want %q", tc.scope, tc.grant, got, err, tc.want)
		case tc.code != "" && (!errors.As(err, &ee) || ee.code != tc.code || ee.status != 400):
			t.Errorf("parseScope(%q, %s) error = %v, want a 400 %s", tc.scope, tc.grant, err, tc.code)
		}
	}
}

func FuzzParseEntraScope(f *testing.F) {
	f.Add("https://management.core.windows.net//.default openid offline_access profile")
	f.Add("https://management.azure.com/.default")
	f.Add("https://containerregistry.azure.net//user_impersonation")
	f.Add("  \t")
	f.Add("https://[::1]/.default")
	f.Fuzz(func(t *testing.T, scope string) {
		for _, grant := range []string{grantClientCredentials, grantPassword} {
			aud, err := parseScope(scope, grant)
			if err == nil && aud != AudienceManagement && aud != AudienceARM && aud != AudienceContainerRegistry {
				t.Fatalf("parseScope(%q) = %q, not a known audience", scope, aud)
			}
			var ee *entraError
			if err != nil && (!errors.As(err, &ee) || ee.status != 400) {
				t.Fatalf("parseScope(%q) error %v is not a 400 Entra error", scope, err)
			}
		}
	})
}

func TestIssuerTenant(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://h/t1/v2.0", "t1"},
		{"http://h:8080/t1/v2.0", "t1"},
		{"https://h/t1/v2.0/", ""},
		{"https://h/a/t1/v2.0", ""},
		{"https://h//v2.0", ""},
		{"moat", ""},
		{"ftp://h/t1/v2.0", ""},
		{"https:///t1/v2.0", ""},
		{"https://h/t1/v2.0?x", ""},
	}
	for _, tc := range tests {
		if got := issuerTenant(tc.in); got != tc.want {
			t.Errorf("issuerTenant(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// newEntraFixture returns a service with the admin, a service principal and
// the deployment tenant.
func newEntraFixture(t *testing.T) (*Service, *testClock, Principal, ServicePrincipal, string) {
	t.Helper()
	_, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "app")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	return s, clock, admin, sp, tenant
}

func spPrincipal(sp ServicePrincipal) Principal {
	return Principal{ID: sp.ObjectID, Kind: KindServicePrincipal, Name: sp.AppID}
}

func TestVerifyManagementToken_Accepts(t *testing.T) {
	s, _, admin, sp, tenant := newEntraFixture(t)
	ctx := context.Background()
	for _, aud := range []string{AudienceManagement, AudienceARM} {
		raw, _, err := s.issueEntraToken(ctx, testAuthority, tenant, entraSubject{p: spPrincipal(sp), appID: sp.AppID}, aud)
		if err != nil {
			t.Fatalf("issueEntraToken: %v", err)
		}
		for range 2 { // the second answer comes from the cache
			p, err := s.VerifyManagementToken(ctx, raw)
			if err != nil || p != spPrincipal(sp) {
				t.Errorf("VerifyManagementToken(aud %s) = %+v, %v", aud, p, err)
			}
		}
	}
	raw, _, err := s.issueEntraToken(ctx, "http://other-replica:80", tenant, entraSubject{p: admin, appID: "04b07795-8ddb-461a-bbee-02f9e1bf7b46"}, AudienceManagement)
	if err != nil {
		t.Fatalf("issueEntraToken: %v", err)
	}
	if p, err := s.VerifyManagementToken(ctx, raw); err != nil || p != admin {
		t.Errorf("admin token from another host = %+v, %v; want %+v", p, err, admin)
	}
	// The claims Azure tooling reads are present.
	var c map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"iss": "http://other-replica:80/" + tenant + "/v2.0", "aud": AudienceManagement, "tid": tenant, "oid": admin.ID, "sub": admin.ID, "idtyp": "user", "upn": AdminName, "name": AdminName} {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
}

func TestVerifyEntraToken_Refusals(t *testing.T) {
	s, clock, admin, sp, tenant := newEntraFixture(t)
	ctx := context.Background()
	subj := entraSubject{p: spPrincipal(sp), appID: sp.AppID}
	good, _, err := s.issueEntraToken(ctx, testAuthority, tenant, subj, AudienceManagement)
	if err != nil {
		t.Fatalf("issueEntraToken: %v", err)
	}
	acr, _, err := s.issueEntraToken(ctx, testAuthority, tenant, subj, AudienceContainerRegistry)
	if err != nil {
		t.Fatalf("issueEntraToken: %v", err)
	}
	signWith := func(mod func(*entraClaims)) string {
		c := s.entraBaseClaims(testAuthority, tenant, spPrincipal(sp), AudienceManagement)
		c.IDType = idTypeApp
		mod(&c)
		raw, err := s.signEntra(ctx, c)
		if err != nil {
			t.Fatalf("signEntra: %v", err)
		}
		return raw
	}
	otherTid := signWith(func(c *entraClaims) { c.TenantID = "11111111-1111-1111-1111-111111111111" })
	otherIss := signWith(func(c *entraClaims) { c.Issuer = testAuthority + "/11111111-1111-1111-1111-111111111111/v2.0" })
	dataIss := signWith(func(c *entraClaims) { c.Issuer = "moat" })
	noIdtyp := signWith(func(c *entraClaims) { c.IDType = "" })
	wrongKind := signWith(func(c *entraClaims) { c.IDType = idTypeUser })
	subMismatch := signWith(func(c *entraClaims) { c.ObjectID = admin.ID })
	idTok, err := s.issueIDToken(ctx, testAuthority, tenant, admin, "04b07795-8ddb-461a-bbee-02f9e1bf7b46")
	if err != nil {
		t.Fatalf("issueIDToken: %v", err)
	}
	dataPlane, err := s.IssueAccessToken(ctx, admin, "reg", "reg.example", nil)
	if err != nil {
		t.Fatalf("IssueAccessToken: %v", err)
	}

	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + flipMiddleChar(parts[1]) + "." + parts[2]
	tamperedSig := parts[0] + "." + parts[1] + "." + flipMiddleChar(parts[2])
	none := noneToken(t, parts[1])

	// A token signed by another deployment's keys.
	other := newService(t, openStore(t), clock)
	foreign, err := other.signEntra(ctx, s.entraBaseClaims(testAuthority, tenant, spPrincipal(sp), AudienceManagement))
	if err != nil {
		t.Fatalf("signEntra: %v", err)
	}

	tests := []struct{ name, raw string }{
		{"empty", ""},
		{"garbage", "not.a.jwt"},
		{"too long", strings.Repeat("a", maxTokenLen+1)},
		{"wrong audience", acr},
		{"other tenant in tid", otherTid},
		{"other tenant in iss", otherIss},
		{"data-plane issuer", dataIss},
		{"data-plane token", dataPlane.Token},
		{"id token", idTok},
		{"no idtyp", noIdtyp},
		{"idtyp does not match the principal", wrongKind},
		{"sub and oid differ", subMismatch},
		{"tampered payload", tamperedPayload},
		{"tampered signature", tamperedSig},
		{"alg none", none},
		{"foreign key", foreign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := s.VerifyManagementToken(ctx, tc.raw); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("VerifyManagementToken = %+v, %v; want ErrUnauthenticated", p, err)
			}
		})
	}

	// The registry-audience token is fine where that audience is accepted,
	// and a cached management answer does not leak to the data plane.
	if _, err := s.VerifyEntraToken(ctx, acr, AudienceContainerRegistry); err != nil {
		t.Errorf("VerifyEntraToken(acr audience): %v", err)
	}
	if _, err := s.VerifyManagementToken(ctx, good); err != nil {
		t.Fatalf("VerifyManagementToken(good): %v", err)
	}
	if _, err := s.VerifyAccessToken(ctx, good, "reg.example"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("VerifyAccessToken(management token) = %v, want ErrUnauthenticated", err)
	}
	if _, err := s.VerifyEntraToken(ctx, good, AudienceContainerRegistry); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("cached management token accepted for the registry audience: %v", err)
	}

	// Not yet valid, then expired.
	future := signWith(func(c *entraClaims) { c.NotBefore = jwt.NewNumericDate(clock.Now().Add(time.Hour)) })
	if _, err := s.VerifyManagementToken(ctx, future); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("not-yet-valid token: %v", err)
	}
	clock.Advance(s.lifetime + clockSkew + time.Second)
	if _, err := s.VerifyManagementToken(ctx, good); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired token: %v", err)
	}
}

func TestVerifyManagementToken_DeletedPrincipal(t *testing.T) {
	s, clock, _, sp, tenant := newEntraFixture(t)
	ctx := context.Background()
	raw, _, err := s.issueEntraToken(ctx, testAuthority, tenant, entraSubject{p: spPrincipal(sp), appID: sp.AppID}, AudienceManagement)
	if err != nil {
		t.Fatalf("issueEntraToken: %v", err)
	}
	if _, err := s.VerifyManagementToken(ctx, raw); err != nil {
		t.Fatalf("VerifyManagementToken: %v", err)
	}
	if err := s.DeleteServicePrincipal(ctx, sp.AppID); err != nil {
		t.Fatalf("DeleteServicePrincipal: %v", err)
	}
	clock.Advance(entraCacheTTL)
	if _, err := s.VerifyManagementToken(ctx, raw); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token of a deleted principal after the cache TTL: %v, want ErrUnauthenticated", err)
	}
}

func TestVerifyManagementToken_StoreFailureIsNotUnauthenticated(t *testing.T) {
	store := &countingStore{Store: openStore(t)}
	clock := newTestClock()
	s := newService(t, store, clock)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "app")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	raw, _, err := s.issueEntraToken(ctx, testAuthority, tenant, entraSubject{p: spPrincipal(sp), appID: sp.AppID}, AudienceManagement)
	if err != nil {
		t.Fatalf("issueEntraToken: %v", err)
	}
	store.failByName.Store(true)
	_, err = s.VerifyManagementToken(ctx, raw)
	if err == nil || errors.Is(err, ErrUnauthenticated) || !errors.Is(err, errInjected) {
		t.Errorf("VerifyManagementToken with a failing store = %v, want the store error", err)
	}
}

// flipMiddleChar changes one base64url character in the middle of s (the
// last one may only carry padding bits).
func flipMiddleChar(s string) string {
	if s == "" {
		return "A"
	}
	i := len(s) / 2
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func noneToken(t *testing.T, payload string) string {
	t.Helper()
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return hdr + "." + payload + "."
}

func TestVerifyManagementToken_Cached(t *testing.T) {
	store := &countingStore{Store: openStore(t)}
	clock := newTestClock()
	s := newService(t, store, clock)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "app")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	raw, _, err := s.issueEntraToken(ctx, testAuthority, tenant, entraSubject{p: spPrincipal(sp), appID: sp.AppID}, AudienceManagement)
	if err != nil {
		t.Fatalf("issueEntraToken: %v", err)
	}
	if _, err := s.VerifyManagementToken(ctx, raw); err != nil {
		t.Fatalf("VerifyManagementToken: %v", err)
	}
	before := store.byName.Load()
	store.failByName.Store(true) // a store round trip would now fail
	for range 3 {
		if _, err := s.VerifyManagementToken(ctx, raw); err != nil {
			t.Fatalf("cached VerifyManagementToken: %v", err)
		}
	}
	if n := store.byName.Load() - before; n != 0 {
		t.Errorf("cached verifications made %d store lookups", n)
	}
	// After entraCacheTTL the principal is read again.
	clock.Advance(entraCacheTTL)
	if _, err := s.VerifyManagementToken(ctx, raw); err == nil {
		t.Error("verification after the cache TTL did not consult the (failing) store")
	}
}

func FuzzIssuerTenant(f *testing.F) {
	f.Add("https://moat.example/8a1f0c3e-1111-4c2b-9d1e-0123456789ab/v2.0")
	f.Add("http://[::1]:8080/t/v2.0")
	f.Add("https://h//v2.0")
	f.Add("moat")
	f.Fuzz(func(t *testing.T, iss string) {
		tenant := issuerTenant(iss)
		if tenant != "" && (strings.Contains(tenant, "/") || !strings.HasSuffix(iss, "/"+tenant+"/v2.0")) {
			t.Fatalf("issuerTenant(%q) = %q", iss, tenant)
		}
	})
}
