package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// outcomes runs every rule over the loaded targets and returns
// "target rule" → outcome.
func outcomes(t *testing.T, in *Input, cfg *Config) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	for _, r := range Run(Set(), in.Targets, cfg, Selection{}) {
		out[r.Target.DisplayName()+" "+r.Rule.Name] = r
	}
	return out
}

func TestSeed003FirewallPasses(t *testing.T) {
	in := Load([]string{"testdata/seed003.parameters.json"}, LoadOptions{})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	got := outcomes(t, in, nil)
	r, ok := got["seedregistry003 Azure.ACR.Firewall"]
	if !ok || r.Outcome != Pass {
		t.Fatalf("Firewall: %+v (all: %v)", r, keys(got))
	}
	// The seed leaves trusted services on for a firewalled registry.
	if r := got["seedregistry003 Moat.ACR.TrustedServicesBypass"]; r.Outcome != Fail || r.Source.Line != 19 {
		t.Errorf("TrustedServicesBypass: %s at %+v", r.Outcome, r.Source)
	}
}

func TestTemplateWithoutParameters_NameCannotBeDetermined(t *testing.T) {
	in := Load([]string{"testdata/seed003.json"}, LoadOptions{})
	got := outcomes(t, in, nil)
	r := got["[parameters('registryName')] Azure.ACR.Name"]
	if r.Outcome != CannotDetermine || !strings.Contains(r.Unknown, "registryName") {
		t.Fatalf("Name: %s %q; all: %v", r.Outcome, r.Unknown, keys(got))
	}
	if r := got["[parameters('registryName')] Azure.ACR.Firewall"]; r.Outcome != Pass {
		t.Errorf("Firewall does not depend on the name: %s", r.Outcome)
	}
}

func TestUnknownParameterCannotDetermine(t *testing.T) {
	in := Load([]string{"testdata/unknown-name.json"}, LoadOptions{Parameters: map[string]string{"registryName": "knownname01"}})
	in2 := Load([]string{"testdata/unknown-name.json"}, LoadOptions{Parameters: map[string]string{"registryName": "knownname01", "access": "Disabled"}})
	if len(in.Errors)+len(in2.Errors) > 0 {
		t.Fatal(in.Errors, in2.Errors)
	}
	r := outcomes(t, in, nil)["knownname01 Azure.ACR.Firewall"]
	if r.Outcome != CannotDetermine || !strings.Contains(r.Unknown, "access") || r.Source.Line != 16 {
		t.Errorf("without access: %s %q at %+v", r.Outcome, r.Unknown, r.Source)
	}
	if r := outcomes(t, in2, nil)["knownname01 Azure.ACR.Firewall"]; r.Outcome != Pass {
		t.Errorf("with access=Disabled: %s", r.Outcome)
	}
}

func TestVariationsFail(t *testing.T) {
	in := Load([]string{"testdata/open.json"}, LoadOptions{})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	got := outcomes(t, in, nil)
	for _, rule := range []string{"Azure.ACR.Firewall", "Azure.ACR.AdminUser", "Azure.ACR.Quarantine"} {
		if r := got["openregistry "+rule]; r.Outcome != Fail || r.Source.File != "testdata/open.json" || r.Source.Line == 0 {
			t.Errorf("%s: %s at %+v", rule, r.Outcome, r.Source)
		}
	}
	if r := got["openregistry Azure.ACR.AdminUser"]; r.Source.Line != 13 {
		t.Errorf("AdminUser points at line %d, want 13 (adminUserEnabled)", r.Source.Line)
	}
}

func TestCopyLoopOneInsecure(t *testing.T) {
	in := Load([]string{"testdata/loop.json"}, LoadOptions{})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	got := outcomes(t, in, nil)
	for i, want := range []Outcome{Pass, Fail, Pass} {
		name := "loopregistry" + string(rune('0'+i))
		if r := got[name+" Azure.ACR.Firewall"]; r.Outcome != want {
			t.Errorf("%s: %s, want %s", name, r.Outcome, want)
		}
	}
}

func TestAuditLogsTemplate(t *testing.T) {
	in := Load([]string{"testdata/audit.json"}, LoadOptions{})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	got := outcomes(t, in, nil)
	if r := got["auditedregistry Azure.ACR.AuditLogs"]; r.Outcome != Pass {
		t.Errorf("audited: %s %s", r.Outcome, r.Message())
	}
	if r := got["unauditedregistry Azure.ACR.AuditLogs"]; r.Outcome != Fail {
		t.Errorf("unaudited: %s", r.Outcome)
	}
}

func TestBrokenFileIsLocatedOthersStillChecked(t *testing.T) {
	in := Load([]string{"testdata/broken.json", "testdata/open.json"}, LoadOptions{})
	if len(in.Errors) != 1 {
		t.Fatalf("errors: %v", in.Errors)
	}
	e := in.Errors[0]
	if e.File != "testdata/broken.json" || e.Line == 0 || e.Col == 0 {
		t.Errorf("error not located: %v", e)
	}
	if len(in.Targets) != 1 {
		t.Errorf("open.json not checked: %d targets", len(in.Targets))
	}
}

func TestBicepWithoutCompiler(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "main.bicep")
	if err := os.WriteFile(p, []byte("param name string\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := Load([]string{p}, LoadOptions{})
	if len(in.Errors) != 1 || !errors.Is(in.Errors[0], ErrBicepUnsupported) {
		t.Fatalf("errors: %v", in.Errors)
	}
	compiled := Load([]string{p}, LoadOptions{Bicep: func([]byte, string) (*Compiled, error) {
		return &Compiled{Template: map[string]any{"resources": []any{map[string]any{
			"type": RegistryType, "apiVersion": "2023-07-01", "name": "bicepregistry", "sku": map[string]any{"name": "Premium"},
			"properties": map[string]any{"publicNetworkAccess": "Disabled"},
		}}}}, nil
	}})
	if len(compiled.Errors) > 0 || len(compiled.Targets) != 1 {
		t.Fatalf("compiled: %v %d", compiled.Errors, len(compiled.Targets))
	}
	if r := outcomes(t, compiled, nil)["bicepregistry Azure.ACR.Firewall"]; r.Outcome != Pass || r.Source.File != p {
		t.Errorf("bicep: %s %+v", r.Outcome, r.Source)
	}
}

func TestDirectoryScan(t *testing.T) {
	in := Load([]string{"testdata/scan"}, LoadOptions{Ignore: []string{"ignored/"}})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	var names []string
	for _, tg := range in.Targets {
		names = append(names, tg.DisplayName())
	}
	// a.json, and sub/b.json with its parameter file; not ignored/c.json
	// nor package.json.
	if strings.Join(names, ",") != "openregistry,seedregistry003" {
		t.Errorf("targets: %v", names)
	}
	all := Load([]string{"testdata/scan"}, LoadOptions{})
	if len(all.Targets) != 3 {
		t.Errorf("without ignore: %d targets", len(all.Targets))
	}
}

func TestIgnoreGlobs(t *testing.T) {
	tests := []struct {
		rel, pattern string
		want         bool
	}{
		{"a/b/c.json", "*.json", true},
		{"a/b/c.json", "a/**", true},
		{"a/b/c.json", "a/*.json", false},
		{"a/b/c.json", "**/b/*.json", true},
		{"a/", "a/", true},
		{"a/b.json", "a/", false},
		{"x.parameters.json", "*.parameters.json", true},
	}
	for _, tc := range tests {
		if got := ignored(tc.rel, []string{tc.pattern}); got != tc.want {
			t.Errorf("ignored(%q, %q) = %v", tc.rel, tc.pattern, got)
		}
	}
}

func TestResourceExport(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "export.json")
	data := `{"value": [{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/exported01",
  "name": "exported01", "type": "Microsoft.ContainerRegistry/registries", "sku": {"name": "Premium", "tier": "Premium"},
  "properties": {"publicNetworkAccess": "Enabled", "networkRuleSet": {"defaultAction": "Allow", "ipRules": []}}}]}`
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	in := Load([]string{p}, LoadOptions{})
	if r := outcomes(t, in, nil)["exported01 Azure.ACR.Firewall"]; r.Outcome != Fail || r.Source.Line != 3 {
		t.Errorf("export: %s %+v; errors %v", r.Outcome, r.Source, in.Errors)
	}
}

func TestOptions(t *testing.T) {
	o, err := ParseOptions([]byte(`
rule:
  exclude: [Azure.ACR.MinSku]
baseline: GA
suppression:
  Azure.ACR.Firewall:
  - openregistry
  Azure.ACR.AdminUser:
    targetName: [other]
configuration:
  AZURE_CONTAINER_REGISTRY_NAME_FORMAT: '^open'
  AZURE_RESOURCE_GROUP:
    name: my-rg
    location: northeurope
  AZURE_PARAMETER_DEFAULTS:
    registryName: defaultedname
input:
  pathIgnore: ['ignored/']
`))
	if err != nil {
		t.Fatal(err)
	}
	if o.Selection.Baseline != "GA" || len(o.Selection.Exclude) != 1 || o.PathIgnore[0] != "ignored/" {
		t.Errorf("options: %+v", o)
	}
	if o.Selection.Suppression["Azure.ACR.AdminUser"][0] != "other" {
		t.Errorf("suppression: %v", o.Selection.Suppression)
	}
	in := Load([]string{"testdata/seed003.json"}, LoadOptions{Config: o.Config})
	if len(in.Targets) != 1 || in.Targets[0].Name != "defaultedname" {
		t.Fatalf("AZURE_PARAMETER_DEFAULTS not applied: %v %v", in.Targets, in.Errors)
	}
	if !strings.Contains(in.Targets[0].ID, "/resourceGroups/my-rg/") {
		t.Errorf("AZURE_RESOURCE_GROUP not applied: %s", in.Targets[0].ID)
	}
	got := outcomes(t, in, o.Config)
	if r := got["defaultedname Azure.ACR.Naming"]; r.Outcome != Fail {
		t.Errorf("Naming: %s", r.Outcome)
	}
	if _, err := ParseOptions([]byte("")); err != nil {
		t.Errorf("empty options: %v", err)
	}
	if _, err := ParseOptions([]byte("rule: [")); err == nil {
		t.Error("bad YAML accepted")
	}
}

func keys(m map[string]Result) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v.Outcome.String())
	}
	return out
}

func TestNestedSymbolicConditional(t *testing.T) {
	in := Load([]string{"testdata/nested.json"}, LoadOptions{})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	got := outcomes(t, in, nil)
	r := got["nestedregistry Azure.ACR.Firewall"]
	if r.Outcome != Fail || r.Source.Line != 28 {
		t.Errorf("nested: %s at %+v; all %v", r.Outcome, r.Source, keys(got))
	}
	r = got["maybeprivate Azure.ACR.Firewall"]
	if r.Outcome != Fail || !strings.Contains(r.Message(), "deployed only if parameters('deployPrivate')") {
		t.Errorf("conditional: %s %q", r.Outcome, r.Message())
	}
	if _, ok := got["alreadythere Azure.ACR.Firewall"]; ok {
		t.Error("an existing resource was checked")
	}
}

func TestSoftDeleteNotWithReplicas(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "replicated.json")
	data := `{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "resources": [
  {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "replicated01", "sku": {"name": "Premium"}, "properties": {},
   "resources": [{"type": "replications", "apiVersion": "2023-07-01", "name": "northeurope", "location": "northeurope",
     "dependsOn": ["replicated01"]}]},
  {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "single01", "sku": {"name": "Premium"}, "properties": {}}]}`
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	in := Load([]string{p}, LoadOptions{})
	got := outcomes(t, in, nil)
	if r := got["replicated01 Azure.ACR.SoftDelete"]; r.Outcome != None {
		t.Errorf("replicated: %s; errors %v", r.Outcome, in.Errors)
	}
	if r := got["single01 Azure.ACR.SoftDelete"]; r.Outcome != Fail {
		t.Errorf("single: %s", r.Outcome)
	}
}

func TestBadTemplatesAreLocated(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cycle.json":     "{\n\"resources\": [],\n\"variables\": {\"a\": \"[variables('b')]\", \"b\": \"[variables('a')]\"},\n\"outputs\": {\"o\": {\"type\": \"string\", \"value\": \"[variables('a')]\"}}\n}",
		"huge.json":      "{\n\"resources\": [{\"type\": \"Microsoft.ContainerRegistry/registries\", \"name\": \"[concat('r', copyIndex())]\",\n \"copy\": {\"name\": \"c\", \"count\": 100000}}]\n}",
		"unknownfn.json": "{\n\"resources\": [{\"type\": \"Microsoft.ContainerRegistry/registries\",\n \"name\": \"[nosuchfunction()]\"}]\n}",
		"bom.json":       "\ufeff{\"resources\": [{\"type\": \"Microsoft.ContainerRegistry/registries\", \"apiVersion\": \"2023-07-01\", \"name\": \"bomregistry\", \"sku\": {\"name\": \"Basic\"}}]}",
	}
	var paths []string
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	in := Load(paths, LoadOptions{})
	if len(in.Errors) != 3 {
		t.Fatalf("errors: %v", in.Errors)
	}
	for _, e := range in.Errors {
		if e.Line == 0 {
			t.Errorf("not located: %v", e)
		}
	}
	if len(in.Targets) != 1 || in.Targets[0].Name != "bomregistry" {
		t.Errorf("the good file was not checked: %v", in.Targets)
	}
}

func TestAuditLogsClassicProviderSetting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "classic.json")
	data := `{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "resources": [
  {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "classic01", "sku": {"name": "Premium"}, "properties": {}},
  {"type": "Microsoft.ContainerRegistry/registries/providers/diagnosticSettings", "apiVersion": "2021-05-01-preview", "name": "classic01/Microsoft.Insights/audit",
   "dependsOn": ["classic01"],
   "properties": {"logs": [{"categoryGroup": "allLogs", "enabled": true}]}}]}`
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	in := Load([]string{p}, LoadOptions{})
	if r := outcomes(t, in, nil)["classic01 Azure.ACR.AuditLogs"]; r.Outcome != Pass {
		t.Errorf("classic nested setting: %s %s; errors %v", r.Outcome, r.Message(), in.Errors)
	}
}
