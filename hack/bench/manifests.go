package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
)

const (
	manifestRepo = "bench/manifests"
	ociManifest  = "application/vnd.oci.image.manifest.v1+json"
	// acceptAll is what docker and containerd send when resolving a tag.
	acceptAll = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
		"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
)

// loadResult is one request-rate measurement.
type loadResult struct {
	requests int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (l loadResult) rps() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.requests) / l.elapsed.Seconds()
}

type manifestResult struct {
	method      string
	concurrency int
	by          map[string]loadResult
}

// testManifest pushes a config and a layer and returns an image manifest
// over them.
func testManifest(ctx context.Context, t *target, repo string) ([]byte, error) {
	blob := func(data []byte) (map[string]any, error) {
		sum := sha256.Sum256(data)
		dgst := "sha256:" + hex.EncodeToString(sum[:])
		if err := pushMonolithic(ctx, t, repo, data, dgst); err != nil {
			return nil, err
		}
		return map[string]any{"digest": dgst, "size": len(data)}, nil
	}
	cfg, err := blob([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	if err != nil {
		return nil, err
	}
	cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
	layerData := make([]byte, 4*kib)
	if _, err := rand.Read(layerData); err != nil {
		return nil, err
	}
	layer, err := blob(layerData)
	if err != nil {
		return nil, err
	}
	layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
	return json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ociManifest,
		"config":        cfg,
		"layers":        []any{layer},
		"annotations":   map[string]string{"org.opencontainers.image.title": "moat benchmark"},
	})
}

func putManifest(ctx context.Context, t *target, repo, ref string, m []byte) error {
	req, err := t.newRequest(ctx, http.MethodPut, repo, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(m))
	req.Header.Set("Content-Type", ociManifest)
	resp, err := t.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

func benchManifests(ctx context.Context, c config, targets []*target) ([]manifestResult, error) {
	for _, t := range targets {
		if err := t.authorize(ctx, manifestRepo); err != nil {
			return nil, err
		}
		m, err := testManifest(ctx, t, manifestRepo)
		if err != nil {
			return nil, err
		}
		if err := putManifest(ctx, t, manifestRepo, "bench", m); err != nil {
			return nil, err
		}
	}
	var out []manifestResult
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, conc := range c.concurrencies {
			res := manifestResult{method: method, concurrency: conc, by: map[string]loadResult{}}
			for _, t := range alternate(targets, conc) {
				// A short warm-up fills connection pools and caches.
				if _, err := load(ctx, t, manifestRepo, method, "/v2/"+manifestRepo+"/manifests/bench", conc, c.loadDuration/5); err != nil {
					return nil, err
				}
				r, err := load(ctx, t, manifestRepo, method, "/v2/"+manifestRepo+"/manifests/bench", conc, c.loadDuration)
				if err != nil {
					return nil, err
				}
				res.by[t.name] = r
				slog.Info("manifest", "method", method, "c", conc, "target", t.name, "req/s", fmt.Sprintf("%.0f", r.rps()), "p50", r.p50, "p99", r.p99)
			}
			out = append(out, res)
		}
	}
	return out, nil
}

// load sends requests from conc workers for about d and reports the rate and
// latency percentiles.
func load(ctx context.Context, t *target, repo, method, path string, conc int, d time.Duration) (loadResult, error) {
	lat, elapsed, err := loadSpread(ctx, []*target{t}, repo, method, path, conc, d)
	if err != nil {
		return loadResult{}, err
	}
	return summarize(lat, elapsed), nil
}

// loadSpread is load over several targets (replicas of one deployment):
// worker w sends all its requests to targets[w % len(targets)], as clients
// behind a connection-level balancer do. It returns every request's latency,
// sorted, and the wall time.
func loadSpread(ctx context.Context, targets []*target, repo, method, path string, conc int, d time.Duration) ([]time.Duration, time.Duration, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		firstErr error
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < conc; w++ {
		t := targets[w%len(targets)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var err error
			for time.Now().Before(deadline) {
				var req *http.Request
				req, err = t.newRequest(ctx, method, repo, path, nil)
				if err != nil {
					break
				}
				req.Header.Set("Accept", acceptAll)
				t0 := time.Now()
				var resp *http.Response
				resp, err = t.do(req, http.StatusOK)
				if err != nil {
					break
				}
				drain(resp)
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, 0, firstErr
	}
	slices.Sort(all)
	return all, elapsed, nil
}

// summarize turns sorted latencies and the wall time they took into a rate
// and percentiles.
func summarize(sorted []time.Duration, elapsed time.Duration) loadResult {
	return loadResult{requests: len(sorted), elapsed: elapsed, p50: percentile(sorted, 50), p99: percentile(sorted, 99)}
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
