package bicep

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// evalBicep compiles src and evaluates the template in check mode.
func evalBicep(t *testing.T, src string, params map[string]any, opts ...Option) *armtemplate.Result {
	t.Helper()
	res, err := tryEvalBicep(src, params, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func tryEvalBicep(src string, params map[string]any, opts ...Option) (*armtemplate.Result, error) {
	tree, err := Compile([]byte(src), "main.bicep", opts...)
	if err != nil {
		return nil, err
	}
	tpl, err := armtemplate.NewTemplate(tree)
	if err != nil {
		return nil, err
	}
	return armtemplate.Evaluate(tpl, armtemplate.Options{Mode: armtemplate.ModeCheck, Parameters: params})
}

func evalARM(t *testing.T, src string, params map[string]any) *armtemplate.Result {
	t.Helper()
	tpl, err := armtemplate.ParseTemplate([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := armtemplate.Evaluate(tpl, armtemplate.Options{Mode: armtemplate.ModeCheck, Parameters: params})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// view is what the rules look at in an evaluated resource.
type view struct {
	Type, Name, ID      string
	Location, SKU, Prop any
	Deployed            bool
}

func views(res *armtemplate.Result) []view {
	var out []view
	res.Walk(func(r *armtemplate.Resource) {
		if strings.EqualFold(r.Type, "Microsoft.Resources/deployments") {
			return
		}
		out = append(out, view{r.Type, r.Name, r.ID, r.Location, r.SKU, r.Properties, r.Deployed()})
	})
	return out
}

func byType(res *armtemplate.Result, typ string) []*armtemplate.Resource {
	var out []*armtemplate.Resource
	res.Walk(func(r *armtemplate.Resource) {
		if strings.EqualFold(r.Type, typ) {
			out = append(out, r)
		}
	})
	return out
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSeed003SameAsARM(t *testing.T) {
	params := map[string]any{"registryName": "contosoacr"}
	b := views(evalBicep(t, read(t, "testdata/seed003.bicep"), params))
	a := views(evalARM(t, read(t, "testdata/seed003.json"), params))
	if len(b) != 1 || !reflect.DeepEqual(a, b) {
		t.Fatalf("bicep %+v\narm   %+v", b, a)
	}
	if b[0].Location != "eastus" {
		t.Errorf("location %v", b[0].Location)
	}
}

func TestParamDrivenNameAndAllowedSKU(t *testing.T) {
	bicep := `
@description('Registry SKU')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string = 'Premium'
@minLength(5)
@maxLength(50)
param prefix string = 'contoso'

var name = '${prefix}${uniqueString(resourceGroup().id)}'

resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: resourceGroup().location
  sku: { name: sku }
  properties: { adminUserEnabled: sku != 'Premium' }
}
output loginServer string = acr.properties.loginServer
output id string = acr.id
`
	arm := `{"parameters": {
  "sku": {"type": "string", "defaultValue": "Premium", "allowedValues": ["Basic", "Standard", "Premium"]},
  "prefix": {"type": "string", "defaultValue": "contoso", "minLength": 5, "maxLength": 50}},
 "variables": {"name": "[format('{0}{1}', parameters('prefix'), uniqueString(resourceGroup().id))]"},
 "resources": [{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
  "name": "[variables('name')]", "location": "[resourceGroup().location]",
  "sku": {"name": "[parameters('sku')]"},
  "properties": {"adminUserEnabled": "[not(equals(parameters('sku'), 'Premium'))]"}}]}`
	for _, sku := range []string{"Basic", "Premium"} {
		params := map[string]any{"sku": sku}
		res := evalBicep(t, bicep, params)
		if a, b := views(evalARM(t, arm, params)), views(res); !reflect.DeepEqual(a, b) {
			t.Fatalf("sku %s: bicep %+v\narm   %+v", sku, b, a)
		}
		if _, ok := res.Outputs["loginServer"].Value.(*armtemplate.Unknown); !ok {
			t.Errorf("loginServer = %#v, want Unknown", res.Outputs["loginServer"].Value)
		}
		r := byType(res, "Microsoft.ContainerRegistry/registries")[0]
		if res.Outputs["id"].Value != r.ID || !strings.HasPrefix(r.Name, "contoso") {
			t.Errorf("id output %v, resource %s %s", res.Outputs["id"].Value, r.ID, r.Name)
		}
	}
	_, err := tryEvalBicep(bicep, map[string]any{"sku": "Free"}, nil...)
	if !errors.Is(err, armtemplate.ErrParameterValue) {
		t.Errorf("sku Free: %v, want ErrParameterValue", err)
	}
	_, err = tryEvalBicep(bicep, map[string]any{"prefix": "ab"})
	if !errors.Is(err, armtemplate.ErrParameterValue) {
		t.Errorf("short prefix: %v, want ErrParameterValue", err)
	}
}

func TestRegistryLoop(t *testing.T) {
	bicep := `
param names array = [
  'alpha'
  'beta'
]
@batchSize(1)
resource regs 'Microsoft.ContainerRegistry/registries@2023-07-01' = [for (n, i) in names: {
  name: n
  location: 'westeurope'
  sku: {
    name: 'Premium'
  }
  properties: {
    zoneRedundancy: i == 0 ? 'Enabled' : 'Disabled'
    networkRuleSet: {
      defaultAction: 'Deny'
      ipRules: [for ip in ['10.0.0.1', '10.0.0.2']: {
        action: 'Allow'
        value: ip
      }]
    }
  }
}]
output second string = regs[1].name
output ids array = [for (n, i) in names: regs[i].id]
`
	res := evalBicep(t, bicep, nil)
	regs := byType(res, "Microsoft.ContainerRegistry/registries")
	if len(regs) != 2 || regs[0].Name != "alpha" || regs[1].Name != "beta" {
		t.Fatalf("registries %+v", views(res))
	}
	p0 := regs[0].Properties.(map[string]any)
	p1 := regs[1].Properties.(map[string]any)
	if p0["zoneRedundancy"] != "Enabled" || p1["zoneRedundancy"] != "Disabled" {
		t.Errorf("zoneRedundancy %v %v", p0["zoneRedundancy"], p1["zoneRedundancy"])
	}
	rules := p1["networkRuleSet"].(map[string]any)["ipRules"].([]any)
	if len(rules) != 2 || rules[1].(map[string]any)["value"] != "10.0.0.2" {
		t.Errorf("ipRules %v", rules)
	}
	if res.Outputs["second"].Value != "beta" {
		t.Errorf("second = %v", res.Outputs["second"].Value)
	}
	ids := res.Outputs["ids"].Value.([]any)
	if len(ids) != 2 || ids[1] != regs[1].ID {
		t.Errorf("ids %v", ids)
	}
}

func TestConditionalResource(t *testing.T) {
	bicep := `
param deploy bool = false
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = if (deploy && true) {
  name: 'condacr'
  sku: { name: 'Basic' }
}
`
	for _, on := range []bool{false, true} {
		res := evalBicep(t, bicep, map[string]any{"deploy": on})
		r := byType(res, "Microsoft.ContainerRegistry/registries")
		if len(r) != 1 || r[0].Condition != on {
			t.Errorf("deploy=%v: %+v", on, views(res))
		}
	}
	res := evalBicep(t, strings.Replace(bicep, "= false", "", 1), nil)
	if r := byType(res, "Microsoft.ContainerRegistry/registries"); r[0].ConditionUnknown == nil {
		t.Errorf("missing parameter: condition should be Unknown")
	}
}

func TestNestedInheritsCondition(t *testing.T) {
	bicep := `
param on bool = false
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = if (on) {
  name: 'a'
  resource repl 'replications@2023-07-01' = {
    name: 'westus'
  }
  resource sm 'scopeMaps@2023-07-01' = if (true) {
    name: 'pull'
  }
}
`
	for _, on := range []bool{false, true} {
		res := evalBicep(t, bicep, map[string]any{"on": on})
		for _, r := range res.Resources {
			if r.Condition != on {
				t.Errorf("on=%v: %s condition %v", on, r.Type, r.Condition)
			}
		}
	}
}

func TestChildResources(t *testing.T) {
	bicep := `
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'parentacr'
  location: 'eastus'
  sku: { name: 'Premium' }

  resource pull 'scopeMaps@2023-07-01' = {
    name: 'pull'
    properties: { actions: [ 'repositories/*/content/read' ] }
  }
}

resource repl 'Microsoft.ContainerRegistry/registries/replications@2023-07-01' = {
  parent: acr
  name: 'westus'
  location: 'westus'
}

output pullId string = acr::pull.id
output replName string = repl.name
`
	res := evalBicep(t, bicep, nil)
	sm := byType(res, "Microsoft.ContainerRegistry/registries/scopeMaps")
	rp := byType(res, "Microsoft.ContainerRegistry/registries/replications")
	if len(sm) != 1 || sm[0].Name != "parentacr/pull" || len(rp) != 1 || rp[0].Name != "parentacr/westus" {
		t.Fatalf("children %+v", views(res))
	}
	if res.Outputs["pullId"].Value != sm[0].ID || !strings.HasSuffix(sm[0].ID, "/registries/parentacr/scopeMaps/pull") {
		t.Errorf("pullId %v, id %s", res.Outputs["pullId"].Value, sm[0].ID)
	}
	// As in Bicep, a child's .name is its own name.
	if res.Outputs["replName"].Value != "westus" {
		t.Errorf("replName %v", res.Outputs["replName"].Value)
	}
	// The parent deploys first.
	acr := byType(res, "Microsoft.ContainerRegistry/registries")[0]
	pos := map[*armtemplate.Resource]int{}
	for i, idx := range res.Order {
		pos[res.Resources[idx]] = i
	}
	if pos[acr] > pos[rp[0]] || pos[acr] > pos[sm[0]] {
		t.Errorf("order %v", res.Order)
	}
}

func TestLocalModule(t *testing.T) {
	files := map[string]string{
		"modules/acr.bicep": `
param name string
param sku string = 'Basic'
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  sku: { name: sku }
  properties: { adminUserEnabled: false }
}
output loginServer string = acr.properties.loginServer
`,
	}
	loader := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	bicep := `
param env string = 'prod'
module reg './modules/acr.bicep' = {
  name: 'acr-${env}'
  params: {
    name: 'acr${env}'
    sku: 'Premium'
  }
}
output server string = reg.outputs.loginServer
`
	res := evalBicep(t, bicep, nil, WithLoader(loader))
	r := byType(res, "Microsoft.ContainerRegistry/registries")
	if len(r) != 1 || r[0].Name != "acrprod" || r[0].SKU.(map[string]any)["name"] != "Premium" {
		t.Fatalf("module resources %+v", views(res))
	}
	if _, ok := res.Outputs["server"].Value.(*armtemplate.Unknown); !ok {
		t.Errorf("server = %#v, want Unknown", res.Outputs["server"].Value)
	}
	if _, err := Compile([]byte(bicep), "main.bicep"); err == nil || !strings.Contains(err.Error(), "main.bicep:3:1") {
		t.Errorf("no loader: %v", err)
	}
	files["modules/acr.bicep"] = "module again '../main.bicep' = {\n  name: 'x'\n}\n"
	files["main.bicep"] = bicep
	if _, err := Compile([]byte(bicep), "main.bicep", WithLoader(loader)); err == nil || !strings.Contains(err.Error(), "includes itself") {
		t.Errorf("cycle: %v", err)
	}
	// A registry module cannot be read offline: the deployment stays
	// without contents.
	res = evalBicep(t, "module m 'br/public:avm/res/container-registry/registry:0.1.0' = {\n  name: 'm'\n  params: { name: 'x' }\n}\n", nil)
	if len(res.Resources) != 1 || res.Resources[0].Deployment != nil {
		t.Errorf("registry module %+v", res.Resources)
	}
}

func TestDiagnosticSettingsScope(t *testing.T) {
	bicep := `
param workspaceId string = '/subscriptions/x/resourceGroups/y/providers/Microsoft.OperationalInsights/workspaces/z'
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: 'auditedacr'
}
resource diag 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: acr
  properties: {
    workspaceId: workspaceId
    logs: [for c in ['ContainerRegistryLoginEvents', 'ContainerRegistryRepositoryEvents']: {
      category: c
      enabled: true
    }]
  }
}
output diagId string = diag.id
`
	res := evalBicep(t, bicep, nil)
	d := byType(res, "Microsoft.Insights/diagnosticSettings")
	if len(d) != 1 {
		t.Fatalf("%+v", views(res))
	}
	if !strings.HasSuffix(d[0].ID, "/providers/Microsoft.ContainerRegistry/registries/auditedacr/providers/Microsoft.Insights/diagnosticSettings/audit") {
		t.Errorf("id %s", d[0].ID)
	}
	if res.Outputs["diagId"].Value != d[0].ID {
		t.Errorf("diagId %v", res.Outputs["diagId"].Value)
	}
	logs := d[0].Properties.(map[string]any)["logs"].([]any)
	if len(logs) != 2 || logs[1].(map[string]any)["category"] != "ContainerRegistryRepositoryEvents" {
		t.Errorf("logs %v", logs)
	}
	if acr := byType(res, "Microsoft.ContainerRegistry/registries"); len(acr) != 1 || !acr[0].Existing {
		t.Errorf("existing %+v", acr)
	}
}

// TestExpressions evaluates Bicep expressions through lowering and the ARM
// evaluator.
func TestExpressions(t *testing.T) {
	tests := []struct {
		expr string
		want any
	}{
		{"1 + 2 * 3", int64(7)},
		{"(1 + 2) * 3", int64(9)},
		{"10 - 4 - 3", int64(3)},
		{"7 % 4 + 9 / 2", int64(7)},
		{"-5 + 1", int64(-4)},
		{"-(2 + 3)", int64(-5)},
		{"1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 4", false},
		{"!true || false", false},
		{"true || false && false", true},
		{"1 == 1 ? 'yes' : 'no'", "yes"},
		{"false ?\n  'yes'\n  : 'no'", "no"},
		{"'ABC' =~ 'abc'", true},
		{"'ABC' !~ 'abc'", false},
		{"'a' != 'b'", true},
		{"null ?? 'fallback'", "fallback"},
		{"'x-${1 + 1}-{literal}'", "x-2-{literal}"},
		{"'it\\'s ${'nested ${'deep'}'}'", "it's nested deep"},
		{"'''\nline1\nline2'''", "line1\nline2"},
		{"{ a: 1, b: 'two' }.b", "two"},
		{"{ a: { b: 3 } }.?a.b", int64(3)},
		{"{ a: 1 }.?missing ?? 'none'", "none"},
		{"[1, 2, 3][1]", int64(2)},
		{"length([\n  1\n  2\n])", int64(2)},
		{"sys.toUpper('abc')", "ABC"},
		{"resourceGroup().location", "eastus"},
		{"'[not an expression]'", "[not an expression]"},
		{"any(3)", int64(3)},
		{"concat('a', 'b')", "ab"},
		{"empty({})", true},
		{"contains([], 1)", false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			res := evalBicep(t, "var v = "+tt.expr+"\n", nil)
			if got := res.Variables["v"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestVariableLoopAndOutputs(t *testing.T) {
	bicep := `
var nums = [for i in range(0, 3): i * 10]
var objs = [for (x, i) in ['a', 'b']: {
  key: x
  idx: i
}]
var wrapped = {
  items: [for i in range(0, 2): 'x${i}']
}
output total int = nums[2]
output keys array = [for o in objs: o.key]
`
	res := evalBicep(t, bicep, nil)
	if !reflect.DeepEqual(res.Variables["nums"], []any{int64(0), int64(10), int64(20)}) {
		t.Errorf("nums %v", res.Variables["nums"])
	}
	if w := res.Variables["wrapped"].(map[string]any)["items"]; !reflect.DeepEqual(w, []any{"x0", "x1"}) {
		t.Errorf("wrapped %v", w)
	}
	if res.Outputs["total"].Value != int64(20) || !reflect.DeepEqual(res.Outputs["keys"].Value, []any{"a", "b"}) {
		t.Errorf("outputs %v %v", res.Outputs["total"].Value, res.Outputs["keys"].Value)
	}
}

func TestLoweringErrors(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"var x = y\n", "main.bicep:1:9: unknown name \"y\""},
		{"func f() string => 'a'\n", "main.bicep:1:1: user-defined functions"},
		{"targetScope = 'subscription'\n", "main.bicep:1:1: targetScope \"subscription\" is not supported"},
		{"var x = loadTextContent('a.txt')\n", "main.bicep:1:9: loadTextContent() is not supported"},
		{"resource a 'A.B/c@1' = {\n  name: 'a'\n}\nvar x = a\n", "main.bicep:4:9: resource a used as a value"},
		{"resource a 'A.B/c@1' = [for i in range(0, 2): {\n  name: 'a${i}'\n}]\nvar x = a.id\n", "main.bicep:4:9: resource collection a needs an index"},
		{"resource a 'A.B/c@1' = {\n  name: a.name\n}\n", "refers to itself"},
		{"var x = [for i in [1]: if (true) { a: i }]\n", "filtered loop"},
		{"var x = [\n  [for i in [1]: i]\n]\n", "main.bicep:2:3: a for-expression"},
		{"@foo()\nparam p string\n", "main.bicep:1:1: decorator @foo is not supported"},
		{"param p myType\n", "main.bicep:1:9: type \"myType\" is not supported"},
		{"var a = 1\nvar a = 2\n", "main.bicep:2:1: \"a\" is already declared at 1:1"},
		{"resource a 'A.B/c@1' = {\n  location: 'x'\n}\n", "resource a has no name"},
		{"resource a 'A.B/c@1' = {\n  name: 'a'\n  zones: [for z in [1]: z]\n}\n", "main.bicep:3:10: a for-expression as the top-level resource property \"zones\""},
		{"resource a 'A.B/c@1' = {\n  parent: b\n  name: 'a'\n}\nresource b 'A.B/c@1' = {\n  parent: a\n  name: 'b'\n}\n", "is its own parent"},
	}
	for _, tt := range tests {
		_, err := Compile([]byte(tt.src), "main.bicep")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.src, err, tt.want)
		}
	}
}

// TestLoweringBounded: names built from names double at each step; the
// budget stops that quickly instead of exhausting memory.
func TestLoweringBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("resource r0 'A.B/c@1' = {\n  name: 'x'\n}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "resource r%d 'A.B/c@1' = {\n  name: '${r%d.name}${r%d.name}'\n}\n", i, i-1, i-1)
	}
	start := time.Now()
	_, err := Compile([]byte(b.String()), "main.bicep")
	if err == nil || !strings.Contains(err.Error(), "expand beyond the size limit") {
		t.Errorf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// A module that includes itself under ever new paths stops at the depth
	// limit.
	loader := func(string) ([]byte, error) {
		var b strings.Builder
		for _, d := range "abcd" {
			fmt.Fprintf(&b, "module %c './%c/m.bicep' = {\n  name: '%c'\n}\n", d, d, d)
		}
		return []byte(b.String()), nil
	}
	_, err = Compile([]byte("module m './m.bicep' = {\n  name: 'm'\n}\n"), "main.bicep", WithLoader(loader))
	if err == nil || (!strings.Contains(err.Error(), "modules nested more than") && !strings.Contains(err.Error(), "more than 800 modules")) {
		t.Errorf("module bomb: %v", err)
	}
}

func TestUserTypes(t *testing.T) {
	bicep := `
type skuName = 'Basic' | 'Standard' | 'Premium'
param sku skuName = 'Basic'
param tags object?
output s string = sku
`
	tree, err := Compile([]byte(bicep), "main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	p := tree["parameters"].(map[string]any)["sku"].(map[string]any)
	if p["type"] != "string" || !reflect.DeepEqual(p["allowedValues"], []any{"Basic", "Standard", "Premium"}) {
		t.Errorf("sku param %v", p)
	}
}

func TestParamLowering(t *testing.T) {
	tests := []struct {
		src  string
		want map[string]any
	}{
		{"@secure()\nparam p string", map[string]any{"type": "securestring"}},
		{"@secure()\nparam p object", map[string]any{"type": "secureObject"}},
		{"@sys.description('d')\n@minValue(1)\n@maxValue(9)\nparam p int = 3", map[string]any{"type": "int", "defaultValue": int64(3), "minValue": int64(1), "maxValue": int64(9), "metadata": map[string]any{"description": "d"}}},
		{"@allowed([\n  1\n  2\n])\nparam p int", map[string]any{"type": "int", "allowedValues": []any{int64(1), int64(2)}}},
		{"param p string[] = []", map[string]any{"type": "array", "defaultValue": []any{}}},
		{"param p 'a' | 'b' = 'a'", map[string]any{"type": "string", "allowedValues": []any{"a", "b"}, "defaultValue": "a"}},
		{"param p {\n  a: string\n}", map[string]any{"type": "object"}},
		{"param p {\n  @description('x')\n  'b c'?: string\n  *: int\n}?", map[string]any{"type": "object"}},
		{"param p [string, int]", map[string]any{"type": "array"}},
		{"param p (int[])?", map[string]any{"type": "array"}},
		{"param p sys.string", map[string]any{"type": "string"}},
		{"param p resource 'A.B/c@1'", map[string]any{"type": "string"}},
		{"param p -1 | 2", map[string]any{"type": "int", "allowedValues": []any{int64(-1), int64(2)}}},
		{"param p true | false", map[string]any{"type": "bool", "allowedValues": []any{true, false}}},
		{"param p string = '${resourceGroup().name}-x'", map[string]any{"type": "string", "defaultValue": "[format('{0}-x', resourceGroup().name)]"}},
	}
	for _, tt := range tests {
		tree, err := Compile([]byte(tt.src+"\n"), "p.bicep")
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		if got := tree["parameters"].(map[string]any)["p"]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", tt.src, got, tt.want)
		}
	}
}

func TestModuleLoopAndCondition(t *testing.T) {
	loader := func(string) ([]byte, error) {
		return []byte("param name string\nparam extra array = []\nresource r 'Microsoft.ContainerRegistry/registries@2023-07-01' = {\n  name: name\n  sku: { name: 'Basic' }\n}\n"), nil
	}
	bicep := `
param on bool = true
module regs 'reg.bicep' = [for n in ['one', 'two']: {
  name: 'deploy-${n}'
  params: {
    name: n
    extra: [for i in range(0, 2): '${n}${i}']
  }
}]
module maybe 'reg.bicep' = if (!on) {
  name: 'maybe'
  params: { name: 'three' }
}
`
	res := evalBicep(t, bicep, nil, WithLoader(loader))
	var names []string
	for _, r := range byType(res, "Microsoft.ContainerRegistry/registries") {
		if r.Deployed() {
			names = append(names, r.Name)
		}
	}
	if !reflect.DeepEqual(names, []string{"one", "two"}) {
		t.Errorf("deployed registries %v", names)
	}
	var d *armtemplate.Resource
	for _, x := range byType(res, "Microsoft.Resources/deployments") {
		if x.Name == "deploy-two" {
			d = x
		}
	}
	if d == nil {
		t.Fatal("no deployment deploy-two")
	}
	extra := d.Body["properties"].(map[string]any)["parameters"].(map[string]any)["extra"].(map[string]any)["value"]
	if !reflect.DeepEqual(extra, []any{"two0", "two1"}) {
		t.Errorf("%s extra %v", d.Name, extra)
	}
}

func TestAllowUndeclared(t *testing.T) {
	src := read(t, "testdata/seed003.bicep")
	snippet := src[strings.Index(src, "resource acr"):]
	if _, err := Compile([]byte(snippet), "snippet.bicep"); err == nil || !strings.Contains(err.Error(), `unknown name "registryName"`) {
		t.Fatalf("strict: %v", err)
	}
	tree, err := Compile([]byte(snippet), "snippet.bicep", AllowUndeclared())
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := armtemplate.NewTemplate(tree)
	if err != nil {
		t.Fatal(err)
	}
	res, err := armtemplate.Evaluate(tpl, armtemplate.Options{Mode: armtemplate.ModeCheck})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Resources[0]
	if r.NameUnknown == nil || r.Properties.(map[string]any)["networkRuleSet"].(map[string]any)["defaultAction"] != "Deny" {
		t.Errorf("%+v", r)
	}
}

func TestExistingInOtherResourceGroup(t *testing.T) {
	bicep := `
resource ws 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: 'logs'
  scope: resourceGroup('monitoring')
}
resource other 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: 'logs2'
  scope: resourceGroup('0000', 'shared')
}
output id string = ws.id
output id2 string = other.id
`
	res := evalBicep(t, bicep, nil)
	want := "/subscriptions/ffffffff-ffff-ffff-ffff-ffffffffffff/resourceGroups/monitoring/providers/Microsoft.OperationalInsights/workspaces/logs"
	if res.Outputs["id"].Value != want {
		t.Errorf("id %v", res.Outputs["id"].Value)
	}
	if res.Outputs["id2"].Value != "/subscriptions/0000/resourceGroups/shared/providers/Microsoft.OperationalInsights/workspaces/logs2" {
		t.Errorf("id2 %v", res.Outputs["id2"].Value)
	}
	for _, r := range res.Resources {
		if r.Name == "logs" && r.ID != want {
			t.Errorf("resource id %s", r.ID)
		}
	}
	if _, err := Compile([]byte("resource a 'A.B/c@1' = {\n  name: 'a'\n  scope: resourceGroup('x')\n}\n"), "m.bicep"); err == nil || !strings.Contains(err.Error(), "m.bicep:3:3: scope:") {
		t.Errorf("non-existing with group scope: %v", err)
	}
}

func TestCompileMappedPositions(t *testing.T) {
	src := read(t, "testdata/seed003.bicep") + "output server string = acr.properties.loginServer\n"
	out, err := CompileMapped([]byte(src), "seed003.bicep")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := armtemplate.NewTemplate(out.Template)
	if err != nil {
		t.Fatal(err)
	}
	res, err := armtemplate.Evaluate(tpl, armtemplate.Options{Mode: armtemplate.ModeCheck})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Resources[0]
	if p := out.Positions[r.Path]; p != (Pos{5, 1}) {
		t.Errorf("resource %s at %v", r.Path, p)
	}
	if p := out.Positions[r.Path+".properties.networkRuleSet.ipRules[0].value"]; p != (Pos{19, 11}) {
		t.Errorf("ipRules[0].value at %v", p)
	}
	u, ok := res.Outputs["server"].Value.(*armtemplate.Unknown)
	if !ok {
		t.Fatalf("server %#v", res.Outputs["server"].Value)
	}
	if p := out.Positions[u.Path]; p != (Pos{25, 24}) {
		t.Errorf("Unknown %s at %v (%v)", u.Path, p, out.Positions)
	}
}

// TestReferenceLowering pins the ARM expressions symbolic references
// become; most evaluate to Unknown offline, so the text is what matters.
func TestReferenceLowering(t *testing.T) {
	decls := `
param n string
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: n
}
resource regs 'Microsoft.ContainerRegistry/registries@2023-07-01' = [for x in ['a', 'b']: {
  name: 'r${x}'
}]
module m 'br:example.azurecr.io/m:1' = {
  name: 'mod'
}
`
	tests := []struct{ expr, want string }{
		{"acr.properties.loginServer", "[reference('acr').loginServer]"},
		{"acr.location", "[reference('acr', '2023-07-01', 'full').location]"},
		{"acr.type", "['Microsoft.ContainerRegistry/registries']"},
		{"acr.apiVersion", "['2023-07-01']"},
		{"acr.listCredentials().username", "[listCredentials(resourceId('Microsoft.ContainerRegistry/registries', parameters('n')), '2023-07-01').username]"},
		{"regs[1].properties.loginServer", "[reference(resourceId('Microsoft.ContainerRegistry/registries', format('r{0}', createArray('a', 'b')[1])), '2023-07-01').loginServer]"},
		{"regs[0].sku", "[reference(resourceId('Microsoft.ContainerRegistry/registries', format('r{0}', createArray('a', 'b')[0])), '2023-07-01', 'full').sku]"},
		{"m.name", "['mod']"},
		{"m.outputs.x", "[reference('m').outputs.x.value]"},
		{"m.outputs", "[reference('m').outputs]"},
		{"acr.id == '' ? 1 : 2", "[if(equals(resourceId('Microsoft.ContainerRegistry/registries', parameters('n')), ''), 1, 2)]"},
	}
	for _, tt := range tests {
		tree, err := Compile([]byte(decls+"@description('v')\nvar v = "+tt.expr+"\n"), "r.bicep")
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		v := tree["variables"].(map[string]any)["v"]
		if v != tt.want {
			t.Errorf("%s:\n got %v\nwant %v", tt.expr, v, tt.want)
		}
	}
	for _, bad := range []struct{ expr, want string }{
		{"acr.getSecret('x')", "resource function acr.getSecret() is not supported"},
		{"m.location", "module property \"location\" is not supported"},
		{"'a'.foo()", "method call .foo() is not supported"},
		{"regs[0]", "resource regs used as a value"},
	} {
		_, err := Compile([]byte(decls+"var v = "+bad.expr+"\n"), "r.bicep")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.expr, err, bad.want)
		}
	}
	if _, err := Compile([]byte("@secure()\nvar v = 1\n"), "r.bicep"); err == nil || !strings.Contains(err.Error(), "r.bicep:1:1: decorator @secure is not supported on a variable") {
		t.Errorf("var decorator: %v", err)
	}
}
