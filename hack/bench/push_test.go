package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestPushModes pushes a blob in every mode to go-containerregistry's
// registry and checks that it arrived whole, and that each mode sent the
// requests it claims to (the report describes them).
func TestPushModes(t *testing.T) {
	var mu sync.Mutex
	var reqs []string
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") {
			mu.Lock()
			reqs = append(reqs, r.Method+" range="+r.Header.Get("Content-Range"))
			mu.Unlock()
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	tg, err := newTarget(context.Background(), "ggcr", srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("moat", 2500)) // 10,000 bytes: chunks of 4,096 leave a short last one
	want := map[string][]string{
		"monolithic": {"POST range=", "PUT range="},
		"streamed":   {"POST range=", "PATCH range=", "PUT range="},
		"chunked":    {"POST range=", "PATCH range=0-4095", "PATCH range=4096-8191", "PATCH range=8192-9999", "PUT range="},
	}
	for i, mode := range pushModes {
		data[0] = byte(i) // a new blob each time
		sum := sha256.Sum256(data)
		dgst := "sha256:" + hex.EncodeToString(sum[:])
		mu.Lock()
		reqs = nil
		mu.Unlock()
		if err := pushBlob(context.Background(), mode, tg, "bench/x", data, dgst, 4096); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		mu.Lock()
		got := slices.Clone(reqs)
		mu.Unlock()
		if !slices.Equal(got, want[mode]) {
			t.Errorf("%s sent %q, want %q", mode, got, want[mode])
		}
		n, err := pullBlob(context.Background(), tg, "bench/x", dgst)
		if err != nil || n != int64(len(data)) {
			t.Errorf("%s: pulled %d bytes (%v), want %d", mode, n, err, len(data))
		}
	}
	if len(want) != len(pushModes) {
		t.Errorf("modes %q, want the %d this test knows", pushModes, len(want))
	}
	if err := pushBlob(context.Background(), "sideways", tg, "bench/x", data, "sha256:00", 4096); err == nil || !strings.Contains(err.Error(), `unknown push mode "sideways"`) {
		t.Errorf("unknown mode: %v", err)
	}
}
