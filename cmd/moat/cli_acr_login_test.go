package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/identity"
)

func TestRegistryAddress(t *testing.T) {
	for _, tt := range []struct{ server, want string }{
		{"https://127.0.0.1:8443", "r.localhost:8443"},
		{"https://moat.example", "r.localhost"},
		{"https://moat.example:443", "r.localhost"},
	} {
		if got, err := registryAddress(tt.server, "r.localhost"); err != nil || got != tt.want {
			t.Errorf("registryAddress(%q) = %q, %v; want %q", tt.server, got, err, tt.want)
		}
	}
	if _, err := registryAddress("::", "r"); err == nil {
		t.Error("a server that is no URL was accepted")
	}
}

// TestACRLoginAndCredentialsAgainstServe: `moat acr login` and `moat acr
// credential` against a real `moat serve`, and the credentials they hand out
// used by go-containerregistry (the docker config through its keychain).
func TestACRLoginAndCredentialsAgainstServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "cli-secret-2"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	cfg := filepath.Join(t.TempDir(), "cfg")
	ca := filepath.Join(dataDir, "ca.pem")
	addr := strings.TrimPrefix(url, "https://")
	_, port, _ := strings.Cut(addr, ":")
	hc := clientTrusting(t, ca, addr)

	if r := cli(t, cfg, nil, password+"\n", "login", "--server", url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "rg", "-l", "local")
	cliOK(t, cfg, "acr", "create", "-n", "tfreg", "-g", "rg", "--sku", "Standard")
	regAddr := "tfreg.localhost:" + port

	// --expose-token: az's shape, and the token works as a password.
	exp := cliJSON(t, cliOK(t, cfg, "acr", "login", "-n", "tfreg", "--expose-token"))
	tok, _ := exp["accessToken"].(string)
	if exp["loginServer"] != regAddr || tok == "" {
		t.Fatalf("acr login --expose-token: %v", exp)
	}
	catalog := func(user, pass string) int {
		t.Helper()
		code, _ := get(t, hc, "https://"+regAddr+"/v2/_catalog", func(r *http.Request) { r.SetBasicAuth(user, pass) })
		return code
	}
	if code := catalog(identity.RefreshTokenUser, tok); code != http.StatusOK {
		t.Fatalf("catalog with the exposed refresh token: %d", code)
	}
	// Bound to tfreg: the default registry refuses it.
	if code, _ := get(t, hc, url+"/v2/_catalog", func(r *http.Request) { r.SetBasicAuth(identity.RefreshTokenUser, tok) }); code != http.StatusUnauthorized {
		t.Fatalf("tfreg's refresh token at the default registry: %d", code)
	}

	// Without --expose-token: the docker config, read by ggcr's keychain.
	dockerDir := filepath.Join(t.TempDir(), "docker")
	if err := os.MkdirAll(dockerDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(`{"auths":{"other.example":{"auth":"eDp5"}},"psFormat":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, cfg, []string{"DOCKER_CONFIG=" + dockerDir}, "", "acr", "login", "-n", "tfreg"); r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("acr login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var dc struct {
		Auths    map[string]struct{ Auth string } `json:"auths"`
		PSFormat string                           `json:"psFormat"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dockerDir, "config.json")), &dc); err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(dc.Auths[regAddr].Auth)
	user, _, _ := strings.Cut(string(raw), ":")
	if user != identity.RefreshTokenUser || dc.Auths["other.example"].Auth != "eDp5" || dc.PSFormat != "x" {
		t.Fatalf("docker config after acr login: %+v", dc)
	}
	t.Setenv("DOCKER_CONFIG", dockerDir)
	ref, err := name.ParseReference(regAddr + "/cli/app:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithTransport(hc.Transport)); err != nil {
		t.Fatalf("push with the docker config acr login wrote: %v", err)
	}

	// credential show|renew.
	cliFails(t, cfg, 1, "moat: UnAuthorizedForCredentialOperations: ", "acr", "credential", "show", "-n", "tfreg")
	cliOK(t, cfg, "acr", "update", "-n", "tfreg", "--admin-enabled", "true")
	creds := cliJSON(t, cliOK(t, cfg, "acr", "credential", "show", "-n", "tfreg"))
	pw := func(c map[string]any, n string) string {
		for _, p := range c["passwords"].([]any) {
			if m := p.(map[string]any); m["name"] == n {
				return m["value"].(string)
			}
		}
		t.Fatalf("no %s in %v", n, c)
		return ""
	}
	if creds["username"] != "tfreg" {
		t.Fatalf("credential show: %v", creds)
	}
	pw1, pw2 := pw(creds, "password"), pw(creds, "password2")
	if catalog("tfreg", pw1) != http.StatusOK || catalog("tfreg", pw2) != http.StatusOK {
		t.Fatal("the listed passwords do not work on the data plane")
	}
	table := cliOK(t, cfg, "acr", "credential", "show", "-n", "tfreg", "-o", "table")
	if !strings.Contains(table, "USERNAME") || !strings.Contains(table, pw1) || !strings.Contains(table, pw2) {
		t.Fatalf("credential show table:\n%s", table)
	}
	renewed := cliJSON(t, cliOK(t, cfg, "acr", "credential", "renew", "-n", "tfreg", "--password-name", "password2"))
	if pw(renewed, "password") != pw1 || pw(renewed, "password2") == pw2 {
		t.Fatalf("renew password2: %v", renewed)
	}
	if catalog("tfreg", pw2) != http.StatusUnauthorized || catalog("tfreg", pw(renewed, "password2")) != http.StatusOK {
		t.Fatal("renewing password2 did not replace it on the data plane")
	}
	cliFails(t, cfg, 2, "moat: ", "acr", "credential", "renew", "-n", "tfreg", "--password-name", "password3")
	cliFails(t, cfg, 2, "moat: ", "acr", "credential", "renew", "-n", "tfreg")
	cliFails(t, cfg, 1, "moat: ResourceNotFound: ", "acr", "credential", "show", "-n", "nosuch")
	cliFails(t, cfg, 1, "moat: ResourceNotFound: ", "acr", "login", "-n", "nosuch")
	cliFails(t, cfg, 2, "moat: ", "acr", "login")
}
