package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDeployments is a Microsoft.Resources/deployments endpoint that
// answers a PUT with 201 and an Azure-AsyncOperation, as ARM does, so the
// client's side can be tested before moat serves deployments itself.
type fakeDeployments struct {
	mu     sync.Mutex
	bodies map[string]map[string]any
	polls  int
}

func (f *fakeDeployments) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer test-token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	switch {
	case strings.HasPrefix(r.URL.Path, "/operations/"):
		f.polls++
		switch {
		case f.polls%2 == 1:
			_, _ = io.WriteString(w, `{"status":"Running"}`)
		case name == "bad":
			_, _ = io.WriteString(w, `{"status":"Failed","error":{"code":"DeploymentFailed","message":"At least one resource deployment operation failed.",`+
				`"details":[{"code":"DisablingPublicNetworkAccessNotSupported","message":"properties.publicNetworkAccess \"Disabled\" is not supported on the Basic SKU"}]}}`)
		default:
			_, _ = io.WriteString(w, `{"status":"Succeeded"}`)
		}
	case r.Method == http.MethodPut && r.URL.Query().Get("api-version") == deploymentsAPIVersion:
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.bodies[name] = body
		w.Header().Set("Azure-AsyncOperation", "https://"+r.Host+"/operations/"+name)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "properties": map[string]any{"provisioningState": "Accepted"}})
	case r.Method == http.MethodGet && name == "bad" && f.bodies[name] != nil:
		_, _ = io.WriteString(w, `{"name":"bad","properties":{"provisioningState":"Failed","error":{"code":"DeploymentFailed","message":"At least one resource deployment operation failed.",`+
			`"details":[{"code":"DisablingPublicNetworkAccessNotSupported","message":"properties.publicNetworkAccess \"Disabled\" is not supported on the Basic SKU"}]}}}`)
	case r.Method == http.MethodGet && f.bodies[name] != nil:
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "properties": map[string]any{
			"provisioningState": "Succeeded", "mode": "Incremental",
			"outputs": map[string]any{"loginServer": map[string]any{"type": "String", "value": "seedreg.localhost"}},
		}})
	default:
		w.Header().Set("x-ms-error-code", "DeploymentNotFound")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"DeploymentNotFound","message":"no such deployment"}}`)
	}
}

// useFakeServer serves h over TLS and logs the client in to it with the
// token "test-token".
func useFakeServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(configDirEnv, filepath.Join(dir, "cfg"))
	if err := saveProfile(profile{Server: srv.URL, CAFile: caFile, Username: "admin", Tenant: defaultTenant,
		SubscriptionID: defaultSubscriptionID, AccessToken: "test-token", ExpiresOn: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return srv
}

// runCLI runs the root command in process.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(&out, &errb)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestDeploymentGroupCreate(t *testing.T) {
	fake := &fakeDeployments{bodies: map[string]map[string]any{}}
	useFakeServer(t, fake)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tpl := write("registry.json", `{
  // ARM allows comments and trailing commas
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "registryName": {"type": "string"},
    "retentionDays": {"type": "int", "defaultValue": 7},
    "sku": {"type": "string", "defaultValue": "Premium"},
  },
  "resources": [{
    "type": "Microsoft.ContainerRegistry/registries",
    "apiVersion": "2021-06-01-preview",
    "name": "[parameters('registryName')]",
    "location": "local",
    "sku": {"name": "[parameters('sku')]"},
    "properties": {"publicNetworkAccess": "disabled", "policies": {"exportPolicy": {"status": "disabled"}}}
  }]
}`)
	params := write("registry.parameters.json", `{"$schema": "x", "contentVersion": "1.0.0.0", "parameters": {"registryName": {"value": "fromfile"}, "sku": {"value": "Premium"}}}`)

	out, err := runCLI(t, "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", tpl,
		"--parameters", "@"+params, "--parameters", "registryName=seedreg", "--parameters", "retentionDays=30", "--query", "properties.outputs.loginServer.value", "-o", "tsv")
	if err != nil {
		t.Fatalf("deployment group create: %v", err)
	}
	if out != "seedreg.localhost\n" {
		t.Fatalf("output %q", out)
	}
	body := fake.bodies["registry"] // the name defaults to the template file's
	if body == nil {
		t.Fatalf("no deployment named after the template file: %v", fake.bodies)
	}
	got, _ := json.Marshal(dig(body, "properties", "parameters"))
	if want := `{"registryName":{"value":"seedreg"},"retentionDays":{"value":30},"sku":{"value":"Premium"}}`; string(got) != want {
		t.Fatalf("parameters %s, want %s", got, want)
	}
	if dig(body, "properties", "mode") != "Incremental" || dig(body, "properties", "template", "contentVersion") != "1.0.0.0" {
		t.Fatalf("deployment body %v", body)
	}

	// --no-wait prints the accepted deployment at once.
	out, err = runCLI(t, "deployment", "group", "create", "-g", "myResourceGroup", "-n", "nowait", "--template-file", tpl, "-p", "registryName=x",
		"--no-wait", "--query", "properties.provisioningState", "-o", "tsv")
	if err != nil || out != "Accepted\n" {
		t.Fatalf("--no-wait: %q %v", out, err)
	}

	// A failed deployment reports the failed resource's error.
	_, err = runCLI(t, "deployment", "group", "create", "-g", "myResourceGroup", "-n", "bad", "--template-file", tpl, "-p", "registryName=x")
	if exitCode(err) != 1 || !strings.HasPrefix(err.Error(), "DisablingPublicNetworkAccessNotSupported: ") {
		t.Fatalf("failed deployment: %v", err)
	}

	for _, c := range []struct {
		args []string
		code int
		has  string
	}{
		{[]string{"-p", "retentionDays=many"}, 1, "InvalidParameter: "},
		{[]string{"-p", "nosuch=1"}, 1, "InvalidParameter: "},
		{[]string{"-p", "justaword"}, 2, "want @file"},
		{[]string{"-p", `{"registryName":{"reference":{"keyVault":{"id":"x"},"secretName":"s"}}}`}, 1, "Key Vault reference"},
		{[]string{"--mode", "Sometimes"}, 2, "--mode"},
	} {
		args := append([]string{"deployment", "group", "create", "-g", "myResourceGroup", "--template-file", tpl}, c.args...)
		_, err := runCLI(t, args...)
		if exitCode(err) != c.code || !strings.Contains(err.Error(), c.has) {
			t.Errorf("%v: %v (exit %d), want exit %d and %q", c.args, err, exitCode(err), c.code, c.has)
		}
	}
	bad := write("bad.json", `{"resources": [`)
	if _, err := runCLI(t, "deployment", "group", "create", "-g", "g", "--template-file", bad); err == nil || !strings.HasPrefix(err.Error(), "InvalidTemplate: ") {
		t.Fatalf("malformed template: %v", err)
	}
	if _, err := runCLI(t, "deployment", "group", "create", "-g", "g", "--template-file", filepath.Join(dir, "main.bicep")); exitCode(err) != 2 {
		t.Fatalf("bicep: %v", err)
	}
	if _, err := runCLI(t, "deployment", "group", "show", "-g", "g", "-n", "nosuch"); err == nil || !strings.HasPrefix(err.Error(), "DeploymentNotFound: ") {
		t.Fatalf("show of a missing deployment: %v", err)
	}
}

// The progress line is redrawn while the deployment runs and erased at its
// end.
func TestWaitDeploymentProgress(t *testing.T) {
	fake := &fakeDeployments{bodies: map[string]map[string]any{"slow": {}}}
	srv := useFakeServer(t, &slowDeployment{fake: fake})
	ctx := t.Context()
	s, err := openSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := waitDeployment(ctx, s, &progress, "slow", srv.URL+"/slow", map[string]any{"properties": map[string]any{"provisioningState": "Accepted"}})
	if err != nil {
		t.Fatal(err)
	}
	if dig(res, "properties", "provisioningState") != "Succeeded" {
		t.Fatalf("result %v", res)
	}
	if got := progress.String(); !strings.Contains(got, "\r\033[Kdeployment 'slow': Accepted (0s)") ||
		!strings.Contains(got, "deployment 'slow': Running") || !strings.HasSuffix(got, "\r\033[K") {
		t.Fatalf("progress %q", got)
	}
}

// slowDeployment answers Running twice before the fake's Succeeded.
type slowDeployment struct {
	fake *fakeDeployments
	n    int
}

func (s *slowDeployment) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.fake.mu.Lock()
	s.n++
	n := s.n
	s.fake.mu.Unlock()
	if n <= 2 {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"slow","properties":{"provisioningState":"Running"}}`)
		return
	}
	s.fake.ServeHTTP(w, r)
}
