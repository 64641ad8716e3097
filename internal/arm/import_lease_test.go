package arm

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/storage/blob/fs"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

// TestImportOperationLease covers the operation's lease in one process:
// a Running record past its expiry is failed by the poll (ImportInterrupted,
// stored), and a runner whose record was taken over stops its import and
// sets no tag.
func TestImportOperationLease(t *testing.T) {
	e := newEnv(t)
	bs, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e.h.o.Import = &transfer.Remote{Blobs: bs, PlainHTTPLoopback: true, Backoff: time.Millisecond}
	e.h.o.ImportLease = 300 * time.Millisecond
	e.group()
	e.registry("dstreg", "Premium")
	regID := regPath + "dstreg"

	// A record left by a replica that died.
	past := time.Now().Add(-time.Minute)
	b, _ := json.Marshal(importOpRecord{Status: opRunning, Holder: "dead/1/x", Expires: past})
	if _, err := e.store.PutResource(t.Context(), meta.Resource{ID: opID(regID, "deadop"), Type: importOpType, Name: "deadop", Properties: b}); err != nil {
		t.Fatal(err)
	}
	e.want(e.do("GET", regID+"/importOperations/deadop", newest, ""), http.StatusConflict, "ImportInterrupted", "interrupted")
	res, err := e.store.GetResource(t.Context(), opID(regID, "deadop"))
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := decodeOp(res); rec.Status != opFailed || rec.Finished == nil {
		t.Fatalf("stored after the poll: %s", res.Properties)
	}

	// A live import whose record another replica took over.
	canceled := make(chan struct{}, 1)
	hold := make(chan struct{})
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && r.Header.Get(transfer.ImportHeader) != "" {
			select {
			case <-hold:
			case <-r.Context().Done():
				select {
				case canceled <- struct{}{}:
				default:
				}
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	defer src.Close()
	// Deferred after src.Close, so it runs first: the held handlers return
	// and Close does not wait for them.
	defer close(hold)
	host := strings.TrimPrefix(src.URL, "http://")
	img, _ := random.Image(512, 1)
	ref, _ := name.ParseReference(host + "/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	r := e.do("POST", regID+"/importImage", newest, `{"source":{"registryUri":"`+host+`","sourceImage":"app:v1"},"targetTags":["app:v1"]}`)
	e.want(r, http.StatusAccepted, "", "")
	path := strings.TrimPrefix(r.header.Get("Location"), "http://example.com")
	opName := path[strings.LastIndex(path, "/")+1 : strings.Index(path, "?")]
	time.Sleep(500 * time.Millisecond) // past the lease: renewals keep it alive
	e.want(e.do("GET", path, "", ""), http.StatusAccepted, "", "")
	// Take the record over as another replica would: read, then write at
	// that version; the runner renews it every lease/3, so a write can lose
	// the race (ErrConflict) and is tried again.
	b, _ = json.Marshal(importOpRecord{Status: opFailed, Holder: "other", Error: interruptedOp(), Finished: &past})
	for attempt := 0; ; attempt++ {
		res, err = e.store.GetResource(t.Context(), opID(regID, opName))
		if err != nil {
			t.Fatal(err)
		}
		res.Properties = b
		_, err = e.store.PutResource(t.Context(), res)
		if err == nil {
			break
		}
		if !errors.Is(err, meta.ErrConflict) || attempt == 20 {
			t.Fatal(err)
		}
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the taken-over import was not stopped")
	}
	e.want(e.do("GET", path, "", ""), http.StatusConflict, "ImportInterrupted", "")
	if _, err := e.store.GetManifestByTag(t.Context(), "dstreg", "app", "v1"); err == nil {
		t.Fatal("the stopped import set a tag")
	}
}
