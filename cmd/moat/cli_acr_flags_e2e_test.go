package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIRegistryFlagsAgainstServe checks each `moat acr create|update` flag
// issue 4 lists reaches the registry as `az acr` sets it, replays seed 001's
// `az acr update --allow-trusted-services` lines verbatim with moat in place
// of az, and runs every read command of the CLI with `-o tsv` and `--query`.
func TestCLIRegistryFlagsAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "cli-flags-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", filepath.Join(dataDir, "ca.pem"), "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "flags", "-l", "local")
	show := func(reg, query string) string {
		t.Helper()
		return cliOK(t, cfg, "acr", "show", "-n", reg, "--query", query, "-o", "tsv")
	}

	// create with every setting; --public-network-enabled false brings
	// defaultAction Deny along, as az acr create does.
	cliOK(t, cfg, "acr", "create", "-n", "myregistry", "-g", "flags", "--sku", "Premium", "--public-network-enabled", "false",
		"--allow-exports", "false", "--allow-trusted-services", "false", "--admin-enabled", "--anonymous-pull-enabled", "true")
	q := "[properties.publicNetworkAccess, properties.networkRuleSet.defaultAction, properties.policies.exportPolicy.status, " +
		"properties.networkRuleBypassOptions, properties.adminUserEnabled, properties.anonymousPullEnabled]"
	if got := show("myregistry", q); got != "Disabled\nDeny\ndisabled\nNone\ntrue\ntrue\n" {
		t.Fatalf("after create with every flag: %q", got)
	}

	// Seed 001, verbatim but for the program's name.
	cliShell(t, cfg, "moat acr update --name myregistry --allow-trusted-services false\n")
	if got := show("myregistry", "properties.networkRuleBypassOptions"); got != "None\n" {
		t.Fatalf("after --allow-trusted-services false: %q", got)
	}
	cliShell(t, cfg, "moat acr update --name myregistry --allow-trusted-services true\n")
	if got := show("myregistry", "properties.networkRuleBypassOptions"); got != "AzureServices\n" {
		t.Fatalf("after --allow-trusted-services true: %q", got)
	}

	// update flag by flag; each PATCH keeps the rest.
	cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--anonymous-pull-enabled", "false", "--admin-enabled", "false")
	cliFails(t, cfg, 1, "moat: BadRequest: ", "acr", "update", "-n", "myregistry", "--public-network-enabled", "true")
	cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--public-network-enabled", "true", "--allow-exports", "true")
	if got := show("myregistry", q); got != "Enabled\nDeny\nenabled\nAzureServices\nfalse\nfalse\n" {
		t.Fatalf("after updates: %q", got)
	}
	cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--default-action", "allow")
	if got := show("myregistry", "properties.networkRuleSet.defaultAction"); got != "Allow\n" {
		t.Fatalf("--default-action allow: %q", got)
	}
	cliFails(t, cfg, 2, "moat: --default-action", "acr", "update", "-n", "myregistry", "--default-action", "Maybe")
	cliFails(t, cfg, 1, "moat: ExportPolicyRequiresPublicNetworkAccessDisabled: ", "acr", "update", "-n", "myregistry", "--allow-exports", "false")

	// --sku changes the tier; the Premium-only settings are refused below it.
	cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--sku", "Standard")
	if got := show("myregistry", "[sku.name, sku.tier]"); got != "Standard\nStandard\n" {
		t.Fatalf("--sku Standard: %q", got)
	}
	cliFails(t, cfg, 1, "moat: NetworkRuleSetNotSupported: ", "acr", "update", "-n", "myregistry", "--default-action", "Deny")
	cliFails(t, cfg, 1, "moat: DisablingPublicNetworkAccessNotSupported: ", "acr", "update", "-n", "myregistry", "--public-network-enabled", "false")
	cliFails(t, cfg, 1, "moat: AnonymousPullNotSupported: ", "acr", "create", "-n", "basicanon01", "-g", "flags", "--sku", "Basic", "--anonymous-pull-enabled")
	cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--sku", "Premium")
	cliOK(t, cfg, "acr", "network-rule", "add", "-n", "myregistry", "--ip-address", "203.0.113.9")

	// `moat resource update --ids ID --api-version V --set path=value`:
	// the seed's edits by id, with the property names in another case.
	id := strings.TrimSpace(show("myregistry", "id"))
	cliOK(t, cfg, "resource", "update", "--ids", id, "--api-version", "2021-06-01-preview",
		"--set", "properties.policies.exportPolicy.Status=disabled", "--set", "properties.publicNetworkAccess=disabled")
	if got := show("myregistry", "[properties.policies.exportPolicy.status, properties.publicNetworkAccess, length(properties.networkRuleSet.ipRules)]"); got != "disabled\nDisabled\n1\n" {
		t.Fatalf("after resource update --ids: %q", got)
	}
	cliOK(t, cfg, "resource", "update", "--ids", id, "--api-version", "2021-06-01-preview", "--set", "properties.policies.exportPolicy.status=enabled")

	// resource update works on any resource moat serves, a group too.
	groupID := strings.TrimSpace(cliOK(t, cfg, "group", "show", "-n", "flags", "--query", "id", "-o", "tsv"))
	if got := cliOK(t, cfg, "resource", "update", "--ids", groupID, "--set", "tags.env=prod", "--query", "[location, tags.env]", "-o", "tsv"); got != "local\nprod\n" {
		t.Fatalf("resource update of a group: %q", got)
	}

	// Every read command answers -o tsv and --query.
	cliOK(t, cfg, "acr", "config", "retention", "update", "-r", "myregistry", "--status", "enabled", "--days", "7")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "show", "-n", "flags", "--query", "name"}, "flags\n"},
		{[]string{"group", "list", "--query", "[?name=='flags'].location"}, "local\n"},
		{[]string{"acr", "list", "-g", "flags", "--query", "[].name"}, "myregistry\n"},
		{[]string{"acr", "show", "-n", "myregistry", "--query", "properties.loginServer"}, "myregistry.localhost\n"},
		{[]string{"acr", "network-rule", "list", "-n", "myregistry", "--query", "ipRules[0].value"}, "203.0.113.9\n"},
		{[]string{"acr", "config", "retention", "show", "-r", "myregistry", "--query", "days"}, "7\n"},
		{[]string{"acr", "config", "content-trust", "show", "-r", "myregistry", "--query", "status"}, "disabled\n"},
		{[]string{"acr", "config", "soft-delete", "show", "-r", "myregistry", "--query", "status"}, "disabled\n"},
		{[]string{"acr", "private-endpoint-connection", "list", "-r", "myregistry", "--query", "length(@)"}, "0\n"},
		{[]string{"resource", "show", "--ids", id, "--query", "type"}, "Microsoft.ContainerRegistry/registries\n"},
		{[]string{"role", "definition", "list", "--name", "AcrPull", "--query", "[0].roleName"}, "AcrPull\n"},
	} {
		if got := cliOK(t, cfg, append(c.args, "-o", "tsv")...); got != c.want {
			t.Errorf("moat %s -o tsv: %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
	// tsv of an object is its scalar values on one line, tab-separated.
	if got := cliOK(t, cfg, "acr", "config", "retention", "show", "-r", "myregistry", "-o", "tsv"); !strings.Contains(got, "7\t") && !strings.Contains(got, "\t7") {
		t.Fatalf("retention show -o tsv: %q", got)
	}
}
