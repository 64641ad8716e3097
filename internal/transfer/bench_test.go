package transfer

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// benchImageSize is the image the import benchmarks move: 4 layers of
// 16 MiB of random (incompressible) bytes.
const (
	benchLayers    = 4
	benchLayerSize = 16 << 20
)

// benchSource serves a 64 MiB image at app:v1 from loopback.
func benchSource(b *testing.B) *source {
	b.Helper()
	s := newSource(b, true)
	img, err := random.Image(benchLayerSize, benchLayers)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(s.ref(b, "app:v1"), img, s.opts()...); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkImportRemote64MiB imports a 64 MiB image from a registry on
// loopback into a fresh metadata store and file-system blob store each
// iteration (so every byte moves and is verified).
func BenchmarkImportRemote64MiB(b *testing.B) {
	s := benchSource(b)
	b.SetBytes(benchLayers * benchLayerSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		tg := newTarget(b)
		b.StartTimer()
		if _, err := tg.importFrom(s, "app:v1", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCraneCopy64MiB is the reference: go-containerregistry's crane
// copy of the same image between two registries on loopback, the target
// keeping blobs on disk.
func BenchmarkCraneCopy64MiB(b *testing.B) {
	s := benchSource(b)
	b.SetBytes(benchLayers * benchLayerSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dst := httptest.NewServer(registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(b.TempDir())),
			registry.Logger(log.New(io.Discard, "", 0))))
		b.StartTimer()
		if err := crane.Copy(s.host+"/app:v1", strings.TrimPrefix(dst.URL, "http://")+"/app:v1", crane.Insecure, crane.WithContext(context.Background())); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
}

// BenchmarkImportVsCrane64MiB runs both in every iteration, alternating
// which goes first, so that a busy machine slows both alike; it reports
// each one's throughput (MB/s, 10^6 bytes) and moat's speed relative to
// crane's.
func BenchmarkImportVsCrane64MiB(b *testing.B) {
	s := benchSource(b)
	var moat, crn time.Duration
	for i := range b.N {
		b.StopTimer()
		tg := newTarget(b)
		dst := httptest.NewServer(registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(b.TempDir())),
			registry.Logger(log.New(io.Discard, "", 0))))
		b.StartTimer()
		runMoat := func() {
			start := time.Now()
			if _, err := tg.importFrom(s, "app:v1", nil); err != nil {
				b.Fatal(err)
			}
			moat += time.Since(start)
		}
		runCrane := func() {
			start := time.Now()
			if err := crane.Copy(s.host+"/app:v1", strings.TrimPrefix(dst.URL, "http://")+"/app:v1", crane.Insecure); err != nil {
				b.Fatal(err)
			}
			crn += time.Since(start)
		}
		if i%2 == 0 {
			runMoat()
			runCrane()
		} else {
			runCrane()
			runMoat()
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	size := float64(benchLayers*benchLayerSize) * float64(b.N)
	b.ReportMetric(size/moat.Seconds()/1e6, "moat-MB/s")
	b.ReportMetric(size/crn.Seconds()/1e6, "crane-MB/s")
	b.ReportMetric(crn.Seconds()/moat.Seconds(), "moat/crane")
}
