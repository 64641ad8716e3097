package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// transportFrom is clientTrusting's transport with connections leaving from
// source (a 127.0.0.x address standing for a client on another network).
func transportFrom(t *testing.T, trusted *http.Client, addr, source string) http.RoundTripper {
	t.Helper()
	base := trusted.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	base.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(base.CloseIdleConnections)
	return base
}

// TestFirewallConfiguredThroughManagementAPI is seed 003 end to end: a
// Premium registry created through the Azure SDK with defaultAction Deny and
// one IP rule admits the allowed 127.0.0.x source and refuses another with
// DENIED; disabling public network access refuses everyone on the next
// request, without a restart.
func TestFirewallConfiguredThroughManagementAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "firewall-secret-1"
	m := startManagedMoat(t, password)
	addr, port, trusted, cred, opts := m.addr, m.port, m.http, m.cred, m.opts
	ctx := context.Background()
	const sub = "00000000-0000-0000-0000-000000000000"
	m.putGroup(t, "net")

	registries, err := armcontainerregistry.NewRegistriesClient(sub, cred, &azarm.ClientOptions{ClientOptions: opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}
	created, err := registries.BeginCreate(ctx, "net", "fwreg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
		Properties: &armcontainerregistry.RegistryProperties{
			PublicNetworkAccess:      to.Ptr(armcontainerregistry.PublicNetworkAccessEnabled),
			NetworkRuleBypassOptions: to.Ptr(armcontainerregistry.NetworkRuleBypassOptionsAzureServices),
			NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny),
				IPRules:       []*armcontainerregistry.IPRule{{Action: to.Ptr(armcontainerregistry.ActionAllow), IPAddressOrRange: to.Ptr("127.0.0.2")}},
			},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := created.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}

	ref, err := name.ParseReference("fwreg01.localhost:" + port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	allowed := remote.WithTransport(transportFrom(t, trusted, addr, "127.0.0.2"))
	refused := remote.WithTransport(transportFrom(t, trusted, addr, "127.0.0.3"))
	if err := remote.Write(ref, img, auth, allowed); err != nil {
		t.Fatalf("push from the allowed address 127.0.0.2: %v", err)
	}
	_, err = remote.Head(ref, auth, refused)
	if err == nil || !strings.Contains(err.Error(), "DENIED: client with IP '127.0.0.3' is not allowed access") {
		t.Fatalf("pull from 127.0.0.3: %v, want DENIED naming the address", err)
	}
	if _, err := remote.Get(ref, auth, refused); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("GET from 127.0.0.3: %v, want DENIED", err)
	}

	// Public access off: the allowed address is refused on its next request.
	up, err := registries.BeginUpdate(ctx, "net", "fwreg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled),
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(ref, auth, allowed); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("pull from 127.0.0.2 with public access disabled: %v, want DENIED", err)
	}
}
