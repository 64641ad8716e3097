package azblob_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
)

func push(t *testing.T, s *azblob.Store, id string, p []byte) digest.Digest {
	t.Helper()
	st, err := s.StartUpload(t.Context(), id, "")
	if err == nil {
		st, err = s.Append(t.Context(), id, st, bytes.NewReader(p))
	}
	if err == nil {
		_, err = s.Commit(t.Context(), id, st, digest.FromBytes(p))
	}
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return digest.FromBytes(p)
}

func fetch(t *testing.T, method, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestDownloadURL: a signed URL reads exactly its blob, only reads, and
// only until it expires.
func TestDownloadURL(t *testing.T) {
	cfg := azuritetest.Config(t)
	s, err := azblob.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := []byte("fetched straight from storage")
	d := push(t, s, "redirect", p)
	other := push(t, s, "other", []byte("another blob"))

	u, err := s.DownloadURL(t.Context(), d, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := fetch(t, http.MethodGet, u); code != http.StatusOK || !bytes.Equal(body, p) {
		t.Fatalf("GET the URL: %d %q", code, body)
	}
	// The signature names one blob: pointing it at another fails.
	if code, _ := fetch(t, http.MethodGet, strings.Replace(u, d.Encoded(), other.Encoded(), 1)); code != http.StatusForbidden {
		t.Fatalf("the URL read another blob: %d", code)
	}
	if code, _ := fetch(t, http.MethodPut, u); code != http.StatusForbidden {
		t.Fatalf("the URL allowed a write: %d", code)
	}

	short, err := s.DownloadURL(t.Context(), d, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if code, _ := fetch(t, http.MethodGet, short); code != http.StatusForbidden {
		t.Fatalf("an expired URL answered %d", code)
	}
	if _, err := s.DownloadURL(t.Context(), d, 0); err == nil {
		t.Fatal("a zero lifetime was accepted")
	}
}

func TestDownloadURLNeedsKey(t *testing.T) {
	cfg := azuritetest.Config(t)
	if _, err := azblob.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.AccountKey, cfg.SAS = "", containerSAS(t, cfg)
	s, err := azblob.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CanRedirect(); !errors.Is(err, azblob.ErrRedirectNeedsKey) {
		t.Fatalf("CanRedirect with a SAS credential: %v", err)
	}
	if _, err := s.DownloadURL(t.Context(), digest.FromString("x"), time.Minute); !errors.Is(err, azblob.ErrRedirectNeedsKey) {
		t.Fatalf("DownloadURL with a SAS credential: %v", err)
	}
}
