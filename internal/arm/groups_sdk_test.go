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
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// TestResourceGroupsThroughSDK drives resource groups with armresources
// v1.2.0 (api-version 2021-04-01), the client an SDK program uses before
// it creates registries: create, exists (HEAD), get, update (PATCH: tags
// replaced, location fixed), list, and delete (an LRO poller) taking the
// group's registries with it.
func TestResourceGroupsThroughSDK(t *testing.T) {
	e := newEnv(t)
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
	groups, err := armresources.NewResourceGroupsClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	created, err := groups.CreateOrUpdate(ctx, "sdkgroup", armresources.ResourceGroup{
		Location: to.Ptr("westeurope"), Tags: map[string]*string{"team": to.Ptr("platform")}}, nil)
	if err != nil {
		t.Fatalf("CreateOrUpdate: %v", err)
	}
	if *created.Name != "sdkgroup" || *created.Properties.ProvisioningState != "Succeeded" || *created.Tags["team"] != "platform" {
		t.Fatalf("created %+v", created)
	}
	if ex, err := groups.CheckExistence(ctx, "SDKGROUP", nil); err != nil || !ex.Success {
		t.Fatalf("CheckExistence: %+v %v", ex, err)
	}
	if ex, err := groups.CheckExistence(ctx, "nogroup", nil); err != nil || ex.Success {
		t.Fatalf("CheckExistence of a missing group: %+v %v", ex, err)
	}

	up, err := groups.Update(ctx, "sdkgroup", armresources.ResourceGroupPatchable{Tags: map[string]*string{"env": to.Ptr("test")}}, nil)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if len(up.Tags) != 1 || *up.Tags["env"] != "test" || *up.Location != "westeurope" {
		t.Fatalf("updated %+v", up)
	}
	// A PATCH naming nothing keeps everything.
	if up, err = groups.Update(ctx, "sdkgroup", armresources.ResourceGroupPatchable{}, nil); err != nil || *up.Tags["env"] != "test" {
		t.Fatalf("empty Update: %+v %v", up, err)
	}
	var re *azcore.ResponseError
	_, err = groups.Update(ctx, "nogroup", armresources.ResourceGroupPatchable{Tags: map[string]*string{}}, nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "ResourceGroupNotFound" {
		t.Fatalf("Update of a missing group: %v", err)
	}
	// A group cannot move; the refused PATCH changes nothing.
	e.want(e.do("PATCH", "/subscriptions/"+sub+"/resourcegroups/sdkgroup", groupAPI, `{"location":"northeurope","tags":{"x":"y"}}`),
		409, "InvalidResourceGroupLocation", "northeurope")
	e.want(e.do("PATCH", "/subscriptions/"+sub+"/resourcegroups/sdkgroup", groupAPI, `{"tags":{"x":1}}`), 400, "InvalidRequestContent", "tags")
	if got, err := groups.Get(ctx, "sdkgroup", nil); err != nil || len(got.Tags) != 1 || *got.Tags["env"] != "test" {
		t.Fatalf("after refused PATCHes: %+v %v", got, err)
	}

	regs, err := armcontainerregistry.NewRegistriesClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := regs.BeginCreate(ctx, "sdkgroup", "ingroup01", armcontainerregistry.Registry{
		Location: to.Ptr("westeurope"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNameBasic)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}
	if _, err := p.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	n := 0
	for pager := groups.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Fatalf("listed %d groups", n)
	}
	del, err := groups.BeginDelete(ctx, "sdkgroup", nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := regs.Get(ctx, "sdkgroup", "ingroup01", nil); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Fatalf("the group's registry after the group's delete: %v", err)
	}
	if ex, err := groups.CheckExistence(ctx, "sdkgroup", nil); err != nil || ex.Success {
		t.Fatalf("CheckExistence after delete: %+v %v", ex, err)
	}
}
