package arm

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
)

// TestSDK_PrivateEndpointConnections drives connections and private link
// resources with armcontainerregistry's own clients, over TLS. The endpoint
// itself is made with a plain ARM PUT (moat's module does not use the
// Microsoft.Network SDK).
func TestSDK_PrivateEndpointConnections(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("sdkpe01", "Premium")
	e.want(e.do("PUT", pePath+"pe1", peAPI, peBody("sdkpe01", "127.0.0.90", true)), 201, "", "")

	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close)
	opts := &azarm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport: srv.Client(),
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.invalid/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"},
				},
			},
		},
		DisableRPRegistration: true,
	}
	conns, err := armcontainerregistry.NewPrivateEndpointConnectionsClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	regs, err := armcontainerregistry.NewRegistriesClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	poll := &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}

	var names []string
	for pager := conns.NewListPager("rg1", "sdkpe01", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, c := range page.Value {
			names = append(names, *c.Name)
			if *c.Properties.PrivateLinkServiceConnectionState.Status != armcontainerregistry.ConnectionStatusPending {
				t.Fatalf("manual connection is %s", *c.Properties.PrivateLinkServiceConnectionState.Status)
			}
		}
	}
	if len(names) != 1 {
		t.Fatalf("connections %v", names)
	}
	got, err := conns.Get(ctx, "rg1", "sdkpe01", names[0], nil)
	if err != nil || *got.Properties.PrivateEndpoint.ID != "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.Network/privateEndpoints/pe1" ||
		*got.Properties.ProvisioningState != armcontainerregistry.ProvisioningStateSucceeded {
		t.Fatalf("Get: %+v, %v", got, err)
	}

	up, err := conns.BeginCreateOrUpdate(ctx, "rg1", "sdkpe01", names[0], armcontainerregistry.PrivateEndpointConnection{
		Properties: &armcontainerregistry.PrivateEndpointConnectionProperties{
			PrivateLinkServiceConnectionState: &armcontainerregistry.PrivateLinkServiceConnectionState{
				Status:          to.Ptr(armcontainerregistry.ConnectionStatusApproved),
				Description:     to.Ptr("ok"),
				ActionsRequired: to.Ptr(armcontainerregistry.ActionsRequiredNone),
			},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	approved, err := up.PollUntilDone(ctx, poll)
	if err != nil || *approved.Properties.PrivateLinkServiceConnectionState.Status != armcontainerregistry.ConnectionStatusApproved {
		t.Fatalf("approve: %+v, %v", approved, err)
	}
	reg, err := regs.Get(ctx, "rg1", "sdkpe01", nil)
	if err != nil || len(reg.Properties.PrivateEndpointConnections) != 1 ||
		*reg.Properties.PrivateEndpointConnections[0].Properties.PrivateLinkServiceConnectionState.Status != armcontainerregistry.ConnectionStatusApproved {
		t.Fatalf("registry Get: %+v, %v", reg.Properties, err)
	}

	var groups []string
	for pager := regs.NewListPrivateLinkResourcesPager("rg1", "sdkpe01", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("private link resources: %v", err)
		}
		for _, r := range page.Value {
			groups = append(groups, *r.Properties.GroupID)
		}
	}
	if len(groups) != 1 || groups[0] != "registry" {
		t.Fatalf("groups %v", groups)
	}
	plr, err := regs.GetPrivateLinkResource(ctx, "rg1", "sdkpe01", "registry", nil)
	if err != nil || *plr.Properties.RequiredZoneNames[0] != "privatelink.moat.test" || *plr.Properties.RequiredMembers[0] != "registry" {
		t.Fatalf("GetPrivateLinkResource: %+v, %v", plr, err)
	}

	del, err := conns.BeginDelete(ctx, "rg1", "sdkpe01", names[0], nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = conns.Get(ctx, "rg1", "sdkpe01", names[0], nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "PrivateEndpointConnectionNotFound" {
		t.Fatalf("Get after delete: %v", err)
	}
}
