package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// TestPrivateEndpointPendingWithoutRegistryRights is issue 5's rule that a
// connection is auto-approved only for a creator who may approve it: a
// service principal that is Contributor on resource group "net" (so it may
// create Microsoft.Network/privateEndpoints there) but has no role on the
// registry in group "regs" creates an endpoint to it. The connection is
// Pending and the endpoint's listener refuses the registry; the principal
// cannot approve its own connection; the registry's owner (the deployment
// admin) approves it with the CLI and the listener serves.
func TestPrivateEndpointPendingWithoutRegistryRights(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "pe-pending-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	m := startManagedMoatIn(t, password, dataDir)
	ctx := context.Background()
	m.putGroup(t, "regs")
	m.putGroup(t, "net")
	armOpts := &azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true}
	registries, err := armcontainerregistry.NewRegistriesClient(defaultSubscriptionID, m.cred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := registries.BeginCreate(ctx, "regs", "guarded01", armcontainerregistry.Registry{
		Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
		Properties: &armcontainerregistry.RegistryProperties{PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	// The network team's principal: Contributor on "net" only.
	store, err := sqlite.Open(ctx, filepath.Join(dataDir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ids, err := identity.New(ctx, store, identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sp, secret, err := ids.CreateServicePrincipal(ctx, "network-team")
	if err != nil {
		t.Fatal(err)
	}
	authz, err := armauthorization.NewClientFactory(defaultSubscriptionID, m.cred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	contributor, _ := rbac.Lookup("Contributor")
	netScope := "/subscriptions/" + defaultSubscriptionID + "/resourceGroups/net"
	if _, err := authz.NewRoleAssignmentsClient().Create(ctx, netScope, "5e000000-0000-0000-0000-000000000001", armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr(rbac.DefinitionID("/subscriptions/"+defaultSubscriptionID, contributor.ID)),
			PrincipalID:      to.Ptr(sp.ObjectID), PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
		},
	}, nil); err != nil {
		t.Fatalf("assigning Contributor on net: %v", err)
	}
	spCred, err := azidentity.NewClientSecretCredential("organizations", sp.AppID, secret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: m.opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := spCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
	if err != nil {
		t.Fatalf("the principal's token: %v", err)
	}
	asSP := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, m.url+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := m.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	// The principal may not touch the registry itself.
	if status, out := asSP(http.MethodGet, *reg.ID+"?api-version=2023-07-01", ""); status != http.StatusForbidden {
		t.Fatalf("the principal reads the registry: %d %v", status, out)
	}
	// It creates an endpoint in its own group: the connection is Pending.
	const peIP = "127.0.0.91"
	peBody := `{"location":"local","properties":{"privateLinkServiceConnections":[{"name":"to-guarded","properties":{
		"privateLinkServiceId":"` + *reg.ID + `","groupIds":["registry"],"requestMessage":"network team, ticket 42"}}],
		"ipConfigurations":[{"name":"ip","properties":{"groupId":"registry","memberName":"registry","privateIPAddress":"` + peIP + `"}}]}}`
	status, pe := asSP(http.MethodPut, netScope+"/providers/Microsoft.Network/privateEndpoints/build-pe?api-version=2024-05-01", peBody)
	if status != http.StatusCreated {
		t.Fatalf("the principal's endpoint PUT: %d %v", status, pe)
	}
	if got := jsonString(t, cliDig(pe, "properties.privateLinkServiceConnections")); !strings.Contains(got, `"status":"Pending"`) {
		t.Fatalf("a creator without rights on the registry got: %s", got)
	}

	// The listener exists but refuses the registry while Pending.
	admin := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	viaPE := remote.WithTransport(clientTrusting(t, filepath.Join(dataDir, "ca.pem"), peIP+":"+m.port).Transport)
	ref := mustRef(t, "guarded01.localhost:"+m.port+"/app:v1")
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the endpoint's listener refuses a Pending connection", func() error {
		err := remote.Write(ref, img, admin, viaPE)
		if err == nil || !strings.Contains(err.Error(), "DENIED") {
			return fmt.Errorf("push through the pending endpoint: %v, want DENIED", err)
		}
		return nil
	})

	// The owner sees the request; the principal cannot approve it.
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", m.url, "--ca-file", filepath.Join(dataDir, "ca.pem"), "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	conns := cliOK(t, cfg, "acr", "private-endpoint-connection", "list", "-r", "guarded01", "-g", "regs", "-o", "tsv",
		"--query", "[].[name, properties.privateLinkServiceConnectionState.status, properties.privateLinkServiceConnectionState.description]")
	connName, rest, _ := strings.Cut(strings.TrimSpace(conns), "\t")
	if rest != "Pending\tnetwork team, ticket 42" {
		t.Fatalf("connections: %q", conns)
	}
	approve := `{"properties":{"privateLinkServiceConnectionState":{"status":"Approved","description":"self-approved"}}}`
	if status, out := asSP(http.MethodPut, *reg.ID+"/privateEndpointConnections/"+connName+"?api-version=2023-07-01", approve); status != http.StatusForbidden ||
		cliDig(out, "error.code") != "AuthorizationFailed" {
		t.Fatalf("the principal approving its own connection: %d %v", status, out)
	}
	if out := cliOK(t, cfg, "acr", "private-endpoint-connection", "approve", "-r", "guarded01", "-g", "regs", "-n", connName,
		"--description", "approved by the registry owner", "--query", "properties.privateLinkServiceConnectionState.status", "-o", "tsv"); out != "Approved\n" {
		t.Fatalf("approve: %q", out)
	}
	// Approved: the listener serves the registry; the public one still does not.
	eventually(t, "the endpoint serves after approval", func() error { return remote.Write(ref, img, admin, viaPE) })
	if _, err := remote.Head(ref, admin, viaPE); err != nil {
		t.Fatalf("head through the approved endpoint: %v", err)
	}
	if _, err := remote.Head(ref, admin, remote.WithTransport(m.http.Transport)); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("the public endpoint of a registry with public access disabled: %v", err)
	}
	// The endpoint's creator sees the owner's decision on its endpoint.
	if status, pe := asSP(http.MethodGet, netScope+"/providers/Microsoft.Network/privateEndpoints/build-pe?api-version=2024-05-01", ""); status != http.StatusOK ||
		!strings.Contains(jsonString(t, cliDig(pe, "properties.privateLinkServiceConnections")), `"status":"Approved"`) {
		t.Fatalf("the endpoint after approval: %d %v", status, pe)
	}
}
