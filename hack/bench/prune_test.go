package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob/fs"
)

// TestMoatBlobFile checks moatBlobFile against moat's own blob store, laid
// out under a data dir as moat serve lays it out: a wrong path would make
// prune fail every run.
func TestMoatBlobFile(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	st, err := fs.New(filepath.Join(dataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	body := "a blob the bench pushed"
	d := digest.FromString(body)
	us, err := st.StartUpload(ctx, "u1", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if us, err = st.Append(ctx, "u1", us, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, "u1", us, d); err != nil {
		t.Fatal(err)
	}
	p := moatBlobFile(dataDir)(d.String())
	if b, err := os.ReadFile(p); err != nil || string(b) != body {
		t.Fatalf("moatBlobFile = %s: %q, %v; want the blob", p, b, err)
	}
}

func TestPrune(t *testing.T) {
	moatDir, distDir := t.TempDir(), t.TempDir()
	const d = "sha256:ab0123"
	moat := &target{name: "moat", blobFile: moatBlobFile(moatDir)}
	dist := &target{name: "Distribution", blobFile: distBlobFile(distDir)}
	plain := &target{name: "no storage given"}
	for _, p := range []string{moat.blobFile(d), filepath.Join(dist.blobFile(d), "data")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if want := filepath.Join(distDir, "docker/registry/v2/blobs/sha256/ab/ab0123"); dist.blobFile(d) != want {
		t.Errorf("distBlobFile = %s, want %s", dist.blobFile(d), want)
	}
	if err := prune([]*target{moat, dist, plain}, ""); err != nil {
		t.Errorf("no digest yet: %v", err)
	}
	if err := prune([]*target{moat, dist, plain}, d); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{moat.blobFile(d), dist.blobFile(d)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after prune (%v)", p, err)
		}
	}
	// Pruning what is not there means the layout is not the one assumed.
	if err := prune([]*target{moat}, d); err == nil || !strings.Contains(err.Error(), "moat: pruning blob "+d) {
		t.Errorf("pruning a missing blob: %v, want an error naming it", err)
	}
}
