package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
	"github.com/moat-registry/moat/internal/testsupport/pgtest"
	"github.com/moat-registry/moat/internal/transfer"
)

const (
	replSub  = "/subscriptions/00000000-0000-0000-0000-000000000000"
	replRegs = replSub + "/resourceGroups/repl/providers/Microsoft.ContainerRegistry/registries/"
	replAPI  = "?api-version=2023-01-01-preview"
)

// replicaSet is n `moat serve` replicas on one PostgreSQL and one Azurite
// container, with a short pipeline lease so that a takeover is quick.
type replicaSet struct {
	procs    []*process
	urls     []string
	password string
	token    string
}

func startPipelineReplicas(t *testing.T, n int, password string, extra ...string) *replicaSet {
	t.Helper()
	dsn := pgtest.DSN(t)
	az := azuritetest.Config(t)
	env := []string{
		"MOAT_ADMIN_PASSWORD=" + password,
		"MOAT_DATABASE=" + dsn,
		"MOAT_BLOB_STORE=azblob://" + az.Account + "/" + az.Container + "?endpoint=" + az.Endpoint,
		"MOAT_AZBLOB_ACCOUNT_KEY=" + az.AccountKey,
	}
	rs := &replicaSet{password: password}
	for range n {
		args := append([]string{"serve", "--insecure-http", "--listen", "127.0.0.1:0",
			"--data-dir", filepath.Join(t.TempDir(), "data"), "--pipeline-lease-ttl", "3s"}, extra...)
		p, u := startMoat(t, env, args...)
		rs.procs, rs.urls = append(rs.procs, p), append(rs.urls, u)
	}
	form := "grant_type=password&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&username=admin&password=" + password +
		"&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+openid"
	resp, err := http.Post(rs.urls[0]+"/organizations/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	_ = resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("management token: %d %v", resp.StatusCode, err)
	}
	rs.token = tok.AccessToken
	return rs
}

// arm sends one management request to replica i.
func (rs *replicaSet) arm(t *testing.T, i int, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, rs.urls[i]+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+rs.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on replica %d: %v", method, path, i, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (rs *replicaSet) armOK(t *testing.T, i int, method, path, body string) string {
	t.Helper()
	code, out := rs.arm(t, i, method, path, body)
	if code >= 300 {
		t.Fatalf("%s %s on replica %d: %d %s", method, path, i, code, out)
	}
	return out
}

// via is a ggcr option that sends every request to replica i, whatever
// the host name ({registry}.localhost does not resolve here).
func (rs *replicaSet) via(i int) remote.Option {
	addr := strings.TrimPrefix(rs.urls[i], "http://")
	var d net.Dialer
	return remote.WithTransport(&http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}})
}

// host is replica i's address for registry reg.
func (rs *replicaSet) host(i int, reg string) string {
	_, port, _ := strings.Cut(strings.TrimPrefix(rs.urls[i], "http://"), ":")
	return reg + ".localhost:" + port
}

type replRun struct {
	Name       string            `json:"name"`
	Properties transfer.RunProps `json:"properties"`
}

// runs lists the pipeline runs of reg through replica i.
func (rs *replicaSet) runs(t *testing.T, i int, reg string) []replRun {
	t.Helper()
	out := rs.armOK(t, i, http.MethodGet, replRegs+reg+"/pipelineRuns"+replAPI, "")
	var page struct {
		Value []replRun `json:"value"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("runs: %v %s", err, out)
	}
	return page.Value
}

// leaseHolder is the index of the replica whose log says it took the
// transfer-pipelines lease, among alive.
func (rs *replicaSet) leaseHolder(t *testing.T, alive ...int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var holders []int
		for _, i := range alive {
			for _, l := range strings.Split(rs.procs[i].output(), "\n") {
				if strings.Contains(l, "lease acquired") && strings.Contains(l, "lease=transfer-pipelines") {
					holders = append(holders, i)
					break
				}
			}
		}
		if len(holders) == 1 {
			return holders[0]
		}
		if len(holders) > 1 {
			t.Fatalf("replicas %v all took the transfer-pipelines lease", holders)
		}
		if time.Now().After(deadline) {
			t.Fatal("no replica took the transfer-pipelines lease")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countLines counts the log lines, over every replica, that contain all of
// parts.
func (rs *replicaSet) countLines(parts ...string) int {
	n := 0
	for _, p := range rs.procs {
		for _, l := range strings.Split(p.output(), "\n") {
			ok := true
			for _, s := range parts {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				n++
			}
		}
	}
	return n
}

// waitFor polls cond every 100 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v; last state: %s", what, d, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slowArchive writes at path a tar that begins with a sparse junk entry of
// junk bytes (which an import reads through, and skips) followed by the
// archive real: an import of it takes seconds without costing disk.
func slowArchive(t *testing.T, path string, junk int64, real []byte) {
	t.Helper()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: "padding", Typeflag: tar.TypeReg, Mode: 0o644, Size: junk}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(hdr.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(junk, io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(real); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPipelinesExactlyOnceAcrossReplicas runs two replicas on one
// PostgreSQL and Azurite: export runs created through replica A run once
// each, whichever replica holds the lease; an import pipeline's source
// trigger on a directory both see imports each archive exactly once (one
// run per archive, one "found" and one "succeeded" log line over both
// replicas, the tags present); and when the replica holding the
// transfer-pipelines lease is killed in the middle of an import, the other
// takes the lease, fails the interrupted run with a clear message, does not
// import that archive again, and its trigger imports the next archive.
func TestPipelinesExactlyOnceAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with PostgreSQL and Azurite")
	}
	rs := startPipelineReplicas(t, 2, "pipe-replicas-1")
	rs.armOK(t, 0, http.MethodPut, replSub+"/resourcegroups/repl?api-version=2021-04-01", `{"location":"local"}`)
	for _, reg := range []string{"xsrc01", "xdst01"} {
		rs.armOK(t, 0, http.MethodPut, replRegs+reg+"?api-version=2023-07-01", `{"location":"local","sku":{"name":"Premium"}}`)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: rs.password})
	const n = 4
	want := map[string]string{}
	for k := 1; k <= n; k++ {
		img, err := random.Image(2048, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(fmt.Sprintf("%s/app:v%d", rs.host(0, "xsrc01"), k), name.Insecure)
		if err := remote.Write(ref, img, auth, rs.via(0)); err != nil {
			t.Fatalf("push v%d: %v", k, err)
		}
		d, _ := img.Digest()
		want[fmt.Sprintf("v%d", k)] = d.String()
	}

	// Export runs, all created through replica A, each run once.
	staging, watch := t.TempDir(), t.TempDir()
	rs.armOK(t, 0, http.MethodPut, replRegs+"xsrc01/exportPipelines/out"+replAPI,
		`{"properties":{"target":{"type":"AzureStorageBlobContainer","uri":"file://`+staging+`"}}}`)
	for k := 1; k <= n; k++ {
		rs.armOK(t, 0, http.MethodPut, fmt.Sprintf("%sxsrc01/pipelineRuns/exp-%d%s", replRegs, k, replAPI), fmt.Sprintf(
			`{"properties":{"request":{"pipelineResourceId":"%sxsrc01/exportPipelines/out","artifacts":["app:v%d"],"target":{"type":"AzureStorageBlob","name":"exp-%d.tar"}}}}`,
			replRegs, k, k))
	}
	waitFor(t, 30*time.Second, "the export runs", func() (bool, string) {
		runs := rs.runs(t, 1, "xsrc01")
		done := 0
		for _, r := range runs {
			switch r.Properties.Response.Status {
			case transfer.RunSucceeded:
				done++
			case transfer.RunFailed:
				t.Fatalf("export run %s failed: %s", r.Name, r.Properties.Response.PipelineRunErrorMessage)
			}
		}
		return done == n, fmt.Sprint(runs)
	})
	for k := 1; k <= n; k++ {
		id := fmt.Sprintf("pipelineRuns/exp-%d ", k)
		if c := rs.countLines("pipeline run succeeded", id); c != 1 {
			t.Fatalf("export run exp-%d ran %d times over both replicas", k, c)
		}
	}

	// An import pipeline, created through replica B, whose trigger watches
	// a directory; three archives are dropped at once.
	rs.armOK(t, 1, http.MethodPut, replRegs+"xdst01/importPipelines/inbound"+replAPI,
		`{"properties":{"source":{"type":"AzureStorageBlobContainer","uri":"file://`+watch+`"},"trigger":{"sourceTrigger":{"status":"Enabled"}}}}`)
	for k := 1; k <= 3; k++ {
		if err := os.Rename(filepath.Join(staging, fmt.Sprintf("exp-%d.tar", k)), filepath.Join(watch, fmt.Sprintf("exp-%d.tar", k))); err != nil {
			t.Fatal(err)
		}
	}
	headOK := func(i int, tag string) bool {
		ref, _ := name.ParseReference(rs.host(i, "xdst01")+"/app:"+tag, name.Insecure)
		d, err := remote.Head(ref, auth, rs.via(i))
		return err == nil && d.Digest.String() == want[tag]
	}
	triggerRuns := func(i int) (map[string][]replRun, string) {
		by := map[string][]replRun{}
		for _, r := range rs.runs(t, i, "xdst01") {
			if r.Properties.Response.Trigger == nil || r.Properties.Request.Source == nil {
				t.Fatalf("run %s in xdst01 was not started by the trigger: %+v", r.Name, r.Properties)
			}
			by[r.Properties.Request.Source.Name] = append(by[r.Properties.Request.Source.Name], r)
		}
		b, _ := json.Marshal(by)
		return by, string(b)
	}
	waitFor(t, 30*time.Second, "the trigger importing three archives", func() (bool, string) {
		by, state := triggerRuns(0)
		for k := 1; k <= 3; k++ {
			rr := by[fmt.Sprintf("exp-%d.tar", k)]
			if len(rr) != 1 || rr[0].Properties.Response.Status != transfer.RunSucceeded {
				return false, state
			}
		}
		return true, state
	})
	for k := 1; k <= 3; k++ {
		tag := fmt.Sprintf("v%d", k)
		if !headOK(0, tag) || !headOK(1, tag) {
			t.Fatalf("app:%s is not in xdst01 with digest %s", tag, want[tag])
		}
		if c := rs.countLines("source trigger found a new archive", fmt.Sprintf("archive=exp-%d.tar", k)); c != 1 {
			t.Fatalf("exp-%d.tar was found %d times over both replicas", k, c)
		}
	}

	// Kill the lease holder in the middle of an import.
	holder := rs.leaseHolder(t, 0, 1)
	survivor := 1 - holder
	last, err := os.ReadFile(filepath.Join(staging, "exp-4.tar"))
	if err != nil {
		t.Fatal(err)
	}
	slowArchive(t, filepath.Join(staging, "big.tar"), 64<<30, last)
	if err := os.Rename(filepath.Join(staging, "big.tar"), filepath.Join(watch, "big.tar")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the trigger starting big.tar", func() (bool, string) {
		by, state := triggerRuns(survivor)
		rr := by["big.tar"]
		if len(rr) == 1 && rr[0].Properties.Response.Status != transfer.RunQueued && rr[0].Properties.Response.Status != transfer.RunRunning {
			t.Fatalf("big.tar finished before the holder was killed: %s", state)
		}
		return len(rr) == 1 && rr[0].Properties.Response.Status == transfer.RunRunning, state
	})
	if err := rs.procs[holder].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, 20*time.Second, "the survivor failing the interrupted run", func() (bool, string) {
		by, state := triggerRuns(survivor)
		rr := by["big.tar"]
		return len(rr) == 1 && rr[0].Properties.Response.Status == transfer.RunFailed, state
	})
	t.Logf("the survivor failed the interrupted run %v after the kill", time.Since(killed).Round(time.Millisecond))
	by, _ := triggerRuns(survivor)
	big := by["big.tar"][0].Properties
	if !strings.Contains(big.Response.PipelineRunErrorMessage, "interrupted") || big.ProvisioningState != transfer.ProvisioningFailed || big.Response.FinishTime == nil {
		t.Fatalf("interrupted run: %+v", big)
	}
	if c := rs.countLines("lease acquired", "lease=transfer-pipelines"); c != 2 {
		t.Fatalf("the lease was taken %d times, want 2 (first holder, then the survivor)", c)
	}
	if headOK(survivor, "v4") {
		t.Fatal("the interrupted import tagged app:v4")
	}

	// The survivor's trigger goes on: the next archive is imported once,
	// and big.tar is not tried again.
	if err := os.Rename(filepath.Join(staging, "exp-4.tar"), filepath.Join(watch, "exp-4.tar")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the survivor's trigger importing exp-4.tar", func() (bool, string) {
		by, state := triggerRuns(survivor)
		rr := by["exp-4.tar"]
		return len(rr) == 1 && rr[0].Properties.Response.Status == transfer.RunSucceeded && headOK(survivor, "v4"), state
	})
	time.Sleep(2 * time.Second) // a few more polls
	by, state := triggerRuns(survivor)
	if len(by) != 5 {
		t.Fatalf("trigger runs by archive: %s", state)
	}
	for arch, rr := range by {
		if len(rr) != 1 {
			t.Fatalf("%s was imported by %d runs: %s", arch, len(rr), state)
		}
	}
	if c := rs.countLines("source trigger found a new archive", "archive=big.tar"); c != 1 {
		t.Fatalf("big.tar was found %d times", c)
	}
	rs.procs[survivor].stop(t)
}
