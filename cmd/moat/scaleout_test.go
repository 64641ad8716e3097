package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
	"github.com/moat-registry/moat/internal/testsupport/pgtest"
)

// TestTwoReplicasOnPostgresAndAzureBlob runs two `moat serve` processes over
// one PostgreSQL database and one Azure Blob container (Azurite): an index
// pushed through one is pulled whole through the other, and a token issued by
// one is honoured by the other.
func TestTwoReplicasOnPostgresAndAzureBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with PostgreSQL and Azurite")
	}
	dsn := pgtest.DSN(t)
	az := azuritetest.Config(t)
	const password = "replica-secret-1"
	env := []string{
		"MOAT_ADMIN_PASSWORD=" + password,
		"MOAT_DATABASE=" + dsn,
		"MOAT_BLOB_STORE=azblob://" + az.Account + "/" + az.Container + "?endpoint=" + az.Endpoint,
		"MOAT_AZBLOB_ACCOUNT_KEY=" + az.AccountKey,
	}
	var urls [2]string
	var procs [2]*process
	for i := range procs {
		dataDir := filepath.Join(t.TempDir(), "data")
		procs[i], urls[i] = startMoat(t, env, "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
		if out := procs[i].output(); !strings.Contains(out, "metadata=postgres") || !strings.Contains(out, "azblob account") {
			t.Fatalf("replica %d does not report its stores:\n%s", i, out)
		}
	}
	hostA, hostB := strings.TrimPrefix(urls[0], "http://"), strings.TrimPrefix(urls[1], "http://")

	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	refA, err := name.ParseReference(hostA+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(refA, idx, auth); err != nil {
		t.Fatalf("push through replica A: %v", err)
	}
	refB, err := name.ParseReference(hostB+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(refB, auth)
	if err != nil {
		t.Fatalf("pull through replica B: %v", err)
	}
	want, _ := idx.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("replica B serves index %s, pushed %s", d, want)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		img, err := got.Image(m.Digest)
		if err != nil {
			t.Fatalf("child %s through replica B: %v", m.Digest, err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed() // verifies the digest while reading
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 32<<10)
			for {
				if _, err := rc.Read(buf); err != nil {
					break
				}
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("layer through replica B: %v", err)
			}
		}
	}

	// A token from replica A works on replica B (keys live in the database).
	req, _ := http.NewRequest(http.MethodGet, urls[0]+"/oauth2/token?service=moat.localhost&scope=repository:team/app:pull", nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("token from replica A: status %d, err %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest(http.MethodGet, urls[1]+"/v2/team/app/manifests/v1", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Fatalf("replica B with A's token: status %d digest %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	for _, p := range procs {
		p.stop(t)
	}
}
