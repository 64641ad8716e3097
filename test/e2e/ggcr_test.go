package e2e

// go-containerregistry (remote, crane) against moat: what crane and every
// tool built on ggcr (ko, cosign, kaniko…) do.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const sbomType = "application/vnd.moat.test.sbom+json"

var testPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
}

// ggcrOpts are the remote options of an admin client of s; the counter, if
// not nil, counts requests by method.
func (s *server) ggcrOpts(ctx context.Context, counter *methodCounter) []remote.Option {
	var tr http.RoundTripper = s.transport
	if counter != nil {
		tr = counter.wrap(tr)
	}
	return []remote.Option{
		remote.WithAuth(&authn.Basic{Username: adminUser, Password: s.password}),
		remote.WithTransport(tr),
		remote.WithContext(ctx),
	}
}

func (s *server) ref(t testing.TB, repoAndRef string) name.Reference {
	t.Helper()
	var opts []name.Option
	if s.scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(s.addr+"/"+repoAndRef, opts...)
	if err != nil {
		t.Fatalf("parsing reference %q: %v", repoAndRef, err)
	}
	return r
}

// ociImage builds a random OCI image of n layers of size bytes each.
func ociImage(t testing.TB, size int64, n int) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < n; i++ {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// multiPlatformIndex builds an OCI index over one random image per test
// platform.
func multiPlatformIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range testPlatforms {
		img, err := mutate.ConfigFile(ociImage(t, 2048, 2), &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, RootFS: v1.RootFS{Type: "layers"}})
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
}

// sbomFor builds an artifact manifest whose subject is desc.
func sbomFor(t testing.TB, desc v1.Descriptor) v1.Image {
	t.Helper()
	art := mutate.ConfigMediaType(ociImage(t, 300, 1), sbomType)
	art = mutate.Annotations(art, map[string]string{"org.opencontainers.image.description": "test sbom"}).(v1.Image)
	return mutate.Subject(art, desc).(v1.Image)
}

func descriptorOf(t testing.TB, m interface {
	MediaType() (types.MediaType, error)
	Digest() (v1.Hash, error)
	Size() (int64, error)
}) v1.Descriptor {
	t.Helper()
	mt, err := m.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := m.Size()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}
}

func TestGGCRMultiPlatformIndexWithReferrer(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	ctx := context.Background()
	opts := s.ggcrOpts(ctx, nil)
	repo := uniqueRepo("ggcr/multi")

	idx := multiPlatformIndex(t)
	idxDesc := descriptorOf(t, idx)
	if err := remote.WriteIndex(s.ref(t, repo+":multi"), idx, opts...); err != nil {
		t.Fatalf("pushing the index: %v", err)
	}

	// Pull it back: the index by tag, every platform's image, every layer.
	got, err := remote.Index(s.ref(t, repo+":multi"), opts...)
	if err != nil {
		t.Fatalf("pulling the index: %v", err)
	}
	if d, _ := got.Digest(); d != idxDesc.Digest {
		t.Fatalf("pulled index digest %s, want %s", d, idxDesc.Digest)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(testPlatforms) {
		t.Fatalf("index has %d manifests, want %d", len(im.Manifests), len(testPlatforms))
	}
	for _, p := range testPlatforms {
		img, err := remote.Image(s.ref(t, repo+":multi"), append(opts, remote.WithPlatform(p))...)
		if err != nil {
			t.Fatalf("pulling %s: %v", p, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("config of %s: %v", p, err)
		}
		if cf.Architecture != p.Architecture || cf.Variant != p.Variant {
			t.Errorf("platform %s resolved to an image for %s/%s", p, cf.Architecture, cf.Variant)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			// ggcr verifies the digest while reading.
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("layer of %s: %v", p, err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("reading a layer of %s: %v", p, err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("closing a layer of %s: %v", p, err)
			}
		}
	}

	// Attach a referrer and list it through the referrers API.
	sbom := sbomFor(t, idxDesc)
	sbomDigest, err := sbom.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(s.ref(t, repo+"@"+sbomDigest.String()), sbom, opts...); err != nil {
		t.Fatalf("pushing the referrer: %v", err)
	}
	dref := s.ref(t, repo+"@"+idxDesc.Digest.String()).(name.Digest)
	for _, filter := range []string{"", sbomType} {
		o := opts
		if filter != "" {
			o = append(slices.Clone(opts), remote.WithFilter("artifactType", filter))
		}
		refs, err := remote.Referrers(dref, o...)
		if err != nil {
			t.Fatalf("listing referrers: %v", err)
		}
		rm, err := refs.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(rm.Manifests) != 1 || rm.Manifests[0].Digest != sbomDigest || rm.Manifests[0].ArtifactType != sbomType {
			t.Fatalf("referrers (filter %q): %+v, want the sbom %s of type %s", filter, rm.Manifests, sbomDigest, sbomType)
		}
	}
	refs, err := remote.Referrers(dref, append(slices.Clone(opts), remote.WithFilter("artifactType", "application/vnd.other"))...)
	if err != nil {
		t.Fatal(err)
	}
	if rm, _ := refs.IndexManifest(); len(rm.Manifests) != 0 {
		t.Errorf("referrers filtered by another type: %+v", rm.Manifests)
	}
}

func TestGGCRStreamedAndLargeUploads(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	ctx := context.Background()
	var counter methodCounter
	opts := s.ggcrOpts(ctx, &counter)
	repo := s.ref(t, uniqueRepo("ggcr/stream")+":x").Context()

	// A layer of unknown size: ggcr streams it with PATCH and commits
	// with PUT ?digest=.
	data := randomBytes(8 << 20)
	l := stream.NewLayer(io.NopCloser(bytes.NewReader(data)), stream.WithCompressionLevel(0))
	before := counter.get(http.MethodPatch)
	if err := remote.WriteLayer(repo, l, opts...); err != nil {
		t.Fatalf("streaming a layer: %v", err)
	}
	if counter.get(http.MethodPatch) == before {
		t.Errorf("the streamed upload sent no PATCH")
	}
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Layer(repo.Digest(d.String()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := got.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		t.Fatalf("reading the streamed layer back: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if size, _ := l.Size(); n != size {
		t.Errorf("read %d bytes, want %d", n, size)
	}
}

func TestCraneCopyTagsDeleteCatalog(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	ctx := context.Background()
	opts := s.ggcrOpts(ctx, nil)
	copts := []crane.Option{
		crane.WithAuth(&authn.Basic{Username: adminUser, Password: s.password}),
		crane.WithTransport(s.transport),
		crane.WithContext(ctx),
		crane.Insecure,
	}
	src := uniqueRepo("crane/src")
	dst := uniqueRepo("crane/dst")

	idx := multiPlatformIndex(t)
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(s.ref(t, src+":v1"), idx, opts...); err != nil {
		t.Fatal(err)
	}

	t.Run("copy between repositories", func(t *testing.T) {
		if err := crane.Copy(s.addr+"/"+src+":v1", s.addr+"/"+dst+":v1", copts...); err != nil {
			t.Fatalf("crane copy: %v", err)
		}
		d, err := crane.Digest(s.addr+"/"+dst+":v1", copts...)
		if err != nil {
			t.Fatal(err)
		}
		if d != idxDigest.String() {
			t.Errorf("copied digest %s, want %s", d, idxDigest)
		}
		// Every child is pullable from the destination.
		for _, p := range testPlatforms {
			if _, err := crane.Pull(s.addr+"/"+dst+":v1", append(slices.Clone(copts), crane.WithPlatform(&p))...); err != nil {
				t.Errorf("pulling %s from the copy: %v", p, err)
			}
		}
	})

	t.Run("tags list pagination", func(t *testing.T) {
		var want []string
		for i := 0; i < 23; i++ {
			tag := fmt.Sprintf("t%03d", i)
			want = append(want, tag)
			if err := crane.Tag(s.addr+"/"+src+":v1", tag, copts...); err != nil {
				t.Fatalf("crane tag: %v", err)
			}
		}
		want = append(want, "v1")
		tags, err := remote.List(s.ref(t, src+":v1").Context(), append(slices.Clone(opts), remote.WithPageSize(5))...)
		if err != nil {
			t.Fatalf("listing tags by pages of 5: %v", err)
		}
		if !slices.Equal(tags, want) {
			t.Errorf("tags %v, want %v", tags, want)
		}
		tags, err = crane.ListTags(s.addr+"/"+src, copts...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tags, want) {
			t.Errorf("crane ls: %v, want %v", tags, want)
		}
	})

	t.Run("catalog", func(t *testing.T) {
		repos, err := crane.Catalog(s.addr, copts...)
		if err != nil {
			t.Fatalf("crane catalog: %v", err)
		}
		for _, r := range []string{src, dst} {
			if !slices.Contains(repos, r) {
				t.Errorf("catalog lacks %s", r)
			}
		}
		page, err := remote.CatalogPage(s.ref(t, src+":v1").Context().Registry, "", 2, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 {
			t.Errorf("catalog page of 2 has %d entries", len(page))
		}
	})

	t.Run("delete tag and manifest", func(t *testing.T) {
		if err := crane.Delete(s.addr+"/"+src+":t000", copts...); err != nil {
			t.Fatalf("deleting a tag: %v", err)
		}
		if _, err := crane.Head(s.addr+"/"+src+":t000", copts...); err == nil {
			t.Errorf("deleted tag still resolves")
		}
		if _, err := crane.Head(s.addr+"/"+src+":t001", copts...); err != nil {
			t.Errorf("a sibling tag went with it: %v", err)
		}
		if err := crane.Delete(s.addr+"/"+dst+"@"+idxDigest.String(), copts...); err != nil {
			t.Fatalf("deleting a manifest: %v", err)
		}
		if _, err := crane.Head(s.addr+"/"+dst+":v1", copts...); err == nil {
			t.Errorf("a tag of the deleted manifest still resolves")
		}
		// The source repository still has it: deletes are per repository.
		if _, err := crane.Head(s.addr+"/"+src+"@"+idxDigest.String(), copts...); err != nil {
			t.Errorf("deleting in one repository removed the manifest from another: %v", err)
		}
	})
}

// methodCounter counts requests by HTTP method.
type methodCounter struct {
	patch, put, post, other atomic.Int64
}

func (c *methodCounter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		switch r.Method {
		case http.MethodPatch:
			c.patch.Add(1)
		case http.MethodPut:
			c.put.Add(1)
		case http.MethodPost:
			c.post.Add(1)
		default:
			c.other.Add(1)
		}
		return next.RoundTrip(r)
	})
}

func (c *methodCounter) get(method string) int64 {
	switch method {
	case http.MethodPatch:
		return c.patch.Load()
	case http.MethodPut:
		return c.put.Load()
	case http.MethodPost:
		return c.post.Load()
	}
	return c.other.Load()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
