package arm

import (
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

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/rbac"
)

// regIdentity is the answer's identity block.
func regIdentity(r resp) map[string]any {
	m, _ := r.body["identity"].(map[string]any)
	return m
}

// TestRegistryIdentity_SystemAssignedLifecycle: a registry created with a
// SystemAssigned identity gets a principal whose id is stable across GET,
// PATCH and PUT, that can be given roles, and that None or deleting the
// registry removes.
func TestRegistryIdentity_SystemAssignedLifecycle(t *testing.T) {
	e, ids := withIdentities(t)
	e.h.o.PrincipalType = ids.PrincipalType
	ctx := t.Context()
	body := `{"location":"westeurope","sku":{"name":"Premium"},"identity":{"type":"systemassigned","principalId":"forged"}}`
	r := e.do("PUT", regPath+"idreg01", newest, body)
	e.want(r, 201, "", "")
	pid := str(r.body, "identity.principalId")
	mi, err := ids.GetManagedIdentity(ctx, registryID(sub, "rg1", "idreg01"))
	if err != nil || mi.PrincipalID != pid || pid == "forged" || str(r.body, "identity.type") != "SystemAssigned" ||
		str(r.body, "identity.tenantId") == "" || str(r.body, "identity.tenantId") != mi.TenantID {
		t.Fatalf("created identity %v (service: %+v, %v)", r.body["identity"], mi, err)
	}
	if _, ok := get(r.body, "properties").(map[string]any)["moatIdentity"]; ok {
		t.Errorf("the stored key shows as a property: %s", r.raw)
	}

	e.want(e.do("GET", regPath+"idreg01", newest, ""), 200, "", "")
	for _, step := range []struct{ method, body string }{
		{"GET", ""},
		{"PATCH", `{"properties":{"adminUserEnabled":true}}`},
		{"PATCH", `{"identity":{"type":"SystemAssigned"}}`},
		{"PUT", body},
	} {
		r := e.do(step.method, regPath+"idreg01", newest, step.body)
		e.want(r, 200, "", "")
		if got := str(r.body, "identity.principalId"); got != pid {
			t.Fatalf("%s %s: principalId %q, want %q", step.method, step.body, got, pid)
		}
	}
	// An api-version without identity neither shows nor drops it, on PATCH
	// or PUT.
	r = e.do("PUT", regPath+"idreg01", "2019-05-01", `{"location":"westeurope","sku":{"name":"Premium"}}`)
	e.want(r, 200, "", "")
	if _, ok := r.body["identity"]; ok {
		t.Errorf("2019-05-01 shows identity: %s", r.raw)
	}
	if got := str(e.do("GET", regPath+"idreg01", newest, "").body, "identity.principalId"); got != pid {
		t.Fatalf("an old-version PUT changed the identity: %q", got)
	}

	// The principal takes roles, typed ServicePrincipal as ARM types
	// managed identities.
	regScope := regPath + "idreg01"
	ar := e.do("PUT", assignPath(regScope, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f11"), authzAPI,
		`{"properties":{"roleDefinitionId":"`+rbac.DefinitionID(subScope, rbac.AcrPullID)+`","principalId":"`+pid+`","principalType":"ServicePrincipal"}}`)
	e.want(ar, 201, "", "")
	if str(ar.body, "properties.principalType") != "ServicePrincipal" {
		t.Errorf("assignment %s", ar.raw)
	}

	// None deletes the principal; the answer has no identity block.
	r = e.do("PATCH", regPath+"idreg01", newest, `{"identity":{"type":"None"}}`)
	e.want(r, 200, "", "")
	if _, ok := r.body["identity"]; ok {
		t.Errorf("None still shows identity: %s", r.raw)
	}
	if _, err := ids.GetManagedIdentity(ctx, registryID(sub, "rg1", "idreg01")); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Fatalf("None kept the principal: %v", err)
	}
	// Switching back gives a new principal.
	r = e.do("PATCH", regPath+"idreg01", newest, `{"identity":{"type":"SystemAssigned"}}`)
	e.want(r, 200, "", "")
	pid2 := str(r.body, "identity.principalId")
	if pid2 == "" || pid2 == pid {
		t.Fatalf("re-enabled principal %q (old %q)", pid2, pid)
	}
	// A PUT without identity replaces it with none, as ARM's PUT does.
	e.want(e.do("PUT", regPath+"idreg01", newest, `{"location":"westeurope","sku":{"name":"Premium"}}`), 200, "", "")
	if _, err := ids.GetManagedIdentity(ctx, registryID(sub, "rg1", "idreg01")); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Fatalf("PUT without identity kept the principal: %v", err)
	}

	// Deleting the registry deletes its principal.
	e.want(e.do("PATCH", regPath+"idreg01", newest, `{"identity":{"type":"SystemAssigned"}}`), 200, "", "")
	e.want(e.do("DELETE", regPath+"idreg01", newest, ""), 200, "", "")
	if _, err := ids.GetManagedIdentity(ctx, registryID(sub, "rg1", "idreg01")); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Fatalf("registry delete kept the principal: %v", err)
	}
}

// TestRegistryIdentity_GroupDeleteRemovesPrincipal: a registry deleted with
// its resource group takes its principal along, and a registry re-created
// under the same id gets a new one.
func TestRegistryIdentity_GroupDeleteRemovesPrincipal(t *testing.T) {
	e, ids := withIdentities(t)
	body := `{"location":"westeurope","sku":{"name":"Basic"},"identity":{"type":"SystemAssigned"}}`
	r := e.do("PUT", regPath+"idreg02", newest, body)
	e.want(r, 201, "", "")
	pid := str(r.body, "identity.principalId")
	e.want(e.do("DELETE", rgPath, groupAPI, ""), 200, "", "")
	if _, err := ids.GetManagedIdentity(t.Context(), registryID(sub, "rg1", "idreg02")); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Fatalf("group delete kept the principal: %v", err)
	}
	e.group()
	r = e.do("PUT", regPath+"idreg02", newest, body)
	e.want(r, 201, "", "")
	if got := str(r.body, "identity.principalId"); got == "" || got == pid {
		t.Fatalf("re-created registry's principal %q (old %q)", got, pid)
	}
}

// TestRegistryIdentity_UserAssigned: an existing user-assigned identity is
// attached with its principal and client ids; a missing one, or an id of
// another type, is refused naming it and leaves the registry unchanged.
func TestRegistryIdentity_UserAssigned(t *testing.T) {
	e, ids := withIdentities(t)
	ua := e.do("PUT", uaiPath+"regpuller", miAPI, `{"location":"westeurope"}`)
	e.want(ua, 201, "", "")
	uaID := str(ua.body, "id")
	missing := uaiPath + "nobody"
	site := sitePath + "app1"

	for _, tc := range []struct{ name, id, code string }{
		{"missing", missing, "FailedIdentityOperation"},
		{"not a uai id", site, "InvalidIdentityResourceId"},
	} {
		r := e.do("PUT", regPath+"idreg03", newest,
			`{"location":"westeurope","sku":{"name":"Standard"},"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"`+tc.id+`":{}}}}`)
		e.want(r, 400, tc.code, tc.id)
		if errObj, _ := r.body["error"].(map[string]any); errObj["target"] != "identity.userAssignedIdentities" {
			t.Errorf("%s: target %v", tc.name, errObj["target"])
		}
		e.want(e.do("GET", regPath+"idreg03", newest, ""), 404, "ResourceNotFound", "")
		if _, err := ids.GetManagedIdentity(t.Context(), registryID(sub, "rg1", "idreg03")); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
			t.Fatalf("%s: a refused create left a principal: %v", tc.name, err)
		}
	}

	body := `{"location":"westeurope","sku":{"name":"Standard"},"identity":{"type":"UserAssigned","userAssignedIdentities":{"` + strings.ToUpper(uaID) + `":null,"` + uaID + `":{}}}}`
	r := e.do("PUT", regPath+"idreg03", newest, body)
	e.want(r, 201, "", "")
	got, _ := get(r.body, "identity.userAssignedIdentities").(map[string]any)
	ref, _ := got[uaID].(map[string]any)
	if len(got) != 1 || ref["principalId"] != str(ua.body, "properties.principalId") || ref["clientId"] != str(ua.body, "properties.clientId") ||
		str(r.body, "identity.type") != "UserAssigned" {
		t.Fatalf("user-assigned identity %v; uai %s", r.body["identity"], ua.raw)
	}
	if _, ok := regIdentity(r)["principalId"]; ok {
		t.Errorf("UserAssigned alone shows a principalId: %v", r.body["identity"])
	}

	// A PATCH naming a missing identity is refused; the registry keeps
	// the old one.
	e.want(e.do("PATCH", regPath+"idreg03", newest, `{"identity":{"type":"UserAssigned","userAssignedIdentities":{"`+missing+`":{}}}}`),
		400, "FailedIdentityOperation", missing)
	r = e.do("GET", regPath+"idreg03", newest, "")
	if got, _ := get(r.body, "identity.userAssignedIdentities").(map[string]any); len(got) != 1 || got[uaID] == nil {
		t.Fatalf("refused PATCH changed the identity: %s", r.raw)
	}
	// Unknown type: 400 naming identity.type.
	r = e.do("PATCH", regPath+"idreg03", newest, `{"identity":{"type":"Everything"}}`)
	e.want(r, 400, "InvalidRequestContent", "identity.type")
	if errObj, _ := r.body["error"].(map[string]any); errObj["target"] != "identity.type" {
		t.Errorf("target %v", errObj["target"])
	}

	// The identity deleted later shows without ids, as a dangling reference.
	e.want(e.do("DELETE", uaiPath+"regpuller", miAPI, ""), 200, "", "")
	r = e.do("GET", regPath+"idreg03", newest, "")
	e.want(r, 200, "", "")
	if got, _ := get(r.body, "identity.userAssignedIdentities").(map[string]any); len(got) != 1 || len(got[uaID].(map[string]any)) != 0 {
		t.Fatalf("dangling identity %s", r.raw)
	}
}

// TestRegistryIdentity_NoIdentityService: without managed identities
// configured a registry may still be created without one, but asking for
// one fails closed.
func TestRegistryIdentity_NoIdentityService(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.want(e.do("PUT", regPath+"idreg04", newest, `{"location":"westeurope","sku":{"name":"Basic"},"identity":{"type":"None"}}`), 201, "", "")
	e.want(e.do("PATCH", regPath+"idreg04", newest, `{"identity":{"type":"SystemAssigned"}}`), 501, "NotImplemented", "identity")
	e.want(e.do("DELETE", regPath+"idreg04", newest, ""), 200, "", "")
}

// TestRegistryIdentity_SDK: armcontainerregistry creates a registry with
// a system-assigned identity and reads Identity.PrincipalID back.
func TestRegistryIdentity_SDK(t *testing.T) {
	e, ids := withIdentities(t)
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
	poll := &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}
	poller, err := client.BeginCreate(ctx, "rg1", "sdkident1", armcontainerregistry.Registry{
		Location: to.Ptr("westeurope"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNameStandard)},
		Identity: &armcontainerregistry.IdentityProperties{Type: to.Ptr(armcontainerregistry.ResourceIdentityTypeSystemAssigned)},
	}, nil)
	if err != nil {
		t.Fatalf("BeginCreate: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Identity == nil || created.Identity.PrincipalID == nil || created.Identity.TenantID == nil ||
		*created.Identity.Type != armcontainerregistry.ResourceIdentityTypeSystemAssigned {
		t.Fatalf("created identity %+v", created.Identity)
	}
	mi, err := ids.GetManagedIdentity(ctx, *created.ID)
	if err != nil || mi.PrincipalID != *created.Identity.PrincipalID {
		t.Fatalf("service has %+v, %v; SDK read %s", mi, err, *created.Identity.PrincipalID)
	}
	got, err := client.Get(ctx, "rg1", "sdkident1", nil)
	if err != nil || got.Identity == nil || *got.Identity.PrincipalID != mi.PrincipalID {
		t.Fatalf("Get: %+v, %v", got.Identity, err)
	}

	up, err := client.BeginUpdate(ctx, "rg1", "sdkident1", armcontainerregistry.RegistryUpdateParameters{
		Identity: &armcontainerregistry.IdentityProperties{Type: to.Ptr(armcontainerregistry.ResourceIdentityTypeNone)},
	}, nil)
	if err != nil {
		t.Fatalf("BeginUpdate: %v", err)
	}
	updated, err := up.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.Identity != nil {
		t.Errorf("None still has identity %+v", updated.Identity)
	}
	if _, err := ids.GetManagedIdentity(ctx, *created.ID); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Fatalf("None kept the principal: %v", err)
	}

	// An unknown type reaches the SDK as a ResponseError naming the field.
	_, err = client.BeginUpdate(ctx, "rg1", "sdkident1", armcontainerregistry.RegistryUpdateParameters{
		Identity: &armcontainerregistry.IdentityProperties{Type: to.Ptr(armcontainerregistry.ResourceIdentityType("Robot"))},
	}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "identity.type") {
		t.Fatalf("bad type: %v", err)
	}
}

// TestRegistryIdentity_Deployment: a template that gives a registry a
// system-assigned identity (as the PSRule docs' examples do) deploys it
// with a principal.
func TestRegistryIdentity_Deployment(t *testing.T) {
	e, ids := withIdentities(t)
	tpl := `{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"tplident1",
		"location":"westeurope","sku":{"name":"Premium"},"identity":{"type":"SystemAssigned"},
		"properties":{"adminUserEnabled":false}}]}`
	wantState(t, e.deploy("ident", deployBody(tpl, "")), "Succeeded")
	r := e.do("GET", regPath+"tplident1", newest, "")
	e.want(r, 200, "", "")
	mi, err := ids.GetManagedIdentity(t.Context(), registryID(sub, "rg1", "tplident1"))
	if err != nil || str(r.body, "identity.principalId") != mi.PrincipalID {
		t.Fatalf("deployed identity %v; service %+v, %v", r.body["identity"], mi, err)
	}
	// What-if of the same template: the identity it sets is there.
	w := e.do("POST", deployPath+"ident/whatIf", deployAPI, deployBody(tpl, ""))
	e.want(w, 200, "", "")
	changes, _ := get(w.body, "properties.changes").([]any)
	if len(changes) != 1 || get(changes[0].(map[string]any), "changeType") != "NoChange" {
		t.Fatalf("what-if %s", w.raw)
	}
	// Redeploying keeps the principal.
	wantState(t, e.deploy("ident", deployBody(tpl, "")), "Succeeded")
	if got := str(e.do("GET", regPath+"tplident1", newest, "").body, "identity.principalId"); got != mi.PrincipalID {
		t.Fatalf("redeploy changed the principal: %q, want %q", got, mi.PrincipalID)
	}
}
