package arm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

const (
	sub      = "00000000-1111-2222-3333-444444444444"
	rgPath   = "/subscriptions/" + sub + "/resourcegroups/rg1"
	regPath  = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/"
	newest   = "2025-11-01"
	preview  = "2021-06-01-preview"
	groupAPI = "2021-04-01"
)

type env struct {
	t       *testing.T
	h       *handler
	store   meta.Store
	mu      sync.Mutex
	changes []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e := &env{t: t, store: s}
	e.h = newHandler(Options{
		Meta:   s,
		Domain: "moat.test",
		Authorize: func(_ context.Context, r *http.Request) (Caller, error) {
			switch r.Header.Get("Authorization") {
			case "Bearer good":
				return testOwner, nil
			case "Bearer reader":
				return testReader, nil
			}
			// "Bearer as:{object id}" is any other principal (roles_test.go).
			if id, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer as:"); ok && id != "" {
				return Caller{ID: id, Name: "app-" + id[:4], Kind: "servicePrincipal"}, nil
			}
			return Caller{}, errors.New("no valid bearer token")
		},
		OnRegistryChange: func(_ context.Context, name string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.changes = append(e.changes, name)
		},
	})
	// The tester is Owner at the deployment root, the reader Reader there,
	// as real role assignments.
	for i, a := range []rbac.Assignment{
		{Name: "00000000-0000-0000-0000-0000000000a1", Scope: "/", RoleDefinitionID: rbac.DefinitionID("", rbac.OwnerID), PrincipalID: testOwner.ID, PrincipalType: "User"},
		{Name: "00000000-0000-0000-0000-0000000000a2", Scope: "/", RoleDefinitionID: rbac.DefinitionID("", rbac.ReaderID), PrincipalID: testReader.ID, PrincipalType: "User"},
	} {
		res, err := rbac.ToResource(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutResource(t.Context(), res); err != nil {
			t.Fatalf("assignment %d: %v", i, err)
		}
	}
	return e
}

var (
	testOwner  = Caller{ID: "0b000000-0000-0000-0000-0000000000b1", Name: "tester", Kind: "user"}
	testReader = Caller{ID: "0b000000-0000-0000-0000-0000000000b2", Name: "reader", Kind: "user"}
)

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (e *env) do(method, path, apiVersion, body string) resp {
	e.t.Helper()
	return e.doAs("good", method, path, apiVersion, body)
}

// doAs is do with another bearer token.
func (e *env) doAs(token, method, path, apiVersion, body string) resp {
	e.t.Helper()
	if apiVersion != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "api-version=" + apiVersion
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	out := resp{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out.body); err != nil {
			e.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, rec.Body.String(), err)
		}
	}
	return out
}

// want checks the status and, for errors, the ARM error code in the body and
// in x-ms-error-code, and that the message contains msg.
func (e *env) want(r resp, status int, code, msg string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if code == "" {
		return
	}
	errObj, _ := r.body["error"].(map[string]any)
	if errObj["code"] != code || r.header.Get("x-ms-error-code") != code {
		e.t.Fatalf("error code %v (header %q), want %s; body %s", errObj["code"], r.header.Get("x-ms-error-code"), code, r.raw)
	}
	if m, _ := errObj["message"].(string); !strings.Contains(m, msg) {
		e.t.Fatalf("error message %q does not contain %q", m, msg)
	}
}

func (e *env) group() {
	e.t.Helper()
	e.want(e.do("PUT", rgPath, groupAPI, `{"location":"westeurope"}`), 201, "", "")
}

func (e *env) registry(name, sku string) map[string]any {
	e.t.Helper()
	r := e.do("PUT", regPath+name, newest, `{"location":"westeurope","sku":{"name":"`+sku+`"}}`)
	e.want(r, 201, "", "")
	return r.body
}

// get walks a decoded JSON document along a dotted path.
func get(doc map[string]any, path string) any {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func TestAuthorization_FailsClosed(t *testing.T) {
	e := newEnv(t)
	e.h.o.Authorize = nil
	e.want(e.do("GET", rgPath, groupAPI, ""), 401, "AuthenticationFailed", "no authorization")

	e = newEnv(t)
	for token, status := range map[string]int{"": 401, "Bearer bad": 401, "Bearer reader": 403} {
		req := httptest.NewRequest("PUT", rgPath+"?api-version="+groupAPI, strings.NewReader(`{"location":"westeurope"}`))
		if token != "" {
			req.Header.Set("Authorization", token)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != status {
			t.Errorf("token %q: status %d, want %d", token, rec.Code, status)
		}
	}
	if _, err := e.store.GetResource(t.Context(), "/subscriptions/"+sub+"/resourceGroups/rg1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a refused request created the group: %v", err)
	}
}

func TestAPIVersion_MissingOrUnknown(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.want(e.do("GET", regPath+"abcde", "", ""), 400, "MissingApiVersionParameter", "api-version")
	e.want(e.do("GET", regPath+"abcde", "2017-10-01", ""), 400, "InvalidApiVersionParameter", `"2017-10-01"`)
	e.want(e.do("GET", regPath+"abcde", "2023-07-01-PREVIEW", ""), 400, "InvalidApiVersionParameter", "2023-07-01-PREVIEW")
	e.want(e.do("GET", rgPath, "", ""), 400, "MissingApiVersionParameter", "")
	e.want(e.do("GET", rgPath, "1999-01-01", ""), 400, "InvalidApiVersionParameter", "resource groups")
	e.want(e.do("GET", "/providers/Microsoft.ContainerRegistry/operations", "", ""), 400, "MissingApiVersionParameter", "")
}

func TestUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	e.want(e.do("GET", "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/abcde/webhooks/w", newest, ""), 400, "InvalidResourceType", "")
	e.want(e.do("GET", "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/x", newest, ""), 400, "InvalidResourceType", "")
	e.want(e.do("GET", "/other", newest, ""), 404, "NotFound", "")
	e.want(e.do("POST", regPath+"abcde", newest, "{}"), 405, "HttpMethodNotSupported", "")
}

func TestResourceGroups(t *testing.T) {
	e := newEnv(t)
	e.want(e.do("PUT", rgPath, groupAPI, `{"Location":"westeurope","tags":{"Env":"prod"}}`), 201, "", "")
	r := e.do("PUT", "/SUBSCRIPTIONS/"+sub+"/ResourceGroups/RG1", groupAPI, `{"location":"westeurope"}`)
	e.want(r, 200, "", "")
	r = e.do("GET", "/subscriptions/"+sub+"/RESOURCEGROUPS/Rg1", groupAPI, "")
	e.want(r, 200, "", "")
	if r.body["id"] != "/subscriptions/"+sub+"/resourceGroups/rg1" || r.body["name"] != "rg1" || r.body["type"] != groupType ||
		r.body["location"] != "westeurope" || get(r.body, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("GET group = %v", r.body)
	}
	e.want(e.do("HEAD", rgPath, groupAPI, ""), 204, "", "")
	e.want(e.do("HEAD", rgPath+"x", groupAPI, ""), 404, "", "")
	e.want(e.do("GET", rgPath+"x", groupAPI, ""), 404, "ResourceGroupNotFound", "rg1x")
	e.want(e.do("PUT", rgPath, groupAPI, `{"location":"eastus"}`), 409, "InvalidResourceGroupLocation", "westeurope")
	e.want(e.do("PUT", rgPath, groupAPI, `{}`), 400, "LocationRequired", "")
	e.want(e.do("PUT", rgPath+"bad%20name", groupAPI, `{"location":"westeurope"}`), 400, "InvalidResourceGroupName", "")
	e.want(e.do("PUT", rgPath, groupAPI, `{"location":`), 400, "InvalidRequestContent", "offset")
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg2", groupAPI, `{"location":"westeurope"}`), 201, "", "")
	r = e.do("GET", "/subscriptions/"+sub+"/resourcegroups", groupAPI, "")
	e.want(r, 200, "", "")
	if v, _ := r.body["value"].([]any); len(v) != 2 {
		t.Fatalf("list groups = %v", r.body)
	}

	e.registry("inside1", "Basic")
	e.want(e.do("DELETE", rgPath, groupAPI, ""), 200, "", "")
	e.want(e.do("GET", rgPath, groupAPI, ""), 404, "ResourceGroupNotFound", "")
	if _, err := e.store.GetRegistry(t.Context(), "inside1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("deleting the group left its registry: %v", err)
	}
	if e.changes[len(e.changes)-1] != "inside1" {
		t.Fatalf("registry deletion not announced: %v", e.changes)
	}
	e.want(e.do("DELETE", rgPath, groupAPI, ""), 404, "ResourceGroupNotFound", "")
}

func TestRegistry_Lifecycle(t *testing.T) {
	e := newEnv(t)
	e.want(e.do("PUT", regPath+"myreg1", newest, `{"location":"westeurope","sku":{"name":"Premium"}}`), 404, "ResourceGroupNotFound", "rg1")
	e.group()
	body := e.registry("MyReg1", "premium")
	id := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/MyReg1"
	for path, want := range map[string]any{
		"id": id, "name": "MyReg1", "type": model.RegistryType, "location": "westeurope",
		"sku.name": "Premium", "sku.tier": "Premium",
		"properties.loginServer": "myreg1.moat.test", "properties.provisioningState": "Succeeded",
		"properties.adminUserEnabled": false, "properties.publicNetworkAccess": "Enabled",
		"properties.networkRuleSet.defaultAction": "Allow", "properties.networkRuleBypassOptions": "AzureServices",
		"properties.policies.exportPolicy.status": "enabled", "properties.policies.quarantinePolicy.status": "disabled",
		"properties.policies.trustPolicy.type": "Notary", "properties.zoneRedundancy": "Disabled",
	} {
		if got := get(body, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if get(body, "properties.creationDate") == "" {
		t.Error("no creationDate")
	}
	e.want(e.do("PUT", regPath+"myreg1", newest, `{"location":"westeurope","sku":{"name":"Premium"},"properties":{"adminUserEnabled":true}}`), 200, "", "")
	r := e.do("GET", strings.ToUpper(regPath)+"MYREG1", newest, "")
	e.want(r, 200, "", "")
	if get(r.body, "properties.adminUserEnabled") != true || r.body["id"] != id {
		t.Fatalf("GET after PUT = %v", r.body)
	}
	e.want(e.do("PATCH", regPath+"nosuch1", newest, `{"tags":{}}`), 404, "ResourceNotFound", "nosuch1")
	e.want(e.do("GET", "/subscriptions/"+sub+"/resourceGroups/other/providers/Microsoft.ContainerRegistry/registries/myreg1", newest, ""), 404, "ResourceNotFound", "")
	e.want(e.do("DELETE", regPath+"myreg1", newest, ""), 200, "", "")
	e.want(e.do("GET", regPath+"myreg1", newest, ""), 404, "ResourceNotFound", "")
	e.want(e.do("DELETE", regPath+"myreg1", newest, ""), 204, "", "")
	want := []string{"myreg1", "myreg1", "myreg1"}
	if fmt.Sprint(e.changes) != fmt.Sprint(want) {
		t.Fatalf("OnRegistryChange calls %v, want %v", e.changes, want)
	}
}

func TestRegistry_Names(t *testing.T) {
	e := newEnv(t)
	e.group()
	for _, name := range []string{"abcd", "my-registry", strings.Repeat("a", 51)} {
		e.want(e.do("PUT", regPath+name, newest, `{"location":"westeurope","sku":{"name":"Basic"}}`), 400, model.CodeInvalidRegistryName, name)
	}
	e.registry("taken1", "Basic")
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg2", groupAPI, `{"location":"westeurope"}`), 201, "", "")
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourceGroups/rg2/providers/Microsoft.ContainerRegistry/registries/TAKEN1", newest,
		`{"location":"westeurope","sku":{"name":"Basic"}}`), 409, model.CodeRegistryNameInUse, "TAKEN1")
}

func TestRegistry_DefaultRegistryIsManagedInPlace(t *testing.T) {
	e := newEnv(t)
	// As moat serve creates it: bare properties, a name ARM would refuse,
	// a resource group that does not exist as a resource.
	_, err := e.store.CreateRegistry(t.Context(), meta.Registry{Name: "moat-default",
		ResourceID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/moat-default",
		Location:   "local", SKU: "Premium", Properties: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	p := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/moat-default"
	r := e.do("PATCH", p, newest, `{"properties":{"networkRuleSet":{"defaultAction":"Deny"}}}`)
	e.want(r, 200, "", "")
	if get(r.body, "properties.networkRuleSet.defaultAction") != "Deny" || get(r.body, "properties.loginServer") != "moat-default.moat.test" ||
		get(r.body, "properties.policies.exportPolicy.status") != "enabled" {
		t.Fatalf("PATCH of the default registry = %v", r.body)
	}
	r = e.do("GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries", newest, "")
	if v, _ := r.body["value"].([]any); len(v) != 1 {
		t.Fatalf("list of group moat = %v", r.raw)
	}
}

func TestRegistry_PatchMerges(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("merge01", "Premium")
	e.want(e.do("PATCH", regPath+"merge01", newest, `{"tags":{"Env":"prod"},"properties":{"adminUserEnabled":true,
	  "networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"203.0.113.0/24"},{"value":"198.51.100.7"}]}}}`), 200, "", "")
	r := e.do("PATCH", regPath+"merge01", newest, `{"properties":{"networkRuleSet":{"defaultAction":"Allow"}}}`)
	e.want(r, 200, "", "")
	rules, _ := get(r.body, "properties.networkRuleSet.ipRules").([]any)
	if get(r.body, "properties.networkRuleSet.defaultAction") != "Allow" || len(rules) != 2 ||
		get(r.body, "properties.adminUserEnabled") != true || get(r.body, "tags.Env") != "prod" {
		t.Fatalf("PATCH with only defaultAction = %s", r.raw)
	}
	r = e.do("PATCH", regPath+"merge01", newest, `{"properties":{"networkRuleSet":{"ipRules":[]}}}`)
	e.want(r, 200, "", "")
	if rules, _ := get(r.body, "properties.networkRuleSet.ipRules").([]any); len(rules) != 0 || rules == nil {
		t.Fatalf("ipRules: [] = %s", r.raw)
	}
	// A full PUT replaces: what it does not name goes back to the default.
	r = e.do("PUT", regPath+"merge01", newest, `{"location":"westeurope","sku":{"name":"Premium"}}`)
	e.want(r, 200, "", "")
	if get(r.body, "properties.adminUserEnabled") != false || len(r.body["tags"].(map[string]any)) != 0 {
		t.Fatalf("PUT kept unnamed properties: %s", r.raw)
	}
}

func TestRegistry_BadBodies(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("bodies1", "Premium")
	for _, c := range []struct{ method, body, code, msg string }{
		{"PATCH", `{"properties":{"adminUserEnabled":"yes"}}`, "InvalidRequestContent", `properties.adminUserEnabled: want a boolean, got "yes"`},
		{"PATCH", `{"properties":{"adminUserEnabled":true,}}`, "InvalidRequestContent", "malformed JSON at offset"},
		{"PATCH", ``, "InvalidRequestContent", "empty"},
		{"PUT", `{"location":"westeurope","sku":{"name":"Gold"}}`, "InvalidRequestContent", `sku.name: want one of Basic, Standard, Premium, got "Gold"`},
		{"PUT", `{"sku":{"name":"Premium"}}`, model.CodeLocationRequired, "location"},
		{"PUT", `{"location":"westeurope"}`, model.CodeSKURequired, "sku"},
	} {
		e.want(e.do(c.method, regPath+"bodies1", newest, c.body), 400, c.code, c.msg)
	}
	r := e.do("GET", regPath+"bodies1", newest, "")
	if get(r.body, "properties.adminUserEnabled") != false {
		t.Fatal("a refused request changed the registry")
	}
}

func TestRegistry_CaseInsensitiveNamesLastDuplicateWins(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("dupes01", "Premium")
	r := e.do("PATCH", regPath+"dupes01", preview, `{"Properties":{"PUBLICNETWORKACCESS":"disabled",
	  "policies":{"ExportPolicy":{"status":"enabled","Status":"DISABLED"}},"networkrulebypassoptions":"none"}}`)
	e.want(r, 200, "", "")
	if get(r.body, "properties.publicNetworkAccess") != "Disabled" || get(r.body, "properties.policies.exportPolicy.status") != "disabled" ||
		get(r.body, "properties.networkRuleBypassOptions") != "None" {
		t.Fatalf("PATCH = %s", r.raw)
	}
}

// TestValidationTable drives every row of DESIGN.md §2's validation table
// through HTTP.
func TestValidationTable(t *testing.T) {
	ipRules := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"action":"Allow","value":"10.1.%d.%d"}`, i/256, i%256)
		}
		return "[" + b.String() + "]"
	}
	cases := []struct {
		name   string
		sku    string
		setup  string // PATCH applied first
		body   string // PATCH under test
		status int
		code   string
		msg    string
	}{
		{"public access disabled on Basic", "Basic", "", `{"properties":{"publicNetworkAccess":"Disabled"}}`, 400, "DisablingPublicNetworkAccessNotSupported", "Basic"},
		{"public access disabled on Standard", "Standard", "", `{"properties":{"publicNetworkAccess":"Disabled"}}`, 400, "DisablingPublicNetworkAccessNotSupported", "Standard"},
		{"deny on Standard", "Standard", "", `{"properties":{"networkRuleSet":{"defaultAction":"Deny"}}}`, 400, model.CodeNetworkRulesNotSupported, "Premium"},
		{"ip rules on Basic", "Basic", "", `{"properties":{"networkRuleSet":{"ipRules":` + ipRules(1) + `}}}`, 400, model.CodeNetworkRulesNotSupported, "Premium"},
		{"201 ip rules", "Premium", "", `{"properties":{"networkRuleSet":{"ipRules":` + ipRules(201) + `}}}`, 400, model.CodeIPRuleQuotaExceeded, "quota of 200"},
		{"200 ip rules", "Premium", "", `{"properties":{"networkRuleSet":{"ipRules":` + ipRules(200) + `}}}`, 200, "", ""},
		{"bad CIDR", "Premium", "", `{"properties":{"networkRuleSet":{"ipRules":[{"value":"1.2.3.4"},{"value":"10.0.0.1"},{"value":"::1"},{"value":"10.0.0.0/33"}]}}}`,
			400, model.CodeInvalidIPRule, `properties.networkRuleSet.ipRules[3].value "10.0.0.0/33" is not an IPv4/IPv6 address or CIDR`},
		{"export disabled on Standard", "Standard", "", `{"properties":{"policies":{"exportPolicy":{"status":"disabled"}}}}`, 400, model.CodeExportPolicyNotSupported, "Premium"},
		{"export disabled with public access on", "Premium", "", `{"properties":{"policies":{"exportPolicy":{"status":"disabled"}}}}`, 400, model.CodeExportPolicyRequiresPrivateAccess, "publicNetworkAccess"},
		{"export and public access disabled together", "Premium", "", `{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`, 200, "", ""},
		{"public access enabled while exports disabled", "Premium", `{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`,
			`{"properties":{"publicNetworkAccess":"Enabled"}}`, 400, "BadRequest", "enabling public network access is not supported while exports are disabled"},
		{"retention 366 days", "Premium", "", `{"properties":{"policies":{"retentionPolicy":{"days":366,"status":"enabled"}}}}`, 400, model.CodeInvalidRetentionDays, "366"},
		{"retention 30 days", "Premium", "", `{"properties":{"policies":{"retentionPolicy":{"days":30,"status":"enabled"}}}}`, 200, "", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.group()
			name := fmt.Sprintf("valid%02d", i)
			e.registry(name, c.sku)
			if c.setup != "" {
				e.want(e.do("PATCH", regPath+name, preview, c.setup), 200, "", "")
			}
			before := e.do("GET", regPath+name, preview, "").raw
			e.want(e.do("PATCH", regPath+name, preview, c.body), c.status, c.code, c.msg)
			if c.status != 200 {
				if after := e.do("GET", regPath+name, preview, "").raw; after != before {
					t.Fatalf("a refused PATCH changed the registry:\n%s\n%s", before, after)
				}
			}
		})
	}
}

func TestValidation_ExportPipelinesBlockExportPolicyChanges(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("pipes01", "Premium")
	id := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/pipes01"
	if _, err := e.store.PutResource(t.Context(), meta.Resource{ID: id + "/exportPipelines/p1", Type: exportPipelineType, Name: "p1"}); err != nil {
		t.Fatal(err)
	}
	e.want(e.do("PATCH", regPath+"pipes01", preview, `{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`),
		409, model.CodeExportPipelinesExist, "delete the pipelines first")
	e.want(e.do("DELETE", regPath+"pipes01", preview, ""), 200, "", "")
	if left, err := e.store.ListResources(t.Context(), id, ""); err != nil || len(left) != 0 {
		t.Fatalf("deleting the registry left %v, %v", left, err)
	}
}

var pnaValue = regexp.MustCompile(`"publicNetworkAccess":"[A-Za-z]*"`)

// TestSeed_AzResourceUpdateExportPolicy replays seeds 000/002: az resource
// update GETs the registry, sets properties.policies.exportPolicy.status and
// properties.publicNetworkAccess (appending "Status" beside "status" as a
// case-preserving --set does) and PUTs the whole document back.
func TestSeed_AzResourceUpdateExportPolicy(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("myregistry", "Premium")
	update := func(sets ...[2]string) resp {
		r := e.do("GET", regPath+"myregistry", preview, "")
		e.want(r, 200, "", "")
		doc := r.raw
		for _, s := range sets {
			switch s[0] {
			case "exportStatus":
				doc = strings.Replace(doc, `"exportPolicy":{"status":"enabled"}`, `"exportPolicy":{"status":"enabled","Status":"`+s[1]+`"}`, 1)
				doc = strings.Replace(doc, `"exportPolicy":{"status":"disabled"}`, `"exportPolicy":{"status":"disabled","Status":"`+s[1]+`"}`, 1)
			case "publicNetworkAccess":
				// The key exists in the GET body with this spelling: --set
				// replaces its value in place.
				doc = pnaValue.ReplaceAllString(doc, `"publicNetworkAccess":"`+s[1]+`"`)
			}
		}
		if doc == r.raw {
			t.Fatalf("the test's --set did not apply to %s", doc)
		}
		return e.do("PUT", regPath+"myregistry", preview, doc)
	}
	// Disabling export alone is refused: public access must go too.
	e.want(update([2]string{"exportStatus", "disabled"}), 400, model.CodeExportPolicyRequiresPrivateAccess, "")
	r := update([2]string{"exportStatus", "disabled"}, [2]string{"publicNetworkAccess", "disabled"})
	e.want(r, 200, "", "")
	if get(r.body, "properties.policies.exportPolicy.status") != "disabled" || get(r.body, "properties.publicNetworkAccess") != "Disabled" ||
		get(r.body, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("after disabling export: %s", r.raw)
	}
	e.want(update([2]string{"publicNetworkAccess", "enabled"}), 400, "BadRequest", "exports are disabled")
	r = update([2]string{"exportStatus", "enabled"})
	e.want(r, 200, "", "")
	if get(r.body, "properties.policies.exportPolicy.status") != "enabled" || get(r.body, "properties.publicNetworkAccess") != "Disabled" {
		t.Fatalf("after enabling export: %s", r.raw)
	}
	// The ARM template of the seed, as a direct PUT body.
	e.want(e.do("PUT", regPath+"myregistry", preview, `{"location":"westeurope","sku":{"name":"Premium"},
	  "properties":{"publicNetworkAccess":"disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`), 200, "", "")
}

// TestSeed_FirewallTemplate is seed 003's template resource.
func TestSeed_FirewallTemplate(t *testing.T) {
	e := newEnv(t)
	e.group()
	tmpl := `{"location":"westeurope","sku":{"name":"Premium"},"properties":{"publicNetworkAccess":"Enabled",
	  "networkRuleBypassOptions":"AzureServices","networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"%s"}]}}}`
	e.want(e.do("PUT", regPath+"firewall1", "2023-01-01-preview", fmt.Sprintf(tmpl, "_PublicIPv4Address_")), 400, model.CodeInvalidIPRule, `"_PublicIPv4Address_"`)
	r := e.do("PUT", regPath+"firewall1", "2023-01-01-preview", fmt.Sprintf(tmpl, "203.0.113.10"))
	e.want(r, 201, "", "")
	if get(r.body, "properties.networkRuleSet.defaultAction") != "Deny" || get(r.body, "properties.networkRuleBypassOptions") != "AzureServices" {
		t.Fatalf("seed 003 registry = %s", r.raw)
	}
	rules := get(r.body, "properties.networkRuleSet.ipRules").([]any)
	if len(rules) != 1 || rules[0].(map[string]any)["value"] != "203.0.113.10" {
		t.Fatalf("rules = %v", rules)
	}
}

func TestRegistry_ShapedPerAPIVersion(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("shaped1", "Premium")
	r := e.do("GET", regPath+"shaped1", "2019-05-01", "")
	e.want(r, 200, "", "")
	if _, ok := r.body["properties"].(map[string]any)["publicNetworkAccess"]; ok {
		t.Fatal("2019-05-01 answer has publicNetworkAccess")
	}
	if get(r.body, "properties.policies.exportPolicy") != nil {
		t.Fatal("2019-05-01 answer has exportPolicy")
	}
	// Not accepted either: an old-version PUT that names exportPolicy leaves it.
	e.want(e.do("PATCH", regPath+"shaped1", "2019-05-01", `{"properties":{"policies":{"exportPolicy":{"status":"disabled"}}}}`), 200, "", "")
	if get(e.do("GET", regPath+"shaped1", preview, "").body, "properties.policies.exportPolicy.status") != "enabled" {
		t.Fatal("2019-05-01 PATCH changed exportPolicy")
	}
}

func TestListRegistries_Paging(t *testing.T) {
	e := newEnv(t)
	e.h.pageSize = 2
	e.group()
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg2", groupAPI, `{"location":"westeurope"}`), 201, "", "")
	for _, n := range []string{"alpha1", "bravo1", "charlie1"} {
		e.registry(n, "Basic")
	}
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourceGroups/rg2/providers/Microsoft.ContainerRegistry/registries/delta1", newest,
		`{"location":"westeurope","sku":{"name":"Basic"}}`), 201, "", "")
	collect := func(path string) []string {
		var names []string
		r := e.do("GET", path, newest, "")
		for {
			e.want(r, 200, "", "")
			for _, v := range r.body["value"].([]any) {
				names = append(names, v.(map[string]any)["name"].(string))
			}
			next, _ := r.body["nextLink"].(string)
			if next == "" {
				return names
			}
			if !strings.HasPrefix(next, "http://example.com/") {
				t.Fatalf("nextLink %q is not absolute", next)
			}
			r = e.do("GET", strings.TrimPrefix(next, "http://example.com"), "", "")
		}
	}
	if got := collect(strings.TrimSuffix(regPath, "/")); fmt.Sprint(got) != "[alpha1 bravo1 charlie1]" {
		t.Fatalf("registries of rg1 = %v", got)
	}
	if got := collect("/subscriptions/" + sub + "/providers/Microsoft.ContainerRegistry/registries"); fmt.Sprint(got) != "[alpha1 bravo1 charlie1 delta1]" {
		t.Fatalf("registries of the subscription = %v", got)
	}
	if got := collect("/subscriptions/other/providers/Microsoft.ContainerRegistry/registries"); len(got) != 0 {
		t.Fatalf("registries of another subscription = %v", got)
	}
}

func TestCheckNameAvailability(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("taken2", "Basic")
	path := "/subscriptions/" + sub + "/providers/Microsoft.ContainerRegistry/checkNameAvailability"
	for name, want := range map[string][2]any{
		"freename": {true, nil}, "TAKEN2": {false, "AlreadyExists"}, "ab": {false, "Invalid"}, "a-b-c-d-e": {false, "Invalid"},
	} {
		r := e.do("POST", path, newest, `{"name":"`+name+`","type":"Microsoft.ContainerRegistry/registries"}`)
		e.want(r, 200, "", "")
		if r.body["nameAvailable"] != want[0] || r.body["reason"] != want[1] {
			t.Errorf("checkNameAvailability(%s) = %v, want %v", name, r.body, want)
		}
	}
	e.want(e.do("POST", path, newest, `{"name":"abcde","type":"Microsoft.Storage/storageAccounts"}`), 400, "InvalidResourceType", "")
	e.want(e.do("GET", path, newest, ""), 405, "HttpMethodNotSupported", "")
}

func TestOperationsAndUsages(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/providers/Microsoft.ContainerRegistry/operations", newest, "")
	e.want(r, 200, "", "")
	if ops, _ := r.body["value"].([]any); len(ops) == 0 || !strings.HasPrefix(ops[0].(map[string]any)["name"].(string), "Microsoft.ContainerRegistry/") {
		t.Fatalf("operations = %s", r.raw)
	}
	e.group()
	e.registry("usage01", "Premium")
	e.want(e.do("PATCH", regPath+"usage01", newest, `{"properties":{"networkRuleSet":{"ipRules":[{"value":"1.2.3.4"},{"value":"5.6.7.0/24"}]}}}`), 200, "", "")
	e.h.o.IPRuleQuota = 50
	r = e.do("GET", regPath+"usage01/listUsages", newest, "")
	e.want(r, 200, "", "")
	u := r.body["value"].([]any)[0].(map[string]any)
	if u["name"] != "IPRules" || u["limit"] != float64(50) || u["currentValue"] != float64(2) {
		t.Fatalf("usages = %s", r.raw)
	}
	e.want(e.do("GET", regPath+"nosuch99/listUsages", newest, ""), 404, "ResourceNotFound", "")
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	e.group()
	big := `{"location":"westeurope","sku":{"name":"Basic"},"tags":{"x":"` + string(bytes.Repeat([]byte("a"), maxBody)) + `"}}`
	e.want(e.do("PUT", regPath+"bigbody1", newest, big), 413, "RequestEntityTooLarge", "")
}
