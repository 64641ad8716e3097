package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/types/ref"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
	"github.com/moat-registry/moat/internal/testsupport/diskbound"
)

func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }

type pipeEnv struct {
	t     testing.TB
	ctx   context.Context
	s     meta.Store
	blobs blob.Store
	p     *Pipelines
}

func newPipeEnv(t testing.TB) *pipeEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	bs, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e := &pipeEnv{t: t, ctx: ctx, s: s, blobs: bs}
	e.p = NewPipelines(PipelinesOptions{Meta: s, Blobs: bs, Poll: 100 * time.Millisecond, Lease: 3 * time.Second})
	for _, n := range []string{"src", "dst"} {
		if _, err := s.CreateRegistry(ctx, meta.Registry{Name: n, ResourceID: regID(n), Location: "local", SKU: "Premium"}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// pushRandom stores a random image (bytes in the blob store) as reg/repo:tag.
func (e *pipeEnv) pushRandom(reg, repo, tag string) digest.Digest {
	e.t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.pushImage(reg, repo, tag, img)
}

// pushImage stores img (with OCI media types: skopeo's OCI layout reader
// skips Docker manifests) as reg/repo:tag.
func (e *pipeEnv) pushImage(reg, repo, tag string, img v1.Image) digest.Digest {
	e.t.Helper()
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		st, err := e.blobs.StartUpload(e.ctx, "u"+d.Encoded()[:16], "")
		if err != nil {
			e.t.Fatal(err)
		}
		if st, err = e.blobs.Append(e.ctx, "u"+d.Encoded()[:16], st, bytes.NewReader(b)); err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.blobs.Commit(e.ctx, "u"+d.Encoded()[:16], st, d); err != nil {
			e.t.Fatal(err)
		}
		if err := e.s.LinkBlob(e.ctx, reg, repo, d, int64(len(b))); err != nil {
			e.t.Fatal(err)
		}
		return d
	}
	cfg, _ := img.RawConfigFile()
	put(cfg)
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, _ := l.Compressed()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(rc)
		_ = rc.Close()
		put(buf.Bytes())
	}
	raw, _ := img.RawManifest()
	p, err := manifest.Parse("", raw)
	if err != nil {
		e.t.Fatal(err)
	}
	m := meta.Manifest{Registry: reg, Repository: repo, Digest: digest.FromBytes(raw), MediaType: p.MediaType,
		Content: raw, Size: int64(len(raw)), Blobs: p.Blobs, Children: p.Children, ArtifactType: p.ArtifactType}
	if err := e.s.PutManifest(e.ctx, m, tag); err != nil {
		e.t.Fatal(err)
	}
	return m.Digest
}

func (e *pipeEnv) putPipeline(typ, name string, props PipelineProps) string {
	e.t.Helper()
	seg := "exportPipelines"
	reg := "src"
	if typ == ImportPipelineType {
		seg, reg = "importPipelines", "dst"
	}
	id := regID(reg) + "/" + seg + "/" + name
	b, _ := json.Marshal(props)
	if _, err := e.s.PutResource(e.ctx, meta.Resource{ID: id, Type: typ, Name: name, Properties: b}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *pipeEnv) putSecret(vault, name, value string) {
	e.t.Helper()
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/" + vault + "/secrets/" + name
	b, _ := json.Marshal(SecretProps{Value: value})
	if _, err := e.s.PutResource(e.ctx, meta.Resource{ID: id, Type: SecretType, Name: name, Properties: b}); err != nil {
		e.t.Fatal(err)
	}
}

// run stores a queued run in reg, lets the worker execute it, and returns
// its final properties.
func (e *pipeEnv) run(reg, name string, req RunRequest) RunProps {
	e.t.Helper()
	id := regID(reg) + "/pipelineRuns/" + name
	b, _ := json.Marshal(RunProps{Request: req, Response: RunResponse{Status: RunQueued}, ProvisioningState: ProvisioningCreating})
	if _, err := e.s.PutResource(e.ctx, meta.Resource{ID: id, Type: PipelineRunType, Name: name, Properties: b}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.p.runQueued(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	r, err := e.s.GetResource(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	props, err := decodeRun(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return props
}

func skopeo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo is required (scripts/test.sh installs it): %v", err)
	}
	return p
}

func TestPipelineExportImportDirectory(t *testing.T) {
	e := newPipeEnv(t)
	d1 := e.pushRandom("src", "app", "v1")
	d2 := e.pushRandom("src", "team/tool", "2.0")
	out := t.TempDir()
	exp := e.putPipeline(ExportPipelineType, "exp", PipelineProps{Target: &StorageProps{Type: StorageTypeBlobContainer, URI: "file://" + out}})
	res := e.run("src", "run1", RunRequest{PipelineResourceID: exp, Artifacts: []string{"app:v1", "team/tool@" + d2.String()},
		Target: &RunStorage{Type: StorageTypeBlob, Name: "export.tar"}})
	if res.Response.Status != RunSucceeded || res.ProvisioningState != ProvisioningSucceeded {
		t.Fatalf("export run: %+v", res.Response)
	}
	if res.Response.Progress == nil || res.Response.Progress.Percentage != "100" || len(res.Response.ImportedArtifacts) != 2 {
		t.Fatalf("export response: %+v", res.Response)
	}
	archive := filepath.Join(out, "export.tar")
	// A standard tool reads it back.
	layout := t.TempDir()
	cmd := exec.Command(skopeo(t), "copy", "--insecure-policy", "oci-archive:"+archive+":app:v1", "dir:"+layout)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo: %v\n%s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(layout, "manifest.json"))
	if err != nil || digest.FromBytes(got) != d1 {
		t.Fatalf("skopeo read manifest %s, want %s (%v)", digest.FromBytes(got), d1, err)
	}
	// regclient (regctl image import) reads it too.
	rc := regclient.New()
	ocidir, err := os.MkdirTemp("", "regclient") // its paths are lower-case, unlike t.TempDir's
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(ocidir) })
	rr, err := ref.New("ocidir://" + ocidir + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	af, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.ImageImport(e.ctx, rr, af, regclient.ImageWithImportName("app:v1")); err != nil {
		t.Fatalf("regclient import: %v", err)
	}
	_ = af.Close()
	if mh, err := rc.ManifestHead(e.ctx, rr); err != nil || mh.GetDescriptor().Digest.String() != d1.String() {
		t.Fatalf("regclient read %v, want %s (%v)", mh, d1, err)
	}
	// And an archive skopeo wrote imports like moat's own.
	cmd = exec.Command(skopeo(t), "copy", "--insecure-policy", "dir:"+layout, "oci-archive:"+filepath.Join(out, "skopeo.tar")+":made/by-skopeo:v9")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo: %v\n%s", err, b)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, ".*"))
	if len(leftovers) != 0 {
		t.Fatalf("partial files left: %v", leftovers)
	}

	// Import into dst; the source archive is deleted on success.
	imp := e.putPipeline(ImportPipelineType, "imp", PipelineProps{Source: &StorageProps{Type: StorageTypeBlobContainer, URI: "file://" + out},
		Options: []string{OptDeleteSourceBlobOnSuccess}})
	res = e.run("dst", "run2", RunRequest{PipelineResourceID: imp, Source: &RunStorage{Type: StorageTypeBlob, Name: "export.tar"}})
	if res.Response.Status != RunSucceeded {
		t.Fatalf("import run: %+v", res.Response)
	}
	m, err := e.s.GetManifestByTag(e.ctx, "dst", "app", "v1")
	if err != nil || m.Digest != d1 {
		t.Fatalf("dst app:v1 = %v, %v", m.Digest, err)
	}
	if _, err := e.s.GetManifest(e.ctx, "dst", "team/tool", d2); err != nil {
		t.Fatalf("dst team/tool@%s: %v", d2, err)
	}
	if _, err := os.Stat(archive); !os.IsNotExist(err) {
		t.Fatalf("DeleteSourceBlobOnSuccess: archive still there (%v)", err)
	}
	res = e.run("dst", "run3", RunRequest{PipelineResourceID: imp, Source: &RunStorage{Type: StorageTypeBlob, Name: "skopeo.tar"}})
	if res.Response.Status != RunSucceeded {
		t.Fatalf("import of skopeo's archive: %+v", res.Response)
	}
	if _, err := e.s.GetManifestByTag(e.ctx, "dst", "made/by-skopeo", "v9"); err != nil {
		t.Fatalf("skopeo's artifact: %v", err)
	}
}

func TestPipelineImportRefusesBadArchives(t *testing.T) {
	e := newPipeEnv(t)
	e.pushRandom("src", "app", "v1")
	out := t.TempDir()
	exp := e.putPipeline(ExportPipelineType, "exp", PipelineProps{Target: &StorageProps{URI: "file://" + out}})
	if res := e.run("src", "r1", RunRequest{PipelineResourceID: exp, Artifacts: []string{"app:v1"}, Target: &RunStorage{Name: "good.tar"}}); res.Response.Status != RunSucceeded {
		t.Fatalf("export: %+v", res.Response)
	}
	good, err := os.ReadFile(filepath.Join(out, "good.tar"))
	if err != nil {
		t.Fatal(err)
	}
	// Truncated: cut inside the largest blob.
	if err := os.WriteFile(filepath.Join(out, "truncated.tar"), good[:len(good)/2], 0o644); err != nil { //nolint:gosec // G703: the test's own temp dir
		t.Fatal(err)
	}
	// Corrupt: the largest blob's content changed (same size), and an
	// archive whose manifest's layer is missing.
	if err := os.WriteFile(filepath.Join(out, "corrupt.tar"), rewriteTar(t, good, "corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "incomplete.tar"), rewriteTar(t, good, "drop"), 0o644); err != nil {
		t.Fatal(err)
	}
	imp := e.putPipeline(ImportPipelineType, "imp", PipelineProps{Source: &StorageProps{URI: "file://" + out}})
	for name, want := range map[string]string{
		"truncated.tar":  "truncated",
		"corrupt.tar":    "does not match its digest",
		"incomplete.tar": "which is not in the archive",
		"missing.tar":    "archive not found",
	} {
		res := e.run("dst", "r-"+strings.TrimSuffix(name, ".tar"), RunRequest{PipelineResourceID: imp, Source: &RunStorage{Name: name}})
		if res.Response.Status != RunFailed || res.ProvisioningState != ProvisioningFailed || !strings.Contains(res.Response.PipelineRunErrorMessage, want) {
			t.Errorf("%s: %+v", name, res.Response)
		}
		t.Logf("%s: %s", name, res.Response.PipelineRunErrorMessage)
		if tags, _ := e.s.ListTags(e.ctx, "dst", "app", "", 0); len(tags) != 0 {
			t.Fatalf("%s: tagged %v", name, tags)
		}
	}
}

func TestPipelineAzureBlob(t *testing.T) {
	e := newPipeEnv(t)
	d1 := e.pushRandom("src", "app", "v1")
	cfg := azuritetest.Config(t)
	if _, err := azblob.New(e.ctx, cfg); err != nil { // creates the container
		t.Fatal(err)
	}
	cred, err := service.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	perms := sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
		ContainerName: cfg.Container, Permissions: perms.String()}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	e.putSecret("kv1", "sas", q.Encode())
	uri := cfg.Endpoint + "/" + cfg.Container
	exp := e.putPipeline(ExportPipelineType, "exp", PipelineProps{Target: &StorageProps{Type: StorageTypeBlobContainer, URI: uri,
		KeyVaultURI: "https://kv1.vault.azure.net/secrets/sas"}})
	res := e.run("src", "r1", RunRequest{PipelineResourceID: exp, Artifacts: []string{"app:v1"}, Target: &RunStorage{Name: "a.tar"}})
	if res.Response.Status != RunSucceeded {
		t.Fatalf("export: %+v", res.Response)
	}
	// Without OverwriteBlobs a second export to the same name fails.
	res = e.run("src", "r2", RunRequest{PipelineResourceID: exp, Artifacts: []string{"app:v1"}, Target: &RunStorage{Name: "a.tar"}})
	if res.Response.Status != RunFailed || !strings.Contains(res.Response.PipelineRunErrorMessage, "already exists") {
		t.Fatalf("second export: %+v", res.Response)
	}
	// A container that does not exist: a clear error.
	bad := e.putPipeline(ExportPipelineType, "bad", PipelineProps{Target: &StorageProps{URI: cfg.Endpoint + "/nosuchcontainer",
		KeyVaultURI: "https://kv1.vault.azure.net/secrets/sas"}})
	res = e.run("src", "r3", RunRequest{PipelineResourceID: bad, Artifacts: []string{"app:v1"}, Target: &RunStorage{Name: "a.tar"}})
	if res.Response.Status != RunFailed || !strings.Contains(res.Response.PipelineRunErrorMessage, "does not exist") &&
		!strings.Contains(res.Response.PipelineRunErrorMessage, "refused") {
		t.Fatalf("missing container: %+v", res.Response)
	}

	// The source trigger imports the archive by itself, once.
	imp := e.putPipeline(ImportPipelineType, "imp", PipelineProps{Source: &StorageProps{URI: uri, KeyVaultURI: "https://kv1.vault.azure.net/secrets/sas"},
		Trigger: &TriggerProps{SourceTrigger: &struct {
			Status string `json:"status"`
		}{TriggerEnabled}}})
	_ = imp
	for range 2 {
		if err := e.p.pollTriggers(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	m, err := e.s.GetManifestByTag(e.ctx, "dst", "app", "v1")
	if err != nil || m.Digest != d1 {
		t.Fatalf("trigger import: %v %v", m.Digest, err)
	}
	runs, _ := e.s.ListResources(e.ctx, regID("dst"), PipelineRunType)
	if len(runs) != 1 {
		t.Fatalf("trigger runs: %d, want 1", len(runs))
	}
	props, _ := decodeRun(runs[0])
	if props.Response.Status != RunSucceeded || props.Response.Trigger == nil {
		t.Fatalf("trigger run: %+v", props.Response)
	}
}

func TestPipelineInterruptedRunFails(t *testing.T) {
	e := newPipeEnv(t)
	id := regID("src") + "/pipelineRuns/stuck"
	b, _ := json.Marshal(RunProps{Response: RunResponse{Status: RunRunning}, ProvisioningState: ProvisioningCreating})
	if _, err := e.s.PutResource(e.ctx, meta.Resource{ID: id, Type: PipelineRunType, Name: "stuck", Properties: b}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { e.p.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _ := e.s.GetResource(e.ctx, id)
		props, _ := decodeRun(r)
		if props.Response.Status == RunFailed {
			if props.Response.PipelineRunErrorMessage != InterruptedMessage || props.ProvisioningState != ProvisioningFailed {
				t.Fatalf("interrupted run: %+v", props)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted run was not failed: %+v", props)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
}

// rewriteTar copies an archive, changing its largest entry: "corrupt" flips
// a byte, "drop" leaves it out.
func rewriteTar(t *testing.T, in []byte, how string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(in))
	type ent struct {
		h *tar.Header
		b []byte
	}
	var ents []ent
	big := -1
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		ents = append(ents, ent{h, b})
		if big < 0 || len(b) > len(ents[big].b) {
			big = len(ents) - 1
		}
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for i, e := range ents {
		if i == big {
			if how == "drop" {
				continue
			}
			e.b[len(e.b)/2] ^= 0xff
		}
		if err := tw.WriteHeader(e.h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(e.b)
	}
	_ = tw.Close()
	return out.Bytes()
}

// FuzzReadArchive feeds arbitrary bytes to the archive reader: it must
// fail cleanly, and an artifact it reports imported must be readable.
func FuzzReadArchive(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("not a tar"))
	var seed bytes.Buffer
	{
		tw := tar.NewWriter(&seed)
		for _, e := range []struct{ name, body string }{
			{"oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
			{"index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2,"annotations":{"org.opencontainers.image.ref.name":"app:v1"}}]}`},
		} {
			_ = tw.WriteHeader(&tar.Header{Name: e.name, Size: int64(len(e.body)), Mode: 0o644, Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte(e.body))
		}
		_ = tw.Close()
	}
	f.Add(seed.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		dir := t.TempDir()
		s, err := sqlite.Open(ctx, filepath.Join(dir, "m.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		bs, err := fs.New(filepath.Join(dir, "b"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "dst", ResourceID: regID("dst"), Location: "l", SKU: "Premium"}); err != nil {
			t.Fatal(err)
		}
		res, err := ReadArchive(ctx, bytes.NewReader(data), int64(len(data)), s, bs, "dst", ImportOptions{ContinueOnErrors: true}, &RunProgress{})
		if err != nil {
			return
		}
		for _, r := range res {
			if r.Status != StatusSucceeded {
				continue
			}
			ref, perr := parseImage(r.Artifact, "a", true)
			if perr != nil {
				t.Fatalf("imported %q, which does not parse: %v", r.Artifact, perr)
			}
			if ref.tag != "" {
				if _, err := s.GetManifestByTag(ctx, "dst", ref.repo, ref.tag); err != nil {
					t.Fatalf("reported %s imported but: %v", r.Artifact, err)
				}
			}
		}
	})
}

// BenchmarkWriteArchive measures an export's throughput: 64 MiB of layers
// from the fs blob store into an archive in a local directory, through the
// same writer an export run to file:// uses (written, fsync'd, published).
// Each iteration also writes the same number of bytes to the same directory
// the way dd does (1 MiB writes of a buffer, then fsync; once plain, once
// starting writeback as the export does, keeping the faster), untimed by the
// benchmark clock but timed on its own, so the disk's bound is measured
// interleaved with the export and "x-bound" (export MB/s over bound MB/s)
// does not depend on the disk's rate drifting between two commands.
func BenchmarkWriteArchive(b *testing.B) {
	e := newPipeEnv(b)
	img, err := random.Image(32<<20, 2)
	if err != nil {
		b.Fatal(err)
	}
	e.pushImage("src", "big", "v1", img)
	// The blob store drops what it writes from the page cache, so the
	// layers are read once before the clock starts: the export is compared
	// with the disk's write bound, not with its read rate (a cold export
	// reads the disk as well).
	if _, err := WriteArchive(e.ctx, io.Discard, e.s, e.blobs, "src", []string{"big:v1"}, false, nil); err != nil {
		b.Fatal(err)
	}
	st := dirStorage{dir: b.TempDir()}
	var zeros []byte // as many as the archive has bytes
	var archived, bound time.Duration
	var size int64
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("a%d.tar", i)
		start := time.Now()
		w, err := st.Create(e.ctx, name, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := WriteArchive(e.ctx, w, e.s, e.blobs, "src", []string{"big:v1"}, false, nil); err != nil {
			b.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		archived += time.Since(start)
		b.StopTimer()
		fi, err := os.Stat(filepath.Join(st.dir, name))
		if err != nil {
			b.Fatal(err)
		}
		size = fi.Size()
		if int64(len(zeros)) != size {
			zeros = make([]byte, size)
		}
		_ = os.Remove(filepath.Join(st.dir, name))
		// The faster of a plain dd-like write and one that starts
		// writeback as the export does: the bound is the best this disk
		// does, not a straw man.
		best := time.Duration(1<<63 - 1)
		for _, hint := range []bool{false, true} {
			start = time.Now()
			f, err := os.Create(filepath.Join(st.dir, "dd"))
			if err != nil {
				b.Fatal(err)
			}
			if err := diskbound.Write(f, zeros, nil, hint); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			best = min(best, time.Since(start))
			_ = os.Remove(filepath.Join(st.dir, "dd"))
		}
		bound += best
		b.StartTimer()
	}
	b.ReportMetric(float64(size)*float64(b.N)/bound.Seconds()/1e6, "bound-MB/s")
	b.ReportMetric(bound.Seconds()/archived.Seconds(), "x-bound")
}
