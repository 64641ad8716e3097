package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/moat-registry/moat/internal/identity"
)

// armDo sends one management request with the bearer token and decodes the
// JSON answer.
func armDo(t *testing.T, c *http.Client, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %q is not JSON", method, url, b)
		}
	}
	return resp.StatusCode, out
}

func jwtClaims(t *testing.T, raw string) map[string]any {
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

// TestManagedIdentitiesAgainstServe: against a real `moat serve`, a
// user-assigned identity is created with the CLI, a container group with a
// system-assigned identity and that one through the ARM API; the instance's
// workload gets tokens with azidentity's ManagedIdentityCredential (only
// IDENTITY_ENDPOINT and IDENTITY_HEADER set) and with `moat identity
// token`; the tokens name the instance and its principal and moat verifies
// them (the management API knows the caller and refuses it 403, not 401);
// rotating the secret refuses the old one; a wrong header is refused; the
// Defender scanner's credentials are in the data directory and work.
func TestManagedIdentitiesAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "mi-secret-1"
	const sub = "00000000-0000-0000-0000-000000000000"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	ca := filepath.Join(dataDir, "ca.pem")
	addr := strings.TrimPrefix(url, "https://")
	hc := clientTrusting(t, ca, addr)
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "apps")

	// The CLI manages user-assigned identities.
	uai := cliJSON(t, cliOK(t, cfg, "identity", "create", "-g", "apps", "-n", "shared-id"))
	uaiID, _ := uai["id"].(string)
	uaiClient, _ := cliDig(uai, "properties.clientId").(string)
	uaiPrincipal, _ := cliDig(uai, "properties.principalId").(string)
	if uaiID == "" || uaiClient == "" || uaiPrincipal == "" {
		t.Fatalf("identity create: %v", uai)
	}
	if table := cliOK(t, cfg, "identity", "list", "-g", "apps", "-o", "table"); !strings.Contains(table, "shared-id") || !strings.Contains(table, uaiPrincipal) {
		t.Errorf("identity list table:\n%s", table)
	}
	if shown := cliJSON(t, cliOK(t, cfg, "identity", "show", "-g", "apps", "-n", "shared-id")); cliDig(shown, "properties.clientId") != uaiClient {
		t.Errorf("identity show: %v", shown)
	}
	cliFails(t, cfg, 2, "moat: --name is required", "identity", "show", "-g", "apps")
	cliFails(t, cfg, 1, "moat: ResourceNotFound: ", "identity", "show", "-g", "apps", "-n", "nobody")

	// A container group with both identities, through the ARM API.
	var adminTok string
	{
		var prof profile
		if err := json.Unmarshal(readFile(t, filepath.Join(cfg, "profile.json")), &prof); err != nil {
			t.Fatal(err)
		}
		adminTok = prof.AccessToken
	}
	aciID := "/subscriptions/" + sub + "/resourceGroups/apps/providers/Microsoft.ContainerInstance/containerGroups/puller"
	status, cg := armDo(t, hc, http.MethodPut, url+aciID+"?api-version=2023-05-01", adminTok,
		`{"location":"local","identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"`+uaiID+`":{}}},
		  "properties":{"osType":"Linux","containers":[{"name":"app","properties":{"image":"moat.localhost/app:v1"}}]}}`)
	if status != http.StatusCreated {
		t.Fatalf("container group PUT: %d %v", status, cg)
	}
	endpoint, _ := cliDig(cg, "properties.moatIdentity.identityEndpoint").(string)
	header, _ := cliDig(cg, "properties.moatIdentity.identityHeader").(string)
	principal, _ := cliDig(cg, "identity.principalId").(string)
	if endpoint != url+identity.MSIPath || header == "" || principal == "" {
		t.Fatalf("container group answer lacks its identity endpoint, secret or principal: %v", cg)
	}

	// The workload: azidentity configured by the environment alone.
	ctx := context.Background()
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", header)
	opts := azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		t.Fatalf("ManagedIdentityCredential.GetToken: %v", err)
	}
	c := jwtClaims(t, tok.Token)
	if c["xms_mirid"] != aciID || c["xms_az_rid"] != aciID || c["oid"] != principal {
		t.Errorf("token claims %v, want xms_mirid %s and oid %s", c, aciID, principal)
	}
	// moat verifies it: the management API knows the caller (403 naming it,
	// not 401). The identity holds no role, so reading its own group is
	// refused (a list would just be empty).
	status, refused := armDo(t, hc, http.MethodGet, url+"/subscriptions/"+sub+"/resourcegroups/apps?api-version=2021-04-01", tok.Token, "")
	if status != http.StatusForbidden || cliDig(refused, "error.code") != "AuthorizationFailed" || !strings.Contains(cliDig(refused, "error.message").(string), principal) {
		t.Errorf("management call with the MI token: %d %v, want 403 AuthorizationFailed naming %s", status, refused, principal)
	}
	// The user-assigned identity, selected by client id.
	uaCred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts, ID: azidentity.ClientID(uaiClient)})
	if err != nil {
		t.Fatal(err)
	}
	uaTok, err := uaCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://containerregistry.azure.net/.default"}})
	if err != nil {
		t.Fatalf("user-assigned GetToken: %v", err)
	}
	if c := jwtClaims(t, uaTok.Token); c["xms_mirid"] != uaiID || c["xms_az_rid"] != aciID || c["oid"] != uaiPrincipal {
		t.Errorf("user-assigned token claims %v", c)
	}

	// The same with the CLI, then rotation and a wrong header.
	out := cliJSON(t, cliOK(t, cfg, "identity", "token", "--ca-file", ca, "--endpoint", endpoint, "--header", header, "--client-id", uaiClient))
	if out["client_id"] != uaiClient || out["access_token"] == "" || out["token_type"] != "Bearer" {
		t.Errorf("identity token: %v", out)
	}
	rotated := cliJSON(t, cliOK(t, cfg, "identity", "rotate-secret", "--ids", aciID))
	newHeader, _ := rotated["identityHeader"].(string)
	if newHeader == "" || newHeader == header || rotated["identityEndpoint"] != endpoint {
		t.Fatalf("rotate-secret: %v", rotated)
	}
	cliFails(t, cfg, 1, "moat: unauthorized_client: ", "identity", "token", "--ca-file", ca, "--endpoint", endpoint, "--header", header)
	cliFails(t, cfg, 1, "moat: unauthorized_client: ", "identity", "token", "--ca-file", ca, "--endpoint", endpoint, "--header", "wrong")
	// Neither flags nor environment: a usage error.
	if r := cli(t, cfg, []string{"IDENTITY_ENDPOINT=", "IDENTITY_HEADER="}, "", "identity", "token"); r.code != 2 || !strings.HasPrefix(r.stderr, "moat: --endpoint (or IDENTITY_ENDPOINT) is required") {
		t.Errorf("identity token without endpoint: %d %q", r.code, r.stderr)
	}
	// The environment alone (the test set it for azidentity) is enough.
	if out := cliJSON(t, cliOK(t, cfg, "identity", "token", "--ca-file", ca, "--header", newHeader)); out["access_token"] == "" {
		t.Errorf("identity token from IDENTITY_ENDPOINT: %v", out)
	}
	out = cliJSON(t, cliOK(t, cfg, "identity", "token", "--ca-file", ca, "--endpoint", endpoint, "--header", newHeader))
	if out["access_token"] == "" {
		t.Errorf("token with the rotated secret: %v", out)
	}

	// Deleting the container group refuses its secret.
	if status, _ := armDo(t, hc, http.MethodDelete, url+aciID+"?api-version=2023-05-01", adminTok, ""); status != http.StatusOK {
		t.Fatalf("container group DELETE: %d", status)
	}
	cliFails(t, cfg, 1, "moat: unauthorized_client: ", "identity", "token", "--ca-file", ca, "--endpoint", endpoint, "--header", newHeader)
	cliOK(t, cfg, "identity", "delete", "-g", "apps", "-n", "shared-id")
	if table := cliOK(t, cfg, "identity", "list", "-o", "json"); strings.Contains(table, "shared-id") {
		t.Errorf("deleted identity still listed: %s", table)
	}

	// The Defender scanner's credentials, written at first start (0600).
	path := filepath.Join(dataDir, defenderScannerFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", path, st.Mode().Perm())
	}
	var sc defenderScannerCredentials
	if err := json.Unmarshal(readFile(t, path), &sc); err != nil {
		t.Fatal(err)
	}
	scanner, err := azidentity.NewClientSecretCredential(sc.TenantID, sc.ClientID, sc.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Transport: hc, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: url + "/"}},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scanner.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://containerregistry.azure.net/.default"}}); err != nil {
		t.Errorf("the Defender scanner's credentials do not work: %v", err)
	}
}
