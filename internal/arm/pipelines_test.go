package arm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

const (
	vaultPath = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1/secrets/"
	kvAPI     = "2023-07-01"
	pipeAPI   = "2023-01-01-preview"
)

func newPipelineEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.h.o.Pipelines = transfer.NewPipelines(transfer.PipelinesOptions{Meta: e.store})
	e.group()
	e.registry("pipes01", "Premium")
	e.registry("basic01", "Basic")
	return e
}

func TestSecrets_ValueNeverAnswered(t *testing.T) {
	e := newPipelineEnv(t)
	const value = "sv=2022&sig=VERYSECRET"
	r := e.do("PUT", vaultPath+"sas1", kvAPI, `{"properties":{"value":"`+value+`","contentType":"sas"}}`)
	e.want(r, 201, "", "")
	for _, got := range []resp{r, e.do("GET", vaultPath+"sas1", kvAPI, ""), e.do("GET", strings.TrimSuffix(vaultPath, "/"), kvAPI, "")} {
		if got.status != 200 && got.status != 201 || strings.Contains(got.raw, "VERYSECRET") {
			t.Fatalf("secret answer %d leaks or fails: %s", got.status, got.raw)
		}
	}
	if get(r.body, "properties.secretUri") != "https://kv1.vault.azure.net/secrets/sas1" {
		t.Fatalf("secretUri: %s", r.raw)
	}
	v, err := transfer.ResolveSecret(t.Context(), e.store, "https://kv1.vault.azure.net/secrets/sas1")
	if err != nil || v != value {
		t.Fatalf("ResolveSecret = %q, %v", v, err)
	}
	e.want(e.do("PUT", vaultPath+"empty", kvAPI, `{"properties":{}}`), 400, "InvalidParameter", "properties.value is required")
	e.want(e.do("PUT", vaultPath+"bad_name", kvAPI, `{"properties":{"value":"x"}}`), 400, "InvalidParameter", "")
	// A reader may see metadata but not write.
	e.want(e.doAs("reader", "PUT", vaultPath+"sas2", kvAPI, `{"properties":{"value":"x"}}`), 403, "AuthorizationFailed", "")
	// Vault names are unique; the group must exist.
	e.want(e.do("PUT", rgPath+"b", groupAPI, `{"location":"westeurope"}`), 201, "", "")
	e.want(e.do("PUT", strings.Replace(vaultPath, "/rg1/", "/rg1b/", 1)+"s", kvAPI, `{"properties":{"value":"x"}}`), 409, "VaultAlreadyExists", "kv1")
	e.want(e.do("PUT", strings.Replace(vaultPath, "/rg1/", "/nogroup/", 1)+"s", kvAPI, `{"properties":{"value":"x"}}`), 404, "ResourceGroupNotFound", "")
	e.want(e.do("DELETE", vaultPath+"sas1", kvAPI, ""), 200, "", "")
	e.want(e.do("GET", vaultPath+"sas1", kvAPI, ""), 404, "SecretNotFound", "")
}

func TestPipelines_Validation(t *testing.T) {
	e := newPipelineEnv(t)
	dir := "file://" + t.TempDir()
	e.want(e.do("PUT", vaultPath+"sas1", kvAPI, `{"properties":{"value":"sv=1&sig=SECRETSIG"}}`), 201, "", "")
	exp := regPath + "pipes01/exportPipelines/"
	for _, c := range []struct {
		path, body, code, msg string
		status                int
	}{
		{exp + "pipe1", `{"properties":{}}`, "InvalidParameter", "properties.target is required", 400},
		{exp + "pipe1", `{"properties":{"target":{"type":"Nope","uri":"` + dir + `"}}}`, "InvalidParameter", "type", 400},
		{exp + "pipe1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"ftp://x/y"}}}`, "InvalidParameter", "neither", 400},
		{exp + "pipe1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"https://acct.blob.core.windows.net/c"}}}`, "InvalidParameter", "keyVaultUri is required", 400},
		{exp + "pipe1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"http://10.0.0.1/acct/c","keyVaultUri":"https://kv1.vault.azure.net/secrets/sas1"}}}`, "InvalidParameter", "plain http", 400},
		{exp + "pipe1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"https://acct.blob.core.windows.net/c","keyVaultUri":"https://kv1.vault.azure.net/secrets/nope"}}}`, "InvalidParameter", "does not exist", 400},
		{exp + "pipe1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"` + dir + `"},"options":["OverwriteTags"]}}`, "InvalidParameter", "OverwriteTags", 400},
		{exp + "pip_1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"` + dir + `"}}}`, "InvalidParameter", "name", 400},
		{regPath + "basic01/exportPipelines/pipe1", `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"` + dir + `"}}}`, "FeatureNotSupportedForSku", "Premium", 400},
	} {
		e.want(e.do("PUT", c.path, pipeAPI, c.body), c.status, c.code, c.msg)
	}
	r := e.do("PUT", exp+"pipe1", pipeAPI, `{"identity":{"type":"SystemAssigned"},"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"https://acct.blob.core.windows.net/c","keyVaultUri":"https://kv1.vault.azure.net/secrets/sas1"},"options":["overwriteblobs"]}}`)
	e.want(r, 201, "", "")
	if get(r.body, "properties.provisioningState") != "Succeeded" || get(r.body, "identity.type") != "SystemAssigned" {
		t.Fatalf("pipeline: %s", r.raw)
	}
	if opts, _ := get(r.body, "properties.options").([]any); len(opts) != 1 || opts[0] != "OverwriteBlobs" {
		t.Fatalf("options: %s", r.raw)
	}
	list := e.do("GET", regPath+"pipes01/exportPipelines", pipeAPI, "")
	e.want(list, 200, "", "")
	if v, _ := list.body["value"].([]any); len(v) != 1 || strings.Contains(list.raw, "SECRETSIG") {
		t.Fatalf("list: %s", list.raw)
	}
	// A reader cannot create pipelines.
	e.want(e.doAs("reader", "PUT", exp+"pipe2", pipeAPI, `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"`+dir+`"}}}`), 403, "AuthorizationFailed", "")

	// Runs.
	runs := regPath + "pipes01/pipelineRuns/"
	pid := strings.TrimPrefix(exp, "") + "pipe1"
	e.want(e.do("PUT", runs+"r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+pid+`","target":{"name":"a.tar"}}}}`), 400, "InvalidParameter", "artifacts")
	e.want(e.do("PUT", runs+"r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+pid+`","artifacts":["app"],"target":{"name":"a.tar"}}}}`), 400, "InvalidParameter", "no tag or digest")
	e.want(e.do("PUT", runs+"r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+pid+`","artifacts":["app:v1"],"target":{"name":"../a.tar"}}}}`), 400, "InvalidParameter", "archive name")
	e.want(e.do("PUT", runs+"r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+regPath+`pipes01/exportPipelines/none","artifacts":["app:v1"],"target":{"name":"a.tar"}}}}`), 400, "InvalidParameter", "does not exist")
	r = e.do("PUT", runs+"r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+pid+`","artifacts":["app:v1"],"target":{"name":"a.tar"}}}}`)
	e.want(r, 201, "", "")
	if get(r.body, "properties.provisioningState") != "Creating" || get(r.body, "properties.response.status") != "Queued" {
		t.Fatalf("run: %s", r.raw)
	}
	// Queued: neither replaced nor deleted.
	e.want(e.do("PUT", runs+"r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+pid+`","artifacts":["app:v2"],"target":{"name":"a.tar"}}}}`), 409, "PipelineRunInProgress", "")
	e.want(e.do("DELETE", runs+"r1", pipeAPI, ""), 409, "PipelineRunInProgress", "")
}

func TestPipelines_ExportPolicy(t *testing.T) {
	e := newPipelineEnv(t)
	dir := "file://" + t.TempDir()
	body := `{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"` + dir + `"}}}`
	e.want(e.do("PUT", regPath+"pipes01/exportPipelines/pipe1", pipeAPI, body), 201, "", "")
	// The policy cannot change while the pipeline exists.
	disable := `{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`
	e.want(e.do("PATCH", regPath+"pipes01", preview, disable), 409, model.CodeExportPipelinesExist, "")
	e.want(e.do("DELETE", regPath+"pipes01/exportPipelines/pipe1", pipeAPI, ""), 200, "", "")
	e.want(e.do("PATCH", regPath+"pipes01", preview, disable), 200, "", "")
	// Exports disabled: no export pipeline; import pipelines are fine.
	e.want(e.do("PUT", regPath+"pipes01/exportPipelines/pipe1", pipeAPI, body), 400, model.CodeExportsDisabled, "pipes01")
	e.want(e.do("PUT", regPath+"pipes01/importPipelines/imp1", pipeAPI,
		`{"properties":{"source":{"type":"AzureStorageBlobContainer","uri":"`+dir+`"},"trigger":{"sourceTrigger":{"status":"Disabled"}}}}`), 201, "", "")
	// A run of an export pipeline stored before (by other means) is refused too.
	id := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/pipes01/exportPipelines/old"
	props, _ := json.Marshal(transfer.PipelineProps{Target: &transfer.StorageProps{Type: transfer.StorageTypeBlobContainer, URI: dir}})
	if _, err := e.store.PutResource(t.Context(), meta.Resource{ID: id, Type: transfer.ExportPipelineType, Name: "old", Properties: props}); err != nil {
		t.Fatal(err)
	}
	e.want(e.do("PUT", regPath+"pipes01/pipelineRuns/r1", pipeAPI, `{"properties":{"request":{"pipelineResourceId":"`+id+`","artifacts":["a:b"],"target":{"name":"x.tar"}}}}`),
		400, model.CodeExportsDisabled, "")
}

func TestParseKeyVaultURI(t *testing.T) {
	for _, c := range []struct {
		in, vault, name string
		ok              bool
	}{
		{"https://kv1.vault.azure.net/secrets/sas", "kv1", "sas", true},
		{"https://kv1.vault.azure.net/secrets/sas/0123abcd", "kv1", "sas", true},
		{"https://kv1.vault.azure.net/keys/sas", "", "", false},
		{"http://kv1.vault.azure.net/secrets/sas", "", "", false},
		{"https://kv1.vault.azure.net/secrets/", "", "", false},
		{"kv1/sas", "", "", false},
	} {
		v, n, err := transfer.ParseKeyVaultURI(c.in)
		if (err == nil) != c.ok || v != c.vault || n != c.name {
			t.Errorf("ParseKeyVaultURI(%q) = %q, %q, %v", c.in, v, n, err)
		}
	}
}
