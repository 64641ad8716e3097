package arm

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/transfer"
)

// TestImportImage_SDKOutside imports, through the Azure SDK's
// BeginImportImage with source.credentials, from an OCI registry on loopback
// that wants Basic credentials; the running operation reports progress;
// wrong credentials fail the operation with InvalidSourceCredentials.
func TestImportImage_SDKOutside(t *testing.T) {
	e := newEnv(t)
	bs, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e.h.o.Import = &transfer.Remote{Blobs: bs, PlainHTTPLoopback: true, Backoff: time.Millisecond}
	e.group()
	e.registry("dstreg", "Premium")

	hold := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "puller" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="src"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if holding.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && r.Header.Get(transfer.ImportHeader) != "" {
			<-hold // the import waits here until the test saw it running
		}
		inner.ServeHTTP(w, r)
	}))
	defer src.Close()
	host := strings.TrimPrefix(src.URL, "http://")
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// The protocol while it runs: 202 with the progress.
	body := `{"source":{"registryUri":"` + host + `","sourceImage":"team/app:v1","credentials":{"username":"puller","password":"s3cret"}},"targetTags":["app:v1"]}`
	r := e.do("POST", regPath+"dstreg/importImage", newest, body)
	e.want(r, http.StatusAccepted, "", "")
	path := strings.TrimPrefix(r.header.Get("Location"), "http://example.com")
	var running struct {
		Status   string                    `json:"status"`
		Progress transfer.ProgressSnapshot `json:"progress"`
	}
	for range 400 {
		st := e.do("GET", path, "", "")
		e.want(st, http.StatusAccepted, "", "")
		if err := json.Unmarshal([]byte(st.raw), &running); err != nil {
			t.Fatalf("running body %s: %v", st.raw, err)
		}
		if running.Progress.BlobsTotal > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if running.Status != "Running" || running.Progress.Manifests != 1 || running.Progress.BlobsTotal != 3 || running.Progress.BytesTotal < 2048 {
		t.Fatalf("running: %+v", running)
	}
	holding.Store(false)
	close(hold)
	var st resp
	for range 400 {
		if st = e.do("GET", path, "", ""); st.status != http.StatusAccepted {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.want(st, http.StatusOK, "", "")
	if st.body["digest"] != want.String() || st.body["sourceRegistry"] != host {
		t.Fatalf("finished: %s", st.raw)
	}

	// Through the SDK, with credentials, and with wrong ones.
	c := e.sdkClient()
	srcOf := func(pass string) *armcontainerregistry.ImportSource {
		return &armcontainerregistry.ImportSource{RegistryURI: to.Ptr(host), SourceImage: to.Ptr("team/app:v1"),
			Credentials: &armcontainerregistry.ImportSourceCredentials{Username: to.Ptr("puller"), Password: to.Ptr(pass)}}
	}
	if err := sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: srcOf("s3cret"), TargetTags: []*string{to.Ptr("sdk:v1")}}); err != nil {
		t.Fatalf("SDK import: %v", err)
	}
	if m, err := e.store.GetManifestByTag(t.Context(), "dstreg", "sdk", "v1"); err != nil || m.Digest.String() != want.String() {
		t.Fatalf("imported tag: %v %v", m.Digest, err)
	}
	err = sdkImport(t, c, "dstreg", armcontainerregistry.ImportImageParameters{Source: srcOf("wrong"), TargetTags: []*string{to.Ptr("bad:v1")}})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "InvalidSourceCredentials" || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("wrong credentials: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
}
