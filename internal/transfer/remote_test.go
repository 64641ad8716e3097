package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// source is an OCI registry on loopback (go-containerregistry's registry
// package) behind a gate that can require Basic credentials, cut blob
// downloads short and corrupt blobs.
type source struct {
	t    *testing.T
	srv  *httptest.Server
	host string
	user string // "" serves anyone
	pass string

	mu       sync.Mutex
	cut      map[string]int // blob digest → how many more GETs to cut mid-body
	stall    map[string]int // blob digest → how many more GETs to stall mid-body
	corrupt  map[string]bool
	requests int
	marked   int
	ranges   int // blob GETs with a Range header
}

func newSource(t testing.TB, referrers bool) *source {
	s := &source{cut: map[string]int{}, stall: map[string]int{}, corrupt: map[string]bool{}}
	if tt, ok := t.(*testing.T); ok {
		s.t = tt
	}
	inner := registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0)))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		if r.Header.Get(ImportHeader) == ImportHeaderValue && strings.Contains(r.UserAgent(), "moat-import/1") {
			s.marked++
		}
		s.mu.Unlock()
		if s.user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != s.user || p != s.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="source"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		i := strings.LastIndex(r.URL.Path, "/blobs/")
		if r.Method != http.MethodGet || i < 0 {
			inner.ServeHTTP(w, r)
			return
		}
		d := r.URL.Path[i+len("/blobs/"):]
		s.mu.Lock()
		if r.Header.Get("Range") != "" {
			s.ranges++
		}
		cut := s.cut[d] > 0
		if cut {
			s.cut[d]--
		}
		stall := !cut && s.stall[d] > 0
		if stall {
			s.stall[d]--
		}
		corrupt := s.corrupt[d]
		s.mu.Unlock()
		if !cut && !stall && !corrupt {
			inner.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		if corrupt {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
			_, _ = w.Write(body)
			return
		}
		_, _ = w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if stall {
			<-r.Context().Done() // sends nothing more until the client gives up
			return
		}
		panic(http.ErrAbortHandler) // the connection closes mid-body
	}))
	t.Cleanup(s.srv.Close)
	s.host = strings.TrimPrefix(s.srv.URL, "http://")
	return s
}

func (s *source) opts() []remote.Option {
	a := authn.Anonymous
	if s.user != "" {
		a = &authn.Basic{Username: s.user, Password: s.pass}
	}
	return []remote.Option{remote.WithAuth(a)}
}

func (s *source) ref(t testing.TB, r string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s.host+"/"+r, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// pushIndex pushes a two-image index to repo:tag with a signature referring
// to the index and one referring to its first image; it returns the index.
func (s *source) pushIndex(t testing.TB, repo, tag string, layerSize int64) (idx v1.ImageIndex, refs []digest.Digest) {
	t.Helper()
	base, err := random.Index(layerSize, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Give the children platforms, as a real multi-platform index has.
	im, err := base.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	idx = empty.Index
	for i, d := range im.Manifests {
		img, err := base.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		arch := []string{"amd64", "arm64"}[i]
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	ref := s.ref(t, repo+":"+tag)
	if err := remote.WriteIndex(ref, idx, s.opts()...); err != nil {
		t.Fatalf("push index: %v", err)
	}
	im, err = idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := remote.Head(ref, s.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []v1.Descriptor{*idxDesc, im.Manifests[0]} {
		sig := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType("application/vnd.example.sig+json"))
		sig = mutate.Annotations(sig, map[string]string{"for": subj.Digest.String()}).(v1.Image)
		withSubj, ok := mutate.Subject(sig, subj).(v1.Image)
		if !ok {
			t.Fatal("mutate.Subject of an image is not an image")
		}
		d, err := withSubj.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(s.ref(t, repo+"@"+d.String()), withSubj, s.opts()...); err != nil {
			t.Fatalf("push referrer: %v", err)
		}
		refs = append(refs, digest.Digest(d.String()))
	}
	return idx, refs
}

// target is a real metadata store and blob store with registry "dst".
type target struct {
	meta  meta.Store
	blobs *fs.Store
	dir   string
}

func newTarget(t testing.TB) *target {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	bs, err := fs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRegistry(context.Background(), meta.Registry{Name: "dst", ResourceID: regID("dst"), Location: "local", SKU: "Premium"}); err != nil {
		t.Fatal(err)
	}
	return &target{meta: s, blobs: bs, dir: dir}
}

func (tg *target) remote() *Remote {
	return &Remote{Blobs: tg.blobs, PlainHTTPLoopback: true, Backoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
}

// uploadsLeft counts the blob store's uploads in progress (none may be left
// behind by an import).
func (tg *target) uploadsLeft(t *testing.T) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(filepath.Join(tg.dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "import-") {
			n++
		}
		return nil
	})
	return n
}

func (tg *target) importFrom(s *source, image string, mut func(*ImportRequest)) (ImportResult, error) {
	req := ImportRequest{TargetRegistry: "dst", Domain: domain, Remote: tg.remote(), Progress: &Progress{},
		Source: Source{RegistryURI: s.host, SourceImage: image, Username: s.user, Password: s.pass}}
	if mut != nil {
		mut(&req)
	}
	return Import(context.Background(), tg.meta, req)
}

// checkImported verifies that repo:tag in dst is idx, with every child,
// every referrer and every blob (bytes verified against digests).
func (tg *target) checkImported(t *testing.T, repo, tag string, idx v1.ImageIndex, refs []digest.Digest) {
	t.Helper()
	ctx := context.Background()
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := tg.meta.GetManifestByTag(ctx, "dst", repo, tag)
	if err != nil || m.Digest.String() != want.String() {
		t.Fatalf("%s:%s = %v, %v; want %s", repo, tag, m.Digest, err, want)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range im.Manifests {
		if _, err := tg.meta.GetManifest(ctx, "dst", repo, digest.Digest(c.Digest.String())); err != nil {
			t.Fatalf("child %s: %v", c.Digest, err)
		}
		img, err := idx.Image(c.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			dd := digest.Digest(d.String())
			if _, err := tg.meta.StatBlob(ctx, "dst", repo, dd); err != nil {
				t.Fatalf("layer %s not linked: %v", d, err)
			}
			r, err := tg.blobs.Open(ctx, dd)
			if err != nil {
				t.Fatalf("layer %s: %v", d, err)
			}
			v := dd.Verifier()
			_, err = io.Copy(v, r)
			_ = r.Close()
			if err != nil || !v.Verified() {
				t.Fatalf("layer %s: stored bytes do not match (%v)", d, err)
			}
		}
	}
	var got []digest.Digest
	for _, subj := range []digest.Digest{m.Digest, digest.Digest(im.Manifests[0].Digest.String())} {
		rs, err := tg.meta.ListReferrers(ctx, "dst", repo, subj, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r.Digest)
		}
	}
	for _, r := range refs {
		found := false
		for _, g := range got {
			found = found || g == r
		}
		if !found {
			t.Errorf("referrer %s not imported (have %v)", r, got)
		}
	}
}

// TestRemoteImport imports a two-platform index with referrers from a
// registry outside the deployment, through the referrers API and through
// the tag-schema fallback, by tag and by digest.
func TestRemoteImport(t *testing.T) {
	for _, referrers := range []bool{true, false} {
		t.Run(map[bool]string{true: "referrers API", false: "tag schema"}[referrers], func(t *testing.T) {
			s := newSource(t, referrers)
			idx, refs := s.pushIndex(t, "team/app", "v1", 4096)
			tg := newTarget(t)
			s.requests, s.marked = 0, 0 // the pushes were not the importer's
			var prog *Progress
			res, err := tg.importFrom(s, "team/app:v1", func(r *ImportRequest) {
				r.TargetTags = []string{"copy:v1"}
				prog = r.Progress
			})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			// index, 2 images, 2 signatures
			if res.Manifests != 5 || res.SourceRegistry != s.host || len(res.Tags) != 1 {
				t.Errorf("result %+v", res)
			}
			tg.checkImported(t, "copy", "v1", idx, refs)
			p := prog.Snapshot()
			if p.Manifests != 5 || p.BlobsDone != p.BlobsTotal || p.BytesDone != p.BytesTotal || p.BytesTotal < 4*4096 {
				t.Errorf("progress %+v", p)
			}
			if s.marked != s.requests || s.requests == 0 {
				t.Errorf("%d of %d requests carried the importer markers", s.marked, s.requests)
			}

			d, err := idx.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tg.importFrom(s, "team/app@"+d.String(), func(r *ImportRequest) {
				r.UntaggedTargetRepositories = []string{"bydigest"}
			}); err != nil {
				t.Fatalf("import by digest: %v", err)
			}
			if _, err := tg.meta.GetManifest(context.Background(), "dst", "bydigest", digest.Digest(d.String())); err != nil {
				t.Fatalf("untagged import: %v", err)
			}
			if n := tg.uploadsLeft(t); n != 0 {
				t.Errorf("%d uploads left behind", n)
			}
		})
	}
}

func wantKind(t *testing.T, err error, kind Kind, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != kind || !strings.Contains(e.Message, msg) {
		t.Fatalf("error %v (%#v), want kind %d with %q", err, e, kind, msg)
	}
}

// TestRemoteImportCredentials: a source that wants credentials refuses an
// import without them and with wrong ones, each with its own message, and
// admits the right ones.
func TestRemoteImportCredentials(t *testing.T) {
	s := newSource(t, true)
	s.user, s.pass = "puller", "s3cret"
	idx, refs := s.pushIndex(t, "app", "v1", 512)
	tg := newTarget(t)
	_, err := tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Source.Username, r.Source.Password = "", "" })
	wantKind(t, err, KindSourceAuth, "requires credentials")
	_, err = tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Source.Password = "wrong" })
	wantKind(t, err, KindSourceAuth, "refused the credentials")
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	if _, err := tg.meta.GetManifestByTag(context.Background(), "dst", "app", "v1"); !errors.Is(err, meta.ErrNotFound) {
		t.Fatalf("a refused import left a tag: %v", err)
	}
	if _, err := tg.importFrom(s, "app:v1", nil); err != nil {
		t.Fatalf("import with credentials: %v", err)
	}
	tg.checkImported(t, "app", "v1", idx, refs)
}

// TestRemoteImportModes: NoForce refuses an existing target tag before any
// byte moves; Force moves it.
func TestRemoteImportModes(t *testing.T) {
	s := newSource(t, true)
	s.pushIndex(t, "app", "v1", 256)
	idx2, refs2 := s.pushIndex(t, "app", "v2", 256)
	tg := newTarget(t)
	if _, err := tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.TargetTags = []string{"app:stable"} }); err != nil {
		t.Fatal(err)
	}
	before := s.requests
	var prog *Progress
	_, err := tg.importFrom(s, "app:v2", func(r *ImportRequest) {
		r.TargetTags, r.Mode, prog = []string{"app:stable"}, ModeNoForce, r.Progress
	})
	wantKind(t, err, KindTagExists, "app:stable already exists")
	if p := prog.Snapshot(); p.BytesDone != 0 {
		t.Errorf("NoForce refusal downloaded %d bytes (%d requests)", p.BytesDone, s.requests-before)
	}
	if _, err := tg.importFrom(s, "app:v2", func(r *ImportRequest) { r.TargetTags, r.Mode = []string{"app:stable"}, ModeForce }); err != nil {
		t.Fatalf("Force: %v", err)
	}
	tg.checkImported(t, "app", "stable", idx2, refs2)
}

// firstLayer is the digest of the first layer of the index's first image.
func firstLayer(t *testing.T, idx v1.ImageIndex) string {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestRemoteImportInterrupted: a source that closes the connection
// mid-layer is resumed (with a Range request) and the import completes; one
// that always does fails cleanly, with no manifest, no tag and no upload
// left behind; a corrupted layer is a digest mismatch, not retried.
func TestRemoteImportInterrupted(t *testing.T) {
	s := newSource(t, true)
	idx, refs := s.pushIndex(t, "app", "v1", 64<<10)
	layer := firstLayer(t, idx)

	t.Run("resumed", func(t *testing.T) {
		tg := newTarget(t)
		s.cut[layer] = 2
		if _, err := tg.importFrom(s, "app:v1", nil); err != nil {
			t.Fatalf("import through two cuts: %v", err)
		}
		if s.cut[layer] != 0 || s.ranges != 2 {
			t.Fatalf("cuts left %d, range requests %d; want 0 and 2 (each cut resumed)", s.cut[layer], s.ranges)
		}
		tg.checkImported(t, "app", "v1", idx, refs)
	})
	t.Run("stalled", func(t *testing.T) {
		tg := newTarget(t)
		s.stall[layer] = 1
		ranges := s.ranges
		if _, err := tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Remote.StallTimeout = 100 * time.Millisecond }); err != nil {
			t.Fatalf("import through a stall: %v", err)
		}
		if s.stall[layer] != 0 || s.ranges != ranges+1 {
			t.Fatalf("stalls left %d, range requests %d; want 0 and 1", s.stall[layer], s.ranges-ranges)
		}
		tg.checkImported(t, "app", "v1", idx, refs)
	})
	t.Run("gives up", func(t *testing.T) {
		tg := newTarget(t)
		s.cut[layer] = 1000
		_, err := tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Remote.Attempts = 3 })
		s.cut[layer] = 0
		wantKind(t, err, KindUnreachable, "after 3 attempts")
		tg.checkNothing(t)
	})
	t.Run("digest mismatch", func(t *testing.T) {
		tg := newTarget(t)
		s.corrupt[layer] = true
		_, err := tg.importFrom(s, "app:v1", nil)
		s.corrupt[layer] = false
		wantKind(t, err, KindSourceInvalid, "does not match its digest")
		tg.checkNothing(t)
	})
}

// checkNothing: a failed import wrote no metadata and left no upload.
func (tg *target) checkNothing(t *testing.T) {
	t.Helper()
	repos, err := tg.meta.ListRepositories(context.Background(), "dst", "", 100)
	if err != nil || len(repos) != 0 {
		t.Fatalf("a failed import left repositories %v (%v)", repos, err)
	}
	if n := tg.uploadsLeft(t); n != 0 {
		t.Fatalf("%d uploads left behind", n)
	}
}

// TestRemoteImportRefusals: what fails before or at the first request.
func TestRemoteImportRefusals(t *testing.T) {
	s := newSource(t, true)
	s.pushIndex(t, "app", "v1", 128)
	tg := newTarget(t)
	_, err := tg.importFrom(s, "app:nope", nil)
	wantKind(t, err, KindNotFound, "not found")
	_, err = tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Remote.PlainHTTPLoopback = false })
	wantKind(t, err, KindUnreachable, "plain HTTP")
	_, err = tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Remote = nil })
	wantKind(t, err, KindUnsupported, "not configured")
	_, err = tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Source.RegistryURI = "127.0.0.1:1" })
	wantKind(t, err, KindUnreachable, "127.0.0.1:1")
	_, err = tg.importFrom(s, "app:v1", func(r *ImportRequest) { r.Source.Username = ""; r.Source.Password = "x" })
	wantKind(t, err, KindInvalid, "source.credentials.username")
	tg.checkNothing(t)
}

func TestParseRegistryURI(t *testing.T) {
	tests := []struct {
		in    string
		host  string
		plain bool
		bad   bool
	}{
		{in: "registry.example.com", host: "registry.example.com"},
		{in: "https://Registry.Example.com:5000/", host: "registry.example.com:5000"},
		{in: "http://127.0.0.1:5000", host: "127.0.0.1:5000", plain: true},
		{in: "[::1]:443", host: "[::1]:443"},
		{in: "ftp://x", bad: true},
		{in: "x/y", bad: true},
		{in: "user@x", bad: true},
		{in: "x:0", bad: true},
		{in: "x:99999", bad: true},
		{in: "", bad: true},
		{in: "https://", bad: true},
		{in: "x?y", bad: true},
		{in: "0000!", bad: true},
		{in: "-a.b", bad: true},
		{in: "myregistry", host: "myregistry"},
	}
	for _, tc := range tests {
		got, err := parseRegistryURI(tc.in)
		if (err != nil) != tc.bad || !tc.bad && (got.host != tc.host || got.plain != tc.plain) {
			t.Errorf("parseRegistryURI(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseRegistryURI(f *testing.F) {
	for _, s := range []string{"a.b", "https://a:1/", "http://[::1]:5000", "x/y", "%00", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rh, err := parseRegistryURI(s)
		if err != nil {
			return
		}
		// What it accepts is a registry the client talks to as given.
		reg, err := name.NewRegistry(rh.host)
		if err != nil {
			t.Fatalf("parseRegistryURI(%q) accepted %q, which is no registry: %v", s, rh.host, err)
		}
		if got := reg.Repo("app").RegistryStr(); got != rh.host && rh.host != "docker.io" {
			t.Fatalf("parseRegistryURI(%q) = %q, but the client would talk to %q", s, rh.host, got)
		}
	})
}

func TestIsLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.9.9.9": true, "[::1]:80": true, "localhost:1": true, "LOCALHOST": true,
		"10.0.0.1:5000": false, "a.localhost:1": false, "example.com": false, "[::2]:1": false,
	} {
		if got := isLoopbackHost(h); got != want {
			t.Errorf("isLoopbackHost(%q) = %v", h, got)
		}
	}
}

func TestIsImporterRequest(t *testing.T) {
	for _, tc := range []struct {
		header, ua string
		want       bool
	}{
		{header: "1", want: true},
		{header: "anything", want: true},
		{ua: "go-containerregistry/v0.22.1 moat-import/1", want: true},
		{ua: "Moat-Import", want: true},
		{ua: "crane/1", want: false},
		{ua: "not-moat-import/1", want: false},
		{want: false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		if tc.header != "" {
			r.Header.Set(ImportHeader, tc.header)
		}
		if tc.ua != "" {
			r.Header.Set("User-Agent", tc.ua)
		}
		if got := IsImporterRequest(r); got != tc.want {
			t.Errorf("IsImporterRequest(header %q, UA %q) = %v", tc.header, tc.ua, got)
		}
	}
}

func TestContentRangeStart(t *testing.T) {
	for v, want := range map[string]int64{"bytes 10-99/100": 10, "bytes 0-0/1": 0, "bytes x-1/2": -1, "items 1-2/3": -1, "": -1} {
		got, ok := contentRangeStart(v)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("contentRangeStart(%q) = %d", v, got)
		}
	}
}

func FuzzContentRangeStart(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes -1-2/3", "bytes 99999999999999999999-1/2", "bytes=0-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, ok := contentRangeStart(v)
		if !ok {
			return
		}
		// What it accepts starts with the position it returns.
		if n < 0 || !strings.HasPrefix(strings.TrimSpace(v), "bytes ") {
			t.Fatalf("contentRangeStart(%q) = %d", v, n)
		}
	})
}
