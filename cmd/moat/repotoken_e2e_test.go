package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRepoTokensEndToEnd manages scope maps and tokens with the moat CLI
// against a real `moat serve` and uses the tokens' credentials with
// go-containerregistry (the docker token flow with Basic credentials): pull
// and push where the scope map allows, refusal elsewhere, on another
// registry, when disabled and when the password expired, and a scope-map
// edit taking effect on the next request.
func TestRepoTokensEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "tok-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	cfg := filepath.Join(t.TempDir(), "cfg")
	ca := filepath.Join(dataDir, "ca.pem")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "tokrg", "-l", "local")
	cliOK(t, cfg, "acr", "create", "-n", "tokreg01", "-g", "tokrg", "--sku", "Basic")
	cliOK(t, cfg, "acr", "create", "-n", "tokreg02", "-g", "tokrg", "--sku", "Basic")

	addr := strings.TrimPrefix(url, "https://")
	_, port, _ := strings.Cut(addr, ":")
	tr := remote.WithTransport(clientTrusting(t, ca, addr).Transport)
	ref := func(registry, repo string) name.Reference {
		r, err := name.ParseReference(registry + ".localhost:" + port + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	admin := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	for _, repo := range []string{"samples/hello:v1", "samples/other:v1", "secret/db:v1"} {
		if err := remote.Write(ref("tokreg01", repo), img, admin, tr); err != nil {
			t.Fatalf("admin push %s: %v", repo, err)
		}
	}
	if err := remote.Write(ref("tokreg02", "samples/hello:v1"), img, admin, tr); err != nil {
		t.Fatal(err)
	}

	sm := cliJSON(t, cliOK(t, cfg, "acr", "scope-map", "create", "-r", "tokreg01", "-n", "hello-rw", "--description", "ci",
		"--repository", "samples/hello", "content/read", "content/write", "--repository", "samples/other", "content/read"))
	if acts, _ := cliDig(sm, "properties.actions").([]any); len(acts) != 3 || acts[2] != "repositories/samples/other/content/read" {
		t.Fatalf("scope-map create: %v", sm)
	}
	tok := cliJSON(t, cliOK(t, cfg, "acr", "token", "create", "-r", "tokreg01", "-n", "ci-token", "--scope-map", "hello-rw"))
	pws, _ := cliDig(tok, "properties.credentials.passwords").([]any)
	if len(pws) != 2 {
		t.Fatalf("token create: %v", tok)
	}
	pw1, _ := pws[0].(map[string]any)["value"].(string)
	if pw1 == "" {
		t.Fatalf("token create shows no password: %v", tok)
	}
	if out := cliOK(t, cfg, "acr", "token", "show", "-r", "tokreg01", "-n", "ci-token"); strings.Contains(out, pw1) {
		t.Fatal("token show reveals a password")
	}
	tokAuth := remote.WithAuth(&authn.Basic{Username: "ci-token", Password: pw1})

	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), tokAuth, tr); err != nil {
		t.Fatalf("pull in scope: %v", err)
	}
	if _, err := remote.Image(ref("tokreg01", "samples/other:v1"), tokAuth, tr); err != nil {
		t.Fatalf("pull in scope (other): %v", err)
	}
	if err := remote.Write(ref("tokreg01", "samples/hello:v2"), img, tokAuth, tr); err != nil {
		t.Fatalf("push in scope: %v", err)
	}
	if err := remote.Write(ref("tokreg01", "samples/other:v2"), img, tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "push outside the scope map was accepted")
	}
	if _, err := remote.Head(ref("tokreg01", "secret/db:v1"), tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "pull outside the scope map was accepted")
	}
	if _, err := remote.Catalog(t.Context(), ref("tokreg01", "x").Context().Registry, tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "a repository-scoped token listed the catalog")
	}
	if _, err := remote.Head(ref("tokreg02", "samples/hello:v1"), tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "the token of tokreg01 pulled from tokreg02")
	}

	// A scope-map edit applies from the next request on.
	cliOK(t, cfg, "acr", "scope-map", "update", "-r", "tokreg01", "-n", "hello-rw", "--add-repository", "samples/other", "content/write",
		"--remove-repository", "samples/hello", "content/write")
	if err := remote.Write(ref("tokreg01", "samples/other:v2"), img, tokAuth, tr); err != nil {
		t.Fatalf("push after the scope map allowed it: %v", err)
	}
	if err := remote.Write(ref("tokreg01", "samples/hello:v3"), img, tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "push still accepted after the scope map took it away")
	}

	// Disabled: refused; enabled again: accepted.
	cliOK(t, cfg, "acr", "token", "update", "-r", "tokreg01", "-n", "ci-token", "--status", "disabled")
	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "a disabled token pulled")
	}
	cliOK(t, cfg, "acr", "token", "update", "-r", "tokreg01", "-n", "ci-token", "--status", "enabled")
	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), tokAuth, tr); err != nil {
		t.Fatalf("pull after enabling again: %v", err)
	}

	// password2 with an expiry a few seconds away: works, then refused.
	exp := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	gen := cliJSON(t, cliOK(t, cfg, "acr", "token", "credential", "generate", "-r", "tokreg01", "-n", "ci-token", "--password2",
		"--expiration", exp.Format(time.RFC3339)))
	gpws, _ := gen["passwords"].([]any)
	if gen["username"] != "ci-token" || len(gpws) != 1 {
		t.Fatalf("credential generate: %v", gen)
	}
	pw2, _ := gpws[0].(map[string]any)["value"].(string)
	shortAuth := remote.WithAuth(&authn.Basic{Username: "ci-token", Password: pw2})
	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), shortAuth, tr); err != nil {
		t.Fatalf("pull with password2 before it expired: %v", err)
	}
	time.Sleep(time.Until(exp) + 500*time.Millisecond)
	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), shortAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "an expired password pulled")
	}
	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), tokAuth, tr); err != nil {
		t.Fatalf("password1 stopped working: %v", err)
	}

	// az's shortcut: a token with --repository gets its own scope map.
	out := cliOK(t, cfg, "acr", "token", "create", "-r", "tokreg01", "-n", "pull-token", "--repository", "secret/db", "content/read", "--no-passwords", "-o", "table")
	if !strings.Contains(out, "pull-token") || !strings.Contains(out, "pull-token-scope-map") {
		t.Fatalf("token create --repository, table:\n%s", out)
	}
	if out := cliOK(t, cfg, "acr", "scope-map", "list", "-r", "tokreg01", "-o", "table"); !strings.Contains(out, "_repositories_admin") ||
		!strings.Contains(out, "SystemDefined") || !strings.Contains(out, "pull-token-scope-map") {
		t.Fatalf("scope-map list:\n%s", out)
	}
	if out := cliOK(t, cfg, "acr", "token", "list", "-r", "tokreg01", "--query", "[].name", "-o", "tsv"); out != "ci-token\npull-token\n" {
		t.Fatalf("token list: %q", out)
	}

	// Errors: one line, ARM's code, exit 1; usage mistakes exit 2.
	cliFails(t, cfg, 1, "moat: ScopeMapInUse: ", "acr", "scope-map", "delete", "-r", "tokreg01", "-n", "hello-rw", "--yes")
	cliFails(t, cfg, 1, "moat: InvalidParameter: ", "acr", "scope-map", "create", "-r", "tokreg01", "-n", "badmap1", "--repository", "samples/x", "content/run")
	cliFails(t, cfg, 1, "moat: InvalidParameter: ", "acr", "token", "create", "-r", "tokreg01", "-n", "tok-x1", "--scope-map", "nosuchmap")
	cliFails(t, cfg, 2, "moat: ", "acr", "token", "create", "-r", "tokreg01", "-n", "tok-x1")
	cliFails(t, cfg, 2, "moat: ", "acr", "scope-map", "create", "-r", "tokreg01", "-n", "badmap1", "content/read", "--repository", "samples/x")
	cliFails(t, cfg, 2, "moat: ", "acr", "scope-map", "create", "-r", "tokreg01", "-n", "badmap1", "--repository", "samples/x")
	cliFails(t, cfg, 2, "moat: ", "acr", "token", "delete", "-r", "tokreg01", "-n", "ci-token")
	cliFails(t, cfg, 1, "moat: ActionNotFound: ", "acr", "scope-map", "update", "-r", "tokreg01", "-n", "hello-rw", "--remove-repository", "nope", "content/read")

	cliOK(t, cfg, "acr", "token", "delete", "-r", "tokreg01", "-n", "ci-token", "--yes")
	if _, err := remote.Head(ref("tokreg01", "samples/hello:v1"), tokAuth, tr); !refused(err) {
		t.Fatal(err, ": ", "a deleted token pulled")
	}
	cliOK(t, cfg, "acr", "scope-map", "delete", "-r", "tokreg01", "-n", "hello-rw", "--yes")
	cliFails(t, cfg, 1, "moat: ResourceNotFound: ", "acr", "scope-map", "show", "-r", "tokreg01", "-n", "hello-rw")
}

// refused reports whether err is the registry's 401 (a token request
// refused, or a token without the needed action), not some other failure.
func refused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "UNAUTHORIZED") || strings.Contains(err.Error(), "401 Unauthorized"))
}
