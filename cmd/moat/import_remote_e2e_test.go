package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImportFromAnotherMoat runs two `moat serve`: deployment A imports,
// through `moat acr import`, a two-platform index with a referrer from
// deployment B's registry over TLS (B's CA given with --import-ca-file),
// with B's credentials; wrong credentials are a one-line error; once B
// disables exports on that registry, A's importer (which marks itself) is
// refused with an error naming B's registry and the export policy.
func TestImportFromAnotherMoat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const passA, passB = "import-a-1", "import-b-1"
	dirB := filepath.Join(t.TempDir(), "b")
	pb, urlB := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + passB}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dirB)
	defer pb.stop(t)
	caB := filepath.Join(dirB, "ca.pem")
	addrB := strings.TrimPrefix(urlB, "https://")

	dirA := filepath.Join(t.TempDir(), "a")
	pa, urlA := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + passA}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dirA,
		"--import-ca-file", caB)
	defer pa.stop(t)
	caA := filepath.Join(dirA, "ca.pem")
	addrA := strings.TrimPrefix(urlA, "https://")
	_, portA, _ := strings.Cut(addrA, ":")

	// An index with two platforms and a signature, pushed to B's default
	// registry (served at its listen address).
	optsB := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: passB}), remote.WithTransport(clientTrusting(t, caB, addrB).Transport)}
	src, err := name.ParseReference(addrB + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := random.Index(2048, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(src, idx, optsB...); err != nil {
		t.Fatalf("push to B: %v", err)
	}
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(src, optsB...)
	if err != nil {
		t.Fatal(err)
	}
	sig, ok := mutate.Subject(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.sig+json"), *desc).(v1.Image)
	if !ok {
		t.Fatal("mutate.Subject of an image is not an image")
	}
	sigDigest, err := sig.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(src.Context().Digest(sigDigest.String()), sig, optsB...); err != nil {
		t.Fatalf("push referrer to B: %v", err)
	}

	cfgA := filepath.Join(t.TempDir(), "cfg-a")
	if r := cli(t, cfgA, []string{"MOAT_PASSWORD=" + passA}, "", "login", "--server", urlA, "--ca-file", caA, "-u", "admin"); r.code != 0 {
		t.Fatalf("login A: exit %d: %s", r.code, r.stderr)
	}
	cliOK(t, cfgA, "group", "create", "-n", "imp", "-l", "local")
	cliOK(t, cfgA, "acr", "create", "-n", "extdst01", "-g", "imp", "--sku", "Premium")

	// The password from the environment, as it should be given.
	r := cli(t, cfgA, []string{"MOAT_SOURCE_PASSWORD=" + passB}, "", "acr", "import", "-n", "extdst01", "--source", addrB+"/team/app:v1",
		"-u", "admin", "-t", "copy:v1")
	if r.code != 0 {
		t.Fatalf("import: exit %d: %s", r.code, r.stderr)
	}
	out := cliJSON(t, r.stdout)
	if out["status"] != "Succeeded" || out["digest"] != want.String() || out["manifests"] != float64(4) {
		t.Fatalf("import output %v", out)
	}
	optsA := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: passA}), remote.WithTransport(clientTrusting(t, caA, addrA).Transport)}
	dst, err := name.ParseReference("extdst01.localhost:" + portA + "/copy:v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(dst, optsA...)
	if err != nil {
		t.Fatalf("pull from A: %v", err)
	}
	if d, err := got.Digest(); err != nil || d != want {
		t.Fatalf("pulled %v %v, want %s", d, err, want)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		img, err := got.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			// go-containerregistry checks the digest as it reads.
			rc, err := l.Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				_ = rc.Close()
			}
			if err != nil {
				t.Fatalf("layer of %s pulled from A: %v", m.Digest, err)
			}
		}
	}
	refs, err := remote.Referrers(dst.Context().Digest(want.String()), optsA...)
	if err != nil {
		t.Fatal(err)
	}
	if rm, err := refs.IndexManifest(); err != nil || len(rm.Manifests) != 1 || rm.Manifests[0].Digest != sigDigest {
		t.Fatalf("referrers in A: %v %v", rm, err)
	}

	cliFails(t, cfgA, 2, "moat: ", "acr", "import", "-n", "extdst01", "--source", addrB+"/team/app:v1", "-u", "admin")
	cliFails(t, cfgA, 1, "moat: InvalidSourceCredentials: the source registry "+addrB+" refused the credentials",
		"acr", "import", "-n", "extdst01", "--source", addrB+"/team/app:v1", "-u", "admin", "-p", "wrong", "-t", "bad:v1")
	cliFails(t, cfgA, 1, "moat: TagAlreadyExists: ",
		"acr", "import", "-n", "extdst01", "--source", addrB+"/team/app:v1", "-u", "admin", "-p", passB, "-t", "copy:v1")
	cliOK(t, cfgA, "acr", "import", "-n", "extdst01", "--source", addrB+"/team/app:v1", "-u", "admin", "-p", passB, "-t", "copy:v1", "--force")

	// B disables exports on its registry: A's importer is refused, naming
	// B's registry and the policy.
	cfgB := filepath.Join(t.TempDir(), "cfg-b")
	if r := cli(t, cfgB, []string{"MOAT_PASSWORD=" + passB}, "", "login", "--server", urlB, "--ca-file", caB, "-u", "admin"); r.code != 0 {
		t.Fatalf("login B: exit %d: %s", r.code, r.stderr)
	}
	cliOK(t, cfgB, "acr", "update", "-n", "moat", "-g", "moat", "--public-network-enabled", "false", "--allow-exports", "false")
	cliFails(t, cfgA, 1, "moat: ExportPolicyDisabled: the source registry "+addrB+" refused the import: exports are disabled on registry 'moat' (policies.exportPolicy.status: disabled)",
		"acr", "import", "-n", "extdst01", "--source", addrB+"/team/app:v1", "-u", "admin", "-p", passB, "-t", "again:v1")
}
