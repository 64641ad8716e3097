package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The scale-out mode (issue 8) compares three deployments of moat, measured
// in one run and interleaved round by round:
//
//	(a) embedded: one process on SQLite and a local directory (the default);
//	(b) one replica on PostgreSQL and Azure Blob Storage (Azurite);
//	(c) two replicas on the same database and container, the clients
//	    spread over both (client i talks to replica i mod 2).
//
// (b) is the first replica of (c) on its own, so (b) and (c) differ only in
// whether the second replica takes half of the clients.

const (
	scaleoutBlobRepo     = "bench/scaleout-blobs"
	scaleoutManifestRepo = "bench/scaleout-manifests"
)

// scaleoutParams are the sizes of one scale-out run.
type scaleoutParams struct {
	size         int64 // bytes per pushed or pulled blob
	chunk        int64 // PATCH size of the chunked push
	clients      int   // concurrent push and pull clients
	rounds       int   // push and pull rounds per deployment
	concurrency  int   // manifest GET workers
	loadDuration time.Duration
	loadPasses   int // manifest GET passes per deployment
}

func scaleoutParamsFor(quick bool) scaleoutParams {
	if quick {
		return scaleoutParams{size: 8 * mib, chunk: 4 * mib, clients: 2, rounds: 2, concurrency: 32, loadDuration: 500 * time.Millisecond, loadPasses: 2}
	}
	// Rounds and passes are multiples of the three deployments, so that
	// each goes first equally often.
	return scaleoutParams{size: 64 * mib, chunk: 16 * mib, clients: 4, rounds: 3, concurrency: 32, loadDuration: 3 * time.Second, loadPasses: 3}
}

// deployment is one configuration under test: one or more replicas that
// clients are spread over.
type deployment struct {
	key      string // a, b or c
	label    string
	replicas []*target
}

// scaleoutResult holds every figure of the section, by deployment key.
type scaleoutResult struct {
	params    scaleoutParams
	started   time.Time
	elapsed   time.Duration
	machine   machine
	pushMono  map[string]throughput
	pushChunk map[string]throughput
	pull      map[string]throughput
	get       map[string]loadResult
}

func runScaleout(ctx context.Context, c config) (string, error) {
	if c.embeddedURL == "" || len(c.replicaURLs) != 2 {
		return "", errors.New("-mode scaleout needs -embedded and -replicas with two URLs")
	}
	if c.moatPassword == "" {
		return "", errors.New("BENCH_MOAT_PASSWORD is not set")
	}
	p := scaleoutParamsFor(c.quick)
	res := &scaleoutResult{
		params: p, started: time.Now().UTC(), machine: describeMachine(),
		pushMono: map[string]throughput{}, pushChunk: map[string]throughput{}, pull: map[string]throughput{}, get: map[string]loadResult{},
	}
	embedded, err := newTarget(ctx, "embedded", c.embeddedURL, c.moatUser, c.moatPassword)
	if err != nil {
		return "", err
	}
	var replicas []*target
	for i, u := range c.replicaURLs {
		t, err := newTarget(ctx, fmt.Sprintf("replica %d", i+1), u, c.moatUser, c.moatPassword)
		if err != nil {
			return "", err
		}
		replicas = append(replicas, t)
	}
	deps := []deployment{
		{key: "a", label: "embedded", replicas: []*target{embedded}},
		{key: "b", label: "1 replica", replicas: replicas[:1]},
		{key: "c", label: "2 replicas", replicas: replicas},
	}
	for _, t := range append([]*target{embedded}, replicas...) {
		for _, repo := range []string{scaleoutBlobRepo, scaleoutManifestRepo} {
			if err := t.authorize(ctx, repo); err != nil {
				return "", err
			}
		}
	}

	slog.Info("scale-out: blob push and pull", "size", sizeLabel(p.size), "clients", p.clients, "rounds", p.rounds)
	if err := scaleoutBlobs(ctx, p, deps, res); err != nil {
		return "", err
	}
	slog.Info("scale-out: manifest GET", "concurrency", p.concurrency)
	if err := scaleoutManifests(ctx, p, deps, res); err != nil {
		return "", err
	}
	res.elapsed = time.Since(res.started)
	return res.markdown(c), nil
}

// rotate returns deps starting at index r mod len(deps), so that every
// deployment goes first in turn.
func rotate[T any](items []T, r int) []T {
	n := len(items)
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, items[(i+r)%n])
	}
	return out
}

// scaleoutBlobs pushes, then pulls, clients blobs at a time per round.
func scaleoutBlobs(ctx context.Context, p scaleoutParams, deps []deployment, res *scaleoutResult) error {
	bufs := make([][]byte, p.clients)
	for i := range bufs {
		bufs[i] = make([]byte, p.size)
		if _, err := rand.Read(bufs[i]); err != nil {
			return err
		}
	}
	var counter uint64
	// pushed[key] are the digests of the last round each deployment pushed,
	// pulled afterwards.
	pushed := map[string][]string{}
	for round := range p.rounds {
		for _, mode := range []string{"monolithic", "chunked"} {
			for _, d := range rotate(deps, round) {
				// Fresh content for every client of every deployment:
				// (b) and (c) share one store, which must not find a blob
				// already there. Hashing is done before the clock starts.
				digests := make([]string, p.clients)
				for i, b := range bufs {
					counter++
					binary.BigEndian.PutUint64(b[:8], counter)
					sum := sha256.Sum256(b)
					digests[i] = "sha256:" + hex.EncodeToString(sum[:])
				}
				wall, err := concurrently(p.clients, func(i int) error {
					t := d.replicas[i%len(d.replicas)]
					if mode == "monolithic" {
						return pushMonolithic(ctx, t, scaleoutBlobRepo, bufs[i], digests[i])
					}
					return pushChunked(ctx, t, scaleoutBlobRepo, bufs[i], digests[i], p.chunk)
				})
				if err != nil {
					return fmt.Errorf("scale-out push (%s, %s): %w", d.label, mode, err)
				}
				bytes := int64(p.clients) * p.size
				if mode == "monolithic" {
					res.pushMono[d.key] = res.pushMono[d.key].add(bytes, wall)
				} else {
					res.pushChunk[d.key] = res.pushChunk[d.key].add(bytes, wall)
				}
				pushed[d.key] = digests
			}
		}
	}
	for _, d := range deps {
		slog.Info("scale-out push", "deployment", d.label,
			"monolithic MB/s", fmt.Sprintf("%.0f", res.pushMono[d.key].mbps()), "chunked MB/s", fmt.Sprintf("%.0f", res.pushChunk[d.key].mbps()))
	}

	for round := range p.rounds {
		for _, d := range rotate(deps, round) {
			digests := pushed[d.key]
			var mu sync.Mutex
			var got int64
			wall, err := concurrently(p.clients, func(i int) error {
				// Through the other replica than the one that pushed
				// the blob, when there are two.
				t := d.replicas[(i+1)%len(d.replicas)]
				n, err := pullBlob(ctx, t, scaleoutBlobRepo, digests[i])
				if err != nil {
					return err
				}
				if n != p.size {
					return fmt.Errorf("%s: got %d bytes of %s, want %d", t.name, n, digests[i], p.size)
				}
				mu.Lock()
				got += n
				mu.Unlock()
				return nil
			})
			if err != nil {
				return fmt.Errorf("scale-out pull (%s): %w", d.label, err)
			}
			res.pull[d.key] = res.pull[d.key].add(got, wall)
		}
	}
	for _, d := range deps {
		slog.Info("scale-out pull", "deployment", d.label, "MB/s", fmt.Sprintf("%.0f", res.pull[d.key].mbps()))
	}
	return nil
}

// concurrently runs f(0) … f(n-1) at once and returns the wall time until
// the last one finished, and the first error.
func concurrently(n int, f func(i int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// scaleoutManifests measures manifest GET by tag at p.concurrency,
// loadPasses times per deployment in rotating order, and pools the passes.
func scaleoutManifests(ctx context.Context, p scaleoutParams, deps []deployment, res *scaleoutResult) error {
	for _, d := range deps {
		// (b) and (c) share a database: the second PUT of the same
		// manifest and tag is a no-op.
		t := d.replicas[0]
		m, err := testManifest(ctx, t, scaleoutManifestRepo)
		if err != nil {
			return err
		}
		if err := putManifest(ctx, t, scaleoutManifestRepo, "bench", m); err != nil {
			return err
		}
	}
	path := "/v2/" + scaleoutManifestRepo + "/manifests/bench"
	lats := map[string][]time.Duration{}
	elapsed := map[string]time.Duration{}
	for pass := range p.loadPasses {
		for _, d := range rotate(deps, pass) {
			if _, _, err := loadSpread(ctx, d.replicas, scaleoutManifestRepo, http.MethodGet, path, p.concurrency, p.loadDuration/5); err != nil {
				return fmt.Errorf("scale-out manifest GET (%s): %w", d.label, err)
			}
			lat, wall, err := loadSpread(ctx, d.replicas, scaleoutManifestRepo, http.MethodGet, path, p.concurrency, p.loadDuration)
			if err != nil {
				return fmt.Errorf("scale-out manifest GET (%s): %w", d.label, err)
			}
			lats[d.key] = append(lats[d.key], lat...)
			elapsed[d.key] += wall
		}
	}
	for _, d := range deps {
		slices.Sort(lats[d.key])
		r := summarize(lats[d.key], elapsed[d.key])
		res.get[d.key] = r
		slog.Info("scale-out manifest GET", "deployment", d.label, "req/s", fmt.Sprintf("%.0f", r.rps()), "p50", r.p50, "p99", r.p99)
	}
	return nil
}

func (r *scaleoutResult) markdown(c config) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p := r.params
	w("## %s\n\n", titleScaleout)
	if c.quick {
		w("> **Quick run** (`--quick`): small sizes and short runs to check the harness. These numbers are not the benchmark.\n\n")
	}
	w("Issue 8's targets: moat on its embedded stores against one replica on PostgreSQL and Azure Blob\n")
	w("Storage (Azurite), and two replicas against one. Every figure in this section comes from one run of\n\n")
	w("```\n%s\n```\n\n", c.command)
	w("| | |\n|---|---|\n")
	w("| date | %s |\n", r.started.Format("2006-01-02 15:04 MST"))
	w("| machine | %d CPUs (nproc), %s, %s memory, %s |\n", r.machine.cpus, r.machine.cpuModel, r.machine.memory, r.machine.kernel)
	w("| moat | %s, `moat serve --insecure-http --log-level warn`, bearer token on every request |\n", orUnknown(c.moatVersion))
	w("| (a) embedded | `moat serve` with its defaults: SQLite and blobs in `--data-dir` |\n")
	w("| (b) 1 replica | `--database postgres://…` (%s, default durability settings) and `--blob-store azblob://devstoreaccount1/bench?endpoint=…` (Azurite %s, data on disk) |\n",
		orUnknown(c.postgresVersion), orUnknown(c.azuriteVersion))
	w("| (c) 2 replicas | (b)'s process and a second one on the same database and container; client *i* talks to replica *i* mod 2 |\n")
	w("| storage | every data directory, the cluster and Azurite's files in temporary directories on the same disk |\n")
	w("| run time | %s |\n\n", r.elapsed.Round(time.Second))
	w("%s\n\n", machineNote(r.machine.cpus))
	w("Push: %d clients at once each push a new %s blob, monolithic (POST + PUT) or chunked (PATCH in\n", p.clients, sizeLabel(p.size))
	w("%s chunks + PUT); pull: %d clients at once each GET one of them (with two replicas, through the\n", sizeLabel(p.chunk), p.clients)
	w("replica that did not receive it). MB/s is all clients' bytes over the wall time, %d rounds per\n", p.rounds)
	w("deployment, the deployments' order rotating each round. Manifest GET: by tag at concurrency %d,\n", p.concurrency)
	w("%d passes of %s per deployment.\n\n", p.loadPasses, p.loadDuration)
	w("| | (a) embedded | (b) 1 replica | (c) 2 replicas | (b) / (a) | (c) / (b) |\n")
	w("|---|---:|---:|---:|---:|---:|\n")
	row := func(name string, m map[string]throughput) {
		a, bb, cc := m["a"].mbps(), m["b"].mbps(), m["c"].mbps()
		w("| %s | %.0f MB/s | %.0f MB/s | %.0f MB/s | %.2f | %.2f |\n", name, a, bb, cc, ratio(bb, a), ratio(cc, bb))
	}
	row(fmt.Sprintf("push %s monolithic, %d clients", sizeLabel(p.size), p.clients), r.pushMono)
	row(fmt.Sprintf("push %s chunked, %d clients", sizeLabel(p.size), p.clients), r.pushChunk)
	row(fmt.Sprintf("pull %s, %d clients", sizeLabel(p.size), p.clients), r.pull)
	a, bb, cc := r.get["a"], r.get["b"], r.get["c"]
	w("| manifest GET, concurrency %d | %.0f req/s | %.0f req/s | %.0f req/s | %.2f | %.2f |\n",
		p.concurrency, a.rps(), bb.rps(), cc.rps(), ratio(bb.rps(), a.rps()), ratio(cc.rps(), bb.rps()))
	w("| manifest GET p50 / p99 | %s / %s | %s / %s | %s / %s | | |\n\n", ms(a.p50), ms(a.p99), ms(bb.p50), ms(bb.p99), ms(cc.p50), ms(cc.p99))
	return b.String()
}

// machineNote says what the machine's size means for reading the ratios.
func machineNote(cpus int) string {
	note := "The client, the three moat processes, PostgreSQL and Azurite all run on this machine and share its CPUs;" +
		" traffic is plain HTTP over loopback."
	if cpus <= 2 {
		note += fmt.Sprintf(" With %d cores, the two replicas of (c) run on the same cores as the one of (b): (c) / (b)"+
			" cannot show scaling. Above 1 it means one replica was waiting (on PostgreSQL, Azurite or its own locks)"+
			" more than computing; near or below 1 is what sharing the cores costs. Scaling needs replicas on"+
			" separate machines.", cpus)
	} else {
		note += fmt.Sprintf(" The two replicas of (c) share this machine's %d cores, so (c) / (b) shows scaling only as far as"+
			" those cores were idle with one replica.", cpus)
	}
	return note
}
