package arm

import (
	"errors"
	"fmt"
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

// TestSDKSurface covers the registry operations of armcontainerregistry
// v1.2.0 that TestSDK leaves out: the operations list, listUsages, the
// subscription-wide list across resource groups and pages (nextLink
// followed by the SDK's pager), a full-body PUT over an existing registry
// (read-only properties ignored, what it omits back to defaults), and a
// resource type moat does not serve answered as ARM's error, not a hang or
// a 404 page.
func TestSDKSurface(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg2", groupAPI, `{"location":"westeurope"}`), 201, "", "")
	e.h.pageSize = 2
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
	factory, err := armcontainerregistry.NewClientFactory(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	regs := factory.NewRegistriesClient()
	poll := &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}

	n := 0
	for pager := factory.NewOperationsClient().NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("operations: %v", err)
		}
		for _, op := range page.Value {
			if !strings.HasPrefix(*op.Name, "Microsoft.ContainerRegistry/") {
				t.Fatalf("operation %q", *op.Name)
			}
		}
		n += len(page.Value)
	}
	if n == 0 {
		t.Fatal("no operations")
	}

	for i := range 5 {
		rg := []string{"rg1", "rg2"}[i%2]
		p, err := regs.BeginCreate(ctx, rg, fmt.Sprintf("surface%02d", i), armcontainerregistry.Registry{
			Location: to.Ptr("westeurope"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	pages := 0
	for pager := regs.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		pages++
		for _, r := range page.Value {
			names = append(names, *r.Name)
		}
	}
	if len(names) != 5 || pages != 3 {
		t.Fatalf("subscription list: %d pages, %v", pages, names)
	}

	p, err := regs.BeginUpdate(ctx, "rg1", "surface00", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
			DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny),
			IPRules:       []*armcontainerregistry.IPRule{{Action: to.Ptr(armcontainerregistry.ActionAllow), IPAddressOrRange: to.Ptr("198.51.100.0/24")}},
		}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	usages, err := regs.ListUsages(ctx, "rg1", "surface00", nil)
	if err != nil {
		t.Fatalf("ListUsages: %v", err)
	}
	if len(usages.Value) == 0 || *usages.Value[0].Name != "IPRules" || *usages.Value[0].CurrentValue != 1 || *usages.Value[0].Limit != 200 {
		t.Fatalf("usages %+v", usages.Value)
	}

	// A full PUT over the registry: the read-only loginServer and
	// provisioningState it sends are ignored; the rules it omits are gone.
	got, err := regs.Get(ctx, "rg1", "surface00", nil)
	if err != nil {
		t.Fatal(err)
	}
	got.Properties.LoginServer = to.Ptr("elsewhere.example")
	got.Properties.ProvisioningState = to.Ptr(armcontainerregistry.ProvisioningStateFailed)
	got.Properties.NetworkRuleSet = nil
	got.Properties.AdminUserEnabled = to.Ptr(true)
	put, err := regs.BeginCreate(ctx, "rg1", "surface00", got.Registry, nil)
	if err != nil {
		t.Fatalf("PUT over: %v", err)
	}
	over, err := put.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	if *over.Properties.LoginServer != "surface00.moat.test" || *over.Properties.ProvisioningState != armcontainerregistry.ProvisioningStateSucceeded ||
		!*over.Properties.AdminUserEnabled || *over.Properties.NetworkRuleSet.DefaultAction != armcontainerregistry.DefaultActionAllow ||
		len(over.Properties.NetworkRuleSet.IPRules) != 0 {
		t.Fatalf("after the full PUT: %+v %+v", over.Properties, over.Properties.NetworkRuleSet)
	}

	// Webhooks are not served: ARM's InvalidResourceType, which the SDK
	// reports as a ResponseError.
	hooks, err := armcontainerregistry.NewWebhooksClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = hooks.Get(ctx, "rg1", "surface00", "hook1", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "InvalidResourceType" {
		t.Fatalf("webhook Get: %v", err)
	}
}
