package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeploymentAgainstServe deploys the seeds' registry templates (JSON
// and Bicep) with `moat deployment group create` against a real `moat
// serve` and checks the registries they leave, a failing template's
// one-line error, the progress shown while waiting, and the list, show and
// operation commands.
func TestDeploymentAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "deploy-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, nil, password+"\n", "login", "--server", url, "--ca-file", filepath.Join(dataDir, "ca.pem"), "-u", "admin"); r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "myResourceGroup", "-l", "centralus")
	seeds := filepath.Join("..", "..", "internal", "arm", "testdata", "deploy")

	// Seed 000/002: exports disabled together with public access.
	r := cli(t, cfg, nil, "", "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", filepath.Join(seeds, "seed000-export-disabled.json"))
	if r.code != 0 {
		t.Fatalf("deploy seed 000: exit %d: %s", r.code, r.stderr)
	}
	d := cliJSON(t, r.stdout)
	if cliDig(d, "name") != "seed000-export-disabled" || cliDig(d, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("deployment %v", d)
	}
	// stderr is no terminal here: no progress, nothing at all.
	if r.stderr != "" {
		t.Fatalf("stderr %q", r.stderr)
	}
	reg := cliJSON(t, cliOK(t, cfg, "acr", "show", "-n", "myregistry"))
	if cliDig(reg, "properties.policies.exportPolicy.status") != "disabled" || cliDig(reg, "properties.publicNetworkAccess") != "Disabled" {
		t.Fatalf("registry after seed 000: %v", reg)
	}
	cliOK(t, cfg, "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", filepath.Join(seeds, "seed000-export-enabled.json"))
	reg = cliJSON(t, cliOK(t, cfg, "acr", "show", "-n", "myregistry"))
	if cliDig(reg, "properties.policies.exportPolicy.status") != "enabled" {
		t.Fatalf("registry after enabling exports: %v", reg)
	}

	// Seed 003 as published: the placeholder address fails the deployment
	// with the registry's own error, on one line.
	fw := filepath.Join(seeds, "seed003-firewall.json")
	cliFails(t, cfg, 1, "moat: InvalidIpRule: ", "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", fw,
		"-p", "registryName=fwreg01", "-n", "fw")
	if out := cliOK(t, cfg, "deployment", "operation", "group", "list", "-g", "myResourceGroup", "-n", "fw", "--query", "[].properties.statusMessage.error.code", "-o", "tsv"); out != "InvalidIpRule\n" {
		t.Fatalf("operations of the failed deployment: %q", out)
	}
	// With a real address, in JSON and in Bicep.
	dir := t.TempDir()
	fixed := filepath.Join(dir, "firewall.json")
	if err := os.WriteFile(fixed, []byte(strings.ReplaceAll(string(readFile(t, fw)), "_PublicIPv4Address_", "203.0.113.9")), 0o600); err != nil {
		t.Fatal(err)
	}
	cliOK(t, cfg, "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", fixed, "-p", "registryName=fwreg01")
	bic := filepath.Join(dir, "firewall-bicep.bicep")
	if err := os.WriteFile(bic, []byte(strings.ReplaceAll(string(readFile(t, filepath.Join(seeds, "seed003-firewall.bicep"))), "_PublicIPv4Address_", "198.51.100.0/24")), 0o600); err != nil {
		t.Fatal(err)
	}
	cliOK(t, cfg, "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", bic, "-p", "registryName=bicepreg01")
	for name, ip := range map[string]string{"fwreg01": "203.0.113.9", "bicepreg01": "198.51.100.0/24"} {
		if out := cliOK(t, cfg, "acr", "network-rule", "list", "-n", name, "--query", "ipRules[].value", "-o", "tsv"); out != ip+"\n" {
			t.Fatalf("%s rules %q, want %s", name, out, ip)
		}
		reg := cliJSON(t, cliOK(t, cfg, "acr", "show", "-n", name))
		if cliDig(reg, "properties.networkRuleSet.defaultAction") != "Deny" || cliDig(reg, "location") != "centralus" {
			t.Fatalf("%s: %v", name, reg)
		}
	}
	out := cliOK(t, cfg, "deployment", "group", "list", "-g", "myResourceGroup", "-o", "table")
	for _, want := range []string{"seed000-export-disabled", "firewall", "fw ", "Failed", "Succeeded"} {
		if !strings.Contains(out, want) {
			t.Fatalf("deployment list lacks %q:\n%s", want, out)
		}
	}
	if out := cliOK(t, cfg, "deployment", "group", "show", "-g", "myResourceGroup", "-n", "firewall", "--query", "properties.parameters.registryName.value", "-o", "tsv"); out != "fwreg01\n" {
		t.Fatalf("show: %q", out)
	}
	if out := cliOK(t, cfg, "deployment", "group", "what-if", "-g", "myResourceGroup", "--template-file", fixed, "-p", "registryName=fwreg01", "-o", "table"); !strings.Contains(out, "NoChange") {
		t.Fatalf("what-if of the deployed template:\n%s", out)
	}
	if out := cliOK(t, cfg, "deployment", "group", "what-if", "-g", "myResourceGroup", "--template-file", fixed, "-p", "registryName=notmade01",
		"--query", "properties.changes[0].changeType", "-o", "tsv"); out != "Create\n" {
		t.Fatalf("what-if of a new registry: %q", out)
	}
	cliOK(t, cfg, "deployment", "group", "validate", "-g", "myResourceGroup", "--template-file", fixed, "-p", "registryName=notmade01")
	cliFails(t, cfg, 1, "moat: ResourceNotFound: ", "acr", "show", "-n", "notmade01")
	cliFails(t, cfg, 1, "moat: InvalidTemplateParameter: ", "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", fixed)
	cliOK(t, cfg, "deployment", "group", "delete", "-g", "myResourceGroup", "-n", "fw")
	cliFails(t, cfg, 1, "moat: DeploymentNotFound: ", "deployment", "group", "show", "-g", "myResourceGroup", "-n", "fw")
}
