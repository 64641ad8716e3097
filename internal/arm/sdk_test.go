package arm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
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

// fakeCredential hands the SDK the bearer token the test's Authorize hook
// accepts.
type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "good", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestSDK drives the handler with the Azure SDK for Go's
// armcontainerregistry client (api-version 2023-07-01) over TLS.
func TestSDK(t *testing.T) {
	e := newEnv(t)
	e.group()
	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close)
	client, err := armcontainerregistry.NewRegistriesClient(sub, fakeCredential{}, &azarm.ClientOptions{
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
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	poller, err := client.BeginCreate(ctx, "rg1", "sdkreg01", armcontainerregistry.Registry{
		Location: to.Ptr("westeurope"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
		Properties: &armcontainerregistry.RegistryProperties{
			NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionAllow),
				IPRules:       []*armcontainerregistry.IPRule{{Action: to.Ptr(armcontainerregistry.ActionAllow), IPAddressOrRange: to.Ptr("203.0.113.0/24")}},
			},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginCreate: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if *created.Properties.ProvisioningState != armcontainerregistry.ProvisioningStateSucceeded || *created.Properties.LoginServer != "sdkreg01.moat.test" ||
		*created.SKU.Tier != armcontainerregistry.SKUTierPremium {
		t.Fatalf("created %+v", created.Properties)
	}

	// PATCH only the default action: the rule stays.
	up, err := client.BeginUpdate(ctx, "rg1", "sdkreg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny)},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginUpdate: %v", err)
	}
	updated, err := up.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if *updated.Properties.NetworkRuleSet.DefaultAction != armcontainerregistry.DefaultActionDeny || len(updated.Properties.NetworkRuleSet.IPRules) != 1 {
		t.Fatalf("updated network rules %+v", updated.Properties.NetworkRuleSet)
	}

	// Toggle the export policy (with public access, as the seed says).
	up, err = client.BeginUpdate(ctx, "rg1", "sdkreg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled),
			Policies: &armcontainerregistry.Policies{ExportPolicy: &armcontainerregistry.ExportPolicy{
				Status: to.Ptr(armcontainerregistry.ExportPolicyStatusDisabled)}},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginUpdate(export): %v", err)
	}
	if updated, err = up.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}); err != nil {
		t.Fatalf("update(export): %v", err)
	}
	if *updated.Properties.Policies.ExportPolicy.Status != armcontainerregistry.ExportPolicyStatusDisabled {
		t.Fatalf("export policy %v", *updated.Properties.Policies.ExportPolicy.Status)
	}

	// A validation error reaches the SDK as a ResponseError with ARM's code.
	_, err = client.BeginUpdate(ctx, "rg1", "sdkreg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{IPRules: []*armcontainerregistry.IPRule{{IPAddressOrRange: to.Ptr("10.0.0.0/33")}}},
		},
	}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "InvalidIpRule" || !strings.Contains(err.Error(), "10.0.0.0/33") {
		t.Fatalf("bad ip rule: %v", err)
	}

	got, err := client.Get(ctx, "rg1", "SDKREG01", nil)
	if err != nil || *got.Name != "sdkreg01" {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	pager := client.NewListByResourceGroupPager("rg1", nil)
	n := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Fatalf("listed %d registries", n)
	}
	avail, err := client.CheckNameAvailability(ctx, armcontainerregistry.RegistryNameCheckRequest{
		Name: to.Ptr("sdkreg01"), Type: to.Ptr("Microsoft.ContainerRegistry/registries")}, nil)
	if err != nil || *avail.NameAvailable {
		t.Fatalf("CheckNameAvailability: %+v, %v", avail, err)
	}
	del, err := client.BeginDelete(ctx, "rg1", "sdkreg01", nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = client.Get(ctx, "rg1", "sdkreg01", nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Fatalf("Get after delete: %v", err)
	}
}
