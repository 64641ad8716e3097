package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/testsupport/pgtest"
)

// TestDeploymentAcrossReplicas accepts a deployment on one replica and
// follows it on another (both on one PostgreSQL database): the status and
// the registry it made are visible on both, and exactly one replica ran it.
func TestDeploymentAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with PostgreSQL")
	}
	dsn := pgtest.DSN(t)
	const password = "replica-deploy-1"
	env := []string{"MOAT_ADMIN_PASSWORD=" + password, "MOAT_DATABASE=" + dsn}
	var urls [2]string
	var procs [2]*process
	for i := range procs {
		procs[i], urls[i] = startMoat(t, env, "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
		defer procs[i].stop(t)
	}
	form := "grant_type=password&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&username=admin&password=" + password +
		"&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+openid"
	resp, err := http.Post(urls[0]+"/organizations/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	_ = resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("management token: status %d, %v", resp.StatusCode, err)
	}
	call := func(method, url, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, resp.Header, m
	}
	const group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/shared"
	if code, _, _ := call(http.MethodPut, urls[0]+group+"?api-version=2021-04-01", `{"location":"local"}`); code != http.StatusCreated {
		t.Fatalf("group: %d", code)
	}
	tpl := `{"resources":[{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"replreg01","location":"local","sku":{"name":"Premium"},
	  "properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.1"}]}}}],
	  "outputs":{"server":{"type":"string","value":"[reference('replreg01').loginServer]"}}}`
	code, hdr, _ := call(http.MethodPut, urls[0]+group+"/providers/Microsoft.Resources/deployments/across?api-version=2021-04-01",
		`{"properties":{"mode":"Incremental","template":`+tpl+`}}`)
	if code != http.StatusCreated {
		t.Fatalf("deployment PUT on replica A: %d", code)
	}
	// Poll replica B with the status URL replica A handed out.
	status := strings.Replace(hdr.Get("Azure-AsyncOperation"), urls[0], urls[1], 1)
	if status == hdr.Get("Azure-AsyncOperation") {
		t.Fatalf("Azure-AsyncOperation %q is not on replica A", status)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, doc := call(http.MethodGet, status, "")
		if code != http.StatusOK {
			t.Fatalf("status on replica B: %d %v", code, doc)
		}
		if doc["status"] == "Succeeded" {
			break
		}
		if doc["status"] == "Failed" || time.Now().After(deadline) {
			t.Fatalf("deployment status on replica B: %v", doc)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, _, d := call(http.MethodGet, urls[1]+group+"/providers/Microsoft.Resources/deployments/across?api-version=2021-04-01", "")
	if code != http.StatusOK || cliDig(d, "properties.outputs.server.value") != "replreg01.localhost" {
		t.Fatalf("deployment on replica B: %d %v", code, d)
	}
	if code, _, reg := call(http.MethodGet, urls[1]+group+"/providers/Microsoft.ContainerRegistry/registries/replreg01?api-version=2023-07-01", ""); code != http.StatusOK ||
		cliDig(reg, "properties.networkRuleSet.defaultAction") != "Deny" {
		t.Fatalf("registry on replica B: %d %v", code, reg)
	}
	// Replica B's poll-started runner waits for A's lease and finds the
	// deployment done; only one replica ran it.
	time.Sleep(200 * time.Millisecond)
	ran := 0
	for _, p := range procs {
		ran += strings.Count(p.output(), "deployment succeeded")
	}
	if ran != 1 {
		t.Fatalf("the deployment ran %d times:\nA: %s\nB: %s", ran, procs[0].output(), procs[1].output())
	}
}
