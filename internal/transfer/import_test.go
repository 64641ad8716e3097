package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

const domain = "example.test"

func regID(name string) string {
	return "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/" + name
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	s     meta.Store
	index digest.Digest
	kids  []digest.Digest
	refs  []digest.Digest // referrer of kid 0, referrer of the index, referrer of that referrer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f := &fixture{t: t, ctx: ctx, s: s}
	f.registry("a", `{"policies":{"exportPolicy":{"status":"enabled"}}}`)
	f.registry("b", "")
	f.registry("locked", `{"policies":{"exportPolicy":{"status":"disabled"}}}`)
	f.registry("closed", `{"publicNetworkAccess":"Disabled","networkRuleBypassOptions":"None"}`)
	f.registry("firewalled", `{"publicNetworkAccess":"Enabled","networkRuleSet":{"defaultAction":"Deny"},"networkRuleBypassOptions":"AzureServices"}`)
	for _, reg := range []string{"a", "locked", "closed", "firewalled"} {
		f.pushImage(reg, "app")
	}
	return f
}

func (f *fixture) registry(name, props string) {
	f.t.Helper()
	var p []byte
	if props != "" {
		p = []byte(props)
	}
	if _, err := f.s.CreateRegistry(f.ctx, meta.Registry{Name: name, ResourceID: regID(name), Location: "local", SKU: "Premium", Properties: p}); err != nil {
		f.t.Fatal(err)
	}
}

func desc(mt string, b []byte) map[string]any {
	return map[string]any{"mediaType": mt, "digest": digest.FromBytes(b).String(), "size": len(b)}
}

func (f *fixture) put(reg, repo, tag string, doc map[string]any) digest.Digest {
	f.t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := manifest.Parse("", b)
	if err != nil {
		f.t.Fatal(err)
	}
	m := meta.Manifest{Registry: reg, Repository: repo, Digest: digest.FromBytes(b), MediaType: p.MediaType,
		ArtifactType: p.ArtifactType, Subject: p.Subject, Content: b, Size: int64(len(b)), Blobs: p.Blobs, Children: p.Children}
	if err := f.s.PutManifest(f.ctx, m, tag); err != nil {
		f.t.Fatal(err)
	}
	return m.Digest
}

func (f *fixture) blob(reg, repo, content string) []byte {
	f.t.Helper()
	b := []byte(content)
	if err := f.s.LinkBlob(f.ctx, reg, repo, digest.FromBytes(b), int64(len(b))); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// other tags a small unrelated image reg/repo:tag.
func (f *fixture) other(reg, repo, tag string) {
	cfg := f.blob(reg, repo, `{"other":true}`)
	f.put(reg, repo, tag, map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIManifest,
		"config": desc("application/vnd.oci.image.config.v1+json", cfg), "layers": []any{}})
}

// pushImage stores a two-platform index tagged v1, a referrer of one child,
// a referrer of the index and a referrer of that referrer.
func (f *fixture) pushImage(reg, repo string) {
	f.kids, f.refs = nil, nil
	var kidDescs []map[string]any
	for _, arch := range []string{"amd64", "arm64"} {
		cfg := f.blob(reg, repo, `{"architecture":"`+arch+`","os":"linux"}`)
		layer := f.blob(reg, repo, "layer-"+arch)
		doc := map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIManifest,
			"config": desc("application/vnd.oci.image.config.v1+json", cfg),
			"layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)}}
		d := f.put(reg, repo, "", doc)
		b, _ := json.Marshal(doc)
		kd := desc(manifest.MediaTypeOCIManifest, b)
		kd["platform"] = map[string]string{"os": "linux", "architecture": arch}
		kidDescs = append(kidDescs, kd)
		f.kids = append(f.kids, d)
	}
	idx := map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIIndex, "manifests": kidDescs}
	f.index = f.put(reg, repo, "v1", idx)
	ib, _ := json.Marshal(idx)
	empty := f.blob(reg, repo, "{}")
	sig := f.blob(reg, repo, "signature of "+f.kids[0].String())
	mkRef := func(subject map[string]any, art string, layer []byte) digest.Digest {
		return f.put(reg, repo, "", map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIManifest,
			"artifactType": art,
			"config":       desc("application/vnd.oci.empty.v1+json", empty),
			"layers":       []any{desc("application/octet-stream", layer)},
			"subject":      subject})
	}
	f.refs = append(f.refs, mkRef(kidDescs[0], "application/vnd.example.sig", sig))
	sbom := f.blob(reg, repo, "sbom")
	r1 := mkRef(desc(manifest.MediaTypeOCIIndex, ib), "application/vnd.example.sbom", sbom)
	f.refs = append(f.refs, r1)
	r1m, err := f.s.GetManifest(f.ctx, reg, repo, r1)
	if err != nil {
		f.t.Fatal(err)
	}
	sbomSig := f.blob(reg, repo, "signature of the sbom")
	f.refs = append(f.refs, mkRef(desc(manifest.MediaTypeOCIManifest, r1m.Content), "application/vnd.example.sig", sbomSig))
}

func TestImport(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(f *fixture)
		req      ImportRequest
		wantKind Kind
		wantMsg  string
		wantTags []string
		wantRepo []string
	}{
		{name: "by resource id into tags", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"}, TargetTags: []string{"copy:v1", "copy:latest", "other:x"}},
			wantTags: []string{"copy:v1", "copy:latest", "other:x"}, wantRepo: []string{"copy", "other"}},
		{name: "by login server, default target", req: ImportRequest{TargetRegistry: "b",
			Source: Source{RegistryURI: "https://A." + domain + "/", SourceImage: "app:v1"}},
			wantTags: []string{"app:v1"}, wantRepo: []string{"app"}},
		{name: "untagged by digest", req: ImportRequest{TargetRegistry: "b",
			Source: Source{RegistryURI: "a." + domain}, UntaggedTargetRepositories: []string{"keep"}},
			wantRepo: []string{"keep"}},
		{name: "within a registry with exports disabled", req: ImportRequest{TargetRegistry: "locked",
			Source: Source{ResourceID: regID("locked"), SourceImage: "app:v1"}, TargetTags: []string{"copy:v1"}},
			wantTags: []string{"copy:v1"}, wantRepo: []string{"copy"}},
		{name: "export disabled", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("locked"), SourceImage: "app:v1"}},
			wantKind: KindExportDisabled, wantMsg: "exports are disabled on registry 'locked' (policies.exportPolicy.status: disabled)"},
		{name: "export disabled by login server", req: ImportRequest{TargetRegistry: "b",
			Source: Source{RegistryURI: "locked." + domain, SourceImage: "app:v1"}},
			wantKind: KindExportDisabled, wantMsg: "registry 'locked'"},
		{name: "network restricted without trusted services", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("closed"), SourceImage: "app:v1"}},
			wantKind: KindNetworkRestricted, wantMsg: "registry 'closed' restricts network access"},
		{name: "network restricted, trusted services allowed", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("firewalled"), SourceImage: "app:v1"}, TargetTags: []string{"fw:v1"}},
			wantTags: []string{"fw:v1"}, wantRepo: []string{"fw"}},
		{name: "network restricted, within the registry", req: ImportRequest{TargetRegistry: "closed",
			Source: Source{ResourceID: regID("closed"), SourceImage: "app:v1"}, TargetTags: []string{"again:v1"}},
			wantTags: []string{"again:v1"}, wantRepo: []string{"again"}},
		{name: "tag exists under NoForce", prepare: func(f *fixture) { f.other("b", "app", "v1") },
			req: ImportRequest{TargetRegistry: "b", Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"},
				TargetTags: []string{"fresh:v1", "app:v1"}},
			wantKind: KindTagExists, wantMsg: "app:v1 already exists"},
		{name: "tag exists under Force", prepare: func(f *fixture) { f.other("b", "app", "v1") },
			req: ImportRequest{TargetRegistry: "b", Mode: ModeForce, Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"},
				TargetTags: []string{"app:v1"}},
			wantTags: []string{"app:v1"}, wantRepo: []string{"app"}},
		{name: "source image missing", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("a"), SourceImage: "app:nope"}}, wantKind: KindNotFound, wantMsg: "'app:nope' was not found"},
		{name: "source registry missing", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("zzz"), SourceImage: "app:v1"}}, wantKind: KindNotFound, wantMsg: "source registry"},
		{name: "resource id of another group", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: strings.Replace(regID("a"), "/rg/", "/other/", 1), SourceImage: "app:v1"}}, wantKind: KindNotFound},
		{name: "target registry missing", req: ImportRequest{TargetRegistry: "nope",
			Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"}}, wantKind: KindNotFound, wantMsg: "target registry"},
		{name: "outside the deployment", req: ImportRequest{TargetRegistry: "b",
			Source: Source{RegistryURI: "docker.io", SourceImage: "library/hello-world:latest", Username: "u", Password: "p"}},
			wantKind: KindUnsupported, wantMsg: "not configured to import from other registries"},
		{name: "bad mode", req: ImportRequest{TargetRegistry: "b", Mode: "Sometimes",
			Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"}}, wantKind: KindInvalid, wantMsg: "mode"},
		{name: "no source image", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("a")}}, wantKind: KindInvalid, wantMsg: "source.sourceImage is required"},
		{name: "no source", req: ImportRequest{TargetRegistry: "b", Source: Source{SourceImage: "app:v1"}},
			wantKind: KindInvalid, wantMsg: "resourceId or registryUri"},
		{name: "bad resource id", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: "/subscriptions/s", SourceImage: "app:v1"}}, wantKind: KindInvalid, wantMsg: "source.resourceId"},
		{name: "bad target tag", req: ImportRequest{TargetRegistry: "b", TargetTags: []string{"Upper:v1"},
			Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"}}, wantKind: KindInvalid, wantMsg: "targetTags[0]"},
		{name: "digest target tag", req: ImportRequest{TargetRegistry: "b", TargetTags: []string{"x@sha256:" + strings.Repeat("a", 64)},
			Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"}}, wantKind: KindInvalid, wantMsg: "not a digest"},
		{name: "bad untagged repo", req: ImportRequest{TargetRegistry: "b", UntaggedTargetRepositories: []string{"a//b"},
			Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"}}, wantKind: KindInvalid, wantMsg: "untaggedTargetRepositories[0]"},
		{name: "uri and id disagree", req: ImportRequest{TargetRegistry: "b",
			Source: Source{ResourceID: regID("a"), RegistryURI: "b." + domain, SourceImage: "app:v1"}}, wantKind: KindInvalid, wantMsg: "different registries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			srcIndex, srcKids, srcRefs := f.index, f.kids, f.refs
			if tc.prepare != nil {
				tc.prepare(f)
			}
			req := tc.req
			req.Domain = domain
			if req.Source.SourceImage == "" && req.Source.RegistryURI != "" {
				req.Source.SourceImage = "app@" + srcIndex.String()
			}
			before, _ := f.s.ListRepositories(f.ctx, req.TargetRegistry, "", 0)
			res, err := Import(f.ctx, f.s, req)
			if tc.wantKind != 0 {
				var ie *Error
				if !errors.As(err, &ie) || ie.Kind != tc.wantKind {
					t.Fatalf("Import: %v (%#v), want kind %d", err, err, tc.wantKind)
				}
				if !strings.Contains(ie.Message, tc.wantMsg) {
					t.Errorf("message %q does not contain %q", ie.Message, tc.wantMsg)
				}
				after, _ := f.s.ListRepositories(f.ctx, req.TargetRegistry, "", 0)
				if fmt.Sprint(before) != fmt.Sprint(after) {
					t.Errorf("a failed import wrote repositories: %v -> %v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if res.Digest != srcIndex || res.Manifests != 1+len(srcKids)+len(srcRefs) {
				t.Errorf("result %+v, want digest %s and %d manifests", res, srcIndex, 1+len(srcKids)+len(srcRefs))
			}
			if fmt.Sprint(res.Tags) != fmt.Sprint(tc.wantTags) || fmt.Sprint(res.Repositories) != fmt.Sprint(tc.wantRepo) {
				t.Errorf("tags %v repos %v, want %v %v", res.Tags, res.Repositories, tc.wantTags, tc.wantRepo)
			}
			for _, tag := range tc.wantTags {
				repo, tg, _ := strings.Cut(tag, ":")
				m, err := f.s.GetManifestByTag(f.ctx, req.TargetRegistry, repo, tg)
				if err != nil || m.Digest != srcIndex {
					t.Errorf("%s: %v %v, want %s", tag, m.Digest, err, srcIndex)
				}
			}
			for _, repo := range tc.wantRepo {
				for _, d := range append(append([]digest.Digest{srcIndex}, srcKids...), srcRefs...) {
					if _, err := f.s.GetManifest(f.ctx, req.TargetRegistry, repo, d); err != nil {
						t.Errorf("%s@%s not imported: %v", repo, d, err)
					}
				}
				if refs, err := f.s.ListReferrers(f.ctx, req.TargetRegistry, repo, srcKids[0], ""); err != nil || len(refs) != 1 || refs[0].Digest != srcRefs[0] {
					t.Errorf("referrers of %s in %s: %v %v", srcKids[0], repo, refs, err)
				}
				if _, err := f.s.StatBlob(f.ctx, req.TargetRegistry, repo, digest.FromString("layer-arm64")); err != nil {
					t.Errorf("layer not linked in %s: %v", repo, err)
				}
			}
		})
	}
}

func TestParseImage(t *testing.T) {
	d := "sha256:" + strings.Repeat("b", 64)
	tests := []struct {
		in      string
		want    imageRef
		wantErr bool
	}{
		{in: "app", want: imageRef{repo: "app", tag: "latest"}},
		{in: "a/b/c:1.0", want: imageRef{repo: "a/b/c", tag: "1.0"}},
		{in: "app@" + d, want: imageRef{repo: "app", digest: digest.Digest(d)}},
		{in: "app:v1@" + d, want: imageRef{repo: "app", digest: digest.Digest(d)}},
		{in: "App:v1", wantErr: true},
		{in: "app:-x", wantErr: true},
		{in: "app@sha256:zz", wantErr: true},
		{in: ":v1", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseImage(tc.in, "f", true)
		if (err != nil) != tc.wantErr || !tc.wantErr && got != tc.want {
			t.Errorf("parseImage(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestLoginServerName(t *testing.T) {
	tests := []struct {
		uri, domain, want string
		ok                bool
	}{
		{"a.example.test", "example.test", "a", true},
		{"HTTPS://A.Example.Test/", "example.test", "a", true},
		{"a.b.example.test", "example.test", "", false},
		{"example.test", "example.test", "", false},
		{"docker.io", "example.test", "", false},
		{"a", "", "a", true},
		{"a.example.test:8443", "example.test", "a", true},
		{"a.example.test:", "example.test", "", false},
		{"a.io", "", "", false},
	}
	for _, tc := range tests {
		got, ok := loginServerName(tc.uri, tc.domain)
		if got != tc.want || ok != tc.ok {
			t.Errorf("loginServerName(%q, %q) = %q, %v", tc.uri, tc.domain, got, ok)
		}
	}
}

// FuzzParseImage: no input panics, and an accepted reference round-trips.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{"app", "a/b:1", "app@sha256:" + strings.Repeat("a", 64), "a:b@c", ":", "@", "a::b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := parseImage(s, "f", true)
		if err != nil {
			return
		}
		again, err := parseImage(ref.String(), "f", true)
		if err != nil || again != ref {
			t.Fatalf("%q -> %+v -> %+v, %v", s, ref, again, err)
		}
	})
}

// failingStore fails the n-th PutManifest, as a crash mid-import would.
type failingStore struct {
	meta.Store
	n, calls int
}

func (s *failingStore) PutManifest(ctx context.Context, m meta.Manifest, tag string) error {
	s.calls++
	if s.calls == s.n {
		return errors.New("disk full")
	}
	return s.Store.PutManifest(ctx, m, tag)
}

// TestImport_InterruptedLeavesNoTag: whichever manifest write fails, no
// target tag points at a partial image, and running the import again
// finishes it.
func TestImport_InterruptedLeavesNoTag(t *testing.T) {
	f := newFixture(t)
	req := ImportRequest{TargetRegistry: "b", Domain: domain, Source: Source{ResourceID: regID("a"), SourceImage: "app:v1"},
		TargetTags: []string{"one:v1", "two:v1"}}
	total := 1 + len(f.kids) + len(f.refs)
	for n := 1; n <= 2*total; n++ { // every manifest in both repositories
		fs := &failingStore{Store: f.s, n: n}
		if _, err := Import(f.ctx, fs, req); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("failing write %d: %v", n, err)
		}
		for _, repo := range []string{"one", "two"} {
			if m, err := f.s.GetManifestByTag(f.ctx, "b", repo, "v1"); !errors.Is(err, meta.ErrNotFound) {
				t.Fatalf("failing write %d: %s:v1 is tagged (%s, %v)", n, repo, m.Digest, err)
			}
		}
	}
	res, err := Import(f.ctx, f.s, req)
	if err != nil || len(res.Tags) != 2 {
		t.Fatalf("retry: %+v %v", res, err)
	}
}
