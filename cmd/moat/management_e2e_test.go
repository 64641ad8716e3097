package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestManagementThroughAzureSDK drives a real `moat serve` (TLS from its
// local CA) with the Azure SDK for Go: azidentity gets a token from moat's
// Entra-compatible issuer, armcontainerregistry creates a Premium registry,
// a stock OCI client pushes to its login server, and deleting the resource
// takes its data plane away at once.
func TestManagementThroughAzureSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "mgmt-secret-1"
	m := startManagedMoat(t, password)
	url, port, httpClient, cred, opts := m.url, m.port, m.http, m.cred, m.opts
	ctx := context.Background()
	const sub = "00000000-0000-0000-0000-000000000000"
	m.putGroup(t, "team")
	// Without a token: refused, in ARM's shape.
	resp, err := httpClient.Get(url + "/subscriptions/" + sub + "/resourcegroups/team?api-version=2021-04-01")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous ARM GET: %d, want 401", resp.StatusCode)
	}

	registries, err := armcontainerregistry.NewRegistriesClient(sub, cred, &azarm.ClientOptions{ClientOptions: opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	poller, err := registries.BeginCreate(ctx, "team", "teamreg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
	}, nil)
	if err != nil {
		t.Fatalf("create registry: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("create registry: %v", err)
	}
	if got := *created.Properties.LoginServer; got != "teamreg01.localhost" {
		t.Fatalf("login server %q", got)
	}
	// A validation error comes back as the SDK's ResponseError with ARM's code.
	_, err = registries.BeginCreate(ctx, "team", "basicreg01", armcontainerregistry.Registry{
		Location:   to.Ptr("local"),
		SKU:        &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNameBasic)},
		Properties: &armcontainerregistry.RegistryProperties{PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled)},
	}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "DisablingPublicNetworkAccessNotSupported" {
		t.Fatalf("Basic with public access disabled: %v", err)
	}

	// The new registry's data plane answers at its login server.
	ref, err := name.ParseReference("teamreg01.localhost:" + port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	remoteOpts := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(httpClient.Transport)}
	if err := remote.Write(ref, img, remoteOpts...); err != nil {
		t.Fatalf("push to the new registry: %v", err)
	}
	if _, err := remote.Head(ref, remoteOpts...); err != nil {
		t.Fatalf("head in the new registry: %v", err)
	}

	// Deleting the resource removes its data plane at once.
	del, err := registries.BeginDelete(ctx, "team", "teamreg01", nil)
	if err != nil {
		t.Fatalf("delete registry: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}); err != nil {
		t.Fatalf("delete registry: %v", err)
	}
	if _, err := remote.Head(ref, remoteOpts...); err == nil {
		t.Fatal("the deleted registry still serves its manifest")
	}
}

// managedMoat is a running `moat serve` (TLS from its local CA) with the
// Azure SDK plumbing a management client needs: a transport trusting the CA
// (dialling every host at moat), client options pointing azidentity and ARM
// at moat, and the admin's credential from moat's own issuer.
type managedMoat struct {
	url, addr, port string
	http            *http.Client
	opts            azcore.ClientOptions
	cred            azcore.TokenCredential
	token           string
}

func startManagedMoat(t *testing.T, password string) *managedMoat {
	t.Helper()
	return startManagedMoatIn(t, password, filepath.Join(t.TempDir(), "data"))
}

// startManagedMoatIn starts moat on dataDir and signs in as the admin. The
// role matrix passes its own directory to reach the metadata store: it makes
// its eight service principals there directly (TestPrincipalsEndToEnd covers
// making them with `moat ad sp create-for-rbac`).
func startManagedMoatIn(t *testing.T, password, dataDir string) *managedMoat {
	t.Helper()
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	t.Cleanup(func() { p.stop(t) })
	m := &managedMoat{url: url, addr: strings.TrimPrefix(url, "https://")}
	_, m.port, _ = strings.Cut(m.addr, ":")
	m.http = clientTrusting(t, filepath.Join(dataDir, "ca.pem"), m.addr)
	m.opts = azcore.ClientOptions{
		Transport: m.http,
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: url + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: url, Audience: "https://management.core.windows.net/"},
			},
		},
	}
	//nolint:staticcheck // deprecated in azidentity, still used by clients moat must serve
	cred, err := azidentity.NewUsernamePasswordCredential("organizations", "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "admin", password,
		&azidentity.UsernamePasswordCredentialOptions{ClientOptions: m.opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	m.cred = cred
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
	if err != nil {
		t.Fatalf("token from moat's issuer: %v", err)
	}
	m.token = tok.Token
	return m
}

// putGroup creates resource group rg with a plain ARM call.
func (m *managedMoat) putGroup(t *testing.T, rg string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, m.url+"/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/"+rg+"?api-version=2021-04-01",
		strings.NewReader(`{"location":"local"}`))
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("resource group PUT: %d", resp.StatusCode)
	}
}
