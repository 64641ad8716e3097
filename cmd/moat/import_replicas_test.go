package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/transfer"
)

// TestImportOperationsAcrossReplicas starts importImage operations through
// replica A and polls them through replica B: B answers 202 with the
// progress while A imports, and 200 with the result when it is done. Then
// replica A is killed in the middle of an import: once its lease on the
// operation expires, B's poll answers 409 ImportInterrupted (not Running
// for ever) and no tag was set.
func TestImportOperationsAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with PostgreSQL and Azurite")
	}
	hold := make(chan struct{})
	var holding atomic.Bool
	holding.Store(true)
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if holding.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && r.Header.Get(transfer.ImportHeader) != "" {
			select { // the import waits here while the test looks
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	defer src.Close()
	host := strings.TrimPrefix(src.URL, "http://")
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/team/app:v1")
	if err := remote.Write(ref, img, remote.WithTransport(http.DefaultTransport)); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	rs := startPipelineReplicas(t, 2, "import-replicas-1", "--import-plain-http-loopback")
	rs.armOK(t, 0, http.MethodPut, replSub+"/resourcegroups/repl?api-version=2021-04-01", `{"location":"local"}`)
	rs.armOK(t, 0, http.MethodPut, replRegs+"imdst01?api-version=2023-07-01", `{"location":"local","sku":{"name":"Premium"}}`)

	start := func(tag string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, rs.urls[0]+replRegs+"imdst01/importImage?api-version=2023-07-01",
			strings.NewReader(`{"source":{"registryUri":"`+host+`","sourceImage":"team/app:v1"},"targetTags":["app:`+tag+`"]}`))
		req.Header.Set("Authorization", "Bearer "+rs.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := faultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, rs.urls[0]) {
			t.Fatalf("importImage: %d Location %q", resp.StatusCode, loc)
		}
		return strings.TrimPrefix(loc, rs.urls[0])
	}
	// poll asks replica B.
	poll := func(path string) (int, string) {
		t.Helper()
		return rs.arm(t, 1, http.MethodGet, path, "")
	}

	op := start("v1")
	var running struct {
		Status   string                    `json:"status"`
		Progress transfer.ProgressSnapshot `json:"progress"`
	}
	// B sees it running, with the progress A stored (renewed every 1 s).
	waitFor(t, 10*time.Second, "replica B answering the progress", func() (bool, string) {
		code, body := poll(op)
		if code != http.StatusAccepted {
			t.Fatalf("poll through B while running: %d %s", code, body)
		}
		_ = json.Unmarshal([]byte(body), &running)
		return running.Status == "Running" && running.Progress.BlobsTotal == 3, body
	})
	holding.Store(false)
	close(hold)
	waitFor(t, 10*time.Second, "replica B answering the result", func() (bool, string) {
		code, body := poll(op)
		if code == http.StatusOK && !strings.Contains(body, want.String()) {
			t.Fatalf("result through B: %s", body)
		}
		return code == http.StatusOK, body
	})

	// An import that A never finishes: A dies.
	hold = make(chan struct{})
	defer close(hold)
	holding.Store(true)
	img2, _ := random.Image(1024, 1)
	ref2, _ := name.ParseReference(host + "/team/app:v1")
	if err := remote.Write(ref2, img2, remote.WithTransport(http.DefaultTransport)); err != nil {
		t.Fatal(err)
	}
	op = start("v2")
	if code, body := poll(op); code != http.StatusAccepted {
		t.Fatalf("poll through B: %d %s", code, body)
	}
	time.Sleep(500 * time.Millisecond) // A is waiting for a blob
	if err := rs.procs[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var body string
	waitFor(t, 15*time.Second, "replica B failing the interrupted import", func() (bool, string) {
		var code int
		code, body = poll(op)
		return code == http.StatusConflict, body
	})
	if !strings.Contains(body, `"code":"ImportInterrupted"`) {
		t.Fatalf("interrupted import: %s", body)
	}
	t.Logf("B failed the import %v after A was killed", time.Since(killed).Round(time.Millisecond))
	if code, again := poll(op); code != http.StatusConflict || again != body {
		t.Fatalf("second poll: %d %s", code, again)
	}
	refB, _ := name.ParseReference(rs.host(1, "imdst01")+"/app:v2", name.Insecure)
	if _, err := remote.Head(refB, remote.WithAuth(&authn.Basic{Username: "admin", Password: rs.password}), rs.via(1)); err == nil {
		t.Fatal("the interrupted import set a tag")
	}
	rs.procs[1].stop(t)
}
