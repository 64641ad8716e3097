package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
)

// TestBlobRedirect runs moat over Azurite with --blob-redirect-ttl: a blob
// GET answers 307 to a SAS URL of Azurite that reads the blob without
// credentials, and a stock client pulls through the redirect.
func TestBlobRedirect(t *testing.T) {
	az := azuritetest.Config(t)
	const password = "redirect-secret-1"
	env := []string{
		"MOAT_ADMIN_PASSWORD=" + password,
		"MOAT_BLOB_STORE=azblob://" + az.Account + "/" + az.Container + "?endpoint=" + az.Endpoint,
		"MOAT_AZBLOB_ACCOUNT_KEY=" + az.AccountKey,
		"MOAT_BLOB_REDIRECT_TTL=2m",
	}
	_, base := startMoat(t, env, "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	host := strings.TrimPrefix(base, "http://")

	img, ref, auth := pushRandomImage(t, host, "team/app:v1", password, 4096, 2)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, base+"/v2/team/app/blobs/"+ld.String(), nil)
	req.SetBasicAuth("admin", password)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, az.Endpoint) || resp.Header.Get("Docker-Content-Digest") != ld.String() {
		t.Fatalf("blob GET: %d Location %q (want 307 to %s)", resp.StatusCode, loc, az.Endpoint)
	}
	if u, err := url.Parse(loc); err != nil || u.Query().Get("sp") != "r" || u.Query().Get("se") == "" {
		t.Fatalf("the URL must carry a read-only, expiring SAS: %q", loc)
	}
	got, err := http.Get(loc) //nolint:noctx // the URL moat signed, in a test
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(got.Body)
	_ = got.Body.Close()
	if err != nil || got.StatusCode != http.StatusOK || digest.FromBytes(body).String() != ld.String() {
		t.Fatalf("GET the SAS URL: %d, %d bytes, %v", got.StatusCode, len(body), err)
	}

	// Unauthenticated, the data plane still refuses before redirecting.
	anon, err := noFollow.Get(base + "/v2/team/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	_ = anon.Body.Close()
	if anon.StatusCode != http.StatusUnauthorized || anon.Header.Get("Location") != "" {
		t.Fatalf("anonymous blob GET: %d Location %q", anon.StatusCode, anon.Header.Get("Location"))
	}

	pulled, err := remote.Image(ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range pl {
		rc, err := l.Compressed() // verifies the digest while reading
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer through the redirect: %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("layer through the redirect: %v", err)
		}
	}
}

// TestBlobRedirectNeedsSigningStore: the local directory store cannot sign
// URLs, so asking for redirects is a start-up error, not a silent no-op.
func TestBlobRedirectNeedsSigningStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, moatBinary(t), "serve", "--insecure-http", "--listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(t.TempDir(), "data"), "--blob-redirect-ttl", "1m")
	cmd.Env = append(cmd.Environ(), "MOAT_ADMIN_PASSWORD=redirect-secret-2")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "redirect") {
		t.Fatalf("moat serve with redirects over the local store: %v\n%s", err, out)
	}
}
