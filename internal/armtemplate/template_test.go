package armtemplate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t testing.TB, name string) *Template {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := ParseTemplate(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tpl
}

func prop(t testing.TB, v any, path string) any {
	t.Helper()
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %T is not an object at %q", path, v, k)
		}
		v, ok = lookupKey(m, k)
		if !ok {
			t.Fatalf("%s: no %q", path, k)
		}
	}
	return v
}

var testCtx = Options{SubscriptionID: "00000000-0000-0000-0000-000000000001", ResourceGroup: "rg1", Location: "westeurope", DeploymentName: "d1"}

func TestSeedFirewallTemplate(t *testing.T) {
	tpl := load(t, "firewall.json")
	opts := testCtx
	opts.Parameters = map[string]any{"registryName": "seedregistry"}
	res, err := Evaluate(tpl, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 1 || len(res.Order) != 1 {
		t.Fatalf("resources %d, order %v", len(res.Resources), res.Order)
	}
	r := res.Resources[0]
	if r.ID != "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/seedregistry" {
		t.Errorf("id = %s", r.ID)
	}
	if r.Location != "westeurope" || prop(t, r.SKU, "name") != "Premium" || r.APIVersion != "2023-01-01-preview" {
		t.Errorf("location %v sku %v api %s", r.Location, r.SKU, r.APIVersion)
	}
	if got := prop(t, r.Properties, "networkRuleSet.defaultAction"); got != "Deny" {
		t.Errorf("defaultAction = %v", got)
	}
	if r.Pos != (Pos{Line: 16, Col: 5}) {
		t.Errorf("resource position = %v, want 16:5", r.Pos)
	}
	if p, _ := tpl.Pos("resources[0].properties.networkRuleSet"); p != (Pos{Line: 27, Col: 27}) {
		t.Errorf("networkRuleSet at %v, want 27:27", p)
	}
	// Deploy mode needs registryName; check mode makes it Unknown.
	if _, err := Evaluate(tpl, testCtx); !errors.Is(err, ErrMissingParameter) || !strings.Contains(err.Error(), "registryName") {
		t.Errorf("deploy without registryName: %v", err)
	}
	check := testCtx
	check.Mode = ModeCheck
	res, err = Evaluate(tpl, check)
	if err != nil {
		t.Fatal(err)
	}
	r = res.Resources[0]
	if r.NameUnknown == nil || r.NameUnknown.Expr != "parameters('registryName')" || r.ID != "" {
		t.Errorf("name unknown = %+v id %q", r.NameUnknown, r.ID)
	}
	if got := prop(t, r.Properties, "networkRuleSet.defaultAction"); got != "Deny" {
		t.Errorf("check mode defaultAction = %v", got)
	}
}

func TestSeedExportPolicyTemplate(t *testing.T) {
	res, err := Evaluate(load(t, "export-policy.json"), testCtx)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Resources[0]
	if got := prop(t, r.Properties, "policies.exportPolicy.status"); got != "disabled" {
		t.Errorf("exportPolicy.status = %v", got)
	}
	if got := prop(t, r.Properties, "publicNetworkAccess"); got != "disabled" {
		t.Errorf("publicNetworkAccess = %v", got)
	}
}

func TestPremiumRegistryJSONC(t *testing.T) {
	tpl := load(t, "premium.jsonc")
	res, err := Evaluate(tpl, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 3 {
		t.Fatalf("got %d resources", len(res.Resources))
	}
	reg, repl, diag := res.Resources[0], res.Resources[1], res.Resources[2]
	wantName := "acr" + UniqueString("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1")
	if reg.Name != wantName {
		t.Errorf("name = %s, want %s", reg.Name, wantName)
	}
	rules := prop(t, reg.Properties, "networkRuleSet.ipRules").([]any)
	if len(rules) != 2 || prop(t, rules[1], "value") != "198.51.100.7" || prop(t, rules[0], "action") != "Allow" {
		t.Errorf("ipRules = %v", rules)
	}
	if prop(t, reg.Properties, "adminUserEnabled") != false || prop(t, reg.Properties, "policies.retentionPolicy.days") != int64(7) {
		t.Errorf("properties = %v", reg.Properties)
	}
	if prop(t, reg.Tags, "owner") != "platform" || prop(t, reg.Identity, "type") != "SystemAssigned" {
		t.Errorf("tags %v identity %v", reg.Tags, reg.Identity)
	}
	if repl.Type != "Microsoft.ContainerRegistry/registries/replications" || repl.Name != wantName+"/westus" ||
		repl.ID != reg.ID+"/replications/westus" || repl.Parent != 0 {
		t.Errorf("child: %s %s %s parent %d", repl.Type, repl.Name, repl.ID, repl.Parent)
	}
	if diag.ID != reg.ID+"/providers/Microsoft.Insights/diagnosticSettings/audit" {
		t.Errorf("diagnostic settings id = %s", diag.ID)
	}
	if fmt.Sprint(diag.DependsOn) != "[0]" || fmt.Sprint(repl.DependsOn) != "[0]" {
		t.Errorf("dependsOn: diag %v repl %v", diag.DependsOn, repl.DependsOn)
	}
	if fmt.Sprint(res.Order) != "[0 1 2]" {
		t.Errorf("order = %v", res.Order)
	}
	out := res.Outputs["loginServer"]
	if u, ok := out.Value.(*Unknown); !ok || !strings.HasPrefix(u.Expr, "reference(") || u.Path != "outputs.loginServer.value" {
		t.Errorf("loginServer output = %#v", out.Value)
	}
	if res.Outputs["id"].Value != reg.ID {
		t.Errorf("id output = %v", res.Outputs["id"].Value)
	}
	// The BOM does not shift columns: line 1 starts after it.
	if p, _ := tpl.Pos("resources[0].properties.networkRuleSet.defaultAction"); p != (Pos{Line: 31, Col: 28}) {
		t.Errorf("defaultAction at %v", p)
	}
}

func TestCopyLoopWithConditionAndParameterFile(t *testing.T) {
	tpl := load(t, "loop.json")
	data, err := os.ReadFile("testdata/loop.parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	pf, err := ParseParameters(data)
	if err != nil {
		t.Fatal(err)
	}
	if pf.Template != "loop.json" || pf.Values["prefix"] != "corpacr" {
		t.Fatalf("parameter file: %+v", pf)
	}
	if u, ok := pf.Values["secret"].(*Unknown); !ok || !strings.Contains(u.Expr, `"s"`) {
		t.Fatalf("key vault reference = %#v", pf.Values["secret"])
	}
	delete(pf.Values, "secret") // not declared by loop.json
	opts := testCtx
	opts.Parameters = pf.Values
	res, err := Evaluate(tpl, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 4 {
		t.Fatalf("got %d resources", len(res.Resources))
	}
	for i := 0; i < 3; i++ {
		r := res.Resources[i]
		want := fmt.Sprintf("corpacr%02d", i+1)
		if r.Name != want || r.CopyName != "registryLoop" || r.CopyIndex != i || !r.Deployed() {
			t.Errorf("instance %d: %s %s %d", i, r.Name, r.CopyName, r.CopyIndex)
		}
		if r.Path != "resources[0]" {
			t.Errorf("instance path %s", r.Path)
		}
	}
	// Serial with batchSize 2: the third instance waits for the first two.
	if fmt.Sprint(res.Resources[2].DependsOn) != "[0 1]" || len(res.Resources[0].DependsOn) != 0 {
		t.Errorf("serial deps: %v %v", res.Resources[0].DependsOn, res.Resources[2].DependsOn)
	}
	pe := res.Resources[3]
	if fmt.Sprint(pe.DependsOn) != "[0 1 2]" {
		t.Errorf("dependsOn copy loop name: %v", pe.DependsOn)
	}
	if fmt.Sprint(res.Order) != "[0 1 2 3]" {
		t.Errorf("order %v", res.Order)
	}
	if got := res.Outputs["names"].Value; fmt.Sprint(got) != "[corpacr01 corpacr02 corpacr03]" {
		t.Errorf("names output = %v", got)
	}
	if res.Outputs["hidden"].Condition || res.Outputs["hidden"].Value != nil {
		t.Errorf("hidden output = %+v", res.Outputs["hidden"])
	}
	// Condition false: resources stay listed, are not deployed, and the
	// private endpoint no longer waits for them.
	opts.Parameters = map[string]any{"prefix": "x", "deploy": false}
	res, err = Evaluate(tpl, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resources[0].Deployed() || res.Resources[0].Body != nil || fmt.Sprint(res.Order) != "[3]" {
		t.Errorf("condition false: deployed=%v order=%v", res.Resources[0].Deployed(), res.Order)
	}
	// count 0 is allowed: no instances.
	res, err = evalJSON(t, `{"resources": [{"type": "A.B/c", "name": "[concat('r', copyIndex())]", "copy": {"name": "l", "count": 0}}]}`, testCtx)
	if err != nil || len(res.Resources) != 0 {
		t.Errorf("count 0: %v %v", res, err)
	}
}

func TestSymbolicNames(t *testing.T) {
	res, err := Evaluate(load(t, "symbolic.json"), testCtx)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]*Resource{}
	for _, r := range res.Resources {
		by[r.Symbolic] = r
	}
	if !by["workspace"].Existing || by["workspace"].Deployed() {
		t.Error("existing resource is deployed")
	}
	diag := by["diagnostics"]
	if diag.ID != by["registry"].ID+"/providers/Microsoft.Insights/diagnosticSettings/audit" {
		t.Errorf("scoped id = %s", diag.ID)
	}
	var order []string
	for _, i := range res.Order {
		order = append(order, res.Resources[i].Symbolic)
	}
	if strings.Join(order, ",") != "registry,diagnostics" {
		t.Errorf("order = %v", order)
	}
	if !IsUnknown(res.Outputs["loginServer"].Value) {
		t.Errorf("reference to a symbolic name: %v", res.Outputs["loginServer"].Value)
	}
}

// evalJSON evaluates an inline template text.
func evalJSON(t *testing.T, text string, opts Options) (*Result, error) {
	t.Helper()
	tpl, err := ParseTemplate([]byte(text))
	if err != nil {
		return nil, err
	}
	return Evaluate(tpl, opts)
}

func TestEvaluationErrors(t *testing.T) {
	cases := []struct {
		name, tpl string
		params    map[string]any
		want      error
		mentions  []string
	}{
		{"unknown function", `{"resources": [
  {"type": "Microsoft.ContainerRegistry/registries", "name": "[bogus('x')]"}]}`,
			nil, ErrUnknownFunction, []string{"resources[0].name", "line 2", "[bogus('x')]", "bogus"}},
		{"wrong arity", `{"variables": {"v": "[toLower()]"}}`, nil, ErrArity, []string{"variables.v", "toLower"}},
		{"type mismatch", `{"variables": {"v": "[add('a', 1)]"}}`, nil, ErrType, []string{"variables.v", "add"}},
		{"parameter of the wrong type", `{"parameters": {"adminUserEnabled": {"type": "bool"}}}`,
			map[string]any{"adminUserEnabled": "yes"}, ErrParameterType, []string{"parameters.adminUserEnabled", "bool", "String"}},
		{"int given as string", `{"parameters": {"n": {"type": "int"}}}`, map[string]any{"n": "3"}, ErrParameterType, []string{"parameters.n"}},
		{"not in allowedValues", `{"parameters": {"sku": {"type": "string", "allowedValues": ["Basic", "Premium"]}}}`,
			map[string]any{"sku": "Gold"}, ErrParameterValue, []string{"Gold", "allowed"}},
		{"array element not allowed", `{"parameters": {"z": {"type": "array", "allowedValues": ["1", "2", "3"]}}}`,
			map[string]any{"z": []any{"1", "4"}}, ErrParameterValue, []string{`"4"`}},
		{"below minValue", `{"parameters": {"d": {"type": "int", "minValue": 1}}}`, map[string]any{"d": 0}, ErrParameterValue, []string{"minValue"}},
		{"above maxLength", `{"parameters": {"s": {"type": "string", "maxLength": 3}}}`, map[string]any{"s": "abcd"}, ErrParameterValue, []string{"maxLength"}},
		{"undeclared parameter", `{"parameters": {}}`, map[string]any{"extra": 1}, ErrUnknownParameter, []string{"extra"}},
		{"circular variables", `{"variables": {"a": "[variables('b')]", "b": "[concat(variables('c'), 'x')]", "c": "[variables('a')]"}}`,
			nil, ErrCycle, []string{"a → b → c → a"}},
		{"self-referencing variable", `{"variables": {"me": "[concat('x', variables('me'))]"}}`, nil, ErrCycle, []string{"me → me"}},
		{"copy count 10000", `{"resources": [{"type": "Microsoft.ContainerRegistry/registries", "name": "[concat('r', copyIndex())]",
  "copy": {"name": "l", "count": 10000}}]}`, nil, ErrLimit, []string{"resources[0].copy.count", "10000", "800"}},
		{"negative copy count", `{"resources": [{"type": "A.B/c", "name": "x", "copy": {"name": "l", "count": -1}}]}`, nil, ErrInvalidArgument, []string{"negative"}},
		{"too many resources overall", `{"resources": [
  {"type": "A.B/c", "name": "[concat('a', copyIndex())]", "copy": {"name": "l1", "count": 800}},
  {"type": "A.B/c", "name": "[concat('b', copyIndex())]", "copy": {"name": "l2", "count": 800}}]}`, nil, ErrLimit, []string{"more than 800 resources"}},
		{"circular dependsOn", `{"resources": [
  {"type": "A.B/c", "name": "one", "dependsOn": ["two"]},
  {"type": "A.B/c", "name": "two", "dependsOn": ["[resourceId('A.B/c', 'one')]"]}]}`, nil, ErrCycle, []string{`"one"`, `"two"`}},
		{"dependsOn nothing", `{"resources": [{"type": "A.B/c", "name": "one", "dependsOn": ["ghost"]}]}`, nil, ErrUnresolvedDepends, []string{"resources[0].dependsOn[0]", "ghost"}},
		{"name segments", `{"resources": [{"type": "A.B/c/d", "name": "one"}]}`, nil, ErrInvalidArgument, []string{"2 name segment"}},
		{"condition not bool", `{"resources": [{"type": "A.B/c", "name": "x", "condition": "yes"}]}`, nil, ErrType, []string{"condition"}},
		{"syntax error", `{"variables": {"v": "[concat('a']"}}`, nil, nil, []string{"variables.v", "offset"}},
		{"output type", `{"outputs": {"o": {"type": "int", "value": "x"}}}`, nil, ErrType, []string{"outputs.o"}},
		{"copyIndex outside loop", `{"variables": {"v": "[copyIndex()]"}}`, nil, ErrInvalidTemplate, []string{"outside"}},
		{"deep expression", `{"variables": {"v": "[` + strings.Repeat("concat(", 200) + `'a'` + strings.Repeat(")", 200) + `]"}}`, nil, nil, []string{"deeper than"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := testCtx
			opts.Parameters = c.params
			start := time.Now()
			_, err := evalJSON(t, c.tpl, opts)
			if time.Since(start) > time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %q is not %v", err, c.want)
			}
			for _, m := range c.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if _, ok := AsError(err); !ok {
				t.Errorf("error %T is not an *Error", err)
			}
		})
	}
}

func TestInvalidJSONIsLocated(t *testing.T) {
	_, err := ParseTemplate([]byte("{\n  \"resources\": [\n    {\"type\": \"x\",}\n    {\"a\": 1}\n  ]\n}"))
	var je *JSONError
	if !errors.As(err, &je) || je.Pos.Line != 4 || !errors.Is(err, ErrJSON) {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseTemplate([]byte(`[1, 2]`)); !errors.Is(err, ErrInvalidTemplate) {
		t.Fatalf("array template: %v", err)
	}
}

func TestVariableCopyAndPropertyCopy(t *testing.T) {
	res, err := evalJSON(t, `{
  "variables": {
    "copy": [{"name": "disks", "count": 2, "input": {"lun": "[copyIndex('disks')]", "size": "[mul(10, copyIndex('disks', 1))]"}}],
    "first": "[variables('disks')[0].size]"
  },
  "resources": [{
    "type": "A.B/c", "name": "[concat('vm', copyIndex())]", "copy": {"name": "vms", "count": 2},
    "properties": {"copy": [{"name": "nics", "count": 2, "input": {"id": "[concat(string(copyIndex()), '-', string(copyIndex('nics')))]"}}]}
  }]
}`, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Variables["disks"]) != "[map[lun:0 size:10] map[lun:1 size:20]]" || res.Variables["first"] != int64(10) {
		t.Errorf("variables = %v", res.Variables)
	}
	nics := prop(t, res.Resources[1].Properties, "nics")
	if fmt.Sprint(nics) != "[map[id:1-0] map[id:1-1]]" {
		t.Errorf("nics = %v", nics)
	}
}

func TestUnknownConditionAndCountInCheckMode(t *testing.T) {
	text := `{
  "parameters": {"n": {"type": "int"}, "on": {"type": "bool"}},
  "resources": [
    {"type": "Microsoft.ContainerRegistry/registries", "name": "[concat('r', copyIndex())]", "copy": {"name": "l", "count": "[parameters('n')]"},
     "properties": {"adminUserEnabled": "[parameters('on')]"}},
    {"type": "Microsoft.ContainerRegistry/registries", "name": "fixed", "condition": "[parameters('on')]", "properties": {"x": 1}}
  ]
}`
	check := testCtx
	check.Mode = ModeCheck
	res, err := evalJSON(t, text, check)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resources) != 2 || res.Resources[0].NameUnknown == nil || res.Resources[0].CopyIndex != -1 {
		t.Fatalf("unknown count: %+v", res.Resources[0])
	}
	if u := res.Resources[1].ConditionUnknown; u == nil || u.Expr != "parameters('on')" || !res.Resources[1].Deployed() {
		t.Errorf("unknown condition: %+v", res.Resources[1])
	}
	if !IsUnknown(prop(t, res.Resources[0].Properties, "adminUserEnabled")) {
		t.Error("adminUserEnabled should be Unknown")
	}
	if _, err := evalJSON(t, text, testCtx); !errors.Is(err, ErrMissingParameter) {
		t.Errorf("deploy mode: %v", err)
	}
}

func TestCoerceParameter(t *testing.T) {
	tpl, err := ParseTemplate([]byte(`{"parameters": {"n": {"type": "int"}, "b": {"type": "Bool"}, "a": {"type": "array"}, "s": {"type": "string"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, text string
		want       any
		ok         bool
	}{
		{"n", "5", int64(5), true}, {"n", "x", nil, false}, {"b", "True", true, true}, {"b", "yes", nil, false},
		{"a", `["x"]`, []any{"x"}, true}, {"s", "5", "5", true}, {"zz", "1", nil, false},
	} {
		got, err := CoerceParameter(tpl, c.name, c.text)
		if (err == nil) != c.ok || (c.ok && !deepEqual(got, c.want)) {
			t.Errorf("%s=%s: %v %v", c.name, c.text, got, err)
		}
	}
}

func TestNestedDeployments(t *testing.T) {
	text := `{
  "parameters": {"name": {"type": "string", "defaultValue": "outeracr"}},
  "variables": {"sku": "Premium"},
  "resources": [
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "outerScoped",
     "properties": {"mode": "Incremental", "template": {
        "resources": [{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
          "name": "[parameters('name')]", "sku": {"name": "[variables('sku')]"},
          "properties": {"publicNetworkAccess": "Disabled"}}]}}},
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "innerScoped",
     "resourceGroup": "otherrg",
     "properties": {"mode": "Incremental", "resourceGroup": "otherrg",
       "expressionEvaluationOptions": {"scope": "inner"},
       "parameters": {"registryName": {"value": "[concat(parameters('name'), '2')]"}},
       "template": {
        "parameters": {"registryName": {"type": "string"}},
        "resources": [{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
          "name": "[parameters('registryName')]", "properties": {"adminUserEnabled": "[bogus()]"}}]}}}
  ]
}`
	_, err := evalJSON(t, text, testCtx)
	if !errors.Is(err, ErrUnknownFunction) || !strings.Contains(err.Error(), "resources[1].properties.template.resources[0].properties.adminUserEnabled") ||
		!strings.Contains(err.Error(), "line 18, column 86") {
		t.Fatalf("nested error not located: %v", err)
	}
	res, err := evalJSON(t, strings.Replace(text, "[bogus()]", "[resourceGroup().name]", 1), testCtx)
	if err != nil {
		t.Fatal(err)
	}
	outer := res.Resources[0].Deployment
	if outer == nil || len(outer.Resources) != 1 || outer.Resources[0].Name != "outeracr" || prop(t, outer.Resources[0].SKU, "name") != "Premium" {
		t.Fatalf("outer-scope nested: %+v", outer)
	}
	if outer.Resources[0].Path != "resources[0].properties.template.resources[0]" {
		t.Errorf("nested path %s", outer.Resources[0].Path)
	}
	inner := res.Resources[1].Deployment.Resources[0]
	if inner.Name != "outeracr2" || !strings.Contains(inner.ID, "/resourceGroups/otherrg/") || prop(t, inner.Properties, "adminUserEnabled") != "otherrg" {
		t.Errorf("inner-scope nested: %s %s %v", inner.Name, inner.ID, inner.Properties)
	}
	var all []string
	res.Walk(func(r *Resource) { all = append(all, r.Name) })
	if strings.Join(all, ",") != "outerScoped,outeracr,innerScoped,outeracr2" {
		t.Errorf("walk = %v", all)
	}
}

func TestSharedStructureBlowUpIsBounded(t *testing.T) {
	var vars []string
	vars = append(vars, `"v0": "[createArray(1)]"`)
	for i := 1; i <= 60; i++ {
		vars = append(vars, fmt.Sprintf(`"v%d": "[createArray(variables('v%d'), variables('v%d'))]"`, i, i-1, i-1))
	}
	text := `{"variables": {` + strings.Join(vars, ",") + `}, "outputs": {"o": {"type": "bool", "value": "[equals(variables('v60'), variables('v60'))]"}}}`
	start := time.Now()
	opts := testCtx
	opts.MaxWork = 2_000_000
	_, err := evalJSON(t, text, opts)
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// Quadratic functions run out of work, not of time.
	start = time.Now()
	_, err = EvaluateString(nil, "[length(intersection(range(0, 10000), range(5000, 10000)))]", Options{MaxWork: 1_000_000})
	if !errors.Is(err, ErrLimit) || time.Since(start) > 2*time.Second {
		t.Errorf("intersection: %v after %v", err, time.Since(start))
	}
	got, err := EvaluateString(nil, "[length(union(range(0, 10000), range(5000, 10000), range(20000, 10000)))]", Options{})
	if err != nil || got != int64(25000) {
		t.Errorf("large union: %v %v", got, err)
	}
	got, err = EvaluateString(nil, "[length(union(range(0, 100), range(50, 100)))]", Options{})
	if err != nil || got != int64(150) {
		t.Errorf("small union: %v %v", got, err)
	}
}

func TestCaseInsensitiveTemplateAndParameterNames(t *testing.T) {
	opts := testCtx
	opts.Parameters = map[string]any{"REGISTRYNAME": "upperacr"}
	res, err := evalJSON(t, `{
  "Parameters": {"registryName": {"Type": "String"}, "opt": {"type": "string", "nullable": true}, "typed": {"$ref": "#/definitions/x", "defaultValue": {"a": 1}}},
  "Resources": [{"Type": "Microsoft.ContainerRegistry/registries", "Name": "[Parameters('registryname')]", "SKU": {"name": "Basic"},
    "Properties": {"adminUserEnabled": "[empty(parameters('opt'))]"}}],
  "Outputs": {"o": {"Type": "object", "Value": "[parameters('typed')]"}}
}`, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Resources[0]
	if r.Name != "upperacr" || prop(t, r.SKU, "name") != "Basic" || prop(t, r.Properties, "adminUserEnabled") != true {
		t.Errorf("resource %+v", r)
	}
	if res.Outputs["o"].Value == nil {
		t.Error("output with capitalised keys lost")
	}
}

func TestCheckModeWarnings(t *testing.T) {
	check := testCtx
	check.Mode = ModeCheck
	res, err := evalJSON(t, `{"parameters": {"n": {"type": "string"}},
  "resources": [{"type": "A.B/c", "name": "x", "dependsOn": ["ghost", "[parameters('n')]"]}]}`, check)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 2 || !errors.Is(res.Warnings[0], ErrUnresolvedDepends) {
		t.Fatalf("warnings = %v", res.Warnings)
	}
}

func TestConcurrentEvaluateOfOneTemplate(t *testing.T) {
	tpl := load(t, "premium.jsonc")
	done := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := Evaluate(tpl, Options{Mode: ModeCheck})
			done <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
