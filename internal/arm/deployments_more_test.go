package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate"
	"github.com/moat-registry/moat/internal/bicep"
	"github.com/moat-registry/moat/internal/storage/meta"
)

func TestParseDeploymentRoute(t *testing.T) {
	base := "/subscriptions/s/resourceGroups/g/providers/Microsoft.Resources/deployments"
	for _, c := range []struct {
		path      string
		ok        bool
		name, act string
		op        string
	}{
		{base, true, "", "", ""},
		{base + "/d1", true, "d1", "", ""},
		{strings.ToLower(base) + "/d1/VALIDATE", true, "d1", "validate", ""},
		{base + "/d1/cancel", true, "d1", "cancel", ""},
		{base + "/d1/exportTemplate", true, "d1", "exportTemplate", ""},
		{base + "/d1/operations", true, "d1", "operations", ""},
		{base + "/d1/operations/ABC", true, "d1", "operations", "ABC"},
		{base + "/d1/operationStatuses/x", true, "d1", "operationStatuses", "x"},
		{"/subscriptions/s/resourcegroups/g/deployments/d1/operations", true, "d1", "operations", ""},
		{base + "/d1/whatIf", true, "d1", "whatIf", ""},
		{base + "/d1/whatIfx", false, "", "", ""},
		{base + "/d1/cancel/x", false, "", "", ""},
		{base + "//x", false, "", "", ""},
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r", false, "", "", ""},
		{"/subscriptions/s/providers/Microsoft.Resources/deployments/d1", false, "", "", ""},
	} {
		d, ok := parseDeploymentRoute(c.path)
		if ok != c.ok || (ok && (d.name != c.name || d.action != c.act || d.opID != c.op || d.sub != "s" || d.rg != "g")) {
			t.Errorf("%s: %+v %v", c.path, d, ok)
		}
	}
}

func TestDeploymentNamesAndShapes(t *testing.T) {
	for name, ok := range map[string]bool{"a": true, "my-deploy_1.(x)": true, strings.Repeat("a", 64): true,
		strings.Repeat("a", 65): false, "": false, "a b": false, "a/b": false, "ä": false} {
		if validDeploymentName(name) != ok {
			t.Errorf("validDeploymentName(%q) = %v", name, !ok)
		}
	}
	for d, want := range map[time.Duration]string{0: "PT0S", 1500 * time.Millisecond: "PT1.5S", -time.Second: "PT0S", 90 * time.Second: "PT90S"} {
		if got := isoDuration(d); got != want {
			t.Errorf("isoDuration(%v) = %s, want %s", d, got, want)
		}
	}
	for in, want := range map[string]string{"string": "String", "securestring": "SecureString", "secureObject": "SecureObject", "INT": "Int", "": ""} {
		if got := capitalize(in); got != want {
			t.Errorf("capitalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDeploymentRequest(f *testing.F) {
	f.Add([]byte(`{"properties":{"mode":"Incremental","template":{"resources":[]},"parameters":{"a":{"value":1}}}}`))
	f.Add([]byte(`{"properties":{"mode":"complete","template":{}}}`))
	f.Add([]byte(`{"properties":{"mode":"Incremental","templateLink":{"uri":"x"}}}`))
	f.Add([]byte(`{"properties":{"mode":"Incremental","template":{},"parameters":{"a":{"reference":{}}}},"tags":{"x":1}}`))
	f.Add([]byte(`// c
{"Properties":{"Mode":"Incremental","Template":{},}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeDeploymentRequest(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != 400 {
				t.Fatalf("error %v is not a 400 ARM error", err)
			}
			return
		}
		if req.mode != "Incremental" || req.template == nil || !json.Valid(req.rawTpl) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

// The resources a deployment applies reach the registry routes with the
// caller of the deployment in their context.
func TestDeploy_ResourcesActAsTheCaller(t *testing.T) {
	e := newEnv(t)
	e.group()
	callers := make(chan string, 4)
	e.h.o.OnRegistryChange = func(ctx context.Context, _ string) { callers <- principalOf(ctx).ID }
	tpl := `{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"callerreg1","location":"westeurope","sku":{"name":"Basic"}}]}`
	wantState(t, e.deploy("caller", deployBody(tpl, "")), "Succeeded")
	if got := <-callers; got != testOwner.ID {
		t.Fatalf("the registry PUT ran as %q, want the deployment's caller", got)
	}
}

// A deployment accepted by a replica that died (its record Accepted, its
// lease held by a holder that never renews) is taken over by the replica
// asked about it once the lease expires, and runs exactly then.
func TestDeploy_TakeoverAfterLeaseExpiry(t *testing.T) {
	shortLease(t)
	e := newEnv(t)
	e.group()
	e.settle()
	ctx := t.Context()
	tpl := `{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"orphanreg1","location":"westeurope","sku":{"name":"Basic"}}]}`
	d := deploymentRoute{sub: sub, rg: "rg1", name: "orphan"}
	now := time.Now().UTC()
	rec := deploymentRecord{Mode: "Incremental", Template: json.RawMessage(tpl), Parameters: map[string]any{}, ProvisioningState: stateAccepted,
		RunID: "run1", Caller: testOwner, BaseURL: "http://example.com", Started: now, Timestamp: now}
	props, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PutResource(ctx, meta.Resource{ID: d.id(), Type: deploymentType, Name: d.name, Properties: props}); err != nil {
		t.Fatal(err)
	}
	l := e.store.(meta.Leaser)
	if ok, err := l.Acquire(ctx, "deployment:"+strings.ToLower(d.id()), "dead-replica", time.Second); err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	r := e.do("GET", deployPath+"orphan", deployAPI, "")
	e.want(r, 200, "", "")
	wantState(t, r, "Accepted")
	// While the dead replica's lease lasts nothing runs.
	time.Sleep(500 * time.Millisecond)
	e.want(e.do("GET", regPath+"orphanreg1", newest, ""), 404, "", "")
	start := time.Now()
	// Its Location says 202 until it ran, then 200 with the deployment.
	loc := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Resources/deployments/orphan/operationResults/run1"
	e.want(e.do("GET", loc, deployAPI, ""), 202, "", "")
	r = e.waitDeployment("orphan")
	wantState(t, r, "Succeeded")
	if got := e.do("GET", loc, deployAPI, ""); got.status != 200 || get(got.body, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("Location after the run: %d %s", got.status, got.raw)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("takeover took %v", time.Since(start))
	}
	e.want(e.do("GET", regPath+"orphanreg1", newest, ""), 200, "", "")
}

// Canceling a deployment that waits for its lease ends it Canceled; once the
// lease is free nothing is applied.
func TestDeploy_Cancel(t *testing.T) {
	shortLease(t)
	e := newEnv(t)
	e.group()
	e.settle()
	ctx := t.Context()
	d := deploymentRoute{sub: sub, rg: "rg1", name: "tocancel"}
	l := e.store.(meta.Leaser)
	if ok, err := l.Acquire(ctx, "deployment:"+strings.ToLower(d.id()), "busy-replica", time.Second); err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	tpl := `{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"cancelreg1","location":"westeurope","sku":{"name":"Basic"}}]}`
	put := e.do("PUT", deployPath+"tocancel", deployAPI, deployBody(tpl, ""))
	e.want(put, 201, "", "")
	e.want(e.do("PUT", deployPath+"tocancel", deployAPI, deployBody(tpl, "")), 409, "DeploymentActive", "")
	e.want(e.do("DELETE", deployPath+"tocancel", deployAPI, ""), 409, "DeploymentActive", "")
	e.want(e.do("POST", deployPath+"tocancel/cancel", deployAPI, ""), 204, "", "")
	st := e.waitStatus(put.header.Get("Azure-AsyncOperation"))
	if st["status"] != "Canceled" {
		t.Fatalf("status %v", st)
	}
	time.Sleep(1300 * time.Millisecond) // the lease expires; the runner finds the deployment ended
	e.want(e.do("GET", regPath+"cancelreg1", newest, ""), 404, "", "")
	wantState(t, e.waitDeployment("tocancel"), "Canceled")
}

// shortLease makes deployment leases short, so takeovers take a moment.
func shortLease(t *testing.T) {
	old := deploymentLeaseTTL
	deploymentLeaseTTL = 300 * time.Millisecond
	t.Cleanup(func() { deploymentLeaseTTL = old })
}

// A resource PUT answered with a long-running operation is followed: the
// Azure-AsyncOperation document's Failed is the resource's error, a
// Location that answers 200 is success and one that answers 404 an error.
// (The deployments' own status URLs stand in for a resource provider's.)
func TestDeploy_AwaitResourceOperation(t *testing.T) {
	e := newEnv(t)
	e.group()
	basic := `{"resources": [{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "awaitreg01",
	  "location": "westeurope", "sku": {"name": "Basic"}, "properties": {"publicNetworkAccess": "Disabled"}}]}`
	put := e.do("PUT", deployPath+"failing", deployAPI, deployBody(basic, ""))
	e.want(put, 201, "", "")
	e.waitDeployment("failing")
	ok := `{"resources": []}`
	e.deploy("fine", deployBody(ok, ""))

	rec := &deploymentRecord{BaseURL: "http://example.com"}
	d := &deployRun{h: e.h, rec: rec, ctx: withCaller(t.Context(), testOwner)}
	res := &armtemplate.Resource{ID: "/x", Name: "x"}
	lro := func(status int, hdr, url string) *recorder {
		r := &recorder{header: http.Header{}, status: status}
		r.header.Set(hdr, url)
		return r
	}
	derr := d.await(res, lro(201, "Azure-AsyncOperation", put.header.Get("Azure-AsyncOperation")))
	if derr == nil || derr.Code != "DeploymentFailed" || derr.Details[0].Code != "DisablingPublicNetworkAccessNotSupported" {
		t.Fatalf("async failure: %+v", derr)
	}
	if derr := d.await(res, lro(202, "Location", "http://example.com"+deployPath+"fine?api-version="+deployAPI)); derr != nil {
		t.Fatalf("Location poll: %+v", derr)
	}
	if derr := d.await(res, lro(202, "Location", "http://example.com"+deployPath+"nosuch?api-version="+deployAPI)); derr == nil || derr.Code != "DeploymentNotFound" || derr.Target != "/x" {
		t.Fatalf("Location poll of a missing resource: %+v", derr)
	}
	// A 201 without a header is done at once.
	if derr := d.await(res, &recorder{header: http.Header{}, status: 201}); derr != nil {
		t.Fatal(derr)
	}
}

// A Bicep file with a local module, compiled by package bicep as the CLI
// does: the module is an inner-scope nested deployment whose output the
// main file passes on.
func TestDeploy_BicepModule(t *testing.T) {
	e := newEnv(t)
	e.group()
	files := map[string]string{
		"main.bicep": `param prefix string = 'bic'
module reg 'modules/registry.bicep' = {
  name: 'registryModule'
  params: {
    name: '${prefix}modreg1'
  }
}
resource second 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: '${prefix}second1'
  location: resourceGroup().location
  sku: { name: 'Basic' }
  tags: { first: reg.outputs.loginServer }
}
output server string = reg.outputs.loginServer
`,
		"modules/registry.bicep": `param name string
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: resourceGroup().location
  sku: { name: 'Premium' }
  properties: { publicNetworkAccess: 'Disabled' }
}
output loginServer string = acr.properties.loginServer
`,
	}
	root, err := bicep.Compile([]byte(files["main.bicep"]), "main.bicep", bicep.WithLoader(func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("no file %s", p)
	}))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	r := e.deploy("bicepmain", deployBody(string(tpl), ""))
	wantState(t, r, "Succeeded")
	if get(r.body, "properties.outputs.server.value") != "bicmodreg1.moat.test" {
		t.Fatalf("outputs %s", r.raw)
	}
	second := e.do("GET", regPath+"bicsecond1", newest, "")
	if get(second.body, "tags.first") != "bicmodreg1.moat.test" {
		t.Fatalf("second registry %s", second.raw)
	}
	mod := e.do("GET", regPath+"bicmodreg1", newest, "")
	if get(mod.body, "properties.publicNetworkAccess") != "Disabled" {
		t.Fatalf("module's registry %s", mod.raw)
	}
}

// A nested deployment does not overwrite a running deployment of its name.
func TestDeploy_NestedDoesNotReplaceRunning(t *testing.T) {
	shortLease(t)
	e := newEnv(t)
	e.group()
	d := deploymentRoute{sub: sub, rg: "rg1", name: "busy"}
	if ok, err := e.store.(meta.Leaser).Acquire(t.Context(), "deployment:"+strings.ToLower(d.id()), "busy-replica", time.Second); err != nil || !ok {
		t.Fatalf("Acquire: %v %v", ok, err)
	}
	e.want(e.do("PUT", deployPath+"busy", deployAPI, deployBody(`{"resources":[]}`, "")), 201, "", "")
	tpl := `{"resources":[{"type":"Microsoft.Resources/deployments","apiVersion":"2021-04-01","name":"busy",
	  "properties":{"mode":"Incremental","template":{"resources":[]}}}]}`
	r := e.deploy("outer", deployBody(tpl, ""))
	wantDetail(t, r, "DeploymentActive", "still Accepted")
	wantState(t, e.waitDeployment("busy"), "Succeeded")
}

func TestWhatIfDiff(t *testing.T) {
	have := map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Premium", "tier": "Premium"},
		"properties": map[string]any{"publicNetworkAccess": "Enabled", "loginServer": "x.moat.test", "n": int64(2),
			"rules": []any{map[string]any{"value": "1.2.3.4"}}}}
	for _, c := range []struct {
		want  string
		paths string
	}{
		{`{"location":"WestEurope","sku":{"name":"premium"}}`, ""},
		{`{"properties":{"publicNetworkAccess":"disabled"}}`, "properties"},
		{`{"properties":{"n":2.0,"rules":[{"value":"1.2.3.4"}]}}`, ""},
		{`{"properties":{"rules":[{"value":"1.2.3.5"}]}}`, "properties"},
		{`{"tags":{"a":"b"}}`, "tags"},
		{`{"Properties":{"N":3}}`, "Properties"},
	} {
		var want map[string]any
		if err := json.Unmarshal([]byte(c.want), &want); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, d := range diffInto(have, want, "") {
			paths = append(paths, d.(map[string]any)["path"].(string))
		}
		if strings.Join(paths, ",") != c.paths {
			t.Errorf("%s: changed %v, want %q", c.want, paths, c.paths)
		}
	}
	merged := overlay(have, map[string]any{"Properties": map[string]any{"n": int64(3)}}).(map[string]any)
	if get(merged, "properties.n") != int64(3) || get(merged, "properties.loginServer") != "x.moat.test" {
		t.Fatalf("overlay %v", merged)
	}
}

// Secure parameters and outputs are used but never returned.
func TestDeploy_SecureValuesHidden(t *testing.T) {
	e := newEnv(t)
	e.group()
	tpl := `{"parameters":{"secret":{"type":"securestring"},"plain":{"type":"string","defaultValue":"p"}},
	  "resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"securereg1","location":"westeurope",
	    "sku":{"name":"Basic"},"tags":{"t":"[parameters('secret')]"}}],
	  "outputs":{"s":{"type":"securestring","value":"[parameters('secret')]"},"p":{"type":"string","value":"[parameters('plain')]"}}}`
	r := e.deploy("secure", deployBody(tpl, `{"secret":{"value":"hunter22"}}`))
	wantState(t, r, "Succeeded")
	if strings.Contains(r.raw, "hunter22") || get(r.body, "properties.parameters.secret.type") != "SecureString" ||
		get(r.body, "properties.outputs.s.type") != "SecureString" || get(r.body, "properties.outputs.p.value") != "p" {
		t.Fatalf("deployment shows %s", r.raw)
	}
	if reg := e.do("GET", regPath+"securereg1", newest, ""); get(reg.body, "tags.t") != "hunter22" {
		t.Fatalf("the secure value did not reach the resource: %s", reg.raw)
	}
}

// A caller without Microsoft.Resources/deployments/write on the group is
// refused before anything is stored or applied.
func TestDeploy_NeedsDeploymentsWrite(t *testing.T) {
	e := newEnv(t)
	e.group()
	tpl := `{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"readerreg1","location":"westeurope","sku":{"name":"Basic"}}]}`
	r := e.doAs("reader", "PUT", deployPath+"byreader", deployAPI, deployBody(tpl, ""))
	if r.status != 403 || get(r.body, "error.code") != "AuthorizationFailed" || !strings.Contains(r.raw, "Microsoft.Resources/deployments/write") {
		t.Fatalf("a Reader's deployment: %d %s", r.status, r.raw)
	}
	if g := e.do("GET", deployPath+"byreader", deployAPI, ""); g.status != 404 {
		t.Fatalf("the refused deployment was stored: %d %s", g.status, g.raw)
	}
}
