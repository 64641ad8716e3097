package arm

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
)

// TestSDK_ManagedIdentities drives the identity routes with the Azure SDK
// for Go's armmsi clients (api-version 2024-11-30) over TLS: user-assigned
// identities' lifecycle, PATCH of their tags, and a container group's
// system-assigned identity read through identities/default.
func TestSDK_ManagedIdentities(t *testing.T) {
	e, ids := withIdentities(t)
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
	uai, err := armmsi.NewUserAssignedIdentitiesClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	created, err := uai.CreateOrUpdate(ctx, "rg1", "sdk-id", armmsi.Identity{Location: to.Ptr("westeurope"), Tags: map[string]*string{"a": to.Ptr("1")}}, nil)
	if err != nil {
		t.Fatalf("CreateOrUpdate: %v", err)
	}
	p := created.Properties
	if p == nil || p.PrincipalID == nil || p.ClientID == nil || p.TenantID == nil || *created.Name != "sdk-id" ||
		*created.Type != "Microsoft.ManagedIdentity/userAssignedIdentities" {
		t.Fatalf("created %+v", created)
	}
	mi, err := ids.GetManagedIdentity(ctx, *created.ID)
	if err != nil || mi.PrincipalID != *p.PrincipalID || mi.ClientID != *p.ClientID {
		t.Fatalf("stored %+v, %v; answered %+v", mi, err, p)
	}
	up, err := uai.Update(ctx, "rg1", "sdk-id", armmsi.IdentityUpdate{Tags: map[string]*string{"b": to.Ptr("2")}}, nil)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if up.Tags["b"] == nil || up.Tags["a"] != nil || *up.Properties.PrincipalID != *p.PrincipalID {
		t.Errorf("Update answered %+v", up)
	}
	pager := uai.NewListByResourceGroupPager("rg1", nil)
	n := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Errorf("listed %d identities, want 1", n)
	}

	// A container group's system-assigned identity through identities/default.
	e.want(e.do("PUT", aciPath+"sdk-cg", miAPI, `{"location":"westeurope","identity":{"type":"SystemAssigned"}}`), 201, "", "")
	sys, err := armmsi.NewSystemAssignedIdentitiesClient(fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := sys.GetByScope(ctx, aciPath[1:]+"sdk-cg", nil)
	if err != nil {
		t.Fatalf("GetByScope: %v", err)
	}
	cg, err := ids.GetManagedIdentity(ctx, aciPath+"sdk-cg")
	if err != nil || got.Properties == nil || *got.Properties.PrincipalID != cg.PrincipalID || *got.Properties.ClientID != cg.ClientID {
		t.Errorf("GetByScope = %+v, stored %+v (%v)", got, cg, err)
	}
	// A site without identity has no identities/default.
	e.want(e.do("PUT", sitePath+"noid", miAPI, `{"location":"westeurope"}`), 201, "", "")
	var re *azcore.ResponseError
	if _, err := sys.GetByScope(ctx, sitePath[1:]+"noid", nil); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Errorf("GetByScope without identity: %v", err)
	}

	if _, err := uai.Delete(ctx, "rg1", "sdk-id", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := uai.Get(ctx, "rg1", "sdk-id", nil); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "ResourceNotFound" {
		t.Errorf("Get after Delete: %v", err)
	}
}
