package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImportThroughAzureSDK runs the real binary: a two-platform index with
// a referrer pushed into registry A is imported into B through the SDK's
// BeginImportImage, pulled back from B, refused under NoForce on an existing
// tag, and refused once A disables exports, while import within B still
// works.
func TestImportThroughAzureSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "import-secret-1"
	const sub = "00000000-0000-0000-0000-000000000000"
	m := startManagedMoat(t, password)
	ctx := context.Background()
	m.putGroup(t, "imp")
	registries, err := armcontainerregistry.NewRegistriesClient(sub, m.cred, &azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, n := range []string{"impsrc01", "impdst01"} {
		p, err := registries.BeginCreate(ctx, "imp", n, armcontainerregistry.Registry{
			Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)},
		}, nil)
		if err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
		reg, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
		ids[n] = *reg.ID
	}

	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(m.http.Transport)}
	srcRef, err := name.ParseReference("impsrc01.localhost:" + m.port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(512, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(srcRef, idx, opts...); err != nil {
		t.Fatalf("push index: %v", err)
	}
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := remote.Head(srcRef, opts...)
	if err != nil {
		t.Fatal(err)
	}
	sig := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.signature+json")
	referrer, ok := mutate.Subject(sig, *idxDesc).(v1.Image)
	if !ok {
		t.Fatal("mutate.Subject of an image is not an image")
	}
	refDigest, err := referrer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(srcRef.Context().Digest(refDigest.String()), referrer, opts...); err != nil {
		t.Fatalf("push referrer: %v", err)
	}

	importImage := func(target string, p armcontainerregistry.ImportImageParameters) error {
		t.Helper()
		poller, err := registries.BeginImportImage(ctx, "imp", target, p, nil)
		if err != nil {
			return err
		}
		_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
		return err
	}
	fromSrc := func(img string) *armcontainerregistry.ImportSource {
		return &armcontainerregistry.ImportSource{ResourceID: to.Ptr(ids["impsrc01"]), SourceImage: to.Ptr(img)}
	}
	if err := importImage("impdst01", armcontainerregistry.ImportImageParameters{Source: fromSrc("app:v1"), TargetTags: []*string{to.Ptr("copy:v1")}}); err != nil {
		t.Fatalf("import A->B: %v", err)
	}
	// By login server too, untagged.
	if err := importImage("impdst01", armcontainerregistry.ImportImageParameters{
		Source:                     &armcontainerregistry.ImportSource{RegistryURI: to.Ptr("impsrc01.localhost:" + m.port), SourceImage: to.Ptr("app@" + idxDigest.String())},
		UntaggedTargetRepositories: []*string{to.Ptr("bydigest")}}); err != nil {
		t.Fatalf("import A->B by login server: %v", err)
	}

	dstRef, err := name.ParseReference("impdst01.localhost:" + m.port + "/copy:v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(dstRef, opts...)
	if err != nil {
		t.Fatalf("pull from B: %v", err)
	}
	if d, err := got.Digest(); err != nil || d != idxDigest {
		t.Fatalf("imported digest %v (%v), want %v", d, err, idxDigest)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range im.Manifests {
		img, err := remote.Image(dstRef.Context().Digest(c.Digest.String()), opts...)
		if err != nil {
			t.Fatalf("child %s in B: %v", c.Digest, err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("child %s layers: %d %v", c.Digest, len(layers), err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatalf("child %s layer in B: %v", c.Digest, err)
		}
		_ = rc.Close()
	}
	refs, err := remote.Referrers(dstRef.Context().Digest(idxDigest.String()), opts...)
	if err != nil {
		t.Fatalf("referrers in B: %v", err)
	}
	if rm, err := refs.IndexManifest(); err != nil || len(rm.Manifests) != 1 || rm.Manifests[0].Digest != refDigest {
		t.Fatalf("referrers in B: %+v %v, want %s", rm, err, refDigest)
	}
	if _, err := remote.Head(dstRef.Context().Registry.Repo("bydigest").Digest(idxDigest.String()), opts...); err != nil {
		t.Fatalf("untagged import: %v", err)
	}

	wantErr := func(err error, code string, msg ...string) {
		t.Helper()
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.ErrorCode != code {
			t.Fatalf("error %v, want code %s", err, code)
		}
		for _, s := range msg {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("error %v does not contain %q", err, s)
			}
		}
	}
	err = importImage("impdst01", armcontainerregistry.ImportImageParameters{Source: fromSrc("app:v1"), TargetTags: []*string{to.Ptr("copy:v1")},
		Mode: to.Ptr(armcontainerregistry.ImportModeNoForce)})
	wantErr(err, "TagAlreadyExists", "copy:v1")

	// A closes its data plane and disables exports in one request.
	up, err := registries.BeginUpdate(ctx, "imp", "impsrc01", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{
			PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled),
			Policies:            &armcontainerregistry.Policies{ExportPolicy: &armcontainerregistry.ExportPolicy{Status: to.Ptr(armcontainerregistry.ExportPolicyStatusDisabled)}},
		},
	}, nil)
	if err != nil {
		t.Fatalf("disable exports: %v", err)
	}
	if _, err := up.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}); err != nil {
		t.Fatalf("disable exports: %v", err)
	}
	err = importImage("impdst01", armcontainerregistry.ImportImageParameters{Source: fromSrc("app:v1"), TargetTags: []*string{to.Ptr("again:v1")}})
	wantErr(err, "ExportPolicyDisabled", "impsrc01", "exportPolicy")
	err = importImage("impdst01", armcontainerregistry.ImportImageParameters{
		Source: &armcontainerregistry.ImportSource{RegistryURI: to.Ptr("impsrc01.localhost"), SourceImage: to.Ptr("app:v1")}, TargetTags: []*string{to.Ptr("again:v1")}})
	wantErr(err, "ExportPolicyDisabled", "impsrc01", "exportPolicy")
	if err := importImage("impdst01", armcontainerregistry.ImportImageParameters{
		Source:     &armcontainerregistry.ImportSource{ResourceID: to.Ptr(ids["impdst01"]), SourceImage: to.Ptr("copy:v1")},
		TargetTags: []*string{to.Ptr("self:v1")}}); err != nil {
		t.Fatalf("import within B: %v", err)
	}
	if d, err := remote.Head(dstRef.Context().Registry.Repo("self").Tag("v1"), opts...); err != nil || d.Digest != idxDigest {
		t.Fatalf("self:v1 in B: %v %v", d, err)
	}
}

// TestImportCLI drives `moat acr import` against a real `moat serve`: by
// login server, by --registry name, the NoForce refusal, and the export
// policy's refusal as one line with the ARM code.
func TestImportCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "import-cli-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + password}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	defer p.stop(t)
	cfg := filepath.Join(t.TempDir(), "cfg")
	ca := filepath.Join(dataDir, "ca.pem")
	addr := strings.TrimPrefix(url, "https://")
	_, port, _ := strings.Cut(addr, ":")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", url, "--ca-file", ca, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	cliOK(t, cfg, "group", "create", "-n", "imp", "-l", "local")
	cliOK(t, cfg, "acr", "create", "-n", "clisrc01", "-g", "imp", "--sku", "Premium")
	cliOK(t, cfg, "acr", "create", "-n", "clidst01", "-g", "imp", "--sku", "Premium")

	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(clientTrusting(t, ca, addr).Transport)}
	src, err := name.ParseReference("clisrc01.localhost:" + port + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(src, img, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	out := cliJSON(t, cliOK(t, cfg, "acr", "import", "-n", "clidst01", "--source", "clisrc01.localhost:"+port+"/app:v1", "-t", "copy:v1", "-t", "copy:latest"))
	if out["status"] != "Succeeded" || out["digest"] != want.String() || out["sourceRegistry"] != "clisrc01" {
		t.Fatalf("import output %v", out)
	}
	if table := cliOK(t, cfg, "acr", "import", "-n", "clidst01", "--source", "app:v1", "--registry", "clisrc01", "--repository", "plain", "-o", "table"); !strings.Contains(table, want.String()) {
		t.Fatalf("import table:\n%s", table)
	}
	dst, err := name.ParseReference("clidst01.localhost:" + port + "/copy:latest")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := remote.Head(dst, opts...); err != nil || got.Digest != want {
		t.Fatalf("imported tag: %v %v", got, err)
	}
	cliFails(t, cfg, 1, "moat: TagAlreadyExists: ", "acr", "import", "-n", "clidst01", "--source", "clisrc01.localhost:"+port+"/app:v1", "-t", "copy:v1")
	cliOK(t, cfg, "acr", "import", "-n", "clidst01", "--source", "clisrc01.localhost:"+port+"/app:v1", "-t", "copy:v1", "--force")
	cliFails(t, cfg, 2, "moat: ", "acr", "import", "-n", "clidst01", "--source", "app:v1")
	cliFails(t, cfg, 1, "moat: ImportSourceUnreachable: connecting to the source registry 127.0.0.1:1: ", "acr", "import", "-n", "clidst01", "--source", "127.0.0.1:1/app:v1")

	cliOK(t, cfg, "acr", "update", "-n", "clisrc01", "--public-network-enabled", "false", "--allow-exports", "false")
	cliFails(t, cfg, 1, "moat: ExportPolicyDisabled: exports are disabled on registry 'clisrc01'",
		"acr", "import", "-n", "clidst01", "--source", "app:v1", "--registry", "clisrc01", "-t", "again:v1")
}
