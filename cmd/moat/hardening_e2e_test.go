package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// TestLoginLockoutAndKeyRotationEndToEnd runs the binary: wrong passwords
// lock a user name at one registry (429 with Retry-After, the right
// password too), the lockout is listed by `moat acr audit list`; then
// `moat keys rotate` on the server's data directory, while it runs, keeps
// old tokens working and makes the server accept tokens of the new key.
func TestLoginLockoutAndKeyRotationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "lockout-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	m := startManagedMoatIn(t, password, dataDir)
	ctx := context.Background()
	const sub = "00000000-0000-0000-0000-000000000000"
	m.putGroup(t, "lock")
	registries, err := armcontainerregistry.NewRegistriesClient(sub, m.cred, &azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	created, err := registries.BeginCreate(ctx, "lock", "lockreg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := created.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Transport: transportFrom(t, m.http, m.addr, "127.0.0.1")}
	get := func(url, user, pass, bearer string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		} else {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	lockreg := "https://lockreg01.localhost:" + m.port + "/v2/"
	for i := 1; i < identity.LoginMaxUserFailures; i++ {
		if resp, body := get(lockreg, identity.AdminName, "guess", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if resp, body := get(lockreg, identity.AdminName, "guess", ""); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, `"TOOMANYREQUESTS"`) {
		t.Fatalf("wrong password at the limit: %d %s", resp.StatusCode, body)
	}
	resp, body := get(lockreg, identity.AdminName, password, "")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"TOOMANYREQUESTS"`) {
		t.Fatalf("right password while locked: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The same name at the default registry is not locked.
	if resp, body := get(m.url+"/v2/", identity.AdminName, password, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("default registry: %d %s", resp.StatusCode, body)
	}

	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", m.url, "--ca-file", m.caFileOf(t), "-u", "admin"); r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	var listed []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; { // written in the background
		listed = nil
		if err := json.Unmarshal([]byte(cliOK(t, cfg, "acr", "audit", "list", "-n", "lockreg01", "--denied")), &listed); err != nil {
			t.Fatal(err)
		}
		if len(listed) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lockouts, refusals int
	for _, rec := range listed {
		if rec["step"] != "authentication" || rec["principal"] != identity.AdminName || rec["clientIp"] != "127.0.0.1" {
			t.Fatalf("audit record %v", rec)
		}
		reason, _ := rec["reason"].(string)
		switch {
		case strings.Contains(reason, "locked for"):
			lockouts++
		case strings.Contains(reason, "refused while locked"):
			refusals++
		}
	}
	if lockouts != 1 || refusals != 1 {
		t.Fatalf("moat acr audit list: %v; want the lockout and one batch of refusals", listed)
	}

	// Key rotation while the server runs.
	tokenURL := m.url + "/oauth2/token?service=moat.localhost&scope=registry:catalog:*"
	resp, body = get(tokenURL, identity.AdminName, password, "")
	var tr struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &tr) != nil {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	before := tr.Token
	oldKid := jwtKid(t, before)
	var keys []map[string]any
	if err := json.Unmarshal([]byte(cliOK(t, cfg, "keys", "rotate", "--data-dir", dataDir)), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0]["state"] != identity.KeyActive || keys[0]["kid"] == oldKid || keys[1]["kid"] != oldKid || keys[1]["state"] != identity.KeyVerifying {
		t.Fatalf("moat keys rotate: %v", keys)
	}
	// A token of the new key, as another replica would sign it now.
	store, err := sqlite.Open(ctx, filepath.Join(dataDir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	replica, err := identity.New(ctx, store, identity.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := replica.AuthenticateBasic(ctx, identity.AdminName, password)
	if err != nil {
		t.Fatal(err)
	}
	after, err := replica.IssueAccessToken(ctx, admin, "moat", "moat.localhost",
		[]identity.Access{{Type: identity.TypeRegistry, Name: identity.CatalogName, Actions: []string{identity.ActionAll}}})
	if err != nil {
		t.Fatal(err)
	}
	if jwtKid(t, after.Token) != keys[0]["kid"] {
		t.Fatalf("replica signs with %s, want %v", jwtKid(t, after.Token), keys[0]["kid"])
	}
	for name, tok := range map[string]string{"old key's": before, "new key's": after.Token} {
		if resp, body := get(m.url+"/v2/_catalog", "", "", tok); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s token after rotation: %d %s", name, resp.StatusCode, body)
		}
	}
}
