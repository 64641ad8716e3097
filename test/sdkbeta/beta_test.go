package sdkbeta

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
)

const sub = "00000000-0000-0000-0000-000000000000"

var servingLine = regexp.MustCompile(`serving (https://\S+) `)

// moat is a running `moat serve` and an HTTP client trusting its CA.
type moat struct {
	url  string
	http *http.Client
}

func startMoat(t *testing.T, password string) *moat {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the moat binary")
	}
	bin := filepath.Join(t.TempDir(), "moat")
	build := exec.Command("go", "build", "-C", filepath.Join("..", ".."), "-o", bin, "./cmd/moat")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build moat: %v\n%s", err, out)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "MOAT_ADMIN_PASSWORD="+password)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				urls <- m[1]
				sent = true
			}
		}
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatal("moat serve did not start within 30 s")
	}
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("ca.pem holds no certificate")
	}
	addr := strings.TrimPrefix(url, "https://")
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &moat{url: url, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// TestPreviewPropertiesWithBetaSDK: armcontainerregistry v1.3.0-beta.3
// creates a Premium registry with a soft delete policy and anonymous pull,
// PATCHes both (which v1.2.0 cannot express), reads them back, and sees a
// validation error as ARM's ResponseError; a stable api-version's GET of the
// same registry leaves the preview-only policy out.
func TestPreviewPropertiesWithBetaSDK(t *testing.T) {
	const password = "beta-sdk-secret-1"
	m := startMoat(t, password)
	opts := azcore.ClientOptions{
		Transport: m.http,
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: m.url + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: m.url, Audience: "https://management.core.windows.net/"},
			},
		},
	}
	//nolint:staticcheck // deprecated in azidentity, still used by clients moat must serve
	cred, err := azidentity.NewUsernamePasswordCredential("organizations", "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "admin", password,
		&azidentity.UsernamePasswordCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
	if err != nil {
		t.Fatalf("token from moat's issuer: %v", err)
	}
	armGet := func(path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, m.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := m.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	// The resource group, with a plain ARM call.
	req, _ := http.NewRequest(http.MethodPut, m.url+"/subscriptions/"+sub+"/resourcegroups/beta?api-version=2021-04-01", strings.NewReader(`{"location":"local"}`))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("resource group PUT: %d", resp.StatusCode)
	}

	client, err := armcontainerregistry.NewRegistriesClient(sub, cred, &azarm.ClientOptions{ClientOptions: opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond}
	p, err := client.BeginCreate(ctx, "beta", "betareg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"),
		SKU:      &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
		Properties: &armcontainerregistry.RegistryProperties{
			AnonymousPullEnabled: to.Ptr(true),
			Policies: &armcontainerregistry.Policies{SoftDeletePolicy: &armcontainerregistry.SoftDeletePolicy{
				Status: to.Ptr(armcontainerregistry.PolicyStatusEnabled), RetentionDays: to.Ptr[int32](14)}},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginCreate: %v", err)
	}
	created, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	sd := created.Properties.Policies.SoftDeletePolicy
	if sd == nil || *sd.Status != armcontainerregistry.PolicyStatusEnabled || *sd.RetentionDays != 14 || !*created.Properties.AnonymousPullEnabled {
		t.Fatalf("created: soft delete %+v, anonymous pull %v", sd, created.Properties.AnonymousPullEnabled)
	}

	up, err := client.BeginUpdate(ctx, "beta", "betareg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			AnonymousPullEnabled: to.Ptr(false),
			Policies: &armcontainerregistry.Policies{SoftDeletePolicy: &armcontainerregistry.SoftDeletePolicy{
				Status: to.Ptr(armcontainerregistry.PolicyStatusDisabled), RetentionDays: to.Ptr[int32](7)}},
		},
	}, nil)
	if err != nil {
		t.Fatalf("BeginUpdate: %v", err)
	}
	if _, err := up.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := client.Get(ctx, "beta", "betareg01", nil)
	if err != nil {
		t.Fatal(err)
	}
	sd = got.Properties.Policies.SoftDeletePolicy
	if *sd.Status != armcontainerregistry.PolicyStatusDisabled || *sd.RetentionDays != 7 || sd.LastUpdatedTime == nil ||
		*got.Properties.AnonymousPullEnabled || got.Properties.Policies.ExportPolicy == nil {
		t.Fatalf("after update: soft delete %+v, anonymous pull %v", sd, *got.Properties.AnonymousPullEnabled)
	}

	// A validation error through the preview client.
	_, err = client.BeginUpdate(ctx, "beta", "betareg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			Policies: &armcontainerregistry.Policies{RetentionPolicy: &armcontainerregistry.RetentionPolicy{Days: to.Ptr[int32](400)}},
		},
	}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "InvalidRetentionDays" ||
		!strings.Contains(err.Error(), "retentionPolicy.days") {
		t.Fatalf("retention 400 days: %v", err)
	}

	// ACR keeps soft-deleted artifacts 1 to 90 days.
	_, err = client.BeginUpdate(ctx, "beta", "betareg01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			Policies: &armcontainerregistry.Policies{SoftDeletePolicy: &armcontainerregistry.SoftDeletePolicy{RetentionDays: to.Ptr[int32](91)}},
		},
	}, nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "InvalidSoftDeleteRetentionDays" ||
		!strings.Contains(err.Error(), "softDeletePolicy.retentionDays 91") {
		t.Fatalf("soft delete 91 days: %v", err)
	}

	// Per-version shaping: the stable version has no softDeletePolicy.
	id := *got.ID
	if status, reg := armGet(id + "?api-version=2023-07-01"); status != http.StatusOK || dig(reg, "properties.policies.softDeletePolicy") != nil ||
		dig(reg, "properties.policies.exportPolicy.status") != "enabled" {
		t.Fatalf("GET 2023-07-01: %d %v", status, reg["properties"])
	}
	if status, reg := armGet(id + "?api-version=2025-03-01-preview"); status != http.StatusOK || dig(reg, "properties.policies.softDeletePolicy.retentionDays") != float64(7) {
		t.Fatalf("GET 2025-03-01-preview: %d %v", status, reg["properties"])
	}

	// The beta's preview child resources moat does not serve answer ARM's
	// InvalidResourceType, which the SDK reports as a ResponseError.
	armOpts := &azarm.ClientOptions{ClientOptions: opts, DisableRPRegistration: true}
	cacheRules, err := armcontainerregistry.NewCacheRulesClient(sub, cred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cacheRules.Get(ctx, "beta", "betareg01", "rule1", nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "InvalidResourceType" {
		t.Fatalf("cache rule Get: %v", err)
	}
	pipelines, err := armcontainerregistry.NewExportPipelinesClient(sub, cred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	// Transfer pipelines are served: a missing one is ResourceNotFound.
	_, err = pipelines.Get(ctx, "beta", "betareg01", "pipe1", nil)
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "ResourceNotFound" {
		t.Fatalf("export pipeline Get: %v", err)
	}

	del, err := client.BeginDelete(ctx, "beta", "betareg01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

func dig(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
