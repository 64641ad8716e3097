package arm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	deployPath = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Resources/deployments/"
	deployAPI  = "2021-04-01"
)

// deployBody wraps a template (JSON or JSONC text) and parameters (a JSON
// object of {"name": {"value": ...}}) as a deployment request.
func deployBody(template, params string) string {
	if params == "" {
		params = "{}"
	}
	return `{"properties":{"mode":"Incremental","template":` + template + `,"parameters":` + params + `}}`
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// settle waits, when the test ends and before its store closes, until the
// handler's deployment runners have released their leases.
func (e *env) settle() {
	e.t.Cleanup(func() {
		prefix := fmt.Sprintf("%p ", e.h)
		for range 500 {
			busy := false
			running.Lock()
			for k := range running.m {
				busy = busy || strings.HasPrefix(k, prefix)
			}
			running.Unlock()
			if !busy {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.t.Error("deployment runners still running at the end of the test")
	})
}

// deploy PUTs a deployment, checks the LRO answer and waits for its end.
func (e *env) deploy(name, body string) resp {
	e.t.Helper()
	e.settle()
	r := e.do("PUT", deployPath+name, deployAPI, body)
	if r.status != 201 && r.status != 200 {
		e.t.Fatalf("PUT deployment %s: %d %s", name, r.status, r.raw)
	}
	if got := get(r.body, "properties.provisioningState"); got != "Accepted" {
		e.t.Fatalf("PUT deployment answered provisioningState %v, want Accepted", got)
	}
	op := r.header.Get("Azure-AsyncOperation")
	if !strings.HasPrefix(op, "http://example.com"+deployPath+name+"/operationStatuses/") {
		e.t.Fatalf("Azure-AsyncOperation %q", op)
	}
	return e.waitDeployment(name)
}

func (e *env) waitDeployment(name string) resp {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", deployPath+name, deployAPI, "")
		e.want(r, 200, "", "")
		switch get(r.body, "properties.provisioningState") {
		case "Succeeded", "Failed", "Canceled":
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("deployment %s did not finish: %s", name, r.raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) operations(name string) []map[string]any {
	e.t.Helper()
	r := e.do("GET", deployPath+name+"/operations", deployAPI, "")
	e.want(r, 200, "", "")
	var out []map[string]any
	for _, v := range r.body["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func wantState(t *testing.T, r resp, state string) {
	t.Helper()
	if got := get(r.body, "properties.provisioningState"); got != state {
		t.Fatalf("deployment state %v, want %s: %s", got, state, r.raw)
	}
}

// wantDetail checks a failed deployment's DeploymentFailed wrapper and its
// first detail.
func wantDetail(t *testing.T, r resp, code, msg string) {
	t.Helper()
	wantState(t, r, "Failed")
	e, _ := get(r.body, "properties.error").(map[string]any)
	if e["code"] != "DeploymentFailed" {
		t.Fatalf("error %v, want DeploymentFailed", e)
	}
	details, _ := e["details"].([]any)
	if len(details) == 0 {
		t.Fatalf("no details in %v", e)
	}
	d := details[0].(map[string]any)
	if d["code"] != code || !strings.Contains(d["message"].(string), msg) {
		t.Fatalf("detail %v, want %s containing %q", d, code, msg)
	}
}

func TestDeploy_Seed000ExportPolicy(t *testing.T) {
	e := newEnv(t)
	e.group()
	r := e.deploy("exports-off", deployBody(readTestdata(t, "seed000-export-disabled.json"), ""))
	wantState(t, r, "Succeeded")
	reg := e.do("GET", regPath+"myregistry", preview, "")
	e.want(reg, 200, "", "")
	if get(reg.body, "properties.policies.exportPolicy.status") != "disabled" || get(reg.body, "properties.publicNetworkAccess") != "Disabled" ||
		get(reg.body, "location") != "centralus" {
		t.Fatalf("registry after the seed template: %s", reg.raw)
	}
	if res, _ := get(r.body, "properties.outputResources").([]any); len(res) != 1 ||
		!strings.EqualFold(res[0].(map[string]any)["id"].(string), regPath+"myregistry") {
		t.Fatalf("outputResources %v", get(r.body, "properties.outputResources"))
	}
	ops := e.operations("exports-off")
	if len(ops) != 1 || get(ops[0], "properties.provisioningState") != "Succeeded" || get(ops[0], "properties.statusCode") != "Created" ||
		get(ops[0], "properties.targetResource.resourceType") != "Microsoft.ContainerRegistry/registries" {
		t.Fatalf("operations %v", ops)
	}
	exp := e.do("POST", deployPath+"exports-off/exportTemplate", deployAPI, "")
	e.want(exp, 200, "", "")
	if get(exp.body, "template.contentVersion") != "1.0.0.0" {
		t.Fatalf("exportTemplate %s", exp.raw)
	}
	// The seed's second snippet turns exports on again (a full PUT: public
	// access returns to its default, Enabled).
	r = e.deploy("exports-on", deployBody(readTestdata(t, "seed000-export-enabled.json"), ""))
	wantState(t, r, "Succeeded")
	reg = e.do("GET", regPath+"myregistry", preview, "")
	if get(reg.body, "properties.policies.exportPolicy.status") != "enabled" || get(reg.body, "properties.publicNetworkAccess") != "Enabled" {
		t.Fatalf("registry after enabling exports: %s", reg.raw)
	}
	if ops := e.operations("exports-on"); get(ops[0], "properties.statusCode") != "OK" {
		t.Fatalf("update operation %v", ops)
	}
	// Both deployments are listed.
	list := e.do("GET", deployPath[:len(deployPath)-1], deployAPI, "")
	e.want(list, 200, "", "")
	if v, _ := list.body["value"].([]any); len(v) != 2 {
		t.Fatalf("list %s", list.raw)
	}
}

func TestDeploy_Seed003Firewall(t *testing.T) {
	e := newEnv(t)
	e.group()
	tpl := readTestdata(t, "seed003-firewall.json")
	// As published, the rule's value is a placeholder: the registry's own
	// validation fails the deployment and names it.
	r := e.deploy("firewall", deployBody(tpl, `{"registryName":{"value":"fwreg01"}}`))
	wantDetail(t, r, "InvalidIpRule", "_PublicIPv4Address_")
	e.want(e.do("GET", regPath+"fwreg01", newest, ""), 404, "", "")
	ops := e.operations("firewall")
	if len(ops) != 1 || get(ops[0], "properties.provisioningState") != "Failed" || get(ops[0], "properties.statusCode") != "BadRequest" ||
		get(ops[0], "properties.statusMessage.error.code") != "InvalidIpRule" {
		t.Fatalf("operations %v", ops)
	}
	// With an address it deploys, and the default location is the group's.
	r = e.deploy("firewall", deployBody(strings.ReplaceAll(tpl, "_PublicIPv4Address_", "203.0.113.7"), `{"registryName":{"value":"fwreg01"}}`))
	wantState(t, r, "Succeeded")
	// The new run's operations replace the failed run's.
	if ops := e.operations("firewall"); len(ops) != 1 || get(ops[0], "properties.provisioningState") != "Succeeded" {
		t.Fatalf("operations of the second run %v", ops)
	}
	reg := e.do("GET", regPath+"fwreg01", newest, "")
	if get(reg.body, "properties.networkRuleSet.defaultAction") != "Deny" || get(reg.body, "location") != "westeurope" || get(reg.body, "sku.name") != "Premium" {
		t.Fatalf("registry %s", reg.raw)
	}
	if p := get(r.body, "properties.parameters.registryName.value"); p != "fwreg01" || get(r.body, "properties.parameters.location.value") != "westeurope" {
		t.Fatalf("parameters %v", get(r.body, "properties.parameters"))
	}
}

func TestDeploy_InvalidTemplateIsSynchronous(t *testing.T) {
	e := newEnv(t)
	e.group()
	tpl := readTestdata(t, "seed003-firewall.json")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, deployBody(tpl, "")), 400, "InvalidTemplateParameter", "registryName")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, deployBody(tpl, `{"registryName":{"value":"abc"}}`)), 400, "InvalidTemplateParameter", "registryName")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, deployBody(`{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"[nosuch('x')]"}]}`, "")),
		400, "InvalidTemplate", "nosuch")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, deployBody(`{"variables":{"a":"[variables('b')]","b":"[variables('a')]"},"resources":[]}`, "")), 400, "InvalidTemplate", "circular")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, `{"properties":{"mode":"Incremental","templateLink":{"uri":"https://example.com/t.json"}}}`), 400, "TemplateLinkNotSupported", "")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, `{"properties":{"mode":"Complete","template":{"resources":[]}}}`), 400, "InvalidDeploymentMode", "Complete")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, `{"properties":{"template":{"resources":[]}}}`), 400, "InvalidDeploymentMode", "")
	e.want(e.do("PUT", deployPath+"d1", deployAPI, `{"properties":`), 400, "InvalidRequestContent", "")
	e.want(e.do("PUT", deployPath+"d1", "", deployBody(`{"resources":[]}`, "")), 400, "MissingApiVersionParameter", "")
	e.want(e.do("PUT", deployPath+"bad$name", deployAPI, deployBody(`{"resources":[]}`, "")), 400, "InvalidDeploymentName", "")
	e.want(e.do("PUT", "/subscriptions/"+sub+"/resourceGroups/nope/providers/Microsoft.Resources/deployments/d1", deployAPI, deployBody(`{"resources":[]}`, "")),
		404, "ResourceGroupNotFound", "nope")
	big := `{"resources":[{"copy":{"name":"c","count":10000},"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"[concat('r', copyIndex())]"}]}`
	e.want(e.do("PUT", deployPath+"d1", deployAPI, deployBody(big, "")), 400, "InvalidTemplate", "")
	e.want(e.do("GET", deployPath+"d1", deployAPI, ""), 404, "DeploymentNotFound", "d1")
	// Validate evaluates without applying.
	v := e.do("POST", deployPath+"v1/validate", deployAPI, deployBody(tpl, `{"registryName":{"value":"valreg01"}}`))
	e.want(v, 200, "", "")
	if res, _ := get(v.body, "properties.validatedResources").([]any); len(res) != 1 {
		t.Fatalf("validate %s", v.raw)
	}
	e.want(e.do("GET", regPath+"valreg01", newest, ""), 404, "", "")
	e.want(e.do("POST", deployPath+"v1/validate", deployAPI, deployBody(tpl, "")), 400, "InvalidTemplateParameter", "registryName")
}

// A template exercising condition, copy, dependsOn against template order,
// reference() of a resource deployed earlier, and an inner-scope nested
// deployment whose output the outer template reads.
const orderTemplate = `{
  "parameters": {"prefix": {"type": "string", "defaultValue": "ord"}, "count": {"type": "int", "allowedValues": [2, 3]}},
  "variables": {"second": "[concat(parameters('prefix'), 'second')]"},
  "resources": [
    {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "[variables('second')]",
     "location": "westeurope", "sku": {"name": "Standard"},
     "tags": {"firstLogin": "[reference(resourceId('Microsoft.ContainerRegistry/registries', concat(parameters('prefix'), 'first'))).loginServer]"},
     "dependsOn": ["[resourceId('Microsoft.ContainerRegistry/registries', concat(parameters('prefix'), 'first'))]"]},
    {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "[concat(parameters('prefix'), 'first')]",
     "location": "westeurope", "sku": {"name": "Basic"}},
    {"condition": "[equals(parameters('count'), 99)]", "type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
     "name": "[concat(parameters('prefix'), 'never')]", "location": "westeurope", "sku": {"name": "Basic"}},
    {"copy": {"name": "loop", "count": "[parameters('count')]"}, "type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
     "name": "[concat(parameters('prefix'), 'loop', copyIndex(1))]", "location": "westeurope", "sku": {"name": "Basic"}},
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "name": "inner",
     "dependsOn": ["loop"],
     "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
       "parameters": {"n": {"value": "[concat(parameters('prefix'), 'nested')]"}},
       "template": {"parameters": {"n": {"type": "string"}},
         "resources": [{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "[parameters('n')]",
                        "location": "westeurope", "sku": {"name": "Basic"}}],
         "outputs": {"server": {"type": "string", "value": "[reference(parameters('n')).loginServer]"}}}}}
  ],
  "outputs": {
    "second": {"type": "string", "value": "[reference(variables('second')).loginServer]"},
    "nested": {"type": "string", "value": "[reference('inner').outputs.server.value]"},
    "loops": {"type": "int", "value": "[parameters('count')]"}
  }
}`

func TestDeploy_OrderConditionCopyReferenceNested(t *testing.T) {
	e := newEnv(t)
	e.group()
	r := e.deploy("order", deployBody(orderTemplate, `{"count":{"value":2}}`))
	wantState(t, r, "Succeeded")
	outs := map[string]any{
		"second": "ordsecond.moat.test", "nested": "ordnested.moat.test",
	}
	for k, want := range outs {
		if got := get(r.body, "properties.outputs."+k+".value"); got != want {
			t.Fatalf("output %s = %v, want %v (%s)", k, got, want, r.raw)
		}
	}
	if get(r.body, "properties.outputs.second.type") != "String" || get(r.body, "properties.outputs.loops.value") != float64(2) {
		t.Fatalf("outputs %v", get(r.body, "properties.outputs"))
	}
	var names []string
	for _, op := range e.operations("order") {
		names = append(names, get(op, "properties.targetResource.resourceName").(string))
	}
	want := "ordfirst ordsecond ordloop1 ordloop2 ordnested inner"
	if strings.Join(names, " ") != want {
		t.Fatalf("operations in order %v, want %s", names, want)
	}
	e.want(e.do("GET", regPath+"ordnever", newest, ""), 404, "", "")
	second := e.do("GET", regPath+"ordsecond", newest, "")
	if get(second.body, "tags.firstLogin") != "ordfirst.moat.test" {
		t.Fatalf("reference() of an earlier resource: %s", second.raw)
	}
	nested := e.do("GET", deployPath+"inner", deployAPI, "")
	e.want(nested, 200, "", "")
	if get(nested.body, "properties.outputs.server.value") != "ordnested.moat.test" {
		t.Fatalf("nested deployment record %s", nested.raw)
	}
	// A value outside allowedValues is refused before anything runs.
	e.want(e.do("PUT", deployPath+"order2", deployAPI, deployBody(orderTemplate, `{"count":{"value":5}}`)), 400, "InvalidTemplateParameter", "count")
}

// Without dependsOn, reference() still orders the referenced resource
// first (ARM's implicit dependency), and languageVersion 2.0 symbolic names
// and existing resources work.
func TestDeploy_ImplicitReferenceAndSymbolic(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("symexisting", "Basic")
	tpl := `{"languageVersion": "2.0",
	  "resources": {
	    "b": {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "symbbb",
	          "location": "westeurope", "sku": {"name": "Basic"}, "tags": {"a": "[reference('a').loginServer]", "old": "[reference('old').loginServer]"}},
	    "a": {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "symaaa",
	          "location": "westeurope", "sku": {"name": "Basic"}},
	    "old": {"existing": true, "type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "symexisting"}
	  },
	  "outputs": {"id": {"type": "string", "value": "[resourceId('Microsoft.ContainerRegistry/registries', 'symbbb')]"}}}`
	r := e.deploy("sym", deployBody(tpl, ""))
	wantState(t, r, "Succeeded")
	b := e.do("GET", regPath+"symbbb", newest, "")
	if get(b.body, "tags.a") != "symaaa.moat.test" || get(b.body, "tags.old") != "symexisting.moat.test" {
		t.Fatalf("registry b %s", b.raw)
	}
	ops := e.operations("sym")
	if len(ops) != 2 || get(ops[0], "properties.targetResource.resourceName") != "symaaa" {
		t.Fatalf("operations %v", ops)
	}
}

func TestDeploy_FailedResourceFailsDeployment(t *testing.T) {
	e := newEnv(t)
	e.group()
	tpl := `{"resources": [
	  {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "keptreg01", "location": "westeurope", "sku": {"name": "Basic"}},
	  {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "stor1", "location": "westeurope", "dependsOn": ["keptreg01"]},
	  {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "neverreg01", "location": "westeurope", "sku": {"name": "Basic"},
	   "dependsOn": ["stor1"]}
	]}`
	r := e.deploy("fails", deployBody(tpl, ""))
	wantDetail(t, r, "InvalidResourceType", "Microsoft.Storage/storageAccounts")
	// Incremental: what was applied before stays; what came after never ran.
	e.want(e.do("GET", regPath+"keptreg01", newest, ""), 200, "", "")
	e.want(e.do("GET", regPath+"neverreg01", newest, ""), 404, "", "")
	if ops := e.operations("fails"); len(ops) != 2 {
		t.Fatalf("operations %v", ops)
	}

	// A registry validation error: the detail is the registry's own error.
	basic := `{"resources": [{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "basicreg01",
	  "location": "westeurope", "sku": {"name": "Basic"}, "properties": {"publicNetworkAccess": "Disabled"}}]}`
	r = e.deploy("basic", deployBody(basic, ""))
	wantDetail(t, r, "DisablingPublicNetworkAccessNotSupported", "")

	// The async-operation document says Failed with the same error; a
	// finished deployment cannot be canceled; delete removes the record only.
	put := e.do("PUT", deployPath+"basic", deployAPI, deployBody(basic, ""))
	e.want(put, 200, "", "")
	st := e.waitStatus(put.header.Get("Azure-AsyncOperation"))
	if st["status"] != "Failed" || get(st, "error.code") != "DeploymentFailed" {
		t.Fatalf("status %v", st)
	}
	loc := strings.TrimPrefix(put.header.Get("Location"), "http://example.com")
	if !strings.Contains(loc, "/operationResults/") {
		t.Fatalf("Location %q", put.header.Get("Location"))
	}
	e.want(e.do("GET", loc, "", ""), 409, "DeploymentFailed", "")
	e.want(e.do("GET", strings.Replace(loc, "/operationResults/", "/operationResults/x", 1), "", ""), 404, "OperationNotFound", "")
	e.want(e.do("POST", deployPath+"basic/cancel", deployAPI, ""), 409, "DeploymentCannotBeCancelled", "")
	e.want(e.do("HEAD", deployPath+"basic", deployAPI, ""), 204, "", "")
	e.want(e.do("DELETE", deployPath+"basic", deployAPI, ""), 204, "", "")
	e.want(e.do("HEAD", deployPath+"basic", deployAPI, ""), 404, "", "")
	e.want(e.do("GET", deployPath+"basic", deployAPI, ""), 404, "DeploymentNotFound", "")
	e.want(e.do("GET", regPath+"keptreg01", newest, ""), 200, "", "")
}

func (e *env) waitStatus(url string) map[string]any {
	e.t.Helper()
	path := strings.TrimPrefix(url, "http://example.com")
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do("GET", path, "", "")
		e.want(r, 200, "", "")
		switch r.body["status"] {
		case "Succeeded", "Failed", "Canceled":
			return r.body
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("operation did not finish: %s", r.raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
