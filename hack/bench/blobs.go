package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const blobRepo = "bench/blobs"

// throughput is bytes moved in a time.
type throughput struct {
	bytes int64
	dur   time.Duration
}

func (t throughput) add(bytes int64, d time.Duration) throughput {
	return throughput{bytes: t.bytes + bytes, dur: t.dur + d}
}

// mbps is throughput in MB/s (10^6 bytes per second).
func (t throughput) mbps() float64 {
	if t.dur <= 0 {
		return 0
	}
	return float64(t.bytes) / t.dur.Seconds() / 1e6
}

// blobResult is one row of the push or pull table.
type blobResult struct {
	size int64
	mode string // one of pushModes (push); "" for pull
	reps int
	by   map[string]throughput // by target name
	// bound is the machine's sha256+write bound for the row's size,
	// measured after each repetition of a push (zero for pulls), so the
	// ratio to it does not depend on how the disk's rate drifts during
	// the run.
	bound throughput
	// boundRatios is moat's MB/s over the bound's for each repetition of a
	// push, each with the bound measured right after it: the spread the
	// row's totals hide.
	boundRatios []float64
}

// pushReps is how many repetitions a push row of size gets. At least 8:
// with 4, one repetition caught in a pause of the machine (seen at half
// speed, for both registries) decided a 512 MiB row.
func pushReps(size int64) int { return repsFor(size, 256*mib, 8, 16) }

// endRep adds one repetition's bound to the row, and moat's push in that
// repetition over it to the row's ratios.
func (r *blobResult) endRep(moat, bound throughput) {
	r.bound = r.bound.add(bound.bytes, bound.dur)
	r.boundRatios = append(r.boundRatios, ratio(moat.mbps(), bound.mbps()))
}

// repsFor spreads about budget bytes over repetitions, between lo and hi.
func repsFor(size, budget int64, lo, hi int) int {
	return int(min(max(budget/size, int64(lo)), int64(hi)))
}

func benchBlobs(ctx context.Context, c config, targets []*target) (push, pull []blobResult, err error) {
	for _, t := range targets {
		if err := t.authorize(ctx, blobRepo); err != nil {
			return nil, nil, err
		}
	}
	// The run id keeps blobs of this run apart from any earlier one.
	runID := make([]byte, 8)
	if _, err := rand.Read(runID); err != nil {
		return nil, nil, err
	}
	var counter uint64
	// last[size][target] is a pushed blob's digest, pulled afterwards.
	last := map[int64]map[string]string{}

	for _, size := range c.sizes {
		data := make([]byte, size)
		if _, err := rand.Read(data); err != nil {
			return nil, nil, err
		}
		copy(data[8:], runID)
		last[size] = map[string]string{}
		// prev is the digest of the repetition before, pruned after the
		// next one: the last of each size stays for the pulls.
		var prev string
		for _, mode := range pushModes {
			res := blobResult{size: size, mode: mode, reps: pushReps(size), by: map[string]throughput{}}
			for rep := 0; rep < res.reps; rep++ {
				// Fresh content for every repetition so that no registry can
				// answer "already there"; the digest is computed before the
				// clock starts. The same bytes go to both registries, which
				// keep separate stores.
				counter++
				binary.BigEndian.PutUint64(data[:8], counter)
				sum := sha256.Sum256(data)
				dgst := "sha256:" + hex.EncodeToString(sum[:])
				repLog := []any{"size", sizeLabel(size), "mode", mode, "rep", rep + 1}
				var moatRep throughput
				for _, t := range alternate(targets, rep) {
					settle()
					start := time.Now()
					err = pushBlob(ctx, mode, t, blobRepo, data, dgst, c.chunk)
					if err != nil {
						return nil, nil, fmt.Errorf("push %s %s: %w", sizeLabel(size), mode, err)
					}
					one := throughput{bytes: size, dur: time.Since(start)}
					res.by[t.name] = res.by[t.name].add(one.bytes, one.dur)
					if t.name == nameMoat {
						moatRep = one
					}
					last[size][t.name] = dgst
					repLog = append(repLog, t.name+" MB/s", fmt.Sprintf("%.0f", one.mbps()))
				}
				b, err := bestWrite(c.diskDir, data, true)
				if err != nil {
					return nil, nil, fmt.Errorf("bound for %s: %w", sizeLabel(size), err)
				}
				res.endRep(moatRep, b)
				// One line per repetition, so a run's spread can be read
				// from its log.
				slog.Info("push repetition", append(repLog, "bound MB/s", fmt.Sprintf("%.0f", b.mbps()))...)
				if err := prune(targets, prev); err != nil {
					return nil, nil, err
				}
				prev = dgst
			}
			for _, t := range targets {
				slog.Info("push", "size", sizeLabel(size), "mode", mode, "target", t.name, "MB/s", fmt.Sprintf("%.0f", res.by[t.name].mbps()))
			}
			slog.Info("push", "size", sizeLabel(size), "mode", mode, "bound MB/s", fmt.Sprintf("%.0f", res.bound.mbps()))
			push = append(push, res)
		}
	}

	for _, size := range c.sizes {
		res := blobResult{size: size, reps: repsFor(size, 512*mib, 3, 32), by: map[string]throughput{}}
		// One untimed pull each first, so both serve from the page cache:
		// moat drops what it writes from the cache once it is durable,
		// Distribution leaves its writes there, so without this the table
		// would compare a disk read with a cache read.
		for _, t := range targets {
			if _, err := pullBlob(ctx, t, blobRepo, last[size][t.name]); err != nil {
				return nil, nil, fmt.Errorf("warming pull %s: %w", sizeLabel(size), err)
			}
		}
		for rep := 0; rep < res.reps; rep++ {
			for _, t := range alternate(targets, rep) {
				start := time.Now()
				n, err := pullBlob(ctx, t, blobRepo, last[size][t.name])
				if err != nil {
					return nil, nil, fmt.Errorf("pull %s: %w", sizeLabel(size), err)
				}
				if n != size {
					return nil, nil, fmt.Errorf("pull %s from %s: got %d bytes", sizeLabel(size), t.name, n)
				}
				res.by[t.name] = res.by[t.name].add(n, time.Since(start))
			}
		}
		for _, t := range targets {
			slog.Info("pull", "size", sizeLabel(size), "target", t.name, "MB/s", fmt.Sprintf("%.0f", res.by[t.name].mbps()))
		}
		pull = append(pull, res)
	}
	return push, pull, nil
}

// prune removes a blob pushed in an earlier repetition from the storage of
// every target that says where its blobs are, untimed. No later request
// reads it, and without this a run would hold every pushed blob twice:
// 27 GiB, on a disk whose rate here fell as it filled (the bound measured
// during the last row at about two thirds of the earlier rows').
// Neither registry frees a blob's bytes on DELETE (both only unlink it from
// the repository), so the files are removed directly.
func prune(targets []*target, dgst string) error {
	if dgst == "" {
		return nil
	}
	for _, t := range targets {
		if t.blobFile == nil {
			continue
		}
		// A path that is not there means the layout assumed here is wrong:
		// fail rather than fill the disk unnoticed.
		p := t.blobFile(dgst)
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: pruning blob %s: %w", t.name, dgst, err)
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("%s: pruning blob %s: %w", t.name, dgst, err)
		}
	}
	return nil
}

// moatBlobFile is where moat's embedded blob store (--data-dir dir) keeps
// a blob: blobs/blobs/<algorithm>/<first two hex digits>/<hex>.
func moatBlobFile(dir string) func(string) string {
	return func(dgst string) string {
		alg, enc, _ := strings.Cut(dgst, ":")
		return filepath.Join(dir, "blobs", "blobs", alg, enc[:2], enc)
	}
}

// distBlobFile is the directory in which Distribution's filesystem driver
// (rootdirectory dir) keeps a blob's data.
func distBlobFile(dir string) func(string) string {
	return func(dgst string) string {
		alg, enc, _ := strings.Cut(dgst, ":")
		return filepath.Join(dir, "docker", "registry", "v2", "blobs", alg, enc[:2], enc)
	}
}

// alternate returns the targets in turn order for a repetition, so that
// each goes first half of the time.
func alternate(targets []*target, rep int) []*target {
	if rep%2 == 0 {
		return targets
	}
	out := make([]*target, 0, len(targets))
	for i := len(targets) - 1; i >= 0; i-- {
		out = append(out, targets[i])
	}
	return out
}

func startUpload(ctx context.Context, t *target, repo string) (string, error) {
	req, err := t.newRequest(ctx, http.MethodPost, repo, "/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	resp, err := t.do(req, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	drain(resp)
	return location(resp)
}

func withDigest(loc, dgst string) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + dgst
}

// pushModes are the ways a blob is pushed, each a row of the push table:
//   - monolithic: POST, then one PUT with the body and the digest;
//   - streamed: POST, one PATCH with the whole body and no Content-Range,
//     then an empty PUT with the digest: how crane (go-containerregistry's
//     streamBlob) and skopeo (containers/image) push a layer;
//   - chunked: POST, PATCHes of the configured chunk size with
//     Content-Range, then an empty PUT with the digest.
var pushModes = []string{"monolithic", "streamed", "chunked"}

// pushBlob uploads data to repo in the given mode.
func pushBlob(ctx context.Context, mode string, t *target, repo string, data []byte, dgst string, chunk int64) error {
	switch mode {
	case "monolithic":
		return pushMonolithic(ctx, t, repo, data, dgst)
	case "streamed":
		return pushStreamed(ctx, t, repo, data, dgst)
	case "chunked":
		return pushChunked(ctx, t, repo, data, dgst, chunk)
	}
	return fmt.Errorf("unknown push mode %q", mode)
}

// pushMonolithic uploads data in one PUT after the POST that opens the
// upload.
func pushMonolithic(ctx context.Context, t *target, repo string, data []byte, dgst string) error {
	loc, err := startUpload(ctx, t, repo)
	if err != nil {
		return err
	}
	return commit(ctx, t, repo, loc, dgst, data)
}

// pushStreamed uploads data in one PATCH without Content-Range, as crane
// and skopeo do, and closes the upload with an empty PUT.
func pushStreamed(ctx context.Context, t *target, repo string, data []byte, dgst string) error {
	loc, err := startUpload(ctx, t, repo)
	if err != nil {
		return err
	}
	if loc, err = patch(ctx, t, repo, loc, data, ""); err != nil {
		return err
	}
	return commit(ctx, t, repo, loc, dgst, nil)
}

// pushChunked uploads data in PATCH requests of chunk bytes and closes the
// upload with an empty PUT.
func pushChunked(ctx context.Context, t *target, repo string, data []byte, dgst string, chunk int64) error {
	loc, err := startUpload(ctx, t, repo)
	if err != nil {
		return err
	}
	size := int64(len(data))
	for off := int64(0); off < size; off += chunk {
		end := min(off+chunk, size)
		cr := strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(end-1, 10)
		if loc, err = patch(ctx, t, repo, loc, data[off:end], cr); err != nil {
			return err
		}
	}
	return commit(ctx, t, repo, loc, dgst, nil)
}

// patch sends body in one PATCH to the upload at loc, with contentRange
// unless it is empty, and returns the upload's next location.
func patch(ctx context.Context, t *target, repo, loc string, body []byte, contentRange string) (string, error) {
	req, err := t.newRequest(ctx, http.MethodPatch, repo, loc, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	if contentRange != "" {
		req.Header.Set("Content-Range", contentRange)
	}
	resp, err := t.do(req, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	drain(resp)
	return location(resp)
}

// commit closes the upload at loc with a PUT carrying the digest and body,
// the blob's last bytes (all of them for a monolithic push), or none.
func commit(ctx context.Context, t *target, repo, loc, dgst string, body []byte) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := t.newRequest(ctx, http.MethodPut, repo, withDigest(loc, dgst), r)
	if err != nil {
		return err
	}
	if body != nil {
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := t.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

var copyBuf = make([]byte, 256*kib)

// pullBlob GETs a blob and returns how many bytes arrived. It does not
// hash them: the client's CPU would compete with the server's on this
// machine.
func pullBlob(ctx context.Context, t *target, repo, dgst string) (int64, error) {
	req, err := t.newRequest(ctx, http.MethodGet, repo, "/v2/"+repo+"/blobs/"+dgst, nil)
	if err != nil {
		return 0, err
	}
	resp, err := t.do(req, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	n, err := io.CopyBuffer(io.Discard, resp.Body, copyBuf)
	if err != nil {
		return n, fmt.Errorf("%s: reading blob: %w", t.name, err)
	}
	return n, nil
}

func sizeLabel(size int64) string {
	switch {
	case size >= mib && size%mib == 0:
		return strconv.FormatInt(size/mib, 10) + " MiB"
	case size >= kib && size%kib == 0:
		return strconv.FormatInt(size/kib, 10) + " KiB"
	}
	return strconv.FormatInt(size, 10) + " B"
}
