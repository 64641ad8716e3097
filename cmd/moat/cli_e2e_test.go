package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliRun is one finished client command.
type cliRun struct {
	stdout, stderr string
	code           int
}

// cli runs the moat binary as a client with the profile in cfgDir.
func cli(t *testing.T, cfgDir string, env []string, stdin string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(moatBinary(t), args...)
	cmd.Env = append(os.Environ(), "MOAT_CONFIG_DIR="+cfgDir, "MOAT_PASSWORD=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running moat %v: %v", args, err)
	}
	return cliRun{stdout: out.String(), stderr: errb.String(), code: code}
}

// cliOK runs a command that must succeed.
func cliOK(t *testing.T, cfgDir string, args ...string) string {
	t.Helper()
	r := cli(t, cfgDir, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("moat %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// cliFails runs a command that must fail with exit status code and one stderr
// line starting with prefix.
func cliFails(t *testing.T, cfgDir string, code int, prefix string, args ...string) {
	t.Helper()
	r := cli(t, cfgDir, nil, "", args...)
	if r.code != code {
		t.Fatalf("moat %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, prefix) {
		t.Fatalf("moat %s: stderr %q, want one line starting %q", strings.Join(args, " "), r.stderr, prefix)
	}
}

// cliShell runs script with sh, the moat binary first on PATH.
func cliShell(t *testing.T, cfgDir, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "MOAT_CONFIG_DIR="+cfgDir, "MOAT_PASSWORD=",
		"PATH="+filepath.Dir(moatBinary(t))+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, errb.String())
	}
	return out.String()
}

func cliJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("output is not a JSON object: %v\n%s", err, s)
	}
	return m
}

// cliDig reads a dotted path from a JSON object.
func cliDig(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// TestCLIAgainstServe drives the az-style client commands against one real
// `moat serve`: login, groups, registries, network rules, the seed's
// `az resource update` lines verbatim, validation errors as one line with
// the ARM code, and the output formats.
func TestCLIAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "cli-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	cfg := filepath.Join(t.TempDir(), "cfg")
	ca := filepath.Join(dataDir, "ca.pem")

	t.Run("login", func(t *testing.T) {
		cliFails(t, cfg, 1, "moat: NotLoggedIn: ", "group", "list")
		cliFails(t, cfg, 1, "moat: AuthenticationFailed: invalid_grant: ", "login", "--server", url, "--ca-file", ca, "-u", "admin", "-p", "wrong")
		cliFails(t, cfg, 2, "moat: ", "login", "--server", "http://"+strings.TrimPrefix(url, "https://"), "-u", "admin", "-p", "x")
		// Without the CA the server's certificate is not trusted.
		cliFails(t, cfg, 1, "moat: AuthenticationFailed: ", "login", "--server", url, "-u", "admin", "-p", password)
		// The password from standard input, never argv.
		r := cli(t, cfg, nil, password+"\n", "login", "--server", url, "--ca-file", ca, "-u", "admin")
		if r.code != 0 {
			t.Fatalf("login: exit %d: %s", r.code, r.stderr)
		}
		st, err := os.Stat(filepath.Join(cfg, "profile.json"))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("profile mode %v, want 0600", st.Mode().Perm())
		}
		raw := readFile(t, filepath.Join(cfg, "profile.json"))
		if bytes.Contains(raw, []byte(password)) {
			t.Fatal("the profile holds the password")
		}
		// And from MOAT_PASSWORD.
		if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
			t.Fatalf("login with MOAT_PASSWORD: exit %d: %s", r.code, r.stderr)
		}

		// An expired token: refused with a hint, or renewed from MOAT_PASSWORD.
		var prof profile
		if err := json.Unmarshal(readFile(t, filepath.Join(cfg, "profile.json")), &prof); err != nil {
			t.Fatal(err)
		}
		prof.ExpiresOn = time.Now().Add(-time.Hour)
		t.Setenv("MOAT_CONFIG_DIR", cfg)
		if err := saveProfile(prof); err != nil {
			t.Fatal(err)
		}
		cliFails(t, cfg, 1, "moat: AuthenticationExpired: ", "group", "list")
		if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "group", "list"); r.code != 0 {
			t.Fatalf("group list with an expired token and MOAT_PASSWORD: exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal(readFile(t, filepath.Join(cfg, "profile.json")), &prof); err != nil {
			t.Fatal(err)
		}
		if !prof.ExpiresOn.After(time.Now()) {
			t.Fatalf("the renewed token expires at %v", prof.ExpiresOn)
		}
	})

	t.Run("group", func(t *testing.T) {
		g := cliJSON(t, cliOK(t, cfg, "group", "create", "-n", "myResourceGroup", "-l", "centralus"))
		if g["name"] != "myResourceGroup" || g["location"] != "centralus" {
			t.Fatalf("group create: %v", g)
		}
		if out := cliOK(t, cfg, "group", "list", "-o", "table"); !strings.Contains(out, "myResourceGroup  centralus  Succeeded") {
			t.Fatalf("group list table:\n%s", out)
		}
		cliOK(t, cfg, "group", "create", "-n", "scratch")
		cliFails(t, cfg, 2, "moat: ", "group", "delete", "-n", "scratch")
		cliOK(t, cfg, "group", "delete", "-n", "scratch", "--yes")
		cliFails(t, cfg, 1, "moat: ResourceGroupNotFound: ", "group", "show", "-n", "scratch")
	})

	t.Run("acr", func(t *testing.T) {
		reg := cliJSON(t, cliOK(t, cfg, "acr", "create", "-n", "myregistry", "-g", "myResourceGroup", "--sku", "Premium"))
		if cliDig(reg, "properties.loginServer") != "myregistry.localhost" || reg["location"] != "centralus" || reg["resourceGroup"] != "myResourceGroup" {
			t.Fatalf("acr create: %v", reg)
		}
		cliFails(t, cfg, 1, "moat: DisablingPublicNetworkAccessNotSupported: ",
			"acr", "create", "-n", "basicreg01", "-g", "myResourceGroup", "--sku", "Basic", "--public-network-enabled", "false")
		cliFails(t, cfg, 2, "moat: ", "acr", "create", "-n", "x", "-g", "myResourceGroup", "--sku", "Gold")

		cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--public-network-enabled", "false", "--admin-enabled", "true")
		reg = cliJSON(t, cliOK(t, cfg, "acr", "show", "-n", "myregistry"))
		if cliDig(reg, "properties.publicNetworkAccess") != "Disabled" || cliDig(reg, "properties.networkRuleSet.defaultAction") != "Deny" ||
			cliDig(reg, "properties.adminUserEnabled") != true {
			t.Fatalf("after acr update --public-network-enabled false: %v", reg["properties"])
		}

		cliOK(t, cfg, "acr", "network-rule", "add", "-n", "myregistry", "--ip-address", "203.0.113.0/24")
		cliOK(t, cfg, "acr", "network-rule", "add", "-n", "myregistry", "-g", "myResourceGroup", "--ip-address", "198.51.100.7")
		cliFails(t, cfg, 1, "moat: InvalidIpRule: ", "acr", "network-rule", "add", "-n", "myregistry", "--ip-address", "10.0.0.0/33")
		if out := cliOK(t, cfg, "acr", "network-rule", "list", "-n", "myregistry", "--query", "ipRules[].value", "-o", "tsv"); out != "203.0.113.0/24\n198.51.100.7\n" {
			t.Fatalf("network-rule list: %q", out)
		}
		cliFails(t, cfg, 1, "moat: IpRuleExists: ", "acr", "network-rule", "add", "-n", "myregistry", "--ip-address", "198.51.100.7")
		cliFails(t, cfg, 2, "moat: --ip-address is required", "acr", "network-rule", "remove", "-n", "myregistry")
		cliOK(t, cfg, "acr", "network-rule", "remove", "-n", "myregistry", "--ip-address", "203.0.113.0/24")
		cliFails(t, cfg, 1, "moat: IpRuleNotFound: ", "acr", "network-rule", "remove", "-n", "myregistry", "--ip-address", "203.0.113.0/24")
		if out := cliOK(t, cfg, "acr", "network-rule", "list", "-n", "myregistry", "-o", "table"); !strings.Contains(out, "Allow   198.51.100.7") || strings.Contains(out, "203.0.113.0") {
			t.Fatalf("network-rule list table:\n%s", out)
		}
		// PATCH keeps what it does not name: the default action stayed Deny.
		if out := cliOK(t, cfg, "acr", "show", "-n", "myregistry", "--query", "properties.networkRuleSet.defaultAction", "-o", "tsv"); out != "Deny\n" {
			t.Fatalf("default action after rule edits: %q", out)
		}
	})

	t.Run("resource update, seed 000/002 verbatim", func(t *testing.T) {
		// Re-open public access first, so the seed's own line is what
		// disables it together with the export policy.
		cliOK(t, cfg, "acr", "update", "-n", "myregistry", "--public-network-enabled", "true", "--default-action", "Allow")
		// The lines of seed 002 as the seed writes them (continuations,
		// trailing blanks), through a shell, with moat in place of az.
		res := cliJSON(t, cliShell(t, cfg, `moat resource update --resource-group myResourceGroup \
    --name myregistry \
    --resource-type "Microsoft.ContainerRegistry/registries" \
    --api-version "2021-06-01-preview" \
    --set "properties.policies.exportPolicy.status=disabled" \
    --set "properties.publicNetworkAccess=disabled"  
`))
		if cliDig(res, "properties.policies.exportPolicy.status") != "disabled" || cliDig(res, "properties.publicNetworkAccess") != "Disabled" {
			t.Fatalf("after the seed's update: %v", res["properties"])
		}
		// Public access cannot come back while exports are disabled.
		cliFails(t, cfg, 1, "moat: BadRequest: ", "acr", "update", "-n", "myregistry", "--public-network-enabled", "true")
		res = cliJSON(t, cliShell(t, cfg, `moat resource update --resource-group myResourceGroup \
    --name myregistry \
    --resource-type "Microsoft.ContainerRegistry/registries" \
    --api-version "2021-06-01-preview" \
    --set "properties.policies.exportPolicy.status=enabled"
`))
		if cliDig(res, "properties.policies.exportPolicy.status") != "enabled" {
			t.Fatalf("after re-enabling exports: %v", res["properties"])
		}
		// --ids and resource show name the same resource.
		id, _ := res["id"].(string)
		if out := cliOK(t, cfg, "resource", "show", "--ids", id, "--api-version", "2021-06-01-preview", "--query", "properties.policies.exportPolicy.status", "-o", "tsv"); out != "enabled\n" {
			t.Fatalf("resource show --ids: %q", out)
		}
		// An edit the server refuses is one line with its ARM code.
		cliFails(t, cfg, 1, "moat: InvalidIpRule: ", "resource", "update", "--ids", id, "--api-version", "2021-06-01-preview",
			"--set", `properties.networkRuleSet.ipRules=[{"action":"Allow","value":"10.0.0.0/33"}]`)
		cliFails(t, cfg, 2, "moat: ", "resource", "update", "--ids", id, "--set", "nonsense")
		cliFails(t, cfg, 1, "moat: InvalidApiVersionParameter: ", "resource", "show", "--ids", id, "--api-version", "1999-01-01")
	})

	t.Run("output", func(t *testing.T) {
		out := cliOK(t, cfg, "acr", "list", "-g", "myResourceGroup", "-o", "table")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME ") || !strings.HasPrefix(lines[2], "myregistry  myResourceGroup  centralus  Premium  myregistry.localhost") {
			t.Fatalf("acr list table:\n%s", out)
		}
		if out := cliOK(t, cfg, "acr", "list", "--query", "[?sku.name=='Premium'].name", "-o", "tsv"); !strings.Contains(out, "myregistry\n") {
			t.Fatalf("acr list --query: %q", out)
		}
		if out := cliOK(t, cfg, "acr", "show", "-n", "myregistry", "--query", "{n:name, s:sku.name}", "-o", "tsv"); out != "myregistry\tPremium\n" {
			t.Fatalf("acr show --query tsv: %q", out)
		}
		cliFails(t, cfg, 2, "moat: --query", "acr", "list", "--query", "[?")
		cliFails(t, cfg, 2, "moat: --output", "acr", "list", "-o", "yaml")
	})

	t.Run("acr config", func(t *testing.T) {
		ret := cliJSON(t, cliOK(t, cfg, "acr", "config", "retention", "update", "-r", "myregistry", "--status", "enabled", "--days", "30"))
		if ret["status"] != "enabled" || ret["days"] != float64(30) {
			t.Fatalf("retention update: %v", ret)
		}
		cliFails(t, cfg, 1, "moat: InvalidRetentionDays: ", "acr", "config", "retention", "update", "-r", "myregistry", "--days", "400")
		cliFails(t, cfg, 2, "moat: ", "acr", "config", "retention", "update", "-r", "myregistry")
		if out := cliOK(t, cfg, "acr", "config", "content-trust", "update", "-r", "myregistry", "--status", "enabled", "--query", "status", "-o", "tsv"); out != "enabled\n" {
			t.Fatalf("content-trust update: %q", out)
		}
		sd := cliJSON(t, cliOK(t, cfg, "acr", "config", "soft-delete", "update", "-r", "myregistry", "-g", "myResourceGroup", "--status", "enabled", "--days", "9"))
		if sd["status"] != "enabled" || sd["retentionDays"] != float64(9) {
			t.Fatalf("soft-delete update: %v", sd)
		}
		// Each PATCH left the other policies alone.
		if out := cliOK(t, cfg, "acr", "config", "retention", "show", "-r", "myregistry", "--query", "[status, days]", "-o", "tsv"); out != "enabled\n30\n" {
			t.Fatalf("retention show: %q", out)
		}
	})

	t.Run("delete and logout", func(t *testing.T) {
		cliFails(t, cfg, 2, "moat: ", "acr", "delete", "-n", "myregistry")
		cliOK(t, cfg, "acr", "delete", "-n", "myregistry", "--yes")
		cliFails(t, cfg, 1, "moat: ResourceNotFound: ", "acr", "show", "-n", "myregistry")
		cliOK(t, cfg, "logout")
		cliFails(t, cfg, 1, "moat: NotLoggedIn: ", "acr", "list")
	})
}
