package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
	"github.com/moat-registry/moat/internal/transfer"
)

// TestTransferPipelinesEndToEnd drives transfer pipelines through the CLI
// against a real `moat serve`: an export run writes an archive to a
// directory, skopeo reads it back, an import pipeline's source trigger
// imports it into another registry by itself and ggcr pulls it from there; a
// corrupt archive fails its run and tags nothing; the secret's value never
// appears in a GET; an export pipeline on a registry with exports disabled
// is refused, and the policy cannot change while export pipelines exist.
func TestTransferPipelinesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo is required (scripts/test.sh installs it): %v", err)
	}
	const password = "pipe-secret-1"
	m, dataDir := startPipelineMoat(t, password)
	cfg := filepath.Join(t.TempDir(), "cfg")
	ca := filepath.Join(dataDir, "ca.pem")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", m.url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "xfer", "-l", "local")
	for _, n := range []string{"xfersrc01", "xferdst01"} {
		cliOK(t, cfg, "acr", "create", "-n", n, "-g", "xfer", "--sku", "Premium")
	}

	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(m.http.Transport)}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	src, _ := name.ParseReference("xfersrc01.localhost:" + m.port + "/team/app:v1")
	if err := remote.Write(src, img, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, _ := img.Digest()

	// A secret: its value never comes back.
	const sasValue = "sv=2022-11-02&sig=TOPSECRETSIGNATURE"
	cliOK(t, cfg, "keyvault", "secret", "set", "--vault-name", "xferkv", "-g", "xfer", "-n", "exportsas", "--value", sasValue)
	if out := cliOK(t, cfg, "keyvault", "secret", "show", "--vault-name", "xferkv", "-g", "xfer", "-n", "exportsas"); strings.Contains(out, "TOPSECRET") {
		t.Fatalf("secret show leaks the value: %s", out)
	}

	dir := t.TempDir()
	exp := cliJSON(t, cliOK(t, cfg, "acr", "export-pipeline", "create", "-r", "xfersrc01", "-n", "toDisk",
		"--storage-container-uri", "file://"+dir, "--secret-uri", "https://xferkv.vault.azure.net/secrets/exportsas", "--options", "OverwriteBlobs"))
	if cliDig(exp, "properties.target.uri") != "file://"+dir {
		t.Fatalf("export pipeline: %v", exp)
	}
	for _, path := range []string{
		"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/xfer/providers/Microsoft.ContainerRegistry/registries/xfersrc01/exportPipelines/toDisk?api-version=2023-01-01-preview",
		"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/xfer/providers/Microsoft.KeyVault/vaults/xferkv/secrets?api-version=2023-07-01",
	} {
		code, body := pipeArm(t, m, http.MethodGet, path, "")
		if code != http.StatusOK || strings.Contains(body, "TOPSECRET") {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}

	run := cliJSON(t, cliOK(t, cfg, "acr", "pipeline-run", "create", "-r", "xfersrc01", "-n", "run1", "--pipeline", "toDisk",
		"--pipeline-type", "export", "--storage-blob", "app.tar", "--artifacts", "team/app:v1"))
	if cliDig(run, "properties.response.status") != "Succeeded" || cliDig(run, "properties.response.progress.percentage") != "100" {
		t.Fatalf("export run: %v", run)
	}
	layout := t.TempDir()
	if b, err := exec.Command(skopeo, "copy", "--insecure-policy", "oci-archive:"+filepath.Join(dir, "app.tar")+":team/app:v1", "dir:"+layout).CombinedOutput(); err != nil {
		t.Fatalf("skopeo: %v\n%s", err, b)
	}

	// A corrupt archive next to it: its run fails and tags nothing.
	good, _ := os.ReadFile(filepath.Join(dir, "app.tar"))
	bad := append([]byte{}, good[:len(good)-2048]...)
	if err := os.WriteFile(filepath.Join(dir, "broken.tar"), bad, 0o644); err != nil { //nolint:gosec // G703: the test's own temp dir
		t.Fatal(err)
	}
	cliOK(t, cfg, "acr", "import-pipeline", "create", "-r", "xferdst01", "-n", "fromDisk", "--storage-container-uri", "file://"+dir,
		"--source-trigger-enabled", "false")
	r := cli(t, cfg, nil, "", "acr", "pipeline-run", "create", "-r", "xferdst01", "-n", "badrun", "--pipeline", "fromDisk",
		"--pipeline-type", "import", "--storage-blob", "broken.tar")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "moat: PipelineRunFailed: ") || !strings.Contains(r.stderr, "truncated") {
		t.Fatalf("corrupt import: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	dst, _ := name.ParseReference("xferdst01.localhost:" + m.port + "/team/app:v1")
	if _, err := remote.Head(dst, opts...); err == nil {
		t.Fatal("a failed import left a tag")
	}
	if err := os.Remove(filepath.Join(dir, "broken.tar")); err != nil {
		t.Fatal(err)
	}

	// The source trigger imports app.tar by itself.
	cliOK(t, cfg, "acr", "import-pipeline", "create", "-r", "xferdst01", "-n", "fromDisk", "--storage-container-uri", "file://"+dir)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := remote.Head(dst, opts...)
		if err == nil {
			if d.Digest.String() != want.String() {
				t.Fatalf("imported %s, want %s", d.Digest, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source trigger did not import the archive: %v\n%s", err,
				cliOK(t, cfg, "acr", "pipeline-run", "list", "-r", "xferdst01", "-o", "json"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := remote.Image(dst, opts...); err != nil {
		t.Fatalf("pull the imported image: %v", err)
	}

	// Through an Azure Blob container (Azurite), the SAS in a secret.
	az := azuritetest.Config(t)
	if _, err := azblob.New(t.Context(), az); err != nil { // creates the container
		t.Fatal(err)
	}
	skc, err := service.NewSharedKeyCredential(az.Account, az.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	perms := sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
		ContainerName: az.Container, Permissions: perms.String()}.SignWithSharedKey(skc)
	if err != nil {
		t.Fatal(err)
	}
	cliOK(t, cfg, "keyvault", "secret", "set", "--vault-name", "xferkv", "-g", "xfer", "-n", "azsas", "--value", q.Encode())
	img2, _ := random.Image(8192, 3)
	img2 = mutate.ConfigMediaType(mutate.MediaType(img2, types.OCIManifestSchema1), types.OCIConfigJSON)
	src2, _ := name.ParseReference("xfersrc01.localhost:" + m.port + "/team/other:v2")
	if err := remote.Write(src2, img2, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	want2, _ := img2.Digest()
	ctrURI := az.Endpoint + "/" + az.Container
	secretURI := "https://xferkv.vault.azure.net/secrets/azsas"
	cliOK(t, cfg, "acr", "export-pipeline", "create", "-r", "xfersrc01", "-n", "toBlob", "--storage-container-uri", ctrURI, "--secret-uri", secretURI)
	cliOK(t, cfg, "acr", "pipeline-run", "create", "-r", "xfersrc01", "-n", "blobrun", "--pipeline", "toBlob",
		"--storage-blob", "other.tar", "--artifacts", "team/other:v2")
	cliOK(t, cfg, "acr", "import-pipeline", "create", "-r", "xferdst01", "-n", "fromBlob", "--storage-container-uri", ctrURI,
		"--secret-uri", secretURI, "--source-trigger-enabled", "false", "--options", "DeleteSourceBlobOnSuccess")
	run = cliJSON(t, cliOK(t, cfg, "acr", "pipeline-run", "create", "-r", "xferdst01", "-n", "blobimport", "--pipeline", "fromBlob",
		"--pipeline-type", "import", "--storage-blob", "other.tar", "-o", "json"))
	if cliDig(run, "properties.response.status") != "Succeeded" || strings.Contains(cliOK(t, cfg, "acr", "pipeline-run", "list", "-r", "xferdst01", "-o", "json"), "sig=") {
		t.Fatalf("blob import run: %v", run)
	}
	dst2, _ := name.ParseReference("xferdst01.localhost:" + m.port + "/team/other:v2")
	if d, err := remote.Head(dst2, opts...); err != nil || d.Digest.String() != want2.String() {
		t.Fatalf("imported from the container: %v %v", d, err)
	}
	ctr, err := container.NewClientWithNoCredential(ctrURI+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctr.NewBlobClient("other.tar").GetProperties(t.Context(), nil); err == nil {
		t.Fatal("DeleteSourceBlobOnSuccess left the archive in the container")
	}

	// The export policy: cannot change while an export pipeline exists...
	regPath := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/xfer/providers/Microsoft.ContainerRegistry/registries/"
	code, body := pipeArm(t, m, http.MethodPatch, regPath+"xfersrc01?api-version=2023-07-01",
		`{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`)
	if code != http.StatusConflict || !strings.Contains(body, "ExportPipelinesExist") {
		t.Fatalf("policy change with an export pipeline: %d %s", code, body)
	}
	// ...and with exports disabled no export pipeline can be created.
	cliOK(t, cfg, "acr", "export-pipeline", "delete", "-r", "xfersrc01", "-n", "toDisk")
	cliOK(t, cfg, "acr", "export-pipeline", "delete", "-r", "xfersrc01", "-n", "toBlob")
	code, body = pipeArm(t, m, http.MethodPatch, regPath+"xfersrc01?api-version=2023-07-01",
		`{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`)
	if code != http.StatusOK {
		t.Fatalf("disable exports: %d %s", code, body)
	}
	cliFails(t, cfg, 1, "moat: ExportPolicyDisabled: ", "acr", "export-pipeline", "create", "-r", "xfersrc01", "-n", "toDisk",
		"--storage-container-uri", "file://"+dir)
}

// armDo sends one management request as the admin.
func pipeArm(t *testing.T, m *managedMoat, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, m.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startPipelineMoat is startManagedMoat that also says where the data
// directory (and its CA) is.
func startPipelineMoat(t *testing.T, password string) (*managedMoat, string) {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	t.Cleanup(func() { p.stop(t) })
	m := &managedMoat{url: url, addr: strings.TrimPrefix(url, "https://")}
	_, m.port, _ = strings.Cut(m.addr, ":")
	m.http = clientTrusting(t, filepath.Join(dataDir, "ca.pem"), m.addr)
	code, body := tokenFor(t, m, password)
	if code != http.StatusOK {
		t.Fatalf("token: %d %s", code, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %v %s", err, body)
	}
	m.token = tok.AccessToken
	return m, dataDir
}

// tokenFor asks moat's issuer for the admin's management token.
func tokenFor(t *testing.T, m *managedMoat, password string) (int, string) {
	t.Helper()
	form := "grant_type=password&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&username=admin&password=" + password +
		"&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+openid"
	resp, err := m.http.Post(m.url+"/organizations/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPipelineRunsSurviveRestart stops moat, leaves one run as a crashed
// process would (Running) and one Queued, and starts moat again on the same
// data: the first is failed with a message saying it was interrupted, the
// second runs.
func TestPipelineRunsSurviveRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "pipe-restart-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	start := func() (*process, *managedMoat) {
		p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
		m := &managedMoat{url: url, addr: strings.TrimPrefix(url, "https://")}
		_, m.port, _ = strings.Cut(m.addr, ":")
		m.http = clientTrusting(t, filepath.Join(dataDir, "ca.pem"), m.addr)
		code, body := tokenFor(t, m, password)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &tok) != nil {
			t.Fatalf("token: %d %s", code, body)
		}
		m.token = tok.AccessToken
		return p, m
	}
	p, m := start()
	const regs = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rs/providers/Microsoft.ContainerRegistry/registries/"
	const api = "?api-version=2023-01-01-preview"
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPut, "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rs?api-version=2021-04-01", `{"location":"local"}`},
		{http.MethodPut, regs + "restart01?api-version=2023-07-01", `{"location":"local","sku":{"name":"Premium"}}`},
		{http.MethodPut, regs + "restart01/exportPipelines/toDisk" + api,
			`{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"file://` + t.TempDir() + `"}}}`},
	} {
		if code, body := pipeArm(t, m, c.method, c.path, c.body); code >= 300 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	img, _ := random.Image(1024, 1)
	ref, _ := name.ParseReference("restart01.localhost:" + m.port + "/app:v1")
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(m.http.Transport)); err != nil {
		t.Fatal(err)
	}
	p.stop(t)

	// What a crash mid-run leaves, and a run nobody picked up yet.
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(dataDir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	pipeID := strings.TrimSuffix(regs, "/") + "/restart01/exportPipelines/toDisk"
	for name, status := range map[string]string{"crashed": transfer.RunRunning, "waiting": transfer.RunQueued} {
		props, _ := json.Marshal(transfer.RunProps{
			Request:  transfer.RunRequest{PipelineResourceID: pipeID, Artifacts: []string{"app:v1"}, Target: &transfer.RunStorage{Type: transfer.StorageTypeBlob, Name: name + ".tar"}},
			Response: transfer.RunResponse{Status: status}, ProvisioningState: transfer.ProvisioningCreating})
		if _, err := store.PutResource(ctx, meta.Resource{ID: regs + "restart01/pipelineRuns/" + name, Type: transfer.PipelineRunType, Name: name, Properties: props}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	p, m = start()
	defer p.stop(t)
	want := map[string]string{"crashed": "Failed", "waiting": "Succeeded"}
	deadline := time.Now().Add(20 * time.Second)
	for len(want) > 0 {
		for n, st := range want {
			code, body := pipeArm(t, m, http.MethodGet, regs+"restart01/pipelineRuns/"+n+api, "")
			var run struct {
				Properties transfer.RunProps `json:"properties"`
			}
			if code != http.StatusOK || json.Unmarshal([]byte(body), &run) != nil {
				t.Fatalf("GET %s: %d %s", n, code, body)
			}
			if run.Properties.Response.Status == st {
				if n == "crashed" && !strings.Contains(run.Properties.Response.PipelineRunErrorMessage, "interrupted") {
					t.Fatalf("crashed run: %s", body)
				}
				delete(want, n)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs not settled after restart: %v", want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
