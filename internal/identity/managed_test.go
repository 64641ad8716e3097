package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	miGroup = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/apps"
	aciID   = miGroup + "/providers/Microsoft.ContainerInstance/containerGroups/puller"
	siteID  = miGroup + "/providers/Microsoft.Web/sites/webapp"
	uaiID   = miGroup + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared-id"
)

// miEnv is a Service on the real clock (azidentity judges expiry by it)
// with the MSI endpoint served over HTTP.
type miEnv struct {
	t     *testing.T
	store meta.Store
	s     *Service
	srv   *httptest.Server
}

func newMIEnv(t *testing.T) *miEnv {
	t.Helper()
	store := openStore(t)
	s, err := New(context.Background(), store, Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(MSIPath, s.ManagedIdentityHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &miEnv{t: t, store: store, s: s, srv: srv}
	for _, id := range []string{miGroup, aciID, siteID, uaiID} {
		e.putResource(id)
	}
	return e
}

func (e *miEnv) putResource(id string) {
	e.t.Helper()
	if _, err := e.store.PutResource(context.Background(), meta.Resource{ID: id, Type: "test", Name: id[strings.LastIndexByte(id, '/')+1:]}); err != nil {
		e.t.Fatal(err)
	}
}

// instance gives id a system-assigned identity (when system) and the
// user-assigned ones, and returns the system identity and the secret.
func (e *miEnv) instance(id string, system bool, userAssigned ...string) (ManagedIdentity, string) {
	e.t.Helper()
	ctx := context.Background()
	var mi ManagedIdentity
	if system {
		var err error
		if mi, err = e.s.EnsureManagedIdentity(ctx, id, false); err != nil {
			e.t.Fatal(err)
		}
	}
	secret, err := e.s.SetIdentityHost(ctx, id, mi.PrincipalID, userAssigned)
	if err != nil || secret == "" {
		e.t.Fatalf("SetIdentityHost = %q, %v", secret, err)
	}
	return mi, secret
}

// token asks the endpoint with a raw request, as the protocol is specified.
func (e *miEnv) token(header string, params ...string) (int, map[string]string) {
	e.t.Helper()
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {"https://containerregistry.azure.net"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+MSIPath+"?"+q.Encode(), nil)
	if header != "" {
		req.Header.Set("X-IDENTITY-HEADER", header)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Errorf("Content-Type %q, want JSON", ct)
	}
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		e.t.Fatalf("body is not a JSON object of strings: %v", err)
	}
	return resp.StatusCode, body
}

// unverifiedClaims decodes a JWT's payload for inspection.
func unverifiedClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestManagedIdentityCredential_AppServiceProtocol: azidentity's
// ManagedIdentityCredential, configured only by IDENTITY_ENDPOINT and
// IDENTITY_HEADER, gets a token for the container group's system-assigned
// identity that moat verifies and that names the instance.
func TestManagedIdentityCredential_AppServiceProtocol(t *testing.T) {
	e := newMIEnv(t)
	ctx := context.Background()
	mi, secret := e.instance(aciID, true)

	t.Setenv("IDENTITY_ENDPOINT", e.srv.URL+MSIPath)
	t.Setenv("IDENTITY_HEADER", secret)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://containerregistry.azure.net/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	c := unverifiedClaims(t, tok.Token)
	if c["xms_mirid"] != aciID || c["xms_az_rid"] != aciID || c["oid"] != mi.PrincipalID || c["appid"] != mi.ClientID || c["aud"] != AudienceContainerRegistry {
		t.Errorf("claims = %v, want xms_mirid/xms_az_rid %s, oid %s, appid %s", c, aciID, mi.PrincipalID, mi.ClientID)
	}
	p, err := e.s.VerifyEntraToken(ctx, tok.Token, AudienceContainerRegistry)
	if err != nil {
		t.Fatalf("VerifyEntraToken: %v", err)
	}
	want := Principal{ID: mi.PrincipalID, Kind: KindManagedIdentity, Name: aciID, ResourceID: aciID}
	if p != want {
		t.Errorf("principal = %+v, want %+v", p, want)
	}
	// The token is not a management token of another kind of principal.
	if _, err := e.s.VerifyEntraToken(ctx, tok.Token, AudienceManagement); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token accepted for the management audience: %v", err)
	}
}

// TestManagedIdentityCredential_UserAssigned: a user-assigned identity
// attached to a container group is selected by client id (through
// azidentity) and by principal id and resource id; its token names the
// identity in xms_mirid and the instance in xms_az_rid.
func TestManagedIdentityCredential_UserAssigned(t *testing.T) {
	e := newMIEnv(t)
	ctx := context.Background()
	ua, err := e.s.EnsureManagedIdentity(ctx, uaiID, true)
	if err != nil {
		t.Fatal(err)
	}
	_, secret := e.instance(aciID, false, uaiID)

	t.Setenv("IDENTITY_ENDPOINT", e.srv.URL+MSIPath)
	t.Setenv("IDENTITY_HEADER", secret)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ID:            azidentity.ClientID(ua.ClientID),
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	p, err := e.s.VerifyManagementToken(ctx, tok.Token)
	if err != nil {
		t.Fatalf("VerifyManagementToken: %v", err)
	}
	want := Principal{ID: ua.PrincipalID, Kind: KindManagedIdentity, Name: uaiID, ResourceID: aciID}
	if p != want {
		t.Errorf("principal = %+v, want %+v", p, want)
	}
	for _, sel := range [][2]string{{"principal_id", ua.PrincipalID}, {"object_id", ua.PrincipalID}, {"mi_res_id", strings.ToUpper(uaiID)}} {
		code, body := e.token(secret, sel[0], sel[1])
		if code != http.StatusOK || body["client_id"] != ua.ClientID || body["token_type"] != "Bearer" || body["expires_on"] == "" {
			t.Errorf("%s: %d %v", sel[0], code, body)
		}
	}
	// No system-assigned identity here: no selector is an error, as is an
	// identity that is not attached.
	if code, body := e.token(secret); code != http.StatusBadRequest || !strings.Contains(body["error_description"], "no system-assigned identity") {
		t.Errorf("no selector: %d %v", code, body)
	}
	if code, _ := e.token(secret, "client_id", "3f1c0c8e-0000-4000-8000-000000000000"); code != http.StatusBadRequest {
		t.Errorf("unknown client id: %d", code)
	}

	// Detaching the identity stops its tokens (verification re-reads the
	// host once the cache entry is gone: use a fresh token).
	if _, err := e.s.SetIdentityHost(ctx, aciID, "", []string{siteID}); err != nil {
		t.Fatal(err)
	}
	raw, _, err := e.s.issueManagedToken(httptest.NewRequest("GET", e.srv.URL, nil), "http://example.test", ua, aciID, AudienceARM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.VerifyManagementToken(ctx, raw); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token of a detached identity: %v, want ErrUnauthenticated", err)
	}
}

// TestMSIEndpoint_RefusesBadRequests: every malformed or unauthenticated
// request answers 400 or 401 with a JSON error, never a token or a 500.
func TestMSIEndpoint_RefusesBadRequests(t *testing.T) {
	e := newMIEnv(t)
	_, secret := e.instance(aciID, true)
	hostID, _, _ := strings.Cut(secret, "~")
	cases := []struct {
		name   string
		header string
		params []string
		status int
	}{
		{"missing header", "", nil, http.StatusBadRequest},
		{"wrong secret", hostID + "~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, http.StatusUnauthorized},
		{"no host id", "garbage", nil, http.StatusUnauthorized},
		{"unknown host", "5b7e9c1a-0000-4000-8000-000000000000~x", nil, http.StatusUnauthorized},
		{"another principal's id", e.mustTenantPrincipal() + "~x", nil, http.StatusUnauthorized},
		{"too long", strings.Repeat("a", 4096), nil, http.StatusUnauthorized},
		{"bad api-version", secret, []string{"api-version", "2017-09-01"}, http.StatusBadRequest},
		{"unknown resource", secret, []string{"resource", "https://vault.azure.net"}, http.StatusBadRequest},
		{"two selectors", secret, []string{"client_id", "a", "mi_res_id", "b"}, http.StatusBadRequest},
	}
	for _, c := range cases {
		code, body := e.token(c.header, c.params...)
		if code != c.status || body["error"] == "" || body["access_token"] != "" {
			t.Errorf("%s: %d %v, want %d with an error", c.name, code, body, c.status)
		}
	}
	// POST is not the protocol.
	resp, err := http.Post(e.srv.URL+MSIPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

func (e *miEnv) mustTenantPrincipal() string {
	e.t.Helper()
	id, err := e.s.TenantID(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// TestMSIEndpoint_RotationAndDeletion: rotating the secret refuses the old
// one at once; deleting the instance's resource refuses its secret and its
// identity's tokens; deleting the identity refuses its tokens.
func TestMSIEndpoint_RotationAndDeletion(t *testing.T) {
	e := newMIEnv(t)
	ctx := context.Background()
	mi, secret := e.instance(aciID, true)
	if code, body := e.token(secret); code != http.StatusOK {
		t.Fatalf("first secret: %d %v", code, body)
	}
	rotated, err := e.s.RotateIdentityHostSecret(ctx, aciID)
	if err != nil || rotated == secret {
		t.Fatalf("RotateIdentityHostSecret = %q, %v", rotated, err)
	}
	if code, _ := e.token(secret); code != http.StatusUnauthorized {
		t.Errorf("old secret after rotation: %d, want 401", code)
	}
	code, body := e.token(rotated)
	if code != http.StatusOK {
		t.Fatalf("new secret: %d %v", code, body)
	}
	// Only a hash is stored.
	host, err := e.store.GetPrincipalByName(ctx, kindIdentityHost, strings.ToLower(aciID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(host.Properties)+string(host.SecretHash), rotated) {
		t.Error("the secret is stored in clear")
	}

	// The site has no host: rotating it is ErrIdentityHostNotFound.
	if _, err := e.s.RotateIdentityHostSecret(ctx, siteID); !errors.Is(err, ErrIdentityHostNotFound) {
		t.Errorf("rotating an instance without identities: %v", err)
	}

	tok := body["access_token"]
	if err := e.store.DeleteResource(ctx, aciID); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.token(rotated); code != http.StatusUnauthorized {
		t.Errorf("secret of a deleted resource: %d, want 401", code)
	}
	if _, err := e.s.VerifyEntraToken(ctx, tok, AudienceContainerRegistry); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token of a deleted resource's identity: %v", err)
	}
	e.putResource(aciID)
	if err := e.s.DeleteManagedIdentity(ctx, aciID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetManagedIdentity(ctx, aciID); !errors.Is(err, ErrManagedIdentityNotFound) {
		t.Errorf("GetManagedIdentity after delete: %v", err)
	}
	if code, _ := e.token(rotated); code != http.StatusBadRequest {
		t.Errorf("secret whose identity was deleted: %d, want 400 (no identity)", code)
	}
	_ = mi
}

// TestEnsureManagedIdentity_Idempotent: a second call returns the same
// principal; the other flavour on the same id is refused.
func TestEnsureManagedIdentity_Idempotent(t *testing.T) {
	e := newMIEnv(t)
	ctx := context.Background()
	a, err := e.s.EnsureManagedIdentity(ctx, aciID, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.s.EnsureManagedIdentity(ctx, strings.ToUpper(aciID), false)
	if err != nil || a != b {
		t.Errorf("second Ensure = %+v, %v; want %+v", b, err, a)
	}
	if _, err := e.s.EnsureManagedIdentity(ctx, aciID, true); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("other flavour: %v", err)
	}
	if _, err := e.s.EnsureManagedIdentity(ctx, "not-an-id", false); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad id: %v", err)
	}
}
