package metatest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// requestContext is a context like an HTTP request's: cancellable, so a
// store that pays for watching cancellation pays for it here too.
func requestContext(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}

// benchTags is how many tagged manifests the read benchmarks spread over.
const benchTags = 64

// Bench runs the store's benchmarks: the manifest-GET hot path (by tag and
// by digest) and StatBlob in parallel, and the write path (PutManifest,
// LinkBlob), and a chunk's round trip (UploadChunk). newStore must return an
// empty store, closed when b ends.
func Bench(b *testing.B, newStore func(b *testing.B) meta.Store) {
	b.Run("GetManifestByTag", func(b *testing.B) {
		s, ms := benchSetup(b, newStore)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := requestContext(b)
			i := int(next.Add(1))
			for pb.Next() {
				i++
				if _, err := s.GetManifestByTag(ctx, "bench", "library/app", benchTag(i%len(ms))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("GetManifest", func(b *testing.B) {
		s, ms := benchSetup(b, newStore)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := requestContext(b)
			i := int(next.Add(1))
			for pb.Next() {
				i++
				if _, err := s.GetManifest(ctx, "bench", "library/app", ms[i%len(ms)].Digest); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("StatBlob", func(b *testing.B) {
		s, ms := benchSetup(b, newStore)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := requestContext(b)
			i := 0
			for pb.Next() {
				i++
				if _, err := s.StatBlob(ctx, "bench", "library/app", ms[i%len(ms)].Blobs[1]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("PutManifest", func(b *testing.B) {
		s, ms := benchSetup(b, newStore)
		// New manifests over the blobs already linked, so that each put does
		// the whole work: reference checks, insert, refs and a tag.
		puts := make([]meta.Manifest, b.N)
		for i := range puts {
			puts[i] = manifestOf(spec{reg: "bench", repo: "library/app", blobs: ms[i%len(ms)].Blobs, nonce: fmt.Sprint("put ", i)})
		}
		ctx := requestContext(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := s.PutManifest(ctx, puts[i], fmt.Sprint("p", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LinkBlob", func(b *testing.B) {
		s, _ := benchSetup(b, newStore)
		ds := make([]digest.Digest, b.N)
		for i := range ds {
			ds[i] = digest.FromString(fmt.Sprint("link ", i))
		}
		ctx := requestContext(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := s.LinkBlob(ctx, "bench", "library/app", ds[i], 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UploadChunk", func(b *testing.B) {
		// What every PATCH of a chunked push asks of the store: the upload,
		// then its new offset (compare-and-swap on the old one).
		s, _ := benchSetup(b, newStore)
		ctx := requestContext(b)
		if err := s.CreateUpload(ctx, meta.Upload{ID: "bench-upload", Registry: "bench", Repository: "library/app"}); err != nil {
			b.Fatal(err)
		}
		state := make([]byte, 128)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			u, err := s.GetUpload(ctx, "bench-upload")
			if err != nil {
				b.Fatal(err)
			}
			if err := s.UpdateUpload(ctx, u.ID, u.Offset, u.Offset+1, state); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchTag(i int) string { return fmt.Sprintf("v%03d", i) }

// benchSetup fills a store with benchTags tagged image manifests.
func benchSetup(b *testing.B, newStore func(b *testing.B) meta.Store) (meta.Store, []meta.Manifest) {
	b.Helper()
	s := newStore(b)
	ctx := requestContext(b)
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "bench", SKU: "Premium"}); err != nil {
		b.Fatal(err)
	}
	ms := make([]meta.Manifest, benchTags)
	for i := range ms {
		var blobs []digest.Digest
		for j := range 4 {
			d := digest.FromString(fmt.Sprintf("blob %d/%d", i, j))
			if err := s.LinkBlob(ctx, "bench", "library/app", d, 1<<20); err != nil {
				b.Fatal(err)
			}
			blobs = append(blobs, d)
		}
		ms[i] = manifestOf(spec{reg: "bench", repo: "library/app", blobs: blobs, nonce: fmt.Sprint(i)})
		if err := s.PutManifest(ctx, ms[i], benchTag(i)); err != nil {
			b.Fatal(err)
		}
	}
	return s, ms
}
