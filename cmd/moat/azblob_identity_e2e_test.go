package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
)

// TestServeAzureBlobManagedIdentity runs `moat serve` with its blob store in
// an Azurite that takes only Entra bearer tokens (and the key the test
// inspects with), the credential being a user-assigned managed identity
// whose tokens come from an App Service-style identity endpoint: crane
// pushes and pulls an image through it, the layers are in the container,
// and the endpoint saw the binary ask for a storage token of that identity.
// With --blob-redirect-ttl and Azurite's path-style endpoint it refuses to
// start, naming the problem.
func TestServeAzureBlobManagedIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with Azurite")
	}
	srv := azuritetest.OAuth(t)
	id := azuritetest.NewIdentity(t)
	clientID := azuritetest.GUID()
	az := srv.Config() // this process's environment names no identity endpoint
	const password = "identity-secret-1"
	env := append([]string{
		"MOAT_ADMIN_PASSWORD=" + password,
		"MOAT_BLOB_STORE=azblob://" + az.Account + "/" + az.Container + "?endpoint=" + az.Endpoint,
		"MOAT_AZBLOB_CREDENTIAL=managed-identity",
		"MOAT_AZBLOB_CLIENT_ID=" + clientID,
		"MOAT_AZBLOB_ACCOUNT_KEY=", "MOAT_AZBLOB_SAS=",
		"SSL_CERT_FILE=" + srv.CAFile, // Azurite's self-signed certificate
	}, id.Env()...)
	p, base := startMoat(t, env, "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	if out := p.output(); !strings.Contains(out, "managed identity, client id "+clientID) {
		t.Fatalf("moat does not report its blob credential:\n%s", out)
	}
	want := azuritetest.IdentityCall{Resource: azuritetest.StorageResource, ClientID: clientID, Status: 200}
	if calls := id.Calls(); !slices.Contains(calls, want) {
		t.Fatalf("identity endpoint calls %+v, want %+v", calls, want)
	}

	host := strings.TrimPrefix(base, "http://")
	_, ref, auth := pushRandomImage(t, host, "team/app:v1", password, 64<<10, 3)
	got, err := remote.Image(ref, auth)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	keyed := az
	keyed.ManagedIdentity, keyed.AccountKey = false, azuritetest.Key
	store, err := azblob.New(t.Context(), keyed)
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
			t.Fatalf("pulled layer: %v", err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Stat(t.Context(), digest.Digest(d.String())); err != nil {
			t.Fatalf("layer %s is not in the container: %v", d, err)
		}
	}

	cmd := exec.Command(moatBinary(t), "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data2"), "--blob-redirect-ttl", "2m")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; err == nil || !strings.HasPrefix(last, "moat: ") || !strings.Contains(last, "host starts with the account name") {
		t.Fatalf("serve with redirects on a path-style endpoint: %v\n%s", err, out)
	}

	// No token, no start: the identity endpoint refuses a wrong header.
	cmd = exec.Command(moatBinary(t), "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data3"))
	cmd.Env = append(append(os.Environ(), env...), "IDENTITY_HEADER=not-the-header")
	out, err = cmd.CombinedOutput()
	lines = strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; err == nil || !strings.HasPrefix(last, "moat: opening the blob store") || !strings.Contains(last, "ManagedIdentityCredential authentication failed") {
		t.Fatalf("serve with a refused identity: %v\n%s", err, out)
	}
}
