package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

const checkFixtures = "../../internal/rules/testdata/"

func runCheckCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := newCheckCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), checkExitCode(err)
}

func TestCheckExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"error-level failure", []string{checkFixtures + "open.json"}, 100, "Fail Azure.ACR.Firewall"},
		{"never breaks", []string{"--break", "never", checkFixtures + "open.json"}, 0, "Fail Azure.ACR.Firewall"},
		{"seed 003 clean at Error", []string{checkFixtures + "seed003.parameters.json"}, 0, "1 input, 1 target"},
		{"seed 003 warnings break at Warning", []string{"--break", "Warning", checkFixtures + "seed003.parameters.json"}, 100, "Moat.ACR.TrustedServicesBypass"},
		{"parameters k=v", []string{"-p", "registryName=fromflag01", checkFixtures + "seed003.json"}, 0, "fromflag01"},
		{"parameters file", []string{"--parameters", checkFixtures + "seed003.parameters.json", "--outcome", "Pass", checkFixtures + "seed003.json"}, 0, "Pass Azure.ACR.Name [Error] seedregistry003"},
		{"unknown breaks as a failure", []string{checkFixtures + "seed003.json"}, 100, "CannotDetermine Azure.ACR.Name"},
		{"broken input", []string{checkFixtures + "broken.json", checkFixtures + "seed003.parameters.json"}, 1, "broken.json:3:5: error"},
		{"missing path", []string{checkFixtures + "nope.json"}, 1, "nope.json"},
		{"bad outcome", []string{"--outcome", "maybe", checkFixtures + "open.json"}, 1, ""},
		{"bad break", []string{"--break", "sometimes", checkFixtures + "open.json"}, 1, ""},
		{"bad format", []string{"-o", "yaml", checkFixtures + "open.json"}, 1, ""},
		{"GA baseline", []string{"--baseline", "GA", "--break", "Never", "--outcome", "All", checkFixtures + "seed003.parameters.json"}, 0, "Azure.ACR.Firewall"},
		{"bicep seed 003", []string{"--outcome", "All", checkFixtures + "seed003.bicep"}, 0, "seed003.bicep:12:5: Fail Moat.ACR.TrustedServicesBypass [Warning] seedbicep003"},
		{"bicep firewall passes", []string{"--outcome", "Pass", checkFixtures + "seed003.bicep"}, 0, "Pass Azure.ACR.Firewall [Error] seedbicep003"},
		{"broken bicep is located", []string{checkFixtures + "broken.bicep", checkFixtures + "seed003.bicep"}, 1, "broken.bicep:3:"},
		{"bicep diagnostic setting scoped to a registry", []string{"--outcome", "All", checkFixtures + "audit.bicep"}, 100, "Pass Azure.ACR.AuditLogs [Warning] auditedbicep01"},
		{"bicep registry without diagnostic setting", []string{checkFixtures + "audit.bicep"}, 100, "Fail Azure.ACR.AuditLogs [Warning] unauditedbicep01"},
		{"name without live", []string{"-n", "x", checkFixtures + "open.json"}, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runCheckCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, tc.code, out, tc.want)
			}
			if tc.name == "GA baseline" && strings.Contains(out, "Moat.") {
				t.Errorf("GA baseline ran moat rules:\n%s", out)
			}
		})
	}
}

func TestCheckOptionFile(t *testing.T) {
	dir := t.TempDir()
	opt := filepath.Join(dir, "ps-rule.yaml")
	yaml := "suppression:\n  Azure.ACR.Firewall: [openregistry]\n  Azure.ACR.AdminUser: [openregistry]\nrule:\n  exclude: [Azure.ACR.AnonymousAccess]\n"
	if err := os.WriteFile(opt, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCheckCmd(t, "--option", opt, checkFixtures+"open.json")
	if code != 0 || strings.Contains(out, "Azure.ACR.Firewall") || !strings.Contains(out, "2 suppressed") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if _, code := runCheckCmd(t, "--option", filepath.Join(dir, "missing.yaml"), checkFixtures+"open.json"); code != 1 {
		t.Errorf("missing option file: exit %d", code)
	}
}

func TestCheckSARIFOutputFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.sarif")
	if _, code := runCheckCmd(t, "-o", "sarif", "--output-path", p, checkFixtures+"open.json"); code != 100 {
		t.Fatalf("exit %d", code)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var log map[string]any
	if err := json.Unmarshal(data, &log); err != nil || log["version"] != "2.1.0" {
		t.Fatalf("sarif: %v %v", err, log["version"])
	}
}

func TestCheckLive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	private := model.Defaults()
	private.SKU = model.SKUPremium
	private.Properties.PublicNetworkAccess = model.Disabled
	private.Properties.NetworkRuleBypassOptions = model.BypassNone
	private.Properties.Policies.ExportPolicy.Status = model.StatusDisabled
	open := model.Defaults()
	open.SKU = model.SKUPremium
	for name, reg := range map[string]model.Registry{"privateregistry": private, "openregistry": open} {
		props, err := reg.MarshalProperties()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.CreateRegistry(ctx, meta.Registry{Name: name, ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/" + name, Location: "westeurope", SKU: reg.SKU, Properties: props}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	out, code := runCheckCmd(t, "--live", "--data-dir", dir, "-n", "privateregistry")
	if code != 0 || !strings.Contains(out, "1 input, 1 target") {
		t.Errorf("private: exit %d\n%s", code, out)
	}
	out, code = runCheckCmd(t, "--live", "--data-dir", dir)
	if code != 100 || !strings.Contains(out, "Fail Azure.ACR.Firewall [Error] openregistry") {
		t.Errorf("all: exit %d\n%s", code, out)
	}
	if _, code := runCheckCmd(t, "--live", "--data-dir", filepath.Join(dir, "nothing")); code != 1 {
		t.Errorf("no deployment: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "nothing")); err == nil {
		t.Error("checking a missing deployment created it")
	}
}
