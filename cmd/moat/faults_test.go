package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/pflag"

	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
	"github.com/moat-registry/moat/internal/testsupport/pgtest"
)

// faultPassword is the admin password of the replicas in the fault tests.
const faultPassword = "fault-secret-1"

// startReplicas starts n `moat serve` processes over one fresh PostgreSQL
// database and one Azurite container and returns them with their base URLs.
func startReplicas(t *testing.T, n int) ([]*process, []string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	az := azuritetest.Config(t)
	env := []string{
		"MOAT_ADMIN_PASSWORD=" + faultPassword,
		"MOAT_DATABASE=" + dsn,
		"MOAT_BLOB_STORE=azblob://" + az.Account + "/" + az.Container + "?endpoint=" + az.Endpoint,
		"MOAT_AZBLOB_ACCOUNT_KEY=" + az.AccountKey,
	}
	procs := make([]*process, n)
	urls := make([]string, n)
	for i := range procs {
		dataDir := filepath.Join(t.TempDir(), "data")
		procs[i], urls[i] = startMoat(t, env, "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	}
	return procs, urls
}

// faultClient never waits long: a request to a dead replica or a stuck
// database fails the test's step instead of hanging it.
var faultClient = &http.Client{Timeout: 10 * time.Second}

// send makes an authenticated request and returns the response with its
// body read.
func send(method, rawURL string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.SetBasicAuth("admin", faultPassword)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := faultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	cerr := resp.Body.Close()
	if err == nil {
		err = cerr
	}
	return resp, b, err
}

// location resolves an upload's Location header against base, so that it
// can be sent to any replica (the path and query are what identify it).
func location(base, loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("location %q: %w", loc, err)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u.Scheme, u.Host = b.Scheme, b.Host
	return u.String(), nil
}

// startUpload opens an upload in repo through base and returns its path.
func startUpload(base, repo string) (string, error) {
	resp, b, err := send(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %d %s", resp.StatusCode, b)
	}
	return resp.Header.Get("Location"), nil
}

// patchChunk sends data at offset to the upload at loc through base and
// returns the next Location.
func patchChunk(base, loc string, offset int, data []byte) (string, error) {
	u, err := location(base, loc)
	if err != nil {
		return "", err
	}
	resp, b, err := send(http.MethodPatch, u, data, map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", offset, offset+len(data)-1),
	})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("PATCH at %d: %d %s", offset, resp.StatusCode, b)
	}
	if want := fmt.Sprintf("0-%d", offset+len(data)-1); resp.Header.Get("Range") != want {
		return "", fmt.Errorf("PATCH at %d: Range %q, want %q", offset, resp.Header.Get("Range"), want)
	}
	return resp.Header.Get("Location"), nil
}

// finishUpload commits the upload at loc through base as dgst.
func finishUpload(base, loc string, dgst digest.Digest) error {
	u, err := location(base, loc)
	if err != nil {
		return err
	}
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	q := pu.Query()
	q.Set("digest", dgst.String())
	pu.RawQuery = q.Encode()
	resp, b, err := send(http.MethodPut, pu.String(), nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT %s: %d %s", dgst, resp.StatusCode, b)
	}
	return nil
}

// pushBlob uploads data in one POST + PUT.
func pushBlob(base, repo string, data []byte) error {
	loc, err := startUpload(base, repo)
	if err != nil {
		return err
	}
	u, err := location(base, loc)
	if err != nil {
		return err
	}
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	q := pu.Query()
	q.Set("digest", digest.FromBytes(data).String())
	pu.RawQuery = q.Encode()
	resp, b, err := send(http.MethodPut, pu.String(), data, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("PUT: %d %s", resp.StatusCode, b)
	}
	return nil
}

// pullBlob fetches a blob and checks that its content hashes to dgst.
func pullBlob(base, repo string, dgst digest.Digest) error {
	resp, b, err := send(http.MethodGet, base+"/v2/"+repo+"/blobs/"+dgst.String(), nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", dgst, resp.StatusCode)
	}
	if got := digest.FromBytes(b); got != dgst {
		return fmt.Errorf("GET %s: content hashes to %s (%d bytes)", dgst, got, len(b))
	}
	return nil
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFaultReplicaKilledMidUpload: a chunked upload begun on replica A, which
// is then killed (SIGKILL, no chance to clean up), is finished on replica B
// from where A left it, and the blob B serves is the one the client sent.
func TestFaultReplicaKilledMidUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with PostgreSQL and Azurite")
	}
	procs, urls := startReplicas(t, 2)
	a, b := urls[0], urls[1]
	const chunk = 1 << 20
	data := randomBytes(t, 5*chunk+12345)
	want := digest.FromBytes(data)

	loc, err := startUpload(a, "team/big")
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for range 3 {
		if loc, err = patchChunk(a, loc, off, data[off:off+chunk]); err != nil {
			t.Fatalf("replica A: %v", err)
		}
		off += chunk
	}
	if err := procs[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-procs[0].done; err == nil {
		t.Fatal("replica A exited cleanly after SIGKILL")
	}
	if _, _, err := send(http.MethodGet, a+"/healthz", nil, nil); err == nil {
		t.Fatal("replica A still answers after SIGKILL")
	}

	// B reports the progress A made.
	u, err := location(b, loc)
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err := send(http.MethodGet, u, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != fmt.Sprintf("0-%d", off-1) {
		t.Fatalf("upload status on replica B: %d Range %q %s", resp.StatusCode, resp.Header.Get("Range"), body)
	}
	for off < len(data) {
		end := min(off+chunk, len(data))
		if loc, err = patchChunk(b, loc, off, data[off:end]); err != nil {
			t.Fatalf("replica B: %v", err)
		}
		off = end
	}
	if err := finishUpload(b, loc, want); err != nil {
		t.Fatalf("replica B: %v", err)
	}
	if err := pullBlob(b, "team/big", want); err != nil {
		t.Fatalf("replica B: %v", err)
	}
	procs[1].stop(t)
}

// TestFaultDatabaseRestartUnderLoad: PostgreSQL restarts while a client
// pushes and pulls through a replica. Requests may fail while it is down;
// afterwards the replica is ready again without being restarted, pushes
// succeed, and every blob whose push was acknowledged, before, during or
// after the restart, comes back whole.
func TestFaultDatabaseRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary with PostgreSQL and Azurite")
	}
	procs, urls := startReplicas(t, 1)
	base := urls[0]
	const repo = "team/load"

	var (
		mu       sync.Mutex
		pushed   []digest.Digest
		failures int
	)
	load := func(stop <-chan struct{}, done chan<- error) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			data := make([]byte, 64<<10+i)
			if _, err := rand.Read(data); err != nil {
				done <- err
				return
			}
			d := digest.FromBytes(data)
			if err := pushBlob(base, repo, data); err != nil {
				mu.Lock()
				failures++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			mu.Lock()
			pushed = append(pushed, d)
			prev := pushed[i%len(pushed)]
			mu.Unlock()
			// A pull may fail while the database is down, but it must never
			// return wrong bytes.
			if err := pullBlob(base, repo, prev); err != nil && strings.Contains(err.Error(), "content hashes to") {
				done <- err
				return
			}
		}
	}
	stop, done := make(chan struct{}), make(chan error, 1)
	go load(stop, done)
	// Wait for the load to be under way (a few pushes done), however slow
	// the machine: a fixed second was not always enough for the first push
	// (bcrypt, a cold PostgreSQL) on a busy CI machine.
	before := 0
	for waitUntil := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		before = len(pushed)
		mu.Unlock()
		if before >= 3 {
			break
		}
		if time.Now().After(waitUntil) {
			close(stop)
			t.Fatalf("only %d pushes succeeded in 30s before the restart:\n%s", before, procs[0].output())
		}
	}
	restarted := time.Now()
	pgtest.Restart(t, time.Second)
	t.Logf("PostgreSQL restarted in %s", time.Since(restarted).Round(time.Millisecond))

	// The replica is ready again, by itself.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, _, err := send(http.MethodGet, base+"/readyz", nil, nil)
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			t.Fatalf("replica not ready 15s after the restart (%v):\n%s", err, procs[0].output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("ready %s after the restart began", time.Since(restarted).Round(time.Millisecond))
	// Let the load run on the recovered database for a while.
	mu.Lock()
	atReady := len(pushed)
	mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; {
		mu.Lock()
		n := len(pushed)
		mu.Unlock()
		if n >= atReady+5 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			t.Fatalf("pushes do not succeed after the restart:\n%s", procs[0].output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-procs[0].done:
		t.Fatalf("moat exited during the restart: %v\n%s", err, procs[0].output())
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d pushes acknowledged (%d before the restart), %d failed", len(pushed), before, failures)
	for _, d := range pushed {
		if err := pullBlob(base, repo, d); err != nil {
			t.Errorf("after the restart: %v", err)
		}
	}
	procs[0].stop(t)
}

// proxyV2Header is a PROXY protocol v2 header for a TCP over IPv4
// connection from src.
func proxyV2Header(src netip.AddrPort) []byte {
	h := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
	h = append(h, src.Addr().AsSlice()...)
	h = append(h, 127, 0, 0, 1)
	h = binary.BigEndian.AppendUint16(h, src.Port())
	return binary.BigEndian.AppendUint16(h, 443)
}

// getFrom sends pre (a PROXY header, or nothing) and GET /v2/ as admin over
// a connection from the loopback address source, and returns the status and
// body, or an error when moat closed the connection instead.
func getFrom(t *testing.T, addr, source string, pre []byte) (int, string, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("GET /v2/ HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nConnection: close\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString([]byte("admin:"+faultPassword)))
	if _, err := c.Write(append(append([]byte{}, pre...), req...)); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, string(b), err
}

// TestFaultSpoofedProxyHeader runs the binary with --proxy-protocol (from
// MOAT_PROXY_PROTOCOL) behind a "proxy" at 127.0.0.2 and a firewall that
// admits only 127.0.0.9: the client a trusted proxy names is the one the
// firewall judges, and a header from anyone else is refused outright.
func TestFaultSpoofedProxyHeader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	p, base := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=" + faultPassword, "MOAT_PROXY_PROTOCOL=true"},
		"serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--trusted-proxies", "127.0.0.2/32")
	defer p.stop(t)
	addr := strings.TrimPrefix(base, "http://")

	form := "grant_type=password&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&username=admin&password=" + faultPassword +
		"&scope=https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+openid"
	resp, err := http.Post(base+"/organizations/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	var mgmt struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&mgmt)
	_ = resp.Body.Close()
	if err != nil || mgmt.AccessToken == "" {
		t.Fatalf("management token: status %d, %v", resp.StatusCode, err)
	}
	patch, _ := http.NewRequest(http.MethodPatch, base+"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/moat/providers/Microsoft.ContainerRegistry/registries/moat?api-version=2023-07-01",
		strings.NewReader(`{"properties":{"networkRuleSet":{"defaultAction":"Deny","ipRules":[{"action":"Allow","value":"127.0.0.9"}]}}}`))
	patch.Header.Set("Authorization", "Bearer "+mgmt.AccessToken)
	patch.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(patch)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH the firewall: %d", resp.StatusCode)
	}

	claim := func(ip string) []byte { return proxyV2Header(netip.MustParseAddrPort(ip + ":40000")) }
	if code, body, err := getFrom(t, addr, "127.0.0.2", claim("127.0.0.9")); err != nil || code != http.StatusOK {
		t.Fatalf("trusted proxy for 127.0.0.9: %d %s %v, want 200", code, body, err)
	}
	if code, body, err := getFrom(t, addr, "127.0.0.2", claim("127.0.0.8")); err != nil || code != http.StatusForbidden ||
		!strings.Contains(body, "client with IP '127.0.0.8'") {
		t.Fatalf("trusted proxy for 127.0.0.8: %d %s %v, want 403 naming 127.0.0.8", code, body, err)
	}
	if code, body, err := getFrom(t, addr, "127.0.0.3", claim("127.0.0.9")); err == nil {
		t.Fatalf("untrusted peer claiming 127.0.0.9 was answered: %d %s", code, body)
	}
	if code, body, err := getFrom(t, addr, "127.0.0.3", nil); err != nil || code != http.StatusForbidden ||
		!strings.Contains(body, "client with IP '127.0.0.3'") {
		t.Fatalf("untrusted peer without a header: %d %s %v, want 403 naming 127.0.0.3", code, body, err)
	}
	if code, body, err := getFrom(t, addr, "127.0.0.2", nil); err == nil {
		t.Fatalf("trusted proxy without a header was answered: %d %s", code, body)
	}
}

func TestProxyProtocolNeedsTrustedProxies(t *testing.T) {
	f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o := &serveOptions{}
	o.register(f)
	if err := f.Parse([]string{"--proxy-protocol"}); err != nil {
		t.Fatal(err)
	}
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Fatalf("validate = %v, want an error naming --trusted-proxies", err)
	}
	if err := f.Parse([]string{"--trusted-proxies", "10.0.0.5/32"}); err != nil {
		t.Fatal(err)
	}
	if err := o.validate(); err != nil {
		t.Fatalf("validate with trusted proxies = %v", err)
	}
}
