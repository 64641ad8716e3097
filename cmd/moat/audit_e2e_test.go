package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
)

// armJSON sends one management request as the admin and decodes the answer.
func (m *managedMoat) armJSON(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, m.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// caFileOf writes the root of the chain moat's TLS certificate verified
// against (its local CA) to a PEM file, for the CLI's --ca-file.
func (m *managedMoat) caFileOf(t *testing.T) string {
	t.Helper()
	resp, err := m.http.Get(m.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Fatal("no verified TLS chain")
	}
	chain := resp.TLS.VerifiedChains[0]
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[len(chain)-1].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuditAndCheckAccessEndToEnd: a registry with defaultAction Deny and
// one IP rule refuses 127.0.0.3; the refusal is listed by auditRecords (and
// moat acr audit list), and checkNetworkAccess (and moat acr check-access)
// explains that 127.0.0.2 is let in by the rule and 127.0.0.3 is not.
func TestAuditAndCheckAccessEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "audit-secret-1"
	m := startManagedMoat(t, password)
	ctx := context.Background()
	const sub = "00000000-0000-0000-0000-000000000000"
	m.putGroup(t, "aud")
	registries, err := armcontainerregistry.NewRegistriesClient(sub, m.cred, &azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	created, err := registries.BeginCreate(ctx, "aud", "audreg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
		Properties: &armcontainerregistry.RegistryProperties{
			NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny),
				IPRules:       []*armcontainerregistry.IPRule{{Action: to.Ptr(armcontainerregistry.ActionAllow), IPAddressOrRange: to.Ptr("127.0.0.2")}},
			},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := created.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	refused := &http.Client{Transport: transportFrom(t, m.http, m.addr, "127.0.0.3")}
	// With credentials: a bare request is challenged (401, also audited)
	// while the trusted-services bypass is on.
	req, _ := http.NewRequest(http.MethodGet, "https://audreg01.localhost:"+m.port+"/v2/app/manifests/v1", nil)
	req.SetBasicAuth("admin", password)
	resp, err := refused.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("request from 127.0.0.3: %d, want 403", resp.StatusCode)
	}

	regPath := "/subscriptions/" + sub + "/resourceGroups/aud/providers/Microsoft.ContainerRegistry/registries/audreg01"
	const api = "?api-version=2025-11-01"
	// The record is written in the background: allow it a moment.
	var records []any
	for deadline := time.Now().Add(5 * time.Second); ; {
		status, body := m.armJSON(t, http.MethodGet, regPath+"/auditRecords"+api+"&$filter=denied", "")
		if status != http.StatusOK {
			t.Fatalf("auditRecords: %d %v", status, body)
		}
		records, _ = body["value"].([]any)
		if len(records) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(records) != 1 {
		t.Fatalf("audit records %v, want the one denial", records)
	}
	rec, _ := records[0].(map[string]any)
	if rec["clientIp"] != "127.0.0.3" || rec["step"] != "firewall-default-deny" || rec["endpoint"] != "public" ||
		rec["path"] != "/v2/app/manifests/v1" || rec["allowed"] != false || rec["ruleSetVersion"] == "" {
		t.Fatalf("audit record %v", rec)
	}

	check := func(ip string) map[string]any {
		t.Helper()
		status, body := m.armJSON(t, http.MethodPost, regPath+"/checkNetworkAccess"+api, `{"clientIp":"`+ip+`"}`)
		if status != http.StatusOK {
			t.Fatalf("checkNetworkAccess %s: %d %v", ip, status, body)
		}
		return body
	}
	if a := check("127.0.0.2"); a["allowed"] != true || a["step"] != "firewall-ip-rule" || a["rule"] != "127.0.0.2" || a["ruleSetVersion"] != rec["ruleSetVersion"] {
		t.Fatalf("checkNetworkAccess 127.0.0.2: %v", a)
	}
	if a := check("127.0.0.3"); a["allowed"] != false || a["step"] != "firewall-default-deny" {
		t.Fatalf("checkNetworkAccess 127.0.0.3: %v", a)
	}
	if status, body := m.armJSON(t, http.MethodPost, regPath+"/checkNetworkAccess"+api, `{"clientIp":"not-an-ip"}`); status != http.StatusBadRequest ||
		!strings.Contains(cliDig(body, "error.message").(string), "not-an-ip") {
		t.Fatalf("checkNetworkAccess with a bad IP: %d %v", status, body)
	}

	// The CLI commands over the same routes.
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", m.url, "--ca-file", m.caFileOf(t), "-u", "admin"); r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(cliOK(t, cfg, "acr", "audit", "list", "-n", "audreg01", "--denied", "--since", "1h")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0]["clientIp"] != "127.0.0.3" {
		t.Fatalf("moat acr audit list: %v", listed)
	}
	if out := cliOK(t, cfg, "acr", "check-access", "-n", "audreg01", "--ip", "127.0.0.2", "--query", "rule", "-o", "tsv"); strings.TrimSpace(out) != "127.0.0.2" {
		t.Fatalf("moat acr check-access --ip 127.0.0.2: %q, want the rule", out)
	}
	got := cliJSON(t, cliOK(t, cfg, "acr", "check-access", "-n", "audreg01", "--ip", "127.0.0.3", "--identity", "ContainerInstances"))
	// networkRuleBypassOptions defaults to AzureServices: a container group's
	// identity gets through from anywhere.
	if got["allowed"] != true || got["step"] != "trusted-service" {
		t.Fatalf("moat acr check-access --identity ContainerInstances: %v", got)
	}
	cliFails(t, cfg, 1, "moat: InvalidRequestContent: ", "acr", "check-access", "-n", "audreg01", "--ip", "300.1.1.1")
}
