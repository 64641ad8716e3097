package arm

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// pushSmall stores a one-blob image reg/repo:tag straight into the store.
func (e *env) pushSmall(reg, repo, tag string) digest.Digest {
	e.t.Helper()
	cfg := []byte(`{"os":"linux"}`)
	cd := digest.FromBytes(cfg)
	if err := e.store.LinkBlob(e.t.Context(), reg, repo, cd, int64(len(cfg))); err != nil {
		e.t.Fatal(err)
	}
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cd.String() + `","size":14},"layers":[]}`)
	m := meta.Manifest{Registry: reg, Repository: repo, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json",
		ArtifactType: "application/vnd.oci.image.config.v1+json", Content: body, Size: int64(len(body)), Blobs: []digest.Digest{cd}}
	if err := e.store.PutManifest(e.t.Context(), m, tag); err != nil {
		e.t.Fatal(err)
	}
	return m.Digest
}

func (e *env) sdkClient() *armcontainerregistry.RegistriesClient {
	e.t.Helper()
	srv := httptest.NewTLSServer(e.h)
	e.t.Cleanup(srv.Close)
	client, err := armcontainerregistry.NewRegistriesClient(sub, fakeCredential{}, &azarm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport: srv.Client(),
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.invalid/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"},
				},
			},
		},
		DisableRPRegistration: true,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return client
}

func sdkImport(t *testing.T, c *armcontainerregistry.RegistriesClient, target string, p armcontainerregistry.ImportImageParameters) error {
	t.Helper()
	poller, err := c.BeginImportImage(t.Context(), "rg1", target, p, nil)
	if err != nil {
		return err
	}
	_, err = poller.PollUntilDone(t.Context(), &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond})
	return err
}

func TestImportImage_SDK(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("srcreg", "Premium")
	e.registry("dstreg", "Premium")
	d := e.pushSmall("srcreg", "app", "v1")
	c := e.sdkClient()
	src := func(img string) *armcontainerregistry.ImportSource {
		return &armcontainerregistry.ImportSource{ResourceID: to.Ptr(regPath + "srcreg"), SourceImage: to.Ptr(img)}
	}

	if err := sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: src("app:v1"), TargetTags: []*string{to.Ptr("copy:v1")}}); err != nil {
		t.Fatalf("import: %v", err)
	}
	if m, err := e.store.GetManifestByTag(t.Context(), "dstreg", "copy", "v1"); err != nil || m.Digest != d {
		t.Fatalf("imported tag: %v %v", m.Digest, err)
	}

	wantCode := func(err error, status int, code, msg string) {
		t.Helper()
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != status || re.ErrorCode != code || !strings.Contains(err.Error(), msg) {
			t.Fatalf("error %v, want %d %s containing %q", err, status, code, msg)
		}
	}
	// NoForce (the default) on an existing tag, then Force.
	err := sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: src("app:v1"), TargetTags: []*string{to.Ptr("copy:v1")}})
	wantCode(err, http.StatusConflict, "TagAlreadyExists", "copy:v1 already exists")
	if err := sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: src("app:v1"), TargetTags: []*string{to.Ptr("copy:v1")},
		Mode: to.Ptr(armcontainerregistry.ImportModeForce)}); err != nil {
		t.Fatalf("Force: %v", err)
	}
	err = sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: src("app:missing")})
	wantCode(err, http.StatusNotFound, "ImageNotFound", "'app:missing' was not found")
	// Refused before the operation starts.
	err = sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: &armcontainerregistry.ImportSource{
		RegistryURI: to.Ptr("docker.io"), SourceImage: to.Ptr("library/busybox:latest")}})
	wantCode(err, http.StatusBadRequest, "ImportSourceNotSupported", "not configured to import from other registries")
	err = sdkImport(t, c, "nosuchreg", armcontainerregistry.ImportImageParameters{Source: src("app:v1")})
	wantCode(err, http.StatusNotFound, "ResourceNotFound", "nosuchreg")

	// Exports disabled on the source: refused into another registry, allowed within it.
	e.want(e.do("PATCH", regPath+"srcreg", newest, `{"properties":{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}}`), 200, "", "")
	err = sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: src("app:v1"), TargetTags: []*string{to.Ptr("again:v1")}})
	wantCode(err, http.StatusForbidden, "ExportPolicyDisabled", "exports are disabled on registry 'srcreg'")
	if err := sdkImport(t, c, "srcreg", armcontainerregistry.ImportImageParameters{Source: src("app:v1"), TargetTags: []*string{to.Ptr("self:v1")}}); err != nil {
		t.Fatalf("import within the source: %v", err)
	}

	// A network-restricted source is reached only through the trusted-services bypass.
	e.registry("closedreg", "Premium")
	e.pushSmall("closedreg", "app", "v1")
	e.want(e.do("PATCH", regPath+"closedreg", newest, `{"properties":{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}}`), 200, "", "")
	err = sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: &armcontainerregistry.ImportSource{
		ResourceID: to.Ptr(regPath + "closedreg"), SourceImage: to.Ptr("app:v1")}, TargetTags: []*string{to.Ptr("closed:v1")}})
	wantCode(err, http.StatusForbidden, "ImportSourceNetworkRestricted", "does not allow trusted services")
	e.want(e.do("PATCH", regPath+"closedreg", newest, `{"properties":{"networkRuleBypassOptions":"AzureServices"}}`), 200, "", "")
	if err := sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: &armcontainerregistry.ImportSource{
		ResourceID: to.Ptr(regPath + "closedreg"), SourceImage: to.Ptr("app:v1")}, TargetTags: []*string{to.Ptr("closed:v1")}}); err != nil {
		t.Fatalf("import through the trusted-services bypass: %v", err)
	}
}

func TestImportImage_Protocol(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("srcreg", "Premium")
	e.registry("dstreg", "Premium")
	e.pushSmall("srcreg", "app", "v1")
	body := `{"source":{"registryUri":"srcreg.moat.test","sourceImage":"app:v1"},"targetTags":["x:1"]}`

	r := e.do("POST", regPath+"dstreg/importImage", newest, body)
	e.want(r, http.StatusAccepted, "", "")
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "http") || r.header.Get("retry-after-ms") == "" {
		t.Fatalf("Location %q, retry-after-ms %q", loc, r.header.Get("retry-after-ms"))
	}
	path := strings.TrimPrefix(loc, "http://example.com")
	var st resp
	for range 200 {
		st = e.do("GET", path, "", "")
		if st.status != http.StatusAccepted {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.want(st, http.StatusOK, "", "")
	if st.body["status"] != "Succeeded" || st.body["sourceRegistry"] != "srcreg" {
		t.Fatalf("status %s", st.raw)
	}
	// The operation belongs to its registry.
	e.want(e.do("GET", strings.Replace(path, "/dstreg/", "/srcreg/", 1), "", ""), http.StatusNotFound, "OperationNotFound", "")
	e.want(e.do("GET", regPath+"dstreg/importOperations/nope", newest, ""), http.StatusNotFound, "OperationNotFound", "kept for an hour")
	e.want(e.do("GET", regPath+"dstreg/importImage", newest, ""), http.StatusMethodNotAllowed, "HttpMethodNotSupported", "")
	e.want(e.do("POST", regPath+"dstreg/importImage", "", body), http.StatusBadRequest, "MissingApiVersionParameter", "")
	e.want(e.do("POST", regPath+"dstreg/importImage", newest, `{"source":`), http.StatusBadRequest, "InvalidRequestContent", "")
	e.want(e.do("POST", regPath+"dstreg/importImage", newest, `{"source":{"resourceId":"/x","sourceImage":"app:v1"}}`),
		http.StatusBadRequest, "InvalidParameter", "source.resourceId")
	e.want(e.do("POST", regPath+"dstreg/importImage", newest, `{"source":{"registryUri":"srcreg.moat.test","sourceImage":"app:v1"},"mode":"Maybe"}`),
		http.StatusBadRequest, "InvalidParameter", "mode")

	// Authorization runs first.
	req := httptest.NewRequest("POST", regPath+"dstreg/importImage?api-version="+newest, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer reader")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("reader: %d", rec.Code)
	}
}

func TestParseImportRoute(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
		op   string
	}{
		{regPath + "r/importImage", true, ""},
		{strings.ToLower(regPath) + "r/IMPORTIMAGE", true, ""},
		{regPath + "r/importOperations/abc", true, "abc"},
		{regPath + "r", false, ""},
		{regPath + "r/listUsages", false, ""},
		{regPath + "r/importImage/x", false, ""},
		{regPath + "/importImage", false, ""},
		{"/subscriptions/s/providers/Microsoft.ContainerRegistry/registries/r/importImage", false, ""},
	}
	for _, tc := range tests {
		ir, ok := parseImportRoute(tc.path)
		if ok != tc.ok || ir.op != tc.op {
			t.Errorf("parseImportRoute(%q) = %+v, %v", tc.path, ir, ok)
		}
	}
}
