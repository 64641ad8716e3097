package arm

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
)

const (
	miAPI    = "2023-05-01"
	aciPath  = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ContainerInstance/containerGroups/"
	sitePath = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Web/sites/"
	uaiPath  = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
)

// withIdentities gives the env's handler a real identity service.
func withIdentities(t *testing.T) (*env, *identity.Service) {
	t.Helper()
	e := newEnv(t)
	ids, err := identity.New(context.Background(), e.store, identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.h.o.ManagedIdentities = ids
	e.group()
	return e, ids
}

// msiToken asks ids' token endpoint with secret; it returns the status.
func msiToken(t *testing.T, ids *identity.Service, secret string, params ...string) int {
	t.Helper()
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {"https://management.azure.com/"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	req := httptest.NewRequest("GET", identity.MSIPath+"?"+q.Encode(), nil)
	req.Header.Set("X-IDENTITY-HEADER", secret)
	rec := httptest.NewRecorder()
	ids.ManagedIdentityHandler().ServeHTTP(rec, req)
	return rec.Code
}

func str(doc map[string]any, path string) string {
	s, _ := get(doc, path).(string)
	return s
}

// TestContainerGroup_SystemAssignedLifecycle: creating a container group
// with a system-assigned identity creates its principal and hands out the
// identity secret once; GET shows the principal but not the secret; the
// secret gets tokens until it is rotated; DELETE removes the principal.
func TestContainerGroup_SystemAssignedLifecycle(t *testing.T) {
	e, ids := withIdentities(t)
	ctx := context.Background()
	body := `{"location":"westeurope","tags":{"team":"a"},"identity":{"type":"SystemAssigned"},
		"properties":{"osType":"Linux","containers":[{"name":"app","properties":{"image":"moat.localhost/app:v1"}}],"provisioningState":"Bogus"},
		"zones":["1"]}`
	r := e.do("PUT", aciPath+"puller", miAPI, body)
	e.want(r, 201, "", "")
	pid, secret := str(r.body, "identity.principalId"), str(r.body, "properties.moatIdentity.identityHeader")
	if pid == "" || str(r.body, "identity.tenantId") == "" || str(r.body, "identity.type") != "SystemAssigned" || secret == "" {
		t.Fatalf("PUT answer lacks the identity or its secret: %s", r.raw)
	}
	if str(r.body, "properties.moatIdentity.identityEndpoint") != "http://example.com/msi/token" ||
		str(r.body, "properties.osType") != "Linux" || str(r.body, "properties.provisioningState") != "Succeeded" ||
		str(r.body, "type") != "Microsoft.ContainerInstance/containerGroups" || str(r.body, "tags.team") != "a" {
		t.Errorf("PUT answer: %s", r.raw)
	}
	if zones, _ := r.body["zones"].([]any); len(zones) != 1 {
		t.Errorf("zones not kept verbatim: %s", r.raw)
	}
	mi, err := ids.GetManagedIdentity(ctx, aciPath+"puller")
	if err != nil || mi.PrincipalID != pid || mi.UserAssigned {
		t.Fatalf("stored identity = %+v, %v", mi, err)
	}

	g := e.do("GET", aciPath+"puller", miAPI, "")
	e.want(g, 200, "", "")
	if str(g.body, "identity.principalId") != pid || str(g.body, "properties.moatIdentity.identityHeader") != "" || str(g.body, "properties.moatIdentity.identityEndpoint") == "" {
		t.Errorf("GET: %s", g.raw)
	}
	if strings.Contains(g.raw, secret) {
		t.Error("GET shows the identity secret")
	}
	// A second PUT keeps the principal and the secret.
	r2 := e.do("PUT", aciPath+"puller", miAPI, body)
	e.want(r2, 200, "", "")
	if str(r2.body, "identity.principalId") != pid || str(r2.body, "properties.moatIdentity.identityHeader") != "" {
		t.Errorf("second PUT changed the identity or showed a secret: %s", r2.raw)
	}
	if code := msiToken(t, ids, secret); code != http.StatusOK {
		t.Fatalf("token with the handed-out secret: %d", code)
	}

	rot := e.do("POST", aciPath+"puller/rotateIdentitySecret", miAPI, "")
	e.want(rot, 200, "", "")
	newSecret := str(rot.body, "identityHeader")
	if newSecret == "" || newSecret == secret {
		t.Fatalf("rotate: %s", rot.raw)
	}
	if code := msiToken(t, ids, secret); code != http.StatusUnauthorized {
		t.Errorf("old secret after rotation: %d, want 401", code)
	}
	if code := msiToken(t, ids, newSecret); code != http.StatusOK {
		t.Errorf("new secret: %d", code)
	}

	l := e.do("GET", strings.TrimSuffix(aciPath, "/"), miAPI, "")
	e.want(l, 200, "", "")
	if v, _ := l.body["value"].([]any); len(v) != 1 {
		t.Errorf("list: %s", l.raw)
	}

	e.want(e.do("DELETE", aciPath+"puller", miAPI, ""), 200, "", "")
	if _, err := ids.GetManagedIdentity(ctx, aciPath+"puller"); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Errorf("identity after DELETE: %v", err)
	}
	if code := msiToken(t, ids, newSecret); code != http.StatusUnauthorized {
		t.Errorf("secret after DELETE: %d, want 401", code)
	}
	e.want(e.do("GET", aciPath+"puller", miAPI, ""), 404, "ResourceNotFound", "puller")
	e.want(e.do("DELETE", aciPath+"puller", miAPI, ""), 204, "", "")
}

// TestUserAssignedIdentity_AttachAndDetach: a user-assigned identity has
// its own principal, is attached to a site and a container group, answers
// principalId/clientId per attachment, and deleting it refuses its tokens.
func TestUserAssignedIdentity_AttachAndDetach(t *testing.T) {
	e, ids := withIdentities(t)
	u := e.do("PUT", uaiPath+"shared-id", miAPI, `{"location":"westeurope"}`)
	e.want(u, 201, "", "")
	uid, cid := str(u.body, "properties.principalId"), str(u.body, "properties.clientId")
	if uid == "" || cid == "" || str(u.body, "properties.tenantId") == "" || str(u.body, "id") != uaiPath+"shared-id" {
		t.Fatalf("UAI PUT: %s", u.raw)
	}
	uaiID := uaiPath + "shared-id"
	r := e.do("PUT", aciPath+"both", miAPI, `{"location":"westeurope","identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"`+uaiID+`":{}}},"properties":{}}`)
	e.want(r, 201, "", "")
	if str(r.body, "identity.type") != "SystemAssigned, UserAssigned" {
		t.Errorf("type: %s", r.raw)
	}
	ref, _ := get(r.body, "identity.userAssignedIdentities").(map[string]any)
	if att, _ := ref[uaiID].(map[string]any); att["principalId"] != uid || att["clientId"] != cid {
		t.Errorf("attachment: %s", r.raw)
	}
	secret := str(r.body, "properties.moatIdentity.identityHeader")
	if code := msiToken(t, ids, secret, "client_id", cid); code != http.StatusOK {
		t.Errorf("UAI token by client id: %d", code)
	}
	if code := msiToken(t, ids, secret); code != http.StatusOK {
		t.Errorf("system token: %d", code)
	}
	// Dropping SystemAssigned deletes that principal, keeps the UAI.
	r = e.do("PUT", aciPath+"both", miAPI, `{"location":"westeurope","identity":{"type":"UserAssigned","userAssignedIdentities":{"`+uaiID+`":{}}}}`)
	e.want(r, 200, "", "")
	if code := msiToken(t, ids, secret); code != http.StatusBadRequest {
		t.Errorf("system token after SystemAssigned was removed: %d, want 400", code)
	}
	if _, err := ids.GetManagedIdentity(context.Background(), aciPath+"both"); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Errorf("system identity kept: %v", err)
	}
	e.want(e.do("DELETE", uaiPath+"shared-id", miAPI, ""), 200, "", "")
	if code := msiToken(t, ids, secret, "client_id", cid); code != http.StatusBadRequest {
		t.Errorf("token of a deleted UAI: %d, want 400", code)
	}
	l := e.do("GET", "/subscriptions/"+sub+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities", miAPI, "")
	e.want(l, 200, "", "")
	if v, _ := l.body["value"].([]any); len(v) != 0 {
		t.Errorf("subscription list after delete: %s", l.raw)
	}
}

// TestCarriers_OtherTypesAndTasks: sites, workspaces and registry tasks
// carry identities too; a task needs its registry.
func TestCarriers_OtherTypesAndTasks(t *testing.T) {
	e, ids := withIdentities(t)
	sys := `{"location":"westeurope","identity":{"type":"SystemAssigned"},"kind":"app","properties":{"serverFarmId":"x"}}`
	for _, p := range []string{
		sitePath + "webapp",
		"/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/mlw",
	} {
		r := e.do("PUT", p, miAPI, sys)
		e.want(r, 201, "", "")
		if str(r.body, "identity.principalId") == "" || str(r.body, "kind") != "app" {
			t.Errorf("%s: %s", p, r.raw)
		}
	}
	task := regPath + "reg01/tasks/build-task"
	e.want(e.do("PUT", task, "2019-06-01-preview", sys), 404, "ResourceNotFound", "reg01")
	e.registry("reg01", "Premium")
	r := e.do("PUT", task, "2019-06-01-preview", sys)
	e.want(r, 201, "", "")
	if str(r.body, "type") != "Microsoft.ContainerRegistry/registries/tasks" {
		t.Errorf("task: %s", r.raw)
	}
	if mi, err := ids.GetManagedIdentity(context.Background(), task); err != nil || mi.PrincipalID != str(r.body, "identity.principalId") {
		t.Errorf("task identity %+v, %v", mi, err)
	}
	l := e.do("GET", regPath+"reg01/tasks", "2019-06-01-preview", "")
	e.want(l, 200, "", "")
	if v, _ := l.body["value"].([]any); len(v) != 1 {
		t.Errorf("task list: %s", l.raw)
	}
}

// TestCarriers_BadInput: every malformed request is a 4xx ARM error and
// creates nothing.
func TestCarriers_BadInput(t *testing.T) {
	e, ids := withIdentities(t)
	cases := []struct {
		name, path, version, body string
		status                    int
		code                      string
	}{
		{"no api-version", aciPath + "a1", "", `{"location":"x"}`, 400, "MissingApiVersionParameter"},
		{"bad api-version", aciPath + "a1", "yesterday", `{"location":"x"}`, 400, "InvalidApiVersionParameter"},
		{"bad name", aciPath + "Bad_Name", miAPI, `{"location":"x"}`, 400, "InvalidResourceName"},
		{"no location", aciPath + "a1", miAPI, `{}`, 400, "LocationRequired"},
		{"not JSON", aciPath + "a1", miAPI, `{`, 400, "InvalidRequestContent"},
		{"array body", aciPath + "a1", miAPI, `[]`, 400, "InvalidRequestContent"},
		{"bad identity type", aciPath + "a1", miAPI, `{"location":"x","identity":{"type":"Everything"}}`, 400, "InvalidIdentityType"},
		{"None plus", aciPath + "a1", miAPI, `{"location":"x","identity":{"type":"None, SystemAssigned"}}`, 400, "InvalidIdentityType"},
		{"UserAssigned without map", aciPath + "a1", miAPI, `{"location":"x","identity":{"type":"UserAssigned"}}`, 400, "BadRequest"},
		{"map without UserAssigned", aciPath + "a1", miAPI, `{"location":"x","identity":{"type":"SystemAssigned","userAssignedIdentities":{"` + uaiPath + `u1":{}}}}`, 400, "BadRequest"},
		{"map key not a UAI", aciPath + "a1", miAPI, `{"location":"x","identity":{"type":"UserAssigned","userAssignedIdentities":{"` + sitePath + `s":{}}}}`, 400, "InvalidIdentityResourceId"},
		{"missing UAI", aciPath + "a1", miAPI, `{"location":"x","identity":{"type":"UserAssigned","userAssignedIdentities":{"` + uaiPath + `nope":{}}}}`, 400, "FailedIdentityOperation"},
		{"UAI with identity", uaiPath + "uai1", miAPI, `{"location":"x","identity":{"type":"SystemAssigned"}}`, 400, "BadRequest"},
		{"properties not an object", aciPath + "a1", miAPI, `{"location":"x","properties":[1]}`, 400, "InvalidRequestContent"},
		{"no group", "/subscriptions/" + sub + "/resourceGroups/none/providers/Microsoft.Web/sites/s1", miAPI, `{"location":"x"}`, 404, "ResourceGroupNotFound"},
		{"rotate without identity", sitePath + "plain/rotateIdentitySecret", miAPI, ``, 404, "ResourceNotFound"},
		{"POST", aciPath + "a1", miAPI, `{"location":"x"}`, 405, "HttpMethodNotSupported"},
		{"PATCH of nothing", aciPath + "a1", miAPI, `{"tags":{}}`, 404, "ResourceNotFound"},
	}
	for _, c := range cases {
		method := "PUT"
		switch {
		case strings.HasSuffix(c.path, "rotateIdentitySecret"):
			method = "POST"
		case c.name == "POST":
			method = "POST"
		case strings.HasPrefix(c.name, "PATCH"):
			method = "PATCH"
		}
		r := e.do(method, c.path, c.version, c.body)
		if r.status != c.status || str(r.body, "error.code") != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.raw, c.status, c.code)
		}
	}
	if _, err := ids.GetManagedIdentity(context.Background(), aciPath+"a1"); !errors.Is(err, identity.ErrManagedIdentityNotFound) {
		t.Errorf("a refused PUT left an identity: %v", err)
	}
	// A site without identity has no secret to rotate.
	e.want(e.do("PUT", sitePath+"plain", miAPI, `{"location":"westeurope"}`), 201, "", "")
	e.want(e.do("POST", sitePath+"plain/rotateIdentitySecret", miAPI, ""), 400, "NoManagedIdentity", "no managed identity")
	// Without an identity service the routes refuse instead of pretending.
	e.h.o.ManagedIdentities = nil
	e.want(e.do("GET", aciPath+"a1", miAPI, ""), 501, "NotImplemented", "")
}

// TestCarriers_LocationIsFixed: a resource cannot move, as in ARM.
func TestCarriers_LocationIsFixed(t *testing.T) {
	e, _ := withIdentities(t)
	e.want(e.do("PUT", sitePath+"fixed", miAPI, `{"location":"westeurope"}`), 201, "", "")
	e.want(e.do("PUT", sitePath+"fixed", miAPI, `{"location":"northeurope"}`), 409, "InvalidResourceLocation", "cannot move")
	e.want(e.do("PUT", sitePath+"fixed", miAPI, `{"location":"WestEurope"}`), 200, "", "")
}

// TestCarriers_RecreatedAfterGroupDeletion: deleting the resource group
// deletes the container group; re-creating it makes a new principal and a
// new secret, and the old secret stays refused.
func TestCarriers_RecreatedAfterGroupDeletion(t *testing.T) {
	e, ids := withIdentities(t)
	body := `{"location":"westeurope","identity":{"type":"SystemAssigned"}}`
	first := e.do("PUT", aciPath+"again", miAPI, body)
	e.want(first, 201, "", "")
	oldSecret := str(first.body, "properties.moatIdentity.identityHeader")
	e.want(e.do("DELETE", rgPath, groupAPI, ""), 200, "", "")
	e.group()
	second := e.do("PUT", aciPath+"again", miAPI, body)
	e.want(second, 201, "", "")
	newSecret := str(second.body, "properties.moatIdentity.identityHeader")
	if newSecret == "" || str(second.body, "identity.principalId") == str(first.body, "identity.principalId") {
		t.Fatalf("re-created resource kept the old identity or got no secret: %s", second.raw)
	}
	if code := msiToken(t, ids, oldSecret); code != http.StatusUnauthorized {
		t.Errorf("old secret: %d, want 401", code)
	}
	if code := msiToken(t, ids, newSecret); code != http.StatusOK {
		t.Errorf("new secret: %d", code)
	}
}
