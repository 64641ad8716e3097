package arm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"

	"github.com/moat-registry/moat/internal/rbac"
)

const (
	authzAPI = "2022-04-01"
	subScope = "/subscriptions/" + sub
	rgScope  = subScope + "/resourceGroups/rg1"
	appID    = "0c000000-0000-0000-0000-0000000000c1" // a principal with no roles until the test gives some
)

func assignPath(scope, name string) string {
	return strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

func assignBody(role, principal string) string {
	return `{"properties":{"roleDefinitionId":"` + rbac.DefinitionID(subScope, role) + `","principalId":"` + principal + `"}}`
}

// assign creates a role assignment as the owner and returns its name.
func (e *env) assign(scope, role, principal string) string {
	e.t.Helper()
	name := strings.Replace(principal, "0000-0000", role[:4]+"-"+role[4:8], 1)
	e.want(e.do("PUT", assignPath(scope, name), authzAPI, assignBody(role, principal)), http.StatusCreated, "", "")
	return name
}

func TestRoleAssignmentLifecycle(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("teamreg01", "Premium")
	regScope := regPath + "teamreg01"
	name := "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01"

	r := e.do("PUT", assignPath(regScope, name), authzAPI, assignBody(rbac.AcrPullID, appID))
	e.want(r, http.StatusCreated, "", "")
	if get(r.body, "id") != assignPath(regScope, name) || get(r.body, "type") != "Microsoft.Authorization/roleAssignments" ||
		get(r.body, "properties.principalId") != appID || get(r.body, "properties.scope") != regScope ||
		get(r.body, "properties.roleDefinitionId") != rbac.DefinitionID(subScope, rbac.AcrPullID) ||
		get(r.body, "properties.principalType") != "User" || get(r.body, "properties.createdBy") != testOwner.ID {
		t.Fatalf("created %s", r.raw)
	}
	// The same PUT again is a no-op; the same grant under another name is 409.
	e.want(e.do("PUT", assignPath(regScope, name), authzAPI, assignBody(rbac.AcrPullID, appID)), http.StatusCreated, "", "")
	e.want(e.do("PUT", assignPath(regScope, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f02"), authzAPI, assignBody(rbac.AcrPullID, appID)),
		http.StatusConflict, "RoleAssignmentExists", "already exists")
	e.want(e.do("PUT", assignPath(regScope, name), authzAPI, assignBody(rbac.AcrPushID, appID)),
		http.StatusBadRequest, "RoleAssignmentUpdateNotPermitted", "not allowed to be updated")

	// GET by scope and name, case-insensitively.
	e.want(e.do("GET", strings.ToLower(assignPath(regScope, name)), authzAPI, ""), http.StatusOK, "", "")
	e.want(e.do("GET", assignPath(regScope, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f09"), authzAPI, ""), http.StatusNotFound, "RoleAssignmentNotFound", "")

	// Lists: below, at and above.
	e.assign(rgScope, rbac.ReaderID, appID)
	count := func(path string) int {
		r := e.do("GET", path, authzAPI, "")
		e.want(r, http.StatusOK, "", "")
		v, _ := r.body["value"].([]any)
		return len(v)
	}
	list := func(scope string) string {
		return strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments"
	}
	// At the root: the two of newEnv and the two made here.
	if n := count(list("/")); n != 4 {
		t.Errorf("root list: %d", n)
	}
	if n := count(list(subScope) + "?$filter=atScope()"); n != 2 {
		t.Errorf("subscription atScope(): %d, want the 2 root assignments", n)
	}
	if n := count(list(regScope) + "?$filter=atScope()"); n != 4 {
		t.Errorf("registry atScope(): %d", n)
	}
	if n := count(list(subScope) + "?$filter=" + strings.ReplaceAll("principalId eq '"+appID+"'", " ", "%20")); n != 2 {
		t.Errorf("principalId filter: %d", n)
	}
	if n := count(list(rgScope) + "?$filter=" + strings.ReplaceAll("atScope() and assignedTo('"+appID+"')", " ", "%20")); n != 1 {
		t.Errorf("atScope() and assignedTo: %d", n)
	}
	e.want(e.do("GET", list(subScope)+"?$filter=roleName%20eq%20'x'", authzAPI, ""), http.StatusBadRequest, "InvalidFilter", "unsupported term")

	// DELETE answers what it deleted, then 204.
	r = e.do("DELETE", assignPath(regScope, name), authzAPI, "")
	e.want(r, http.StatusOK, "", "")
	if get(r.body, "name") != name {
		t.Fatalf("deleted %s", r.raw)
	}
	e.want(e.do("DELETE", assignPath(regScope, name), authzAPI, ""), http.StatusNoContent, "", "")
	if n := count(list(regScope) + "?$filter=atScope()"); n != 3 {
		t.Errorf("after delete: %d", n)
	}

	// Deleting the registry takes its assignments with it.
	e.assign(regScope, rbac.AcrPushID, appID)
	e.want(e.do("DELETE", regPath+"teamreg01", newest, ""), http.StatusOK, "", "")
	if n := count(list(rgScope) + "?$filter=" + strings.ReplaceAll("principalId eq '"+appID+"'", " ", "%20")); n != 1 {
		t.Errorf("assignments of a deleted registry remain: %d", n)
	}
}

func TestRoleAssignmentBadInput(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("teamreg01", "Premium")
	known := map[string]string{appID: "ServicePrincipal", testOwner.ID: "User"}
	e.h.o.PrincipalType = func(_ context.Context, id string) (string, bool, error) {
		typ, ok := known[id]
		return typ, ok, nil
	}
	good := "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01"
	for _, tc := range []struct {
		name, path, body string
		status           int
		code, msg        string
	}{
		{"name not a GUID", assignPath(rgScope, "not-a-guid"), assignBody(rbac.AcrPullID, appID), 400, "InvalidRoleAssignmentId", "must be a GUID"},
		{"unknown role", assignPath(rgScope, good), assignBody("00000000-0000-0000-0000-00000000dead", appID), 400, "RoleDefinitionDoesNotExist", "00000000-0000-0000-0000-00000000dead"},
		{"role by name", assignPath(rgScope, good), `{"properties":{"roleDefinitionId":"AcrPull","principalId":"` + appID + `"}}`, 400, "RoleDefinitionDoesNotExist", ""},
		{"no role", assignPath(rgScope, good), `{"properties":{"principalId":"` + appID + `"}}`, 400, "InvalidRoleAssignmentRequest", "roleDefinitionId is required"},
		{"principal not a GUID", assignPath(rgScope, good), assignBody(rbac.AcrPullID, "bob"), 400, "InvalidPrincipalId", "bob"},
		{"unknown principal", assignPath(rgScope, good), assignBody(rbac.AcrPullID, "0d000000-0000-0000-0000-0000000000d1"), 400, "PrincipalNotFound", "does not exist"},
		{"wrong principal type", assignPath(rgScope, good), `{"properties":{"roleDefinitionId":"` + rbac.DefinitionID("", rbac.AcrPullID) + `","principalId":"` + appID + `","principalType":"User"}}`, 400, "UnmatchedPrincipalType", "ServicePrincipal"},
		{"bad principal type", assignPath(rgScope, good), `{"properties":{"roleDefinitionId":"` + rbac.DefinitionID("", rbac.AcrPullID) + `","principalId":"` + appID + `","principalType":"Robot"}}`, 400, "InvalidPrincipalType", "Robot"},
		{"condition", assignPath(rgScope, good), `{"properties":{"roleDefinitionId":"` + rbac.DefinitionID("", rbac.AcrPullID) + `","principalId":"` + appID + `","condition":"@Resource[x] StringEquals 'y'"}}`, 400, "InvalidRoleAssignmentRequest", "conditions"},
		{"scope mismatch", assignPath(rgScope, good), `{"properties":{"roleDefinitionId":"` + rbac.DefinitionID("", rbac.AcrPullID) + `","principalId":"` + appID + `","scope":"` + subScope + `"}}`, 400, "InvalidRoleAssignmentRequest", "differs"},
		{"missing group", assignPath(subScope+"/resourceGroups/nope", good), assignBody(rbac.AcrPullID, appID), 404, "ResourceGroupNotFound", ""},
		{"missing registry", assignPath(regPath+"nope1", good), assignBody(rbac.AcrPullID, appID), 404, "ResourceNotFound", "nope1"},
		{"bad scope", assignPath("/tenants/x", good), assignBody(rbac.AcrPullID, appID), 400, "InvalidScope", "/tenants/x"},
		{"malformed body", assignPath(rgScope, good), `{"properties":`, 400, "InvalidRequestContent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.want(e.do("PUT", tc.path, authzAPI, tc.body), tc.status, tc.code, tc.msg)
		})
	}
	e.t = t
	e.want(e.do("GET", assignPath(rgScope, good), "", ""), 400, "MissingApiVersionParameter", "")
	e.want(e.do("GET", assignPath(rgScope, good), "2099-01-01", ""), 400, "InvalidApiVersionParameter", "2022-04-01")
	e.want(e.do("POST", assignPath(rgScope, good), authzAPI, "{}"), 405, "HttpMethodNotSupported", "")
	// The principal type is filled in from the directory.
	r := e.do("PUT", assignPath(rgScope, good), authzAPI, assignBody(rbac.AcrPullID, appID))
	e.want(r, 201, "", "")
	if get(r.body, "properties.principalType") != "ServicePrincipal" {
		t.Errorf("principalType %v", get(r.body, "properties.principalType"))
	}
}

// TestEnforcement is the management half of the role matrix, through the
// handler: who may read, write and delete registries and groups, assign
// roles, and what lists show.
func TestEnforcement(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("teamreg01", "Premium")
	e.registry("teamreg02", "Premium")
	reg1 := regPath + "teamreg01"
	as := "as:" + appID
	patch := `{"properties":{"adminUserEnabled":false}}`

	// No role: 403 in ARM's words, naming object id, action and scope.
	r := e.doAs(as, "GET", reg1, newest, "")
	e.want(r, 403, "AuthorizationFailed", "with object id '"+appID+"' does not have authorization to perform action 'Microsoft.ContainerRegistry/registries/read' over scope '"+reg1+"'")
	// ...even for a registry that does not exist: nothing leaks.
	e.want(e.doAs(as, "GET", regPath+"nosuch1", newest, ""), 403, "AuthorizationFailed", "")
	listed := func(path, api string) []string {
		r := e.doAs(as, "GET", path, api, "")
		e.want(r, 200, "", "")
		var names []string
		for _, v := range r.body["value"].([]any) {
			names = append(names, v.(map[string]any)["name"].(string))
		}
		return names
	}
	if got := listed("/subscriptions/"+sub+"/providers/Microsoft.ContainerRegistry/registries", newest); len(got) != 0 {
		t.Fatalf("no role lists %v", got)
	}

	// AcrPull on the registry: data plane only, no ARM.
	e.assign(reg1, rbac.AcrPullID, appID)
	e.want(e.doAs(as, "GET", reg1, newest, ""), 403, "AuthorizationFailed", "")

	// Reader on teamreg01: read, list shows it alone, no writes.
	e.assign(reg1, rbac.ReaderID, appID)
	e.want(e.doAs(as, "GET", reg1, newest, ""), 200, "", "")
	e.want(e.doAs(as, "GET", reg1+"/listUsages", newest, ""), 200, "", "")
	e.want(e.doAs(as, "GET", reg1+"/auditRecords", newest, ""), 200, "", "")
	e.want(e.doAs(as, "PATCH", reg1, newest, patch), 403, "AuthorizationFailed", "registries/write")
	e.want(e.doAs(as, "DELETE", reg1, newest, ""), 403, "AuthorizationFailed", "registries/delete")
	e.want(e.doAs(as, "POST", reg1+"/importImage", newest, `{"source":{"registryUri":"x.moat.test","sourceImage":"a:b"}}`), 403, "AuthorizationFailed", "importImage/action")
	e.want(e.doAs(as, "POST", reg1+"/checkNetworkAccess", newest, `{}`), 403, "AuthorizationFailed", "checkNetworkAccess/action")
	e.want(e.doAs(as, "GET", regPath+"teamreg02", newest, ""), 403, "AuthorizationFailed", "")
	if got := listed("/subscriptions/"+sub+"/providers/Microsoft.ContainerRegistry/registries", newest); len(got) != 1 || got[0] != "teamreg01" {
		t.Fatalf("reader of teamreg01 lists %v", got)
	}
	if got := listed("/subscriptions/"+sub+"/resourcegroups", groupAPI); len(got) != 0 {
		t.Fatalf("reader of a registry lists groups %v", got)
	}
	e.want(e.doAs(as, "POST", "/subscriptions/"+sub+"/providers/Microsoft.ContainerRegistry/checkNameAvailability", newest,
		`{"name":"abcde","type":"Microsoft.ContainerRegistry/registries"}`), 403, "AuthorizationFailed", "checkNameAvailability/read")
	e.want(e.doAs(as, "GET", "/providers/Microsoft.ContainerRegistry/operations", newest, ""), 200, "", "")
	// Reader may read assignments but not make them.
	e.want(e.doAs(as, "GET", assignPath(reg1, "")[:len(assignPath(reg1, ""))-1], authzAPI, ""), 200, "", "")
	e.want(e.doAs(as, "PUT", assignPath(reg1, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f07"), authzAPI, assignBody(rbac.OwnerID, appID)),
		403, "AuthorizationFailed", "Microsoft.Authorization/roleAssignments/write")

	// Contributor on the group: manages both registries and the group, yet
	// may not assign roles.
	e.assign(rgScope, rbac.ContributorID, appID)
	e.want(e.doAs(as, "PATCH", reg1, newest, patch), 200, "", "")
	e.want(e.doAs(as, "PUT", regPath+"teamreg03", newest, `{"location":"westeurope","sku":{"name":"Basic"}}`), 201, "", "")
	e.want(e.doAs(as, "DELETE", regPath+"teamreg03", newest, ""), 200, "", "")
	e.want(e.doAs(as, "PUT", rgPath, groupAPI, `{"location":"westeurope"}`), 200, "", "")
	if got := listed("/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries", newest); len(got) != 2 {
		t.Fatalf("contributor of the group lists %v", got)
	}
	e.want(e.doAs(as, "PUT", assignPath(reg1, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f07"), authzAPI, assignBody(rbac.OwnerID, appID)),
		403, "AuthorizationFailed", "roleAssignments/write")
	e.want(e.doAs(as, "PUT", "/subscriptions/"+sub+"/resourcegroups/other", groupAPI, `{"location":"westeurope"}`), 403, "AuthorizationFailed", "resourceGroups/write")

	// Owner on the registry: assigns roles there, not above.
	e.assign(reg1, rbac.OwnerID, appID)
	e.want(e.doAs(as, "PUT", assignPath(reg1, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f07"), authzAPI, assignBody(rbac.AcrPushID, "0c000000-0000-0000-0000-0000000000c2")), 201, "", "")
	e.want(e.doAs(as, "PUT", assignPath(rgScope, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f08"), authzAPI, assignBody(rbac.AcrPushID, "0c000000-0000-0000-0000-0000000000c2")), 403, "AuthorizationFailed", "")
	e.want(e.doAs(as, "DELETE", assignPath(reg1, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f07"), authzAPI, ""), 200, "", "")
}

func TestRoleDefinitions(t *testing.T) {
	e := newEnv(t)
	r := e.doAs("as:"+appID, "GET", subScope+"/providers/Microsoft.Authorization/roleDefinitions/"+rbac.AcrPushID, authzAPI, "")
	e.want(r, 200, "", "")
	if get(r.body, "properties.roleName") != "AcrPush" || get(r.body, "id") != rbac.DefinitionID(subScope, rbac.AcrPushID) ||
		get(r.body, "properties.type") != "BuiltInRole" {
		t.Fatalf("AcrPush: %s", r.raw)
	}
	r = e.do("GET", "/providers/Microsoft.Authorization/roleDefinitions", authzAPI, "")
	e.want(r, 200, "", "")
	if v := r.body["value"].([]any); len(v) != len(rbac.BuiltIn()) {
		t.Fatalf("%d definitions", len(v))
	}
	r = e.do("GET", subScope+"/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName%20eq%20'acrpull'", authzAPI, "")
	e.want(r, 200, "", "")
	if v := r.body["value"].([]any); len(v) != 1 || get(v[0].(map[string]any), "name") != rbac.AcrPullID {
		t.Fatalf("filtered: %s", r.raw)
	}
	e.want(e.do("GET", subScope+"/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-00000000dead", authzAPI, ""), 404, "RoleDefinitionDoesNotExist", "")
	e.want(e.do("GET", subScope+"/providers/Microsoft.Authorization/roleDefinitions?$filter=name%20eq%20'x'", authzAPI, ""), 400, "InvalidFilter", "")
}

func TestParseAssignmentFilter(t *testing.T) {
	for in, want := range map[string]assignmentFilter{
		"":                                       {},
		"atScope()":                              {atScope: true},
		"ATSCOPE()":                              {atScope: true},
		"principalId eq 'abc'":                   {principalID: "abc"},
		"atScope() and principalId eq 'a b'":     {atScope: true, principalID: "a b"},
		"assignedTo('x') AND atScope()":          {atScope: true, principalID: "x"},
		"principalId eq 'x' and assignedTo('x')": {principalID: "x"},
		"principalId eq 'it''s and more'":        {principalID: "it's and more"},
	} {
		got, err := parseAssignmentFilter(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"atScope", "principalId eq x", "principalId eq ''", "principalId eq 'a' and principalId eq 'b'",
		"roleDefinitionId eq 'x'", "atScope() or principalId eq 'x'", "assignedTo(x)", "principalId eq 'a'b'", strings.Repeat("atScope() and ", 50)} {
		if got, err := parseAssignmentFilter(in); err == nil {
			t.Errorf("%q: %+v, want an error", in, got)
		}
	}
}

func FuzzParseAssignmentFilter(f *testing.F) {
	for _, s := range []string{"atScope()", "principalId eq 'x'", "assignedTo('a''b') and atScope()", "'and'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseAssignmentFilter(s)
		if err != nil {
			return
		}
		if got.principalID != "" && !strings.Contains(strings.ReplaceAll(s, "''", "'"), got.principalID) {
			t.Fatalf("%q: principal %q is not in the filter", s, got.principalID)
		}
		if _, err := parseDefinitionFilter(s); err == nil && strings.TrimSpace(s) != "" {
			t.Fatalf("%q parses as both kinds of filter", s)
		}
	})
}

// TestAuthorizationSDK drives the role routes with armauthorization (and
// a registry with armcontainerregistry) over TLS.
func TestAuthorizationSDK(t *testing.T) {
	e := newEnv(t)
	e.group()
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
	ctx := t.Context()
	regs, err := armcontainerregistry.NewRegistriesClient(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	poller, err := regs.BeginCreate(ctx, "rg1", "sdkreg01", armcontainerregistry.Registry{Location: to.Ptr("westeurope"),
		SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNameStandard)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := poller.PollUntilDone(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	factory, err := armauthorization.NewClientFactory(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defs := factory.NewRoleDefinitionsClient()
	def, err := defs.Get(ctx, *reg.ID, rbac.AcrPullID, nil)
	if err != nil {
		t.Fatalf("role definition: %v", err)
	}
	if *def.Properties.RoleName != "AcrPull" || *def.Properties.Permissions[0].Actions[0] != rbac.ActionPull {
		t.Fatalf("AcrPull: %+v", def.Properties)
	}
	ras := factory.NewRoleAssignmentsClient()
	created, err := ras.Create(ctx, *reg.ID, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f0a", armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: def.ID, PrincipalID: to.Ptr(appID), PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
		},
	}, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if *created.Properties.Scope != *reg.ID || *created.Properties.PrincipalID != appID {
		t.Fatalf("created %+v", created.Properties)
	}
	got, err := ras.GetByID(ctx, *created.ID, nil)
	if err != nil || *got.Name != *created.Name {
		t.Fatalf("GetByID: %v", err)
	}
	_, err = ras.Create(ctx, *reg.ID, "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f0b", armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{RoleDefinitionID: def.ID, PrincipalID: to.Ptr(appID)}}, nil)
	if err == nil || !strings.Contains(err.Error(), "RoleAssignmentExists") {
		t.Fatalf("duplicate: %v", err)
	}
	// The SDK sends $filter as given; Go's HTTP server (like any strict
	// one) refuses spaces in the request line, so the caller escapes it.
	n := 0
	pager := ras.NewListForResourceGroupPager("rg1", &armauthorization.RoleAssignmentsClientListForResourceGroupOptions{
		Filter: to.Ptr(url.QueryEscape("principalId eq '" + appID + "'"))})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Fatalf("listed %d", n)
	}
	if _, err := ras.Delete(ctx, *reg.ID, *created.Name, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := ras.GetByID(ctx, *created.ID, nil); err == nil || !strings.Contains(err.Error(), "RoleAssignmentNotFound") {
		t.Fatalf("after delete: %v", err)
	}
}
