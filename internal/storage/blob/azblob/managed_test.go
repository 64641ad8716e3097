package azblob_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/storage/blob/blobtest"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
)

// TestManagedIdentityConformance runs the shared suite on a store whose
// every request (container creation, staged blocks, block lists, the
// commit's server-side copy, reads, deletes) carries a bearer token of the
// managed identity, against an Azurite that takes tokens.
func TestManagedIdentityConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) (blob.Store, func() blob.Store) {
		cfg := azuritetest.ManagedIdentityConfig(t)
		open := func() blob.Store {
			t.Helper()
			s, err := azblob.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("azblob.New with managed identity: %v", err)
			}
			return s
		}
		return open(), open
	})
}

// TestManagedIdentityUserAssigned: the store asks the managed identity
// endpoint for a storage token of the user-assigned identity it names, and
// what it writes with that token is in the container.
func TestManagedIdentityUserAssigned(t *testing.T) {
	cfg := azuritetest.ManagedIdentityConfig(t)
	cfg.ClientID = azuritetest.GUID() // no other test's cached token fits
	s, err := azblob.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p := []byte("pushed by a user-assigned identity")
	d := push(t, s, "mi", p)

	want := azuritetest.IdentityCall{Resource: azuritetest.StorageResource, ClientID: cfg.ClientID, Status: http.StatusOK}
	if calls := azuritetest.ProcessIdentity(t).Calls(); !slices.Contains(calls, want) {
		t.Fatalf("identity endpoint calls %+v, want one %+v", calls, want)
	}

	// The same bytes, read with the account key: the token wrote them.
	keyed := cfg
	keyed.ManagedIdentity, keyed.ClientID, keyed.AccountKey = false, "", azuritetest.Key
	ks, err := azblob.New(t.Context(), keyed)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ks.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open with the key: %v", err)
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read %q, %v; want %q", got, err, p)
	}
}

// TestOAuthAzuriteRefusesOtherTokens keeps the managed identity tests
// honest: the emulator they run against refuses a request without a
// token, with a garbage one, and with a token of an issuer that is not
// Azure AD, so what the store did, it did with the identity's token.
func TestOAuthAzuriteRefusesOtherTokens(t *testing.T) {
	cfg := azuritetest.ManagedIdentityConfig(t)
	s, err := azblob.New(t.Context(), cfg) // creates the container
	if err != nil {
		t.Fatal(err)
	}
	d := push(t, s, "refuse", []byte("secret"))
	srv := azuritetest.OAuth(t)
	u := cfg.Endpoint + "/" + cfg.Container + "/blobs/sha256/" + d.Encoded()
	forged := "eyJhbGciOiJub25lIn0." + // {"alg":"none"}
		"eyJhdWQiOiJodHRwczovL3N0b3JhZ2UuYXp1cmUuY29tIiwiaXNzIjoiaHR0cHM6Ly9ldmlsLmV4YW1wbGUvIiwiaWF0IjoxLCJuYmYiOjEsImV4cCI6NDEwMjQ0NDgwMH0." + // aud storage, iss https://evil.example/
		"c2ln"
	for name, auth := range map[string]string{"no token": "", "garbage": "Bearer not-a-jwt", "foreign issuer": "Bearer " + forged} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-ms-version", "2025-01-05")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("%s: GET the blob answered %d", name, resp.StatusCode)
		}
	}
}

// TestManagedIdentityDownloadURL: under a managed identity the store signs
// download URLs with a user delegation key; such a URL reads exactly its
// blob, only reads, and nothing signs for a path-style endpoint.
func TestManagedIdentityDownloadURL(t *testing.T) {
	srv := azuritetest.OAuth(t)
	cfg := azuritetest.ManagedIdentityConfig(t)
	cfg.Endpoint = srv.HostStyleEndpoint()
	keys := &countingTransport{next: srv.Client(), query: "comp=userdelegationkey"}
	cfg.Transport = keys
	s, err := azblob.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CanRedirect(); err != nil {
		t.Fatalf("CanRedirect: %v", err)
	}
	p := []byte("fetched with a user delegation SAS")
	d := push(t, s, "udk", p)
	other := push(t, s, "udk-other", []byte("another"))
	u, err := s.DownloadURL(t.Context(), d, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if q := u[strings.IndexByte(u, '?'):]; !strings.Contains(q, "skoid=") || !strings.Contains(q, "sp=r&") {
		t.Fatalf("not a read-only user delegation SAS: %s", q)
	}
	get := func(method, u string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-ms-blob-type", "BlockBlob")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, body := get(http.MethodGet, u); code != http.StatusOK || !bytes.Equal(body, p) {
		t.Fatalf("GET the URL: %d %q", code, body)
	}
	if code, _ := get(http.MethodGet, strings.Replace(u, d.Encoded(), other.Encoded(), 1)); code != http.StatusForbidden {
		t.Fatalf("the URL read another blob: %d", code)
	}
	if code, _ := get(http.MethodPut, u); code != http.StatusForbidden {
		t.Fatalf("the URL allowed a write: %d", code)
	}
	// A second URL reuses the key; one outliving the key gets a new key.
	u2, err := s.DownloadURL(t.Context(), other, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(http.MethodGet, u2); code != http.StatusOK {
		t.Fatalf("GET the second URL: %d", code)
	}
	if n := keys.count.Load(); n != 1 {
		t.Fatalf("%d user delegation keys for two URLs, want 1", n)
	}
	u3, err := s.DownloadURL(t.Context(), other, 3*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(http.MethodGet, u3); code != http.StatusOK || keys.count.Load() != 2 {
		t.Fatalf("GET a 3-hour URL: %d after %d keys, want 200 after 2", code, keys.count.Load())
	}
	if _, err := s.DownloadURL(t.Context(), d, 8*24*time.Hour); err == nil {
		t.Fatal("a lifetime beyond a user delegation key's was accepted")
	}

	path := azuritetest.ManagedIdentityConfig(t) // path style: https://127.0.0.1:port/devstoreaccount1
	ps, err := azblob.New(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.CanRedirect(); !errors.Is(err, azblob.ErrRedirectPathStyle) {
		t.Fatalf("CanRedirect on a path-style endpoint: %v", err)
	}
	if _, err := ps.DownloadURL(t.Context(), digest.FromString("x"), time.Minute); !errors.Is(err, azblob.ErrRedirectPathStyle) {
		t.Fatalf("DownloadURL on a path-style endpoint: %v", err)
	}
}

// countingTransport counts the requests whose query contains query.
type countingTransport struct {
	next  *http.Client
	query string
	count atomic.Int32
}

func (c *countingTransport) Do(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.RawQuery, c.query) {
		c.count.Add(1)
	}
	return c.next.Do(r) //nolint:gosec // the store's own requests to the test's Azurite
}
