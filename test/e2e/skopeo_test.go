package e2e

// skopeo (containers/image, the stack of podman and buildah) copying a
// multi-platform image from an OCI layout into moat, between repositories,
// and back out.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/opencontainers/go-digest"
)

func TestSkopeoMultiArchRoundTrip(t *testing.T) {
	skopeo := requireTool(t, "skopeo")
	t.Parallel()
	s := shared
	s.logOnFailure(t)
	tmp := t.TempDir()
	creds := adminUser + ":" + s.password

	// An OCI layout holding a three-platform index tagged v1.
	idx := multiPlatformIndex(t)
	src := filepath.Join(tmp, "src")
	p, err := layout.Write(src, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, skopeo, append([]string{"--insecure-policy"}, args...)...)
		// A private HOME keeps the user's auth and registry files out.
		cmd.Env = append(os.Environ(), "HOME="+tmp, "XDG_RUNTIME_DIR="+tmp, "REGISTRY_AUTH_FILE="+filepath.Join(tmp, "auth.json"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(redact(args, s.password), " "), err, stderr.String())
		}
		return stdout.Bytes()
	}
	repo := uniqueRepo("skopeo/multi")
	dst := "docker://" + s.addr + "/" + repo + ":v1"

	// In: layout → moat, every platform.
	run("copy", "--all", "--dest-creds", creds, "--dest-tls-verify=false", "oci:"+src+":v1", dst)

	// skopeo may re-serialise the index on the way in (Debian's 1.9 drops
	// descriptor fields it does not know, such as artifactType), so the
	// index is checked by its children, and from here on by the digest moat
	// serves.
	raw := run("inspect", "--raw", "--creds", creds, "--tls-verify=false", dst)
	servedDigest := digest.FromBytes(raw)
	var served struct {
		Manifests []struct{ Digest string }
	}
	if err := json.Unmarshal(raw, &served); err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	wantChildren, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(served.Manifests) != len(wantChildren.Manifests) {
		t.Fatalf("moat serves an index of %d manifests, want %d", len(served.Manifests), len(wantChildren.Manifests))
	}
	for i, m := range served.Manifests {
		if m.Digest != wantChildren.Manifests[i].Digest.String() {
			t.Errorf("child %d is %s, want %s", i, m.Digest, wantChildren.Manifests[i].Digest)
		}
	}
	var info struct {
		Digest       string
		Architecture string
		Os           string
		Layers       []string
	}
	if err := json.Unmarshal(run("--override-arch", "arm64", "--override-os", "linux", "inspect", "--creds", creds, "--tls-verify=false", dst), &info); err != nil {
		t.Fatalf("skopeo inspect output: %v", err)
	}
	if info.Architecture != "arm64" || info.Os != "linux" || len(info.Layers) != 2 {
		t.Errorf("skopeo inspect (linux/arm64): %+v", info)
	}

	// Across: moat → moat, another repository.
	repo2 := uniqueRepo("skopeo/copy")
	dst2 := "docker://" + s.addr + "/" + repo2 + ":v1"
	run("copy", "--all", "--src-creds", creds, "--src-tls-verify=false", "--dest-creds", creds, "--dest-tls-verify=false", dst, dst2)

	var tags struct{ Tags []string }
	if err := json.Unmarshal(run("list-tags", "--creds", creds, "--tls-verify=false", "docker://"+s.addr+"/"+repo2), &tags); err != nil {
		t.Fatalf("skopeo list-tags output: %v", err)
	}
	if !slices.Equal(tags.Tags, []string{"v1"}) {
		t.Errorf("skopeo list-tags: %v, want [v1]", tags.Tags)
	}

	// Out: moat → layout, every platform, unchanged.
	out := filepath.Join(tmp, "out")
	run("copy", "--all", "--src-creds", creds, "--src-tls-verify=false", dst2, "oci:"+out+":v1")
	outPath, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	outIdx, err := outPath.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, err := outIdx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(om.Manifests) != 1 || om.Manifests[0].Digest.String() != servedDigest.String() {
		t.Fatalf("copied-out layout: %+v, want the index %s", om.Manifests, servedDigest)
	}
	child, err := outIdx.ImageIndex(om.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := child.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Manifests) != len(testPlatforms) {
		t.Errorf("copied-out index has %d platforms, want %d", len(cm.Manifests), len(testPlatforms))
	}
	for _, d := range cm.Manifests {
		img, err := child.Image(d.Digest)
		if err != nil {
			t.Fatalf("platform image %s missing from the layout: %v", d.Digest, err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			if _, err := l.Compressed(); err != nil {
				t.Errorf("layer of %s missing from the layout: %v", d.Digest, err)
			}
		}
	}

	// And delete through skopeo.
	run("delete", "--creds", creds, "--tls-verify=false", dst2)
	if err := exec.Command(skopeo, "--insecure-policy", "inspect", "--raw", "--creds", creds, "--tls-verify=false", dst2).Run(); err == nil {
		t.Errorf("skopeo inspect of a deleted image succeeded")
	}
}

func redact(args []string, secret string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, secret, "***")
	}
	return out
}
