package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

	// Disabling public network access through replica A's management API reaches
	// replica B within a second (its registry cache alone would take 5 s).
	form := "grant_type=password&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&username=admin&password=" + password +
		"&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+openid"
	resp, err = http.Post(urls[0]+"/organizations/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	var mgmt struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&mgmt)
	_ = resp.Body.Close()
	if err != nil || mgmt.AccessToken == "" {
		t.Fatalf("management token from replica A: status %d, %v", resp.StatusCode, err)
	}
	// Warm B's cache, so that only a notification can make it see the change.
	if code := getStatus(t, urls[1]+"/v2/", password); code != http.StatusOK {
		t.Fatalf("replica B before the change: %d", code)
	}
	patch, _ := http.NewRequest(http.MethodPatch, urls[0]+"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/moat?api-version=2023-07-01",
		strings.NewReader(`{"properties":{"publicNetworkAccess":"Disabled"}}`))
	patch.Header.Set("Authorization", "Bearer "+mgmt.AccessToken)
	patch.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(patch)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH through replica A: %d", resp.StatusCode)
	}
	changed := time.Now()
	for getStatus(t, urls[1]+"/v2/", password) != http.StatusForbidden {
		if time.Since(changed) > time.Second {
			t.Fatal("replica B still admits 127.0.0.1 a second after public network access was disabled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica B refused %v after the change", time.Since(changed).Round(time.Millisecond))
	for _, p := range procs {
		p.stop(t)
	}
}

func getStatus(t *testing.T, url, password string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
