package e2e

// regclient (the library behind regctl and regsync) against moat, with
// small blob chunks so that its chunked upload path runs.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme"
	"github.com/regclient/regclient/scheme/reg"
	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
)

const (
	// regclient uploads blobs above rcBlobMax in chunks of rcChunk.
	rcChunk   = 64 << 10
	rcBlobMax = 128 << 10
)

func (s *server) regclient(t testing.TB, counter *methodCounter) *regclient.RegClient {
	t.Helper()
	tlsConf := config.TLSDisabled
	if s.scheme == "https" {
		tlsConf = config.TLSEnabled
	}
	var tr http.RoundTripper = s.transport
	if counter != nil {
		tr = counter.wrap(tr)
	}
	return regclient.New(
		regclient.WithConfigHost(config.Host{
			Name:      s.addr,
			TLS:       tlsConf,
			User:      adminUser,
			Pass:      s.password,
			BlobChunk: rcChunk,
			BlobMax:   rcBlobMax,
		}),
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{Transport: tr}), reg.WithRetryLimit(1)),
	)
}

func (s *server) rcRef(t testing.TB, repoAndRef string) ref.Ref {
	t.Helper()
	r, err := ref.New(s.addr + "/" + repoAndRef)
	if err != nil {
		t.Fatalf("parsing reference %q: %v", repoAndRef, err)
	}
	return r
}

// rcPutBlob uploads data with regclient and returns its descriptor.
func rcPutBlob(t testing.TB, rc *regclient.RegClient, r ref.Ref, mediaType string, data []byte) descriptor.Descriptor {
	t.Helper()
	d := descriptor.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	got, err := rc.BlobPut(context.Background(), r, d, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("regclient blob put %s (%d bytes): %v", d.Digest, len(data), err)
	}
	if got.Digest != d.Digest || got.Size != d.Size {
		t.Fatalf("regclient blob put returned %s/%d, want %s/%d", got.Digest, got.Size, d.Digest, d.Size)
	}
	return d
}

func rcPutManifest(t testing.TB, rc *regclient.RegClient, r ref.Ref, raw []byte) descriptor.Descriptor {
	t.Helper()
	m, err := manifest.New(manifest.WithRaw(raw))
	if err != nil {
		t.Fatalf("regclient parsing a manifest: %v", err)
	}
	if err := rc.ManifestPut(context.Background(), r, m); err != nil {
		t.Fatalf("regclient manifest put %s: %v", r.CommonName(), err)
	}
	return m.GetDescriptor()
}

func toOCI(d descriptor.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: d.ArtifactType, Annotations: d.Annotations}
}

func TestRegclientChunkedMultiPlatformWithReferrer(t *testing.T) {
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	ctx := context.Background()
	var counter methodCounter
	rc := s.regclient(t, &counter)
	repo := uniqueRepo("regclient/multi")
	base := s.rcRef(t, repo)

	// Push two platform images whose layers are big enough to be chunked.
	type pushed struct {
		desc   descriptor.Descriptor
		layers map[digest.Digest][]byte
	}
	var images []pushed
	plats := []platform.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	for i, p := range plats {
		patchesBefore := counter.get(http.MethodPatch)
		layerData := randomBytes(5*rcChunk + 1000 + i)
		layer := rcPutBlob(t, rc, base, mtOCILayer, layerData)
		if n := counter.get(http.MethodPatch) - patchesBefore; n < 5 {
			t.Errorf("a %d-byte blob went up in %d PATCH requests, want ≥5 chunks of %d", len(layerData), n, rcChunk)
		}
		cfgData := []byte(fmt.Sprintf(`{"architecture":%q,"os":%q,"rootfs":{"type":"layers","diff_ids":[]}}`, p.Architecture, p.OS))
		cfg := rcPutBlob(t, rc, base, mtOCIConfig, cfgData)
		raw := imageManifest(toOCI(cfg), []ocispec.Descriptor{toOCI(layer)}, nil, nil)
		d := rcPutManifest(t, rc, base.SetDigest(digest.FromBytes(raw).String()), raw)
		d.Platform = &p
		images = append(images, pushed{desc: d, layers: map[digest.Digest][]byte{layer.Digest: layerData, cfg.Digest: cfgData}})
	}
	// A small blob goes up in one request.
	rcPutBlob(t, rc, base, mtOCILayer, randomBytes(1000))

	var children []ocispec.Descriptor
	for _, im := range images {
		d := toOCI(im.desc)
		d.Platform = &ocispec.Platform{OS: im.desc.Platform.OS, Architecture: im.desc.Platform.Architecture}
		children = append(children, d)
	}
	idxRaw := mustJSON(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIIndex, Manifests: children})
	idxDesc := rcPutManifest(t, rc, base.SetTag("multi"), idxRaw)

	// An artifact that refers to the index.
	empty := rcPutBlob(t, rc, base, mtEmptyJSON, []byte("{}"))
	artRaw := mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mtOCIManifest, ArtifactType: sbomType,
		Config: toOCI(empty), Layers: []ocispec.Descriptor{toOCI(empty)},
		Subject: &ocispec.Descriptor{MediaType: idxDesc.MediaType, Digest: idxDesc.Digest, Size: idxDesc.Size},
	})
	artDesc := rcPutManifest(t, rc, base.SetDigest(digest.FromBytes(artRaw).String()), artRaw)

	t.Run("pull", func(t *testing.T) {
		m, err := rc.ManifestGet(ctx, base.SetTag("multi"))
		if err != nil {
			t.Fatalf("regclient manifest get: %v", err)
		}
		if m.GetDescriptor().Digest != idxDesc.Digest {
			t.Fatalf("pulled index %s, want %s", m.GetDescriptor().Digest, idxDesc.Digest)
		}
		list, err := m.(manifest.Indexer).GetManifestList()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(images) {
			t.Fatalf("index lists %d manifests, want %d", len(list), len(images))
		}
		for _, im := range images {
			for dgst, want := range im.layers {
				br, err := rc.BlobGet(ctx, base, descriptor.Descriptor{Digest: dgst, Size: int64(len(want))})
				if err != nil {
					t.Fatalf("regclient blob get %s: %v", dgst, err)
				}
				got, err := io.ReadAll(br)
				if err != nil {
					t.Fatalf("reading %s: %v", dgst, err)
				}
				if err := br.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("blob %s differs from what was pushed", dgst)
				}
			}
		}
	})

	t.Run("referrers", func(t *testing.T) {
		for _, opts := range [][]scheme.ReferrerOpts{
			nil,
			{scheme.WithReferrerMatchOpt(descriptor.MatchOpt{ArtifactType: sbomType})},
		} {
			rl, err := rc.ReferrerList(ctx, base.SetDigest(idxDesc.Digest.String()), opts...)
			if err != nil {
				t.Fatalf("regclient referrer list: %v", err)
			}
			if len(rl.Descriptors) != 1 || rl.Descriptors[0].Digest != artDesc.Digest || rl.Descriptors[0].ArtifactType != sbomType {
				t.Fatalf("referrers %+v, want the artifact %s", rl.Descriptors, artDesc.Digest)
			}
		}
	})

	t.Run("copy with referrers", func(t *testing.T) {
		dst := s.rcRef(t, uniqueRepo("regclient/copy")+":multi")
		if err := rc.ImageCopy(ctx, base.SetTag("multi"), dst, regclient.ImageWithReferrers()); err != nil {
			t.Fatalf("regclient image copy: %v", err)
		}
		m, err := rc.ManifestHead(ctx, dst)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetDescriptor().Digest != idxDesc.Digest {
			t.Errorf("copy has digest %s, want %s", m.GetDescriptor().Digest, idxDesc.Digest)
		}
		rl, err := rc.ReferrerList(ctx, dst.SetDigest(idxDesc.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		if len(rl.Descriptors) != 1 || rl.Descriptors[0].Digest != artDesc.Digest {
			t.Errorf("referrers of the copy: %+v", rl.Descriptors)
		}
	})

	t.Run("tags, catalog and deletes", func(t *testing.T) {
		var want []string
		for i := 0; i < 7; i++ {
			tag := fmt.Sprintf("r%d", i)
			want = append(want, tag)
			rcPutManifest(t, rc, base.SetTag(tag), idxRaw)
		}
		want = append(want, "multi")
		slices.Sort(want)
		var got []string
		last := ""
		for pages := 0; pages < 20; pages++ {
			opts := []scheme.TagOpts{scheme.WithTagLimit(3)}
			if last != "" {
				opts = append(opts, scheme.WithTagLast(last))
			}
			tl, err := rc.TagList(ctx, base, opts...)
			if err != nil {
				t.Fatalf("regclient tag list: %v", err)
			}
			page, err := tl.GetTags()
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 3 {
				t.Fatalf("a page of limit 3 has %d tags", len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			last = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("tags by pages of 3: %v, want %v", got, want)
		}

		rl, err := rc.RepoList(ctx, s.addr)
		if err != nil {
			t.Fatalf("regclient repo list: %v", err)
		}
		repos, err := rl.GetRepos()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(repos, repo) {
			t.Errorf("catalog lacks %s", repo)
		}

		if err := rc.TagDelete(ctx, base.SetTag("r0")); err != nil {
			t.Fatalf("regclient tag delete: %v", err)
		}
		if _, err := rc.ManifestHead(ctx, base.SetTag("r0")); err == nil {
			t.Errorf("deleted tag still resolves")
		}
		if err := rc.ManifestDelete(ctx, base.SetDigest(artDesc.Digest.String())); err != nil {
			t.Fatalf("regclient manifest delete: %v", err)
		}
		rlist, err := rc.ReferrerList(ctx, base.SetDigest(idxDesc.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		if len(rlist.Descriptors) != 0 {
			t.Errorf("referrers after deleting the artifact: %+v", rlist.Descriptors)
		}
	})
}
