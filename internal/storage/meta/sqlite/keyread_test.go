package sqlite

import (
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// TestKeyReadsCostNoMoreWhenCancellable: the hot reads by key cost as little
// with an HTTP request's (cancellable) context as with a background one
// (keyRow), and still fail for a context that is already done. Allocations
// stand for the goroutines that database/sql and the driver would otherwise
// start on every query to watch the context.
func TestKeyReadsCostNoMoreWhenCancellable(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateRegistry(ctx, meta.Registry{Name: "r", SKU: "Premium"}); err != nil {
		t.Fatal(err)
	}
	blob := digest.FromString("layer")
	if err := s.LinkBlob(ctx, "r", "app", blob, 5); err != nil {
		t.Fatal(err)
	}
	m := meta.Manifest{Registry: "r", Repository: "app", Digest: digest.FromString("{}"),
		MediaType: "application/vnd.oci.image.index.v1+json", Content: []byte("{}")}
	if err := s.PutManifest(ctx, m, "latest"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUpload(ctx, meta.Upload{ID: "u1", Registry: "r", Repository: "app"}); err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name string
		read func(context.Context) error
	}{
		{"GetManifestByTag", func(ctx context.Context) error { _, err := s.GetManifestByTag(ctx, "r", "app", "latest"); return err }},
		{"GetManifest", func(ctx context.Context) error { _, err := s.GetManifest(ctx, "r", "app", m.Digest); return err }},
		{"StatBlob", func(ctx context.Context) error { _, err := s.StatBlob(ctx, "r", "app", blob); return err }},
		{"GetRegistry", func(ctx context.Context) error { _, err := s.GetRegistry(ctx, "r"); return err }},
		{"GetUpload", func(ctx context.Context) error { _, err := s.GetUpload(ctx, "u1"); return err }},
	}
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			allocs := func(ctx context.Context) float64 {
				return testing.AllocsPerRun(200, func() {
					if err := r.read(ctx); err != nil {
						t.Fatal(err)
					}
				})
			}
			bg, req := allocs(context.Background()), allocs(cancellable)
			if req > bg {
				t.Errorf("%v allocations per read with a cancellable context, %v with a background one", req, bg)
			}
			// A caller that has given up still gets its cancellation.
			if err := r.read(done); !errors.Is(err, context.Canceled) {
				t.Errorf("read with a done context: %v, want context.Canceled", err)
			}
		})
	}
}
