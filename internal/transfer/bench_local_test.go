package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// BenchmarkImportWithinDeployment imports an image of 1 MiB and one of
// 1 GiB (one layer each, its bytes really in a file-system blob store)
// from registry "src" into registry "dst" of the same deployment. Blobs are
// shared by the deployment, so import copies metadata only: DESIGN.md §7
// asks for the same time at both sizes.
//
//	go test ./internal/transfer -run '^$' -bench ImportWithinDeployment -benchtime 200x
func BenchmarkImportWithinDeployment(b *testing.B) {
	for _, size := range []int64{1 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			store, err := sqlite.Open(ctx, filepath.Join(dir, "meta.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = store.Close() })
			blobs, err := fs.New(filepath.Join(dir, "blobs"))
			if err != nil {
				b.Fatal(err)
			}
			for _, name := range []string{"src", "dst"} {
				if _, err := store.CreateRegistry(ctx, meta.Registry{Name: name, ResourceID: regID(name), Location: "local", SKU: "Premium"}); err != nil {
					b.Fatal(err)
				}
			}
			layer := storeRandomBlob(b, blobs, size)
			cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
			cfgD := storeBytes(b, blobs, cfg)
			for _, bl := range []struct {
				d digest.Digest
				n int64
			}{{layer, size}, {cfgD, int64(len(cfg))}} {
				if err := store.LinkBlob(ctx, "src", "app", bl.d, bl.n); err != nil {
					b.Fatal(err)
				}
			}
			doc, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": manifest.MediaTypeOCIManifest,
				"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgD, "size": len(cfg)},
				"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": size}}})
			p, err := manifest.Parse("", doc)
			if err != nil {
				b.Fatal(err)
			}
			m := meta.Manifest{Registry: "src", Repository: "app", Digest: digest.FromBytes(doc), MediaType: p.MediaType,
				ArtifactType: p.ArtifactType, Content: doc, Size: int64(len(doc)), Blobs: p.Blobs}
			if err := store.PutManifest(ctx, m, "v1"); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := ImportRequest{TargetRegistry: "dst", Domain: domain,
					Source:     Source{ResourceID: regID("src"), SourceImage: "app:v1"},
					TargetTags: []string{fmt.Sprintf("copy%d:v1", i)}}
				if _, err := Import(ctx, store, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// storeRandomBlob writes size random bytes as a committed blob and returns
// its digest.
func storeRandomBlob(b *testing.B, s *fs.Store, size int64) digest.Digest {
	b.Helper()
	ctx := context.Background()
	st, err := s.StartUpload(ctx, "bench-layer", "")
	if err != nil {
		b.Fatal(err)
	}
	dg := digest.Canonical.Digester()
	r := io.TeeReader(io.LimitReader(rand.Reader, size), dg.Hash())
	if st, err = s.Append(ctx, "bench-layer", st, r); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Commit(ctx, "bench-layer", st, dg.Digest()); err != nil {
		b.Fatal(err)
	}
	return dg.Digest()
}

func storeBytes(b *testing.B, s *fs.Store, p []byte) digest.Digest {
	b.Helper()
	ctx := context.Background()
	st, err := s.StartUpload(ctx, "bench-config", "")
	if err != nil {
		b.Fatal(err)
	}
	if st, err = s.Append(ctx, "bench-config", st, bytes.NewReader(p)); err != nil {
		b.Fatal(err)
	}
	d := digest.FromBytes(p)
	if _, err := s.Commit(ctx, "bench-config", st, d); err != nil {
		b.Fatal(err)
	}
	return d
}
