package rules

import (
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/armtemplate"
)

func ruleByName(t testing.TB, name string) *Rule {
	t.Helper()
	for _, r := range Set() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %s", name)
	return nil
}

func registry(name string, sku string, props map[string]any) *Target {
	body := map[string]any{"type": RegistryType, "name": name, "properties": props}
	if sku != "" {
		body["sku"] = map[string]any{"name": sku}
	}
	return &Target{Type: RegistryType, Name: name, Body: body}
}

func unk(expr string) *armtemplate.Unknown { return &armtemplate.Unknown{Expr: expr} }

func obj(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestRules(t *testing.T) {
	premium := func(props map[string]any) *Target { return registry("myregistry", "Premium", props) }
	policies := func(kv ...any) map[string]any { return obj("policies", obj(kv...)) }
	tests := []struct {
		rule   string
		target *Target
		cfg    map[string]any
		want   Outcome
	}{
		// AdminUser: hasDefault false.
		{"Azure.ACR.AdminUser", premium(obj()), nil, Pass},
		{"Azure.ACR.AdminUser", premium(obj("adminUserEnabled", false)), nil, Pass},
		{"Azure.ACR.AdminUser", premium(obj("AdminUserEnabled", true)), nil, Fail},
		{"Azure.ACR.AdminUser", premium(obj("adminUserEnabled", unk("parameters('admin')"))), nil, CannotDetermine},
		{"Azure.ACR.AdminUser", &Target{Type: "Microsoft.Storage/storageAccounts", Name: "x", Body: obj()}, nil, None},
		// MinSku.
		{"Azure.ACR.MinSku", registry("myregistry", "basic", obj()), nil, Fail},
		{"Azure.ACR.MinSku", registry("myregistry", "standard", obj()), nil, Pass},
		{"Azure.ACR.MinSku", registry("myregistry", "", obj()), nil, Fail},
		// Name.
		{"Azure.ACR.Name", registry("abcd", "Premium", obj()), nil, Fail},
		{"Azure.ACR.Name", registry("my-registry", "Premium", obj()), nil, Fail},
		{"Azure.ACR.Name", registry("MyRegistry01", "Premium", obj()), nil, Pass},
		{"Azure.ACR.Name", &Target{Type: RegistryType, NameUnknown: unk("parameters('name')"), Body: obj()}, nil, CannotDetermine},
		// Quarantine: equals enabled, case-insensitive; missing fails.
		{"Azure.ACR.Quarantine", premium(obj()), nil, Fail},
		{"Azure.ACR.Quarantine", premium(policies("quarantinePolicy", obj("status", "Enabled"))), nil, Pass},
		// ContentTrust: Premium without CMK.
		{"Azure.ACR.ContentTrust", registry("myregistry", "Standard", obj()), nil, None},
		{"Azure.ACR.ContentTrust", premium(obj()), nil, Fail},
		{"Azure.ACR.ContentTrust", premium(obj("encryption", obj("keyVaultProperties", obj("identity", "abc")))), nil, None},
		{"Azure.ACR.ContentTrust", premium(policies("trustPolicy", obj("status", "enabled", "type", "Notary"))), nil, Pass},
		// Retention: Premium only.
		{"Azure.ACR.Retention", registry("myregistry", "Basic", obj()), nil, None},
		{"Azure.ACR.Retention", premium(policies("retentionPolicy", obj("status", "enabled", "days", 7))), nil, Pass},
		{"Azure.ACR.Retention", &Target{Type: RegistryType, Name: "myregistry", Body: obj("sku", obj("name", unk("parameters('sku')")))}, nil, CannotDetermine},
		// SoftDelete: not with a retention policy; needs status and days.
		{"Azure.ACR.SoftDelete", premium(policies("retentionPolicy", obj("status", "enabled"))), nil, None},
		{"Azure.ACR.SoftDelete", premium(policies("softDeletePolicy", obj("status", "enabled"))), nil, Fail},
		{"Azure.ACR.SoftDelete", premium(policies("softDeletePolicy", obj("status", "enabled", "retentionDays", 7))), nil, Pass},
		// AnonymousAccess: Standard and Premium.
		{"Azure.ACR.AnonymousAccess", registry("myregistry", "Basic", obj("anonymousPullEnabled", true)), nil, None},
		{"Azure.ACR.AnonymousAccess", registry("myregistry", "Standard", obj("anonymousPullEnabled", true)), nil, Fail},
		{"Azure.ACR.AnonymousAccess", registry("myregistry", "Standard", obj()), nil, Pass},
		// Firewall (seed 003).
		{"Azure.ACR.Firewall", premium(obj("networkRuleSet", obj("defaultAction", "Deny"))), nil, Pass},
		{"Azure.ACR.Firewall", premium(obj("publicNetworkAccess", "disabled")), nil, Pass},
		{"Azure.ACR.Firewall", premium(obj()), nil, Fail},
		{"Azure.ACR.Firewall", premium(obj("publicNetworkAccess", "Enabled", "networkRuleSet", obj("defaultAction", "Allow"))), nil, Fail},
		{"Azure.ACR.Firewall", registry("myregistry", "Standard", obj()), nil, None},
		{"Azure.ACR.Firewall", &Target{Type: RegistryType, Name: "myregistry", Body: obj("sku", obj("tier", "Premium"))}, nil, Fail},
		{"Azure.ACR.Firewall", premium(obj("publicNetworkAccess", unk("parameters('p')"))), nil, CannotDetermine},
		{"Azure.ACR.Firewall", premium(obj("publicNetworkAccess", unk("parameters('p')"), "networkRuleSet", obj("defaultAction", "Deny"))), nil, Pass},
		{"Azure.ACR.Firewall", premium(obj("networkRuleSet", unk("reference('x')"))), nil, CannotDetermine},
		// ExportPolicy.
		{"Azure.ACR.ExportPolicy", premium(obj("publicNetworkAccess", "Disabled")), nil, Fail},
		{"Azure.ACR.ExportPolicy", premium(obj("publicNetworkAccess", "Disabled", "policies", obj("exportPolicy", obj("status", "disabled")))), nil, Pass},
		// Naming: only with a configured format.
		{"Azure.ACR.Naming", premium(obj()), nil, None},
		{"Azure.ACR.Naming", premium(obj()), map[string]any{"AZURE_CONTAINER_REGISTRY_NAME_FORMAT": "^cr[a-z0-9]+$"}, Fail},
		{"Azure.ACR.Naming", registry("crprod01", "Premium", obj()), map[string]any{"AZURE_CONTAINER_REGISTRY_NAME_FORMAT": "^cr[a-z0-9]+$"}, Pass},
		// AuditLogs without diagnostic settings.
		{"Azure.ACR.AuditLogs", premium(obj()), nil, Fail},
		// Moat rules.
		{"Moat.ACR.TrustedServicesBypass", premium(obj()), nil, None},
		{"Moat.ACR.TrustedServicesBypass", premium(obj("publicNetworkAccess", "Disabled")), nil, Fail},
		{"Moat.ACR.TrustedServicesBypass", premium(obj("publicNetworkAccess", "Disabled", "networkRuleBypassOptions", "none")), nil, Pass},
		{"Moat.ACR.IPRuleTooBroad", premium(obj()), nil, None},
		{"Moat.ACR.ExportOnPrivateRegistry", premium(obj("publicNetworkAccess", "Disabled")), nil, Fail},
		{"Moat.ACR.ExportOnPrivateRegistry", premium(obj("publicNetworkAccess", "Enabled")), nil, None},
		{"Moat.ACR.AdminUserOnRestrictedRegistry", premium(obj("adminUserEnabled", true, "networkRuleSet", obj("defaultAction", "Deny"))), nil, Fail},
		{"Moat.ACR.AdminUserOnRestrictedRegistry", premium(obj("adminUserEnabled", true)), nil, None},
	}
	for _, tc := range tests {
		t.Run(tc.rule, func(t *testing.T) {
			cfg := &Config{Values: tc.cfg}
			got := Evaluate(ruleByName(t, tc.rule), tc.target, cfg)
			if got.Outcome != tc.want {
				t.Errorf("%s on %v: got %s (%s), want %s", tc.rule, tc.target.Body, got.Outcome, got.Message(), tc.want)
			}
			if got.Outcome == CannotDetermine && got.Unknown == "" {
				t.Errorf("CannotDetermine without the expression")
			}
			if got.Outcome == Fail && len(got.Reasons) == 0 {
				t.Errorf("Fail without a reason")
			}
		})
	}
}

func TestIPRuleTooBroad(t *testing.T) {
	r := ruleByName(t, "Moat.ACR.IPRuleTooBroad")
	tests := []struct {
		values []any
		want   Outcome
	}{
		{[]any{"203.0.113.7"}, Pass},
		{[]any{"203.0.113.0/24"}, Pass},
		{[]any{"0.0.0.0/0"}, Fail},
		{[]any{"::/0"}, Fail},
		{[]any{"8.0.0.0/8"}, Fail},
		{[]any{"64.0.0.0/2"}, Fail},
		{[]any{"10.0.0.0/8"}, Pass},
		{[]any{"11.0.0.0/9"}, Pass},
		{[]any{"2001::/16"}, Fail},
		{[]any{"2001:db8::/32"}, Pass},
		{[]any{"_PublicIPv4Address_"}, Pass},
		{[]any{"198.51.100.1", unk("parameters('ip')")}, CannotDetermine},
		{[]any{"0.0.0.0/0", unk("parameters('ip')")}, Fail},
	}
	for _, tc := range tests {
		rules := make([]any, len(tc.values))
		for i, v := range tc.values {
			rules[i] = obj("action", "Allow", "value", v)
		}
		tg := registry("myregistry", "Premium", obj("networkRuleSet", obj("defaultAction", "Deny", "ipRules", rules)))
		if got := Evaluate(r, tg, nil); got.Outcome != tc.want {
			t.Errorf("%v: got %s (%s), want %s", tc.values, got.Outcome, got.Message(), tc.want)
		}
	}
}

func TestAuditLogsExtensions(t *testing.T) {
	r := ruleByName(t, "Azure.ACR.AuditLogs")
	ds := func(logs ...any) *Target {
		return &Target{Type: "Microsoft.Insights/diagnosticSettings", Name: "logs", Body: obj("properties", obj("logs", logs))}
	}
	tests := []struct {
		name string
		ext  *Target
		want Outcome
	}{
		{"both categories", ds(obj("category", "ContainerRegistryLoginEvents", "enabled", true), obj("category", "containerregistryrepositoryevents", "enabled", true)), Pass},
		{"one category", ds(obj("category", "ContainerRegistryLoginEvents", "enabled", true)), Fail},
		{"disabled", ds(obj("categoryGroup", "audit", "enabled", false)), Fail},
		{"audit group", ds(obj("categoryGroup", "audit", "enabled", true)), Pass},
		{"allLogs group", ds(obj("categoryGroup", "allLogs", "enabled", true)), Pass},
		{"unknown enabled", ds(obj("categoryGroup", "allLogs", "enabled", unk("parameters('on')"))), CannotDetermine},
	}
	for _, tc := range tests {
		tg := registry("myregistry", "Premium", obj())
		tg.Extensions = []*Target{tc.ext}
		if got := Evaluate(r, tg, nil); got.Outcome != tc.want {
			t.Errorf("%s: got %s (%s), want %s", tc.name, got.Outcome, got.Message(), tc.want)
		}
	}
}

func TestSelection(t *testing.T) {
	set := Set()
	ga, err := Selection{Baseline: "GA"}.Select(set)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ga {
		if r.Name[:6] != "Azure." {
			t.Errorf("GA baseline has %s", r.Name)
		}
	}
	all, _ := Selection{}.Select(set)
	if len(all) != len(set) || len(ga) >= len(all) {
		t.Errorf("all = %d, GA = %d, set = %d", len(all), len(ga), len(set))
	}
	one, _ := Selection{Include: []string{"azure.acr.firewall"}}.Select(set)
	if len(one) != 1 || one[0].Name != "Azure.ACR.Firewall" {
		t.Errorf("include: %v", one)
	}
	ex, _ := Selection{Exclude: []string{"Azure.ACR.Firewall"}}.Select(set)
	if len(ex) != len(set)-1 {
		t.Errorf("exclude: %d", len(ex))
	}
	alias, _ := Selection{Include: []string{"Azure.ACR.Logs"}}.Select(set)
	if len(alias) != 1 || alias[0].Name != "Azure.ACR.AuditLogs" {
		t.Errorf("alias: %v", alias)
	}
	if _, err := (Selection{Include: []string{"Azure.ACR.Nope"}}).Select(set); err == nil {
		t.Error("unknown rule accepted")
	}
	if _, err := (Selection{Baseline: "nope"}).Select(set); err == nil {
		t.Error("unknown baseline accepted")
	}
	tg := registry("myregistry", "Premium", obj())
	res := Run([]*Rule{ruleByName(t, "Azure.ACR.Firewall")}, []*Target{tg}, nil, Selection{Suppression: map[string][]string{"Azure.ACR.Firewall": {"MYREGISTRY"}}})
	if len(res) != 1 || res[0].Outcome != None || !res[0].Suppressed {
		t.Errorf("suppression: %+v", res)
	}
}

func TestRuleSetWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Set() {
		if seen[r.Name] || r.Synopsis == "" || r.Recommendation == "" || r.Check == nil || r.Level == 0 || r.Type == "" {
			t.Errorf("rule %s is incomplete or duplicated", r.Name)
		}
		seen[r.Name] = true
	}
}

func TestPendingPrivateEndpoint(t *testing.T) {
	in := Load([]string{"testdata/pending.json"}, LoadOptions{})
	if len(in.Errors) > 0 {
		t.Fatal(in.Errors)
	}
	got := outcomes(t, in, nil)
	want := map[string]Outcome{
		"pendingreg01":  Fail,
		"approvedreg01": Pass,
		"unknownreg01":  CannotDetermine,
		"nopereg01":     None,
	}
	for name, w := range want {
		r, ok := got[name+" Moat.ACR.PendingPrivateEndpoint"]
		if !ok || r.Outcome != w {
			t.Errorf("%s: %v (%s), want %s", name, r.Outcome, r.Message(), w)
		}
	}
	pending := got["pendingreg01 Moat.ACR.PendingPrivateEndpoint"]
	if m := pending.Message(); !strings.Contains(m, "ops-pe") || strings.Contains(m, "build-pe") {
		t.Errorf("the failure must name the Pending connection only: %s", m)
	}
}
