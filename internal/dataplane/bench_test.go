package dataplane

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"
)

// discardWriter is the cheapest ResponseWriter, so the benchmark measures
// the handler, not the recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkManifestGet measures the hot path: an authenticated manifest GET
// by tag, through the handler with real stores, logging off.
func BenchmarkManifestGet(b *testing.B) {
	for _, auth := range []string{"bearer", "basic"} {
		b.Run(auth, func(b *testing.B) {
			e := newEnv(b)
			img := e.pushImage("app", "1")
			e.putManifest("app", "v1", img.manifest, mtOCIManifest).wantStatus(e.t, http.StatusCreated)
			h := e.newHandler()
			h.log = slog.New(slog.DiscardHandler)
			req := httptest.NewRequest(http.MethodGet, "/v2/app/manifests/v1", nil)
			req.Host = "127.0.0.1:5443"
			if auth == "bearer" {
				req.Header.Set("Authorization", "Bearer "+e.token("moat.localhost", "repository:app:pull"))
			} else {
				req.SetBasicAuth("admin", adminPassword)
			}
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, req)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkPushLarge pushes a 256 MiB blob monolithically over loopback HTTP:
// the whole write path (body read, hash, disk, fsync, metadata).
func BenchmarkPushLarge(b *testing.B) {
	e := newEnv(b)
	data := make([]byte, 256<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		data[0] = byte(i) // new content, new digest
		d := digest.FromBytes(data)
		b.StartTimer()
		loc := e.startUpload("bench")
		e.do(http.MethodPut, loc+"?digest="+d.String(), body(data)).wantStatus(b, http.StatusCreated)
	}
}
