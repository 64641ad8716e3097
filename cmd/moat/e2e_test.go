package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moat-registry/moat/internal/server/localca"
	"github.com/moat-registry/moat/internal/testsupport/azuritetest"
	"github.com/moat-registry/moat/internal/testsupport/pgtest"
)

// buildMoat builds the real binary once per test binary run.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func moatBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "moat-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "moat")
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version=v0.0.0-e2e", "-o", buildPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func TestMain(m *testing.M) {
	runWorkloadIfChild() // trusted_e2e_test.go: a workload process exits here
	code := pgtest.Main(m)
	azuritetest.Stop()
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// process is a running `moat serve`.
type process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	url    chan string
	done   chan error
}

// waitOutput waits up to 10 s until the process's output contains every one
// of wants and returns it; it fails the test naming what never came.
func (p *process) waitOutput(t *testing.T, wants ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := p.output()
		missing := ""
		for _, w := range wants {
			if !strings.Contains(out, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("output lacks %q:\n%s", missing, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

var urlLine = regexp.MustCompile(`serving (https?://\S+) `)

// startMoat starts the binary with args and env and waits for its banner.
func startMoat(t *testing.T, env []string, args ...string) (*process, string) {
	t.Helper()
	cmd := exec.Command(moatBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, url: make(chan string, 1), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(pipe)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := urlLine.FindStringSubmatch(line); m != nil && !sent {
				p.url <- m[1]
				sent = true
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	select {
	case u := <-p.url:
		return p, u
	case err := <-p.done:
		t.Fatalf("moat exited before serving: %v\n%s", err, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("moat did not start within 30s\n%s", p.output())
	}
	return nil, ""
}

func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("moat exited with %v after SIGTERM\n%s", err, p.output())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("moat did not exit after SIGTERM\n%s", p.output())
	}
}

// clientTrusting returns an HTTP client that trusts only the CA in caFile
// and dials every host name at addr (so moat.localhost needs no DNS).
func clientTrusting(t *testing.T, caFile, addr string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("ca.pem holds no certificate")
	}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, mod func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// pushRandomImage pushes a random image of the given layers (size bytes
// each) to host/repoTag as the admin with password, and returns it, its
// reference and the auth option that pushed it.
func pushRandomImage(t *testing.T, host, repoTag, password string, size int64, layers int) (v1.Image, name.Reference, remote.Option) {
	t.Helper()
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: password})
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatalf("push: %v", err)
	}
	return img, ref, auth
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServeBinary runs the real binary: start-up from config file and
// environment, TLS from the local CA, the operational endpoints, the admin
// bootstrap, SIGTERM, and a restart that reuses the CA.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	cfg := filepath.Join(work, "moat.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nlog_format: json\nshutdown-timeout: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"MOAT_DATA_DIR=" + dataDir, "MOAT_ADMIN_PASSWORD="}

	p, url := startMoat(t, env, "serve", "--config", cfg)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("url = %s", url)
	}
	addr := strings.TrimPrefix(url, "https://")
	caFile := filepath.Join(dataDir, "ca.pem")
	pwFile := filepath.Join(dataDir, "admin-password")
	// The banner's first line reached us; the lines after it may still be on
	// their way through the pipe.
	out := p.waitOutput(t, `"msg":"moat is serving"`, "clients must trust the CA in "+caFile, "password in "+pwFile, "v0.0.0-e2e")

	// The admin password file: 0600, and never printed.
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-password mode = %v, want 0600", fi.Mode().Perm())
	}
	password := strings.TrimSpace(string(readFile(t, pwFile)))
	if password == "" || strings.Contains(out, password) {
		t.Fatalf("password empty or printed (len %d)", len(password))
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode = %v, %v, want 0700", fi.Mode().Perm(), err)
	}

	c := clientTrusting(t, caFile, addr)
	if code, body := get(t, c, url+"/healthz", nil); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, c, url+"/readyz", nil); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	// The default registry is served at the listen address, and under its
	// login server name; ca.pem validates the certificate for both.
	if code, _ := get(t, c, url+"/v2/", nil); code != http.StatusUnauthorized {
		t.Errorf("anonymous /v2/ = %d, want 401", code)
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	basic := func(r *http.Request) { r.SetBasicAuth("admin", password) }
	for _, base := range []string{url, "https://moat.localhost:" + port, "https://localhost:" + port} {
		if code, body := get(t, c, base+"/v2/", basic); code != 200 {
			t.Errorf("admin GET %s/v2/ = %d %s", base, code, body)
		}
	}
	if code, body := get(t, c, url+"/metrics", nil); code != 200 ||
		!strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_start_time_seconds") ||
		!strings.Contains(body, "moat_dataplane_requests_total") {
		t.Errorf("/metrics = %d, lacking expected metrics:\n%.2000s", code, body)
	}
	caBefore := readFile(t, caFile)
	certBefore := readFile(t, filepath.Join(dataDir, "server.pem"))

	p.stop(t)

	// Restart with another domain: same CA, new certificate covering the
	// new domain's login servers, same admin password.
	p, url = startMoat(t, env, "serve", "--config", cfg, "--domain", "registry.test")
	addr = strings.TrimPrefix(url, "https://")
	if !bytes.Equal(caBefore, readFile(t, caFile)) {
		t.Error("the CA changed on restart")
	}
	if bytes.Equal(certBefore, readFile(t, filepath.Join(dataDir, "server.pem"))) {
		t.Error("the server certificate was not re-issued for the new domain")
	}
	if got := strings.TrimSpace(string(readFile(t, pwFile))); got != password {
		t.Error("the admin password changed on restart")
	}
	c = clientTrusting(t, caFile, addr)
	port = addr[strings.LastIndexByte(addr, ':')+1:]
	if code, _ := get(t, c, "https://moat.registry.test:"+port+"/v2/", basic); code != 200 {
		t.Errorf("GET moat.registry.test /v2/ = %d", code)
	}
	p.stop(t)
}

func TestServeBinaryInsecureHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir := filepath.Join(t.TempDir(), "data")

	// Refused on every interface, with one line and a non-zero exit, before
	// anything is written.
	cmd := exec.Command(moatBinary(t), "serve", "--insecure-http", "--listen", "0.0.0.0:0", "--data-dir", dataDir)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("insecure on 0.0.0.0: err = %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "moat: --insecure-http is only allowed on a loopback address") {
		t.Errorf("output is not one clear line:\n%s", out)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir created by a refused start: %v", err)
	}

	// Accepted on loopback, with the admin password from the environment.
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=s3cret-pass", "MOAT_INSECURE_HTTP=true"},
		"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("url = %s", url)
	}
	if strings.Contains(p.output(), "s3cret-pass") {
		t.Fatal("password printed")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "admin-password")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin-password written although the password came from the environment: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "ca.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("local CA created for plain HTTP: %v", err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	if code, body := get(t, c, url+"/v2/", func(r *http.Request) { r.SetBasicAuth("admin", "s3cret-pass") }); code != 200 {
		t.Errorf("admin /v2/ = %d %s", code, body)
	}
	p.stop(t)
}

// TestStartupErrorsAreOneLine: a start refused for bad input exits non-zero
// with one line naming the problem, and leaves no data directory behind.
func TestStartupErrorsAreOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	work := t.TempDir()
	bad := filepath.Join(work, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nlisten_addr: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown config key", nil, []string{"serve", "--config", bad}, "unknown option(s): listen_addr"},
		{"bad env value", []string{"MOAT_SHUTDOWN_TIMEOUT=soon"}, []string{"serve"}, "MOAT_SHUTDOWN_TIMEOUT"},
		{"two bad env values on one line", []string{"MOAT_LOG_LEVEL=loud", "MOAT_UPLOAD_TTL=x"}, []string{"serve"}, "MOAT_LOG_LEVEL"},
		{"bad flag value", nil, []string{"serve", "--log-level", "loud"}, "--log-level"},
		{"cert without key", nil, []string{"serve", "--tls-cert", "x.pem"}, "--tls-cert and --tls-key go together"},
		{"unknown database kind", nil, []string{"serve", "--insecure-http", "--listen", "127.0.0.1:0", "--database", "mysql://x"}, `--database: unknown kind "mysql"`},
		{"unknown blob store kind", nil, []string{"serve", "--insecure-http", "--listen", "127.0.0.1:0", "--blob-store", "s3://bucket"}, `--blob-store: unknown kind "s3"`},
		// Go would ignore this value silently; moat refuses it (procs.go).
		{"GOMAXPROCS not a positive integer", []string{"GOMAXPROCS=four"}, []string{"serve", "--insecure-http", "--listen", "127.0.0.1:0"}, `GOMAXPROCS "four" is not a positive integer`},
		{"missing TLS certificate", nil, []string{"serve", "--listen", "127.0.0.1:0", "--tls-cert", "missing.pem", "--tls-key", "missing.key"}, "missing.pem"},
		{"missing import CA file", nil, []string{"serve", "--insecure-http", "--listen", "127.0.0.1:0", "--import-ca-file", "missing-ca.pem"}, "--import-ca-file"},
		{"azblob without credential", []string{"MOAT_AZBLOB_ACCOUNT_KEY=", "MOAT_AZBLOB_SAS="}, []string{"serve", "--insecure-http", "--listen", "127.0.0.1:0", "--blob-store", "azblob://acct/cont"}, "--blob-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Bounded: a binary that accepted the input would serve until
			// killed.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, moatBinary(t), tt.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("err = %v\n%s", err, out)
			}
			s := strings.TrimSpace(string(out))
			if strings.Count(s, "\n") != 0 || !strings.HasPrefix(s, "moat: ") || !strings.Contains(s, tt.want) {
				t.Errorf("output %q, want one line containing %q", s, tt.want)
			}
			// Every row is refused before the data directory is created.
			if _, err := os.Stat(filepath.Join(cmd.Dir, "moat-data")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data dir created by a refused start: %v", err)
			}
		})
	}
}

// TestServeBinaryOwnCertificate: with --tls-cert/--tls-key moat serves
// that certificate and creates no local CA.
func TestServeBinaryOwnCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	work := t.TempDir()
	certDir, dataDir := filepath.Join(work, "certs"), filepath.Join(work, "data")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	own, err := localca.Load(certDir, []string{"127.0.0.1", "registry.example.test"}, localca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, url := startMoat(t, []string{"MOAT_ADMIN_PASSWORD=pw-for-own-cert"}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--tls-cert", filepath.Join(certDir, localca.ServerCertFile), "--tls-key", filepath.Join(certDir, localca.ServerKeyFile))
	if strings.Contains(p.output(), "clients must trust the CA") {
		t.Errorf("banner names a CA for an operator certificate:\n%s", p.output())
	}
	if _, err := os.Stat(filepath.Join(dataDir, localca.CAFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("local CA created although --tls-cert was given: %v", err)
	}
	addr := strings.TrimPrefix(url, "https://")
	c := clientTrusting(t, own.CAPath(), addr)
	if code, _ := get(t, c, "https://registry.example.test:"+addr[strings.LastIndexByte(addr, ':')+1:]+"/healthz", nil); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	p.stop(t)
}

func TestVersionCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	out, err := exec.Command(moatBinary(t), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "moat v0.0.0-e2e ") {
		t.Fatalf("version output %q", out)
	}
}
