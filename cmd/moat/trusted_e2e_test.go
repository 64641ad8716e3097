package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	azto "github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/containers/azcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// trustedDeployment is a running `moat serve` with a logged-in CLI profile,
// the admin's management token and a registry (Premium) with an image.
type trustedDeployment struct {
	url, addr, port, ca, cfg, token, password string
	hc                                        *http.Client
}

// arm sends one management call as the admin and fails unless it answers
// one of want.
func (d *trustedDeployment) arm(t *testing.T, method, path, body string, want ...int) map[string]any {
	t.Helper()
	status, out := armDo(t, d.hc, method, d.url+path, d.token, body)
	for _, w := range want {
		if status == w {
			return out
		}
	}
	t.Fatalf("%s %s: %d %v, want %v", method, path, status, out, want)
	return nil
}

func startTrustedDeployment(t *testing.T, password string) *trustedDeployment {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	t.Cleanup(func() { p.stop(t) })
	d := &trustedDeployment{url: url, addr: strings.TrimPrefix(url, "https://"), ca: filepath.Join(dataDir, "ca.pem"),
		cfg: filepath.Join(t.TempDir(), "cfg"), password: password}
	_, d.port, _ = strings.Cut(d.addr, ":")
	d.hc = clientTrusting(t, d.ca, d.addr)
	if r := cli(t, d.cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", d.ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	var prof profile
	if err := json.Unmarshal(readFile(t, filepath.Join(d.cfg, "profile.json")), &prof); err != nil {
		t.Fatal(err)
	}
	d.token = prof.AccessToken
	return d
}

// instance creates a service instance (containerGroups, sites, a task…) with
// a system-assigned identity through the management API, gives that
// identity role on scope with `moat role assignment create`, and returns
// the instance's IDENTITY_ENDPOINT and IDENTITY_HEADER.
func (d *trustedDeployment) instance(t *testing.T, id, body, role, scope string) (endpoint, header string) {
	t.Helper()
	out := d.arm(t, http.MethodPut, id+"?api-version=2023-05-01", body, http.StatusCreated)
	endpoint, _ = cliDig(out, "properties.moatIdentity.identityEndpoint").(string)
	header, _ = cliDig(out, "properties.moatIdentity.identityHeader").(string)
	principal, _ := cliDig(out, "identity.principalId").(string)
	if endpoint == "" || header == "" || principal == "" {
		t.Fatalf("PUT %s answered no moatIdentity or principal: %v", id, out)
	}
	cliOK(t, d.cfg, "role", "assignment", "create", "--assignee", principal, "--role", role, "--scope", scope)
	return endpoint, header
}

// acrClients are azcontainerregistry's two clients for one registry, with
// the credential of one workload (ManagedIdentityCredential configured by
// IDENTITY_ENDPOINT and IDENTITY_HEADER alone), every connection leaving
// from source.
type acrClients struct {
	manifests *azcontainerregistry.Client
	blobs     *azcontainerregistry.BlobClient
}

// acrClients builds them. audience is the Entra audience the client asks
// its token for (any that /oauth2/exchange accepts). MSAL keeps managed-identity tokens in one
// cache per process, keyed by scope and not by IDENTITY_HEADER (a process
// is one machine with one system-assigned identity), so each workload of
// this test uses its own audience to get its own identity's token.
func (d *trustedDeployment) acrClients(t *testing.T, registry, source, endpoint, header, audience string) acrClients {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", header)
	hc := &http.Client{Transport: transportFrom(t, d.hc, d.addr, source)}
	opts := azcore.ClientOptions{
		Transport: hc,
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			azcontainerregistry.ServiceName: {Audience: audience},
		}},
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{
		Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	login := "https://" + registry + ".localhost:" + d.port
	m, err := azcontainerregistry.NewClient(login, cred, &azcontainerregistry.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	b, err := azcontainerregistry.NewBlobClient(login, cred, &azcontainerregistry.BlobClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	return acrClients{manifests: m, blobs: b}
}

// pull reads the manifest and one layer of app:v1 and checks their bytes.
func (c acrClients) pull(ctx context.Context, wantManifest []byte, layer string, wantLayer []byte) error {
	m, err := c.manifests.GetManifest(ctx, "app", "v1", &azcontainerregistry.ClientGetManifestOptions{
		Accept: azto.Ptr("application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")})
	if err != nil {
		return err
	}
	got, err := io.ReadAll(m.ManifestData)
	if err != nil {
		return err
	}
	if string(got) != string(wantManifest) {
		return errors.New("the manifest pulled differs from the one pushed")
	}
	b, err := c.blobs.GetBlob(ctx, "app", layer, nil)
	if err != nil {
		return err
	}
	defer func() { _ = b.BlobData.Close() }()
	got, err = io.ReadAll(b.BlobData)
	if err != nil {
		return err
	}
	if string(got) != string(wantLayer) {
		return errors.New("the layer pulled differs from the one pushed")
	}
	return nil
}

// wantDenied fails unless err is a 403 DENIED from the registry.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden && strings.Contains(err.Error(), "DENIED") {
		return
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusForbidden && strings.Contains(err.Error(), "DENIED") {
		return
	}
	t.Fatalf("%s: %v, want 403 DENIED", what, err)
}

// TestTrustedServicesWorkflowEndToEnd is seed 001's trusted-services
// workflow against a real `moat serve` over TLS, configured only through
// the management API and the CLI: a container group's system-assigned
// identity with AcrPull pulls a manifest and a blob with
// azcontainerregistry (which runs /oauth2/exchange → refresh → access
// itself, from a bare first request) from a Premium registry whose public
// access is disabled, from a 127.0.0.x source the rules refuse; `moat acr
// update --allow-trusted-services false` refuses the same client on its
// next request. An App Service identity with AcrPull is refused even with
// the bypass; a task identity only passes with
// networkRuleBypassAllowedForTasks. crane's library (go-containerregistry,
// refresh token as identity token) passes too.
func TestTrustedServicesWorkflowEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const sub = defaultSubscriptionID
	// One audience per workload: see acrClients.
	const (
		audACI  = "https://containerregistry.azure.net"
		audSite = "https://management.azure.com"
		audTask = "https://management.core.windows.net/"
	)
	d := startTrustedDeployment(t, "trusted-secret-1")
	ctx := context.Background()
	cliOK(t, d.cfg, "group", "create", "-n", "apps")
	reg := cliJSON(t, cliOK(t, d.cfg, "acr", "create", "-n", "trustreg", "-g", "apps", "--sku", "Premium"))
	regID, _ := reg["id"].(string)
	if regID == "" {
		t.Fatalf("acr create: %v", reg)
	}
	group := "/subscriptions/" + sub + "/resourceGroups/apps/providers"

	// 1. A container group with a system-assigned identity, given AcrPull.
	aciEndpoint, aciHeader := d.instance(t, group+"/Microsoft.ContainerInstance/containerGroups/puller",
		`{"location":"local","identity":{"type":"SystemAssigned"},
		  "properties":{"osType":"Linux","containers":[{"name":"app","properties":{"image":"trustreg.localhost/app:v1"}}]}}`,
		"AcrPull", regID)

	// 2. An image, pushed by the admin while the registry is open.
	ref, err := name.ParseReference("trustreg.localhost:" + d.port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	admin := remote.WithAuth(&authn.Basic{Username: "admin", Password: d.password})
	if err := remote.Write(ref, img, admin, remote.WithTransport(d.hc.Transport)); err != nil {
		t.Fatalf("push as admin: %v", err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	// 3. Public access off, trusted services on.
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--public-network-enabled", "false", "--allow-trusted-services", "true")
	const source = "127.0.0.5"
	refused := remote.WithTransport(transportFrom(t, d.hc, d.addr, source))
	if _, err := remote.Head(ref, admin, refused); err == nil || !strings.Contains(err.Error(), "DENIED: client with IP '"+source+"' is not allowed access") {
		t.Fatalf("the admin from %s: %v, want DENIED", source, err)
	}
	if _, err := remote.Head(ref, refused); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("anonymous from %s: %v, want DENIED", source, err)
	}

	// 4. The container group's workload pulls through the bypass.
	aci := d.acrClients(t, "trustreg", source, aciEndpoint, aciHeader, audACI)
	if err := aci.pull(ctx, manifest, layerDigest.String(), layer); err != nil {
		t.Fatalf("container group pull through the trusted-services bypass: %v", err)
	}
	// Its role is AcrPull: no push.
	if _, err := aci.manifests.UploadManifest(ctx, "app", "v2", azcontainerregistry.ContentTypeApplicationVndDockerDistributionManifestV2JSON,
		streaming.NopCloser(bytes.NewReader(manifest)), nil); err == nil {
		t.Fatal("AcrPull pushed a manifest")
	} else if strings.Contains(err.Error(), "DENIED: client with IP") {
		t.Fatalf("push refused by the network, want by authorization: %v", err)
	}

	// 5. Trusted services off: the same client is refused on its next request.
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--allow-trusted-services", "false")
	wantDenied(t, "container group pull with the bypass off", aci.pull(ctx, manifest, layerDigest.String(), layer))
	wantDenied(t, "a new client with the bypass off", d.acrClients(t, "trustreg", source, aciEndpoint, aciHeader, audACI).pull(ctx, manifest, layerDigest.String(), layer))
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--allow-trusted-services", "true")
	if err := aci.pull(ctx, manifest, layerDigest.String(), layer); err != nil {
		t.Fatalf("container group pull with the bypass back on: %v", err)
	}

	// 6. App Service is never trusted, whatever its role.
	siteEndpoint, siteHeader := d.instance(t, group+"/Microsoft.Web/sites/webapp",
		`{"location":"local","identity":{"type":"SystemAssigned"},"properties":{}}`, "AcrPull", regID)
	wantDenied(t, "App Service identity with AcrPull", d.acrClients(t, "trustreg", source, siteEndpoint, siteHeader, audSite).pull(ctx, manifest, layerDigest.String(), layer))

	// 7. A task's identity needs networkRuleBypassAllowedForTasks.
	taskEndpoint, taskHeader := d.instance(t, regID+"/tasks/buildtask",
		`{"location":"local","identity":{"type":"SystemAssigned"},"properties":{}}`, "AcrPull", regID)
	wantDenied(t, "task identity without networkRuleBypassAllowedForTasks", d.acrClients(t, "trustreg", source, taskEndpoint, taskHeader, audTask).pull(ctx, manifest, layerDigest.String(), layer))
	d.arm(t, http.MethodPatch, regID+"?api-version=2025-04-01", `{"properties":{"networkRuleBypassAllowedForTasks":true}}`, http.StatusOK, http.StatusAccepted)
	if err := d.acrClients(t, "trustreg", source, taskEndpoint, taskHeader, audTask).pull(ctx, manifest, layerDigest.String(), layer); err != nil {
		t.Fatalf("task identity with networkRuleBypassAllowedForTasks: %v", err)
	}
	d.arm(t, http.MethodPatch, regID+"?api-version=2025-04-01", `{"properties":{"networkRuleBypassOptions":"None"}}`, http.StatusOK, http.StatusAccepted)
	wantDenied(t, "task identity with bypass None", d.acrClients(t, "trustreg", source, taskEndpoint, taskHeader, audTask).pull(ctx, manifest, layerDigest.String(), layer))
	d.arm(t, http.MethodPatch, regID+"?api-version=2025-04-01", `{"properties":{"networkRuleBypassOptions":"AzureServices"}}`, http.StatusOK, http.StatusAccepted)

	// 8. crane's library: it pings /v2/ without credentials first (the
	// challenge lets it on), then trades the refresh token the container
	// group's identity got from /oauth2/exchange at POST /oauth2/token.
	rt := d.refreshTokenFor(t, "trustreg", source, aciEndpoint, aciHeader)
	got, err := remote.Image(ref, remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: rt})), refused)
	if err != nil {
		t.Fatalf("go-containerregistry with the container group's refresh token: %v", err)
	}
	if raw, err := got.RawManifest(); err != nil || string(raw) != string(manifest) {
		t.Fatalf("go-containerregistry pulled %q, %v", raw, err)
	}
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--allow-trusted-services", "false")
	_, err = remote.Image(ref, remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: rt})), refused)
	wantDenied(t, "go-containerregistry with the bypass off", err)

	// The refusals are in the audit trail.
	audit := cliOK(t, d.cfg, "acr", "audit", "list", "-n", "trustreg", "--denied", "-o", "json")
	if !strings.Contains(audit, source) || !strings.Contains(audit, "App Service is never a trusted service") {
		t.Errorf("audit list lacks the refusals:\n%.2000s", audit)
	}
}

// refreshTokenFor gets a workload's Entra token for ACR from its identity
// endpoint and exchanges it at the registry for a refresh token, from
// source.
func (d *trustedDeployment) refreshTokenFor(t *testing.T, registry, source, endpoint, header string) string {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", header)
	hc := &http.Client{Transport: transportFrom(t, d.hc, d.addr, source)}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{
		Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://containerregistry.azure.net/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	login := registry + ".localhost:" + d.port
	resp, err := hc.PostForm("https://"+login+"/oauth2/exchange", map[string][]string{
		"grant_type": {"access_token"}, "service": {registry + ".localhost"}, "access_token": {tok.Token}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.RefreshToken == "" {
		t.Fatalf("exchange: %d %v", resp.StatusCode, err)
	}
	return out.RefreshToken
}
