package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	azto "github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/containers/azcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// trustedDeployment is a running `moat serve` with a logged-in CLI profile,
// the admin's management token and a registry (Premium) with an image.
type trustedDeployment struct {
	url, addr, port, ca, cfg, token, password, dataDir string
	hc                                                 *http.Client
}

// arm sends one management call as the admin and fails unless it answers
// one of want.
func (d *trustedDeployment) arm(t *testing.T, method, path, body string, want ...int) map[string]any {
	t.Helper()
	status, out := armDo(t, d.hc, method, d.url+path, d.token, body)
	for _, w := range want {
		if status == w {
			return out
		}
	}
	t.Fatalf("%s %s: %d %v, want %v", method, path, status, out, want)
	return nil
}

func startTrustedDeployment(t *testing.T, password string, args ...string) *trustedDeployment {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	t.Cleanup(func() { p.stop(t) })
	d := &trustedDeployment{url: url, addr: strings.TrimPrefix(url, "https://"), ca: filepath.Join(dataDir, "ca.pem"), dataDir: dataDir,
		cfg: filepath.Join(t.TempDir(), "cfg"), password: password}
	_, d.port, _ = strings.Cut(d.addr, ":")
	d.hc = clientTrusting(t, d.ca, d.addr)
	if r := cli(t, d.cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", d.ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	var prof profile
	if err := json.Unmarshal(readFile(t, filepath.Join(d.cfg, "profile.json")), &prof); err != nil {
		t.Fatal(err)
	}
	d.token = prof.AccessToken
	return d
}

// instance creates a service instance (containerGroups, sites, a task…) with
// a system-assigned identity through the management API, gives that
// identity role on scope with `moat role assignment create`, and returns
// the instance's IDENTITY_ENDPOINT and IDENTITY_HEADER.
func (d *trustedDeployment) instance(t *testing.T, id, body, role, scope string) (endpoint, header string) {
	t.Helper()
	out := d.arm(t, http.MethodPut, id+"?api-version=2023-05-01", body, http.StatusCreated)
	endpoint, _ = cliDig(out, "properties.moatIdentity.identityEndpoint").(string)
	header, _ = cliDig(out, "properties.moatIdentity.identityHeader").(string)
	principal, _ := cliDig(out, "identity.principalId").(string)
	if endpoint == "" || header == "" || principal == "" {
		t.Fatalf("PUT %s answered no moatIdentity or principal: %v", id, out)
	}
	cliOK(t, d.cfg, "role", "assignment", "create", "--assignee", principal, "--role", role, "--scope", scope)
	return endpoint, header
}

// A workload is a process of its own (this test binary, running
// runWorkloadIfChild) standing for one service instance: its
// environment holds only IDENTITY_ENDPOINT and IDENTITY_HEADER (and where
// moat is), and it pulls with azidentity's ManagedIdentityCredential and
// azcontainerregistry, every connection leaving from its source address.
// A process of its own because MSAL caches managed-identity tokens for the
// whole process (one process is one machine with one identity), so two
// workloads in one process would share a token.
type workload struct {
	t    *testing.T
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	name string
}

const workloadPrefix = "MOAT-WORKLOAD-RESULT "

// startWorkload starts a workload of the instance whose identity endpoint
// and secret are given, pulling app:v1 (whose manifest and layer digests
// are given) from registry.
func (d *trustedDeployment) startWorkload(t *testing.T, label, registry, source, endpoint, header, manifest, layer string) *workload {
	t.Helper()
	//nolint:gosec // G702: runs this very test binary again
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		"MOAT_TEST_WORKLOAD=1", "IDENTITY_ENDPOINT="+endpoint, "IDENTITY_HEADER="+header,
		"MOAT_WL_CA="+d.ca, "MOAT_WL_ADDR="+d.addr, "MOAT_WL_SOURCE="+source,
		"MOAT_WL_LOGIN=https://"+registry+".localhost:"+d.port, "MOAT_WL_MANIFEST="+manifest, "MOAT_WL_LAYER="+layer)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workload{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out), name: label}
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Wait()
	})
	return w
}

// do asks the workload to "pull" or "push" and returns its result: "ok",
// "denied" (403 DENIED) or "error: …".
func (w *workload) do(op string) string {
	w.t.Helper()
	if _, err := io.WriteString(w.in, op+"\n"); err != nil {
		w.t.Fatalf("%s: %v", w.name, err)
	}
	for w.out.Scan() {
		if r, ok := strings.CutPrefix(w.out.Text(), workloadPrefix); ok {
			return r
		}
	}
	w.t.Fatalf("%s ended without answering %s: %v", w.name, op, w.out.Err())
	return ""
}

func (w *workload) want(op, result string) {
	w.t.Helper()
	if got := w.do(op); got != result {
		w.t.Fatalf("%s %s: %s, want %s", w.name, op, got, result)
	}
}

// workloadT is what the workload process needs of a *testing.T; outside a
// test run, procT provides it.
type workloadT interface {
	Helper()
	Context() context.Context
	Error(args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// procT reports a workload's failures on stderr; a fatal one ends the
// process with status 1.
type procT struct{ failed bool }

func (*procT) Helper()                     {}
func (*procT) Context() context.Context    { return context.Background() }
func (p *procT) Error(args ...any)         { p.failed = true; fmt.Fprintln(os.Stderr, args...) }
func (p *procT) Errorf(f string, a ...any) { p.failed = true; fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (p *procT) Fatal(args ...any)         { p.Error(args...); os.Exit(1) }
func (p *procT) Fatalf(f string, a ...any) { p.Errorf(f, a...); os.Exit(1) }

// runWorkloadIfChild runs the workload and exits when this test binary was
// started as one (TestMain calls it first), so the workload is no test of
// its own that every other run would have to skip.
func runWorkloadIfChild() {
	if os.Getenv("MOAT_TEST_WORKLOAD") == "" {
		return
	}
	p := &procT{}
	runTrustedWorkload(p)
	if p.failed {
		os.Exit(1)
	}
	os.Exit(0)
}

// runTrustedWorkload is the workload process; see workload. It reads
// "pull" or "push" lines and answers each with one result line.
func runTrustedWorkload(t workloadT) {
	pemBytes, err := os.ReadFile(os.Getenv("MOAT_WL_CA")) //nolint:gosec // G703: the parent test names moat's CA file
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no CA certificate")
	}
	addr := os.Getenv("MOAT_WL_ADDR")
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(os.Getenv("MOAT_WL_SOURCE"))}, Timeout: 5 * time.Second}
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	opts := azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: -1}}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	opts.Cloud = cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
		azcontainerregistry.ServiceName: {Audience: "https://containerregistry.azure.net"},
	}}
	login := os.Getenv("MOAT_WL_LOGIN")
	manifests, err := azcontainerregistry.NewClient(login, cred, &azcontainerregistry.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := azcontainerregistry.NewBlobClient(login, cred, &azcontainerregistry.BlobClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pull := func() error {
		m, err := manifests.GetManifest(ctx, "app", "v1", &azcontainerregistry.ClientGetManifestOptions{
			Accept: azto.Ptr("application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")})
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(m.ManifestData)
		if err != nil {
			return err
		}
		if got := digestOf(raw); got != os.Getenv("MOAT_WL_MANIFEST") {
			return fmt.Errorf("pulled manifest %s, want %s", got, os.Getenv("MOAT_WL_MANIFEST"))
		}
		b, err := blobs.GetBlob(ctx, "app", os.Getenv("MOAT_WL_LAYER"), nil)
		if err != nil {
			return err
		}
		defer func() { _ = b.BlobData.Close() }()
		raw, err = io.ReadAll(b.BlobData)
		if err != nil {
			return err
		}
		if got := digestOf(raw); got != os.Getenv("MOAT_WL_LAYER") {
			return fmt.Errorf("pulled layer %s, want %s", got, os.Getenv("MOAT_WL_LAYER"))
		}
		return nil
	}
	push := func() error {
		_, err := manifests.UploadManifest(ctx, "app", "pushed", azcontainerregistry.ContentTypeApplicationVndDockerDistributionManifestV2JSON,
			streaming.NopCloser(bytes.NewReader([]byte(`{"schemaVersion":2}`))), nil)
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var err error
		switch in.Text() {
		case "pull":
			err = pull()
		case "push":
			err = push()
		default:
			err = fmt.Errorf("unknown operation %q", in.Text())
		}
		result := "ok"
		var re *azcore.ResponseError
		switch {
		case err == nil:
		case errors.As(err, &re) && re.StatusCode == http.StatusForbidden && strings.Contains(err.Error(), "DENIED"):
			result = "denied"
		case errors.As(err, &re):
			result = fmt.Sprintf("error: %d", re.StatusCode)
			for _, code := range []string{"UNAUTHORIZED", "DENIED"} {
				if strings.Contains(err.Error(), `"`+code+`"`) {
					result += " " + code
				}
			}
		default:
			result = "error: " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		fmt.Println(workloadPrefix + result)
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// wantDenied fails unless err is a 403 DENIED from the registry.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden && strings.Contains(err.Error(), "DENIED") {
		return
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusForbidden && strings.Contains(err.Error(), "DENIED") {
		return
	}
	t.Fatalf("%s: %v, want 403 DENIED", what, err)
}

// TestTrustedServicesWorkflowEndToEnd is seed 001's trusted-services
// workflow against a real `moat serve` over TLS, configured only through
// the management API and the CLI: a container group's system-assigned
// identity with AcrPull pulls a manifest and a blob with
// azcontainerregistry (which runs /oauth2/exchange → refresh → access
// itself, from a bare first request) from a Premium registry whose public
// access is disabled, from a 127.0.0.x source the rules refuse; `moat acr
// update --allow-trusted-services false` refuses the same client on its
// next request. An App Service identity with AcrPull is refused even with
// the bypass; a task identity only passes with
// networkRuleBypassAllowedForTasks. crane's library (go-containerregistry,
// refresh token as identity token) passes too.
func TestTrustedServicesWorkflowEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const sub = defaultSubscriptionID
	d := startTrustedDeployment(t, "trusted-secret-1")
	cliOK(t, d.cfg, "group", "create", "-n", "apps")
	reg := cliJSON(t, cliOK(t, d.cfg, "acr", "create", "-n", "trustreg", "-g", "apps", "--sku", "Premium"))
	regID, _ := reg["id"].(string)
	if regID == "" {
		t.Fatalf("acr create: %v", reg)
	}
	group := "/subscriptions/" + sub + "/resourceGroups/apps/providers"

	// 1. A container group with a system-assigned identity, given AcrPull.
	aciEndpoint, aciHeader := d.instance(t, group+"/Microsoft.ContainerInstance/containerGroups/puller",
		`{"location":"local","identity":{"type":"SystemAssigned"},
		  "properties":{"osType":"Linux","containers":[{"name":"app","properties":{"image":"trustreg.localhost/app:v1"}}]}}`,
		"AcrPull", regID)

	// 2. An image, pushed by the admin while the registry is open.
	ref, err := name.ParseReference("trustreg.localhost:" + d.port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	admin := remote.WithAuth(&authn.Basic{Username: "admin", Password: d.password})
	if err := remote.Write(ref, img, admin, remote.WithTransport(d.hc.Transport)); err != nil {
		t.Fatalf("push as admin: %v", err)
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}

	// 3. Public access off, trusted services on.
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--public-network-enabled", "false", "--allow-trusted-services", "true")
	const source = "127.0.0.5"
	refused := remote.WithTransport(transportFrom(t, d.hc, d.addr, source))
	if _, err := remote.Head(ref, admin, refused); err == nil || !strings.Contains(err.Error(), "DENIED: client with IP '"+source+"' is not allowed access") {
		t.Fatalf("the admin from %s: %v, want DENIED", source, err)
	}
	if _, err := remote.Head(ref, refused); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("anonymous from %s: %v, want DENIED", source, err)
	}
	workloadOf := func(label, endpoint, header string) *workload {
		return d.startWorkload(t, label, "trustreg", source, endpoint, header, manifestDigest.String(), layerDigest.String())
	}

	// 4. The container group's workload pulls through the bypass; its role
	// is AcrPull, so a push is refused by authorization, not the network.
	aci := workloadOf("container group", aciEndpoint, aciHeader)
	aci.want("pull", "ok")
	aci.want("push", "error: 401 UNAUTHORIZED")

	// 5. Trusted services off: the same workload (holding its tokens) is
	// refused on its next request, a new one from the start; on again.
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--allow-trusted-services", "false")
	aci.want("pull", "denied")
	workloadOf("new container group workload", aciEndpoint, aciHeader).want("pull", "denied")
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--allow-trusted-services", "true")
	aci.want("pull", "ok")

	// 6. App Service is never trusted, whatever its role.
	siteEndpoint, siteHeader := d.instance(t, group+"/Microsoft.Web/sites/webapp",
		`{"location":"local","identity":{"type":"SystemAssigned"},"properties":{}}`, "AcrPull", regID)
	workloadOf("App Service", siteEndpoint, siteHeader).want("pull", "denied")

	// 7. A task's identity needs networkRuleBypassAllowedForTasks.
	taskEndpoint, taskHeader := d.instance(t, regID+"/tasks/buildtask",
		`{"location":"local","identity":{"type":"SystemAssigned"},"properties":{}}`, "AcrPull", regID)
	task := workloadOf("task", taskEndpoint, taskHeader)
	task.want("pull", "denied")
	d.arm(t, http.MethodPatch, regID+"?api-version=2025-04-01", `{"properties":{"networkRuleBypassAllowedForTasks":true}}`, http.StatusOK, http.StatusAccepted)
	task.want("pull", "ok")
	d.arm(t, http.MethodPatch, regID+"?api-version=2025-04-01", `{"properties":{"networkRuleBypassOptions":"None"}}`, http.StatusOK, http.StatusAccepted)
	task.want("pull", "denied")
	d.arm(t, http.MethodPatch, regID+"?api-version=2025-04-01", `{"properties":{"networkRuleBypassOptions":"AzureServices"}}`, http.StatusOK, http.StatusAccepted)

	// 8. crane's library: it pings /v2/ without credentials first (the
	// challenge lets it on), then trades the refresh token the container
	// group's identity got from /oauth2/exchange at POST /oauth2/token.
	rt := d.refreshTokenFor(t, "trustreg", source, aciEndpoint, aciHeader)
	got, err := remote.Image(ref, remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: rt})), refused)
	if err != nil {
		t.Fatalf("go-containerregistry with the container group's refresh token: %v", err)
	}
	if dg, err := got.Digest(); err != nil || dg != manifestDigest {
		t.Fatalf("go-containerregistry pulled %s, %v", dg, err)
	}
	cliOK(t, d.cfg, "acr", "update", "-n", "trustreg", "-g", "apps", "--allow-trusted-services", "false")
	_, err = remote.Image(ref, remote.WithAuth(authn.FromConfig(authn.AuthConfig{IdentityToken: rt})), refused)
	wantDenied(t, "go-containerregistry with the bypass off", err)

	// The refusals are in the audit trail.
	audit := cliOK(t, d.cfg, "acr", "audit", "list", "-n", "trustreg", "--denied", "-o", "json")
	if !strings.Contains(audit, source) || !strings.Contains(audit, "App Service is never a trusted service") {
		t.Errorf("audit list lacks the refusals:\n%.2000s", audit)
	}
}

// refreshTokenFor gets a workload's Entra token for ACR from its identity
// endpoint (a plain request: see workload for why not azidentity here) and
// exchanges it at the registry for a refresh token, from source.
func (d *trustedDeployment) refreshTokenFor(t *testing.T, registry, source, endpoint, header string) string {
	t.Helper()
	entra := d.msiToken(t, endpoint, header)
	hc := &http.Client{Transport: transportFrom(t, d.hc, d.addr, source)}
	login := registry + ".localhost:" + d.port
	resp, err := hc.PostForm("https://"+login+"/oauth2/exchange", map[string][]string{
		"grant_type": {"access_token"}, "service": {registry + ".localhost"}, "access_token": {entra}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.RefreshToken == "" {
		t.Fatalf("exchange: %d %v", resp.StatusCode, err)
	}
	return out.RefreshToken
}
