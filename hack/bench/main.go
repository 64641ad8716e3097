// Command bench measures moat on this machine and writes BENCHMARKS.md.
// scripts/bench.sh builds moat (and whatever else a mode compares it with),
// starts everything on loopback and runs this driver; run that script
// rather than this program.
//
// It has three modes (-mode), each writing its own sections of the report
// and keeping the others' (see merge.go):
//
//   - compare (the default): moat against CNCF Distribution, below;
//   - scaleout: moat on its embedded stores against one replica on
//     PostgreSQL and Azure Blob Storage (Azurite) and against two replicas
//     over the same database and container (scaleout.go);
//   - firewall: one moat with its registry's network rules off and on
//     (firewall.go).
//
// What compare measures, in one run and interleaving the two registries so
// that neither profits from a quieter moment of the machine:
//
//   - the machine's own bound: sha256 throughput in-process, fsync'd
//     sequential write throughput to the registries' disk, and both in one
//     pass (hash and write every chunk, fsync at the end), which is what a
//     registry must do for every pushed byte;
//   - blob push at 1 MiB, 64 MiB and 512 MiB, monolithic (POST + PUT),
//     streamed (POST + one PATCH + PUT, as crane and skopeo push) and
//     chunked (PATCH in 16 MiB chunks + PUT);
//   - blob pull of the same sizes;
//   - manifest GET and HEAD by tag at concurrency 1, 8 and 32, with p50 and
//     p99 latency;
//   - listing a repository of 10,000 tags.
//
// moat is used the way clients use it: a bearer token is fetched once from
// /oauth2/token with the admin's Basic credentials and sent on every request.
// Distribution runs without authentication, its cheapest configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

type config struct {
	moatURL      string
	moatUser     string
	moatPassword string
	distURL      string
	diskDir      string
	// moatData and distData are the registries' storage directories; when
	// set, the blobs of finished push repetitions are removed from them.
	moatData, distData string
	out                string
	command            string
	moatVersion        string
	distVersion        string
	quick              bool
	mode               string

	// scaleout: the embedded moat and the replicas over PostgreSQL and
	// Azurite (the first replica alone is the one-replica deployment).
	embeddedURL     string
	replicaURLs     []string
	postgresVersion string
	azuriteVersion  string
	// firewall: the output of `go test -bench . ./internal/netrule` and
	// the command that produced it.
	netruleBench        string
	netruleBenchCommand string
	registryID          string

	sizes         []int64
	chunk         int64
	loadDuration  time.Duration
	concurrencies []int
	tagCount      int
}

func main() {
	var c config
	flag.StringVar(&c.moatURL, "moat", "", "moat base URL, e.g. http://127.0.0.1:5000")
	flag.StringVar(&c.moatUser, "moat-user", "admin", "moat user for /oauth2/token")
	flag.StringVar(&c.distURL, "distribution", "", "Distribution base URL")
	flag.StringVar(&c.diskDir, "disk", os.TempDir(), "directory on the registries' disk for the write bound")
	flag.StringVar(&c.moatData, "moat-data", "", "compare: moat's --data-dir, to remove the blobs of finished push repetitions (see prune)")
	flag.StringVar(&c.distData, "distribution-data", "", "compare: Distribution's filesystem rootdirectory, likewise")
	flag.StringVar(&c.out, "out", "BENCHMARKS.md", "report to write")
	flag.StringVar(&c.command, "command", "./scripts/bench.sh", "command line recorded in the report")
	flag.StringVar(&c.moatVersion, "moat-version", "", "moat version or commit recorded in the report")
	flag.StringVar(&c.distVersion, "distribution-version", "v3.1.2", "Distribution version recorded in the report")
	flag.BoolVar(&c.quick, "quick", false, "small sizes and short runs, to check the harness itself")
	flag.StringVar(&c.mode, "mode", modeCompare, "what to measure: compare (moat against Distribution), scaleout or firewall")
	flag.StringVar(&c.embeddedURL, "embedded", "", "scaleout: base URL of moat on its embedded stores (SQLite and a directory)")
	replicas := flag.String("replicas", "", "scaleout: comma-separated base URLs of two moat replicas over PostgreSQL and Azurite")
	flag.StringVar(&c.postgresVersion, "postgres-version", "", "scaleout: PostgreSQL version recorded in the report")
	flag.StringVar(&c.azuriteVersion, "azurite-version", "", "scaleout: Azurite version recorded in the report")
	flag.StringVar(&c.netruleBench, "netrule-bench", "", "firewall: file with the output of go test -bench . ./internal/netrule")
	flag.StringVar(&c.netruleBenchCommand, "netrule-bench-command", "go test -run '^$' -bench . ./internal/netrule", "firewall: the command that produced -netrule-bench")
	flag.StringVar(&c.registryID, "registry-id", defaultRegistryID, "firewall: ARM id of the registry served at -moat's address")
	flag.Parse()
	if *replicas != "" {
		c.replicaURLs = strings.Split(*replicas, ",")
	}
	// The password comes from the environment so that it does not show in
	// the process list.
	c.moatPassword = os.Getenv("BENCH_MOAT_PASSWORD")

	if c.quick {
		c.sizes = []int64{1 * mib, 8 * mib, 32 * mib}
		c.chunk = 4 * mib
		c.loadDuration = 500 * time.Millisecond
		c.concurrencies = []int{1, 8, 32}
		c.tagCount = 500
	} else {
		c.sizes = []int64{1 * mib, 64 * mib, 512 * mib}
		c.chunk = 16 * mib
		c.loadDuration = 3 * time.Second
		c.concurrencies = []int{1, 8, 32}
		c.tagCount = 10000
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(logger)
	if err := run(context.Background(), c); err != nil {
		slog.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	start := time.Now()
	var (
		md  string
		err error
	)
	switch c.mode {
	case modeCompare:
		md, err = runCompare(ctx, c)
	case modeScaleout:
		md, err = runScaleout(ctx, c)
	case modeFirewall:
		md, err = runFirewall(ctx, c)
	default:
		return fmt.Errorf("-mode %q: want compare, scaleout or firewall", c.mode)
	}
	if err != nil {
		return err
	}
	if _, err := writeMerged(c.out, md, c.mode); err != nil {
		return err
	}
	fmt.Print(md)
	slog.Info("report written", "file", c.out, "mode", c.mode, "elapsed", time.Since(start).Round(time.Second))
	return nil
}

// runCompare measures moat against Distribution and returns the report's
// preamble and the sections it owns.
func runCompare(ctx context.Context, c config) (string, error) {
	if c.moatURL == "" || c.distURL == "" {
		return "", errors.New("both -moat and -distribution are required")
	}
	if c.moatPassword == "" {
		return "", errors.New("BENCH_MOAT_PASSWORD is not set")
	}
	start := time.Now()
	rep := &report{config: c, started: start.UTC()}
	rep.machine = describeMachine()

	slog.Info("measuring the machine's bound", "disk", c.diskDir)
	b, err := measureBound(c.diskDir, c.sizes[len(c.sizes)-1])
	if err != nil {
		return "", fmt.Errorf("machine bound: %w", err)
	}
	rep.bound = b

	moat, err := newTarget(ctx, "moat", c.moatURL, c.moatUser, c.moatPassword)
	if err != nil {
		return "", err
	}
	dist, err := newTarget(ctx, "Distribution", c.distURL, "", "")
	if err != nil {
		return "", err
	}
	if c.moatData != "" {
		moat.blobFile = moatBlobFile(c.moatData)
	}
	if c.distData != "" {
		dist.blobFile = distBlobFile(c.distData)
	}
	targets := []*target{moat, dist}

	slog.Info("blob push and pull")
	if rep.push, rep.pull, err = benchBlobs(ctx, c, targets); err != nil {
		return "", err
	}
	slog.Info("manifest GET and HEAD")
	if rep.manifests, err = benchManifests(ctx, c, targets); err != nil {
		return "", err
	}
	slog.Info("tags list", "tags", c.tagCount)
	if rep.tags, err = benchTags(ctx, c, targets); err != nil {
		return "", err
	}
	rep.elapsed = time.Since(start)
	return rep.markdown(), nil
}

// newHTTPClient is the client both registries are measured with: keep-alive
// connections for up to 64 concurrent requests, no transparent compression,
// large socket buffers for blob bodies.
func newHTTPClient() *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     256 * kib,
		ReadBufferSize:      256 * kib,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   10 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			// A redirect (e.g. to a storage URL) would be a different
			// measurement; the registries here serve blobs themselves.
			return http.ErrUseLastResponse
		},
	}
}

func goVersion() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }
