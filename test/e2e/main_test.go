// Package e2e holds black-box tests of the moat binary: TestMain builds
// cmd/moat once, starts `moat serve` as a subprocess on a free loopback port
// with a throw-away data dir, and the tests talk to it the way users do —
// through go-containerregistry, regclient, skopeo and raw HTTP — before the
// server is stopped with SIGTERM. Tests share that one server and keep out of
// each other's way by using their own repository names; tests that need
// another configuration (TLS) start their own.
//
// Environment:
//
//	MOAT_E2E_RACE=1  build the server with the race detector (slower).
//	CI=true          tools the tests need (skopeo) must be present: a missing
//	                 tool fails the test instead of skipping it.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/testsupport/missing"
)

const adminUser = "admin"

// moatBin is the binary built once by TestMain.
var moatBin string

// shared is the plain-HTTP server most tests use.
var shared *server

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "moat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	moatBin = filepath.Join(tmp, "moat")
	args := []string{"build", "-o", moatBin}
	if os.Getenv("MOAT_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "github.com/moat-registry/moat/cmd/moat")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building cmd/moat:", err)
		return 1
	}

	shared, err = startServer(filepath.Join(tmp, "shared"), serverOptions{insecureHTTP: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the shared server:", err)
		return 1
	}
	code := m.Run()
	// A clean exit on SIGTERM is part of the contract (in-flight requests
	// drain, nothing is left half-written).
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the shared server:", err)
		shared.dumpLog(os.Stderr)
		if code == 0 {
			code = 1
		}
	}
	return code
}

type serverOptions struct {
	// insecureHTTP serves plain HTTP; otherwise moat serves TLS from the CA
	// it creates in the data dir.
	insecureHTTP bool
	// generatedPassword starts the server without MOAT_ADMIN_PASSWORD, so
	// that it generates one into <data-dir>/admin-password.
	generatedPassword bool
}

// server is one running `moat serve` subprocess.
type server struct {
	addr     string // 127.0.0.1:PORT
	scheme   string // http or https
	dataDir  string
	password string
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	// client trusts the server (its CA in TLS mode) and never follows
	// redirects, so tests see exactly what the server answered.
	client *http.Client
	// transport is client's transport, for the client libraries.
	transport *http.Transport
}

// startServer starts moat serve with its data in dir and waits until
// /readyz answers 200. The port is picked free just before the start; a
// lost race for it is retried.
func startServer(dir string, opts serverOptions) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startServerOnce(dir, opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startServerOnce(dir string, opts serverOptions) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	s := &server{
		addr:     fmt.Sprintf("127.0.0.1:%d", port),
		scheme:   "https",
		dataDir:  filepath.Join(dir, "data"),
		password: randomHex(16),
		logPath:  filepath.Join(dir, fmt.Sprintf("moat-%d.log", port)),
		exited:   make(chan struct{}),
	}
	args := []string{"serve", "--data-dir", s.dataDir, "--listen", s.addr}
	if opts.insecureHTTP {
		s.scheme = "http"
		args = append(args, "--insecure-http")
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, fmt.Errorf("creating server log: %w", err)
	}
	s.cmd = exec.Command(moatBin, args...)
	for _, kv := range os.Environ() {
		// Only the test decides moat's configuration.
		if !strings.HasPrefix(kv, "MOAT_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	if opts.generatedPassword {
		s.password = ""
	} else {
		s.cmd.Env = append(s.cmd.Env, "MOAT_ADMIN_PASSWORD="+s.password)
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting moat serve: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		_ = logFile.Close()
		close(s.exited)
	}()
	if err := s.waitReady(30 * time.Second); err != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		var log bytes.Buffer
		s.dumpLog(&log)
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, log.String())
	}
	if opts.generatedPassword {
		pw, err := os.ReadFile(filepath.Join(s.dataDir, "admin-password"))
		if err != nil {
			_ = s.stop()
			return nil, fmt.Errorf("reading the generated admin password: %w", err)
		}
		s.password = strings.TrimSpace(string(pw))
	}
	return s, nil
}

// waitReady polls /readyz. In TLS mode it first waits for the CA file the
// server writes on start-up, then trusts only that CA.
func (s *server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("moat serve exited during start-up: %v", s.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("moat serve not ready on %s after %s", s.addr, timeout)
		}
		if s.client == nil {
			tr, err := s.newTransport()
			if err == nil {
				s.transport = tr
				s.client = &http.Client{
					Transport: tr,
					Timeout:   60 * time.Second,
					CheckRedirect: func(*http.Request, []*http.Request) error {
						return http.ErrUseLastResponse
					},
				}
			}
		}
		if s.client != nil {
			resp, err := s.client.Get(s.url("/readyz"))
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) newTransport() (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if s.scheme == "https" {
		pem, err := os.ReadFile(filepath.Join(s.dataDir, "ca.pem"))
		if err != nil {
			return nil, fmt.Errorf("reading the server CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("ca.pem holds no certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return tr, nil
}

// stop sends SIGTERM and waits for the process to exit; it reports an error
// if the server did not exit cleanly within the drain period.
func (s *server) stop() error {
	select {
	case <-s.exited:
		return fmt.Errorf("moat serve had already exited: %v", s.waitErr)
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("sending SIGTERM: %w", err)
	}
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("moat serve did not exit within 20s of SIGTERM")
	}
	if s.waitErr != nil {
		return fmt.Errorf("moat serve exited uncleanly after SIGTERM: %w", s.waitErr)
	}
	return nil
}

func (s *server) dumpLog(w io.Writer) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		_, _ = fmt.Fprintf(w, "(no server log: %v)\n", err)
		return
	}
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	_, _ = w.Write(b)
}

// logOnFailure prints the tail of the server log when t fails.
func (s *server) logOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			var b bytes.Buffer
			s.dumpLog(&b)
			t.Logf("server log (tail):\n%s", b.String())
		}
	})
}

func (s *server) url(path string) string {
	return s.scheme + "://" + s.addr + path
}

// request is one raw HTTP request to the server.
type request struct {
	method string
	path   string // path and query, e.g. /v2/repo/tags/list?n=2
	host   string // Host header override
	body   []byte
	header http.Header
	// auth: "basic" (admin credentials, the default), "none", or a bearer
	// token.
	auth string
}

// do sends r and returns the response with its body read.
func (s *server) do(t testing.TB, r request) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader = http.NoBody
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(context.Background(), r.method, s.url(""), body)
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	// Set the path opaquely so that it reaches the server byte for byte
	// (no cleaning of ../, no re-escaping).
	path, query, _ := strings.Cut(r.path, "?")
	req.URL.Opaque = path
	req.URL.RawQuery = query
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if r.host != "" {
		req.Host = r.host
	}
	switch r.auth {
	case "", "basic":
		req.SetBasicAuth(adminUser, s.password)
	case "none":
	default:
		req.Header.Set("Authorization", "Bearer "+r.auth)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", r.method, r.path, err)
	}
	return resp, b
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("releasing the free port: %w", err)
	}
	return port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// uniqueRepo returns a repository name no other test uses.
func uniqueRepo(prefix string) string {
	return prefix + "-" + randomHex(4)
}

// requireTool finds an external tool; without it the test is skipped, or
// fails under CI, where every test must run.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	missing.Skip(t, "%s is not installed; scripts/test.sh installs it", name)
	return ""
}
