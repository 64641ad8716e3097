// Package azuritetest owns the Azurite server that tests of the Azure Blob
// Storage code run against, and hands each test a container of its own.
//
// The server is, in order of preference:
//
//   - the one named by MOAT_TEST_AZURITE_BLOB_ENDPOINT (a blob service URL
//     such as http://127.0.0.1:10000/devstoreaccount1, with Azurite's
//     well-known devstoreaccount1 key), which scripts/test.sh starts once for
//     all packages;
//   - otherwise one this test process starts on first use: azurite@3.37.0 is
//     installed with npm into ~/.cache/moat-tools/azurite-3.37.0 (once per
//     machine) and run on a loopback port the kernel picks with its data in a temporary
//     directory. Main stops it when the tests end.
//
// For managed identity (oauth.go) there is a second server, always started by
// this process: Azurite with --oauth basic over HTTPS with a self-signed
// certificate (OAuth), and an App Service-style managed identity endpoint
// (Identity) minting Azure AD-shaped tokens that Azurite's basic mode takes
// without checking a signature; Azurite refuses requests without such a token.
//
// When no server can be had the test is skipped with the reason, except under
// CI=true, where it fails: CI must never pass by skipping the Azure suite.
package azuritetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/storage/blob/azblob"
	"github.com/moat-registry/moat/internal/testsupport/missing"
)

const (
	// EndpointEnv names an already running Azurite blob service.
	EndpointEnv = "MOAT_TEST_AZURITE_BLOB_ENDPOINT"
	// Account and Key are Azurite's well-known development account; they
	// are public and grant nothing outside a local emulator.
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

	version      = "3.37.0"
	startTimeout = 60 * time.Second
)

var (
	once     sync.Once
	endpoint string
	startErr error
	server   *exec.Cmd
	dataDir  string
)

// Main runs the tests and stops an Azurite this process started. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(azuritetest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	stop()
	return code
}

// Endpoint returns the blob service URL of the Azurite server, starting one
// if needed, or skips (fails under CI=true) the test when none can be had.
func Endpoint(t testing.TB) string {
	t.Helper()
	once.Do(func() { endpoint, startErr = start() })
	if startErr != nil {
		unavailable(t, startErr)
	}
	return endpoint
}

// unavailable ends a test that could not get Azurite: it skips, or fails
// under CI=true.
func unavailable(t testing.TB, err error) {
	t.Helper()
	missing.Skip(t, "azurite unavailable: %v (set %s or install node and npm)", err, EndpointEnv)
}

// Config returns a store configuration for a container of its own, which is
// created by azblob.New; containers are left for Azurite's data directory to
// take away, so a failed test can be inspected.
func Config(t testing.TB) azblob.Config {
	t.Helper()
	ep := Endpoint(t)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random container name: %v", err)
	}
	return azblob.Config{
		Account:    Account,
		Container:  "t" + hex.EncodeToString(b[:]),
		Endpoint:   ep,
		AccountKey: Key,
	}
}

// New returns a store over a fresh container and a function opening further
// stores over the same container, as other replicas would.
func New(t testing.TB) (*azblob.Store, func() *azblob.Store) {
	t.Helper()
	cfg := Config(t)
	open := func() *azblob.Store {
		t.Helper()
		s, err := azblob.New(context.Background(), cfg)
		if err != nil {
			t.Fatalf("azblob.New: %v", err)
		}
		return s
	}
	return open(), open
}

func start() (string, error) {
	if ep := os.Getenv(EndpointEnv); ep != "" {
		return ep, nil
	}
	bin, err := install()
	if err != nil {
		return "", err
	}
	dataDir, err = os.MkdirTemp("", "moat-azurite-")
	if err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	cmd, base, err := run(bin, dataDir, http.DefaultClient)
	if err != nil {
		return "", err
	}
	server = cmd
	return base + "/" + Account, nil
}

// install makes sure azurite is installed in the cache and returns its
// azurite-blob script. It installs into a temporary directory renamed into
// place, so concurrent test processes never see a half-made install.
func install() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	dir := filepath.Join(cache, "moat-tools", "azurite-"+version)
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("npm not found: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return "", fmt.Errorf("create cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".azurite-install-")
	if err != nil {
		return "", fmt.Errorf("create install directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // gone after the rename; else leftovers of a failed install

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error", "azurite@"+version) //nolint:gosec // fixed arguments
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install azurite@%s: %w: %s", version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(bin); serr == nil {
			return bin, nil // another process won the race
		}
		return "", fmt.Errorf("install azurite: %w", err)
	}
	return bin, nil
}

// listening matches Azurite's start-up line, which names the port it got.
var listening = regexp.MustCompile(`successfully listens on (https?://127\.0\.0\.1:[0-9]+)`)

// run starts azurite-blob with its data in dir, and extra arguments, on a
// port the kernel picks (so no other process can take it first), waits until
// it says where it listens and answers client there, and returns it and its
// base URL (scheme, host and port).
func run(bin, dir string, client *http.Client, extra ...string) (*exec.Cmd, string, error) {
	args := append([]string{"--blobHost", "127.0.0.1", "--blobPort", "0",
		"--location", dir, "--silent", "--skipApiVersionCheck", "--loose"}, extra...)
	// Azurite's telemetry writes a directory into the temporary directory
	// and never removes it; pointing TMPDIR into dir makes it go with the
	// data.
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, "", fmt.Errorf("azurite temporary directory: %w", err)
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // bin is our own install
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("azurite stdout: %w", err)
	}
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	base := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case base <- m[1]:
				default:
				}
			}
		}
		close(base)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) (*exec.Cmd, string, error) {
		_ = cmd.Process.Kill() // it never became usable; err is the one to report
		if werr := <-exited; werr != nil {
			slog.Debug("azurite stopped after a failed start", "err", werr)
		}
		return nil, "", err
	}
	deadline := time.After(startTimeout)
	var ep string
	select {
	case b, ok := <-base:
		if !ok {
			return fail(errors.New("azurite exited before it listened"))
		}
		ep = b
	case <-deadline:
		return fail(errors.New("azurite did not listen within " + startTimeout.String()))
	}
	for !answers(client, ep+"/"+Account) {
		select {
		case <-deadline:
			return fail(errors.New("azurite did not answer within " + startTimeout.String()))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return cmd, ep, nil
}

// answers reports whether an HTTP server answers at ep (any status will do:
// an unauthenticated request is refused, but by Azurite).
func answers(client *http.Client, ep string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"?comp=list", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close() // only the status line mattered
	return true
}

func stop() {
	for _, cmd := range []*exec.Cmd{server, oauthServer} {
		if cmd != nil {
			_ = cmd.Process.Kill() // a throw-away emulator; its exit status is of no interest
		}
	}
	for _, dir := range []string{dataDir, oauthDir} {
		if dir != "" {
			_ = os.RemoveAll(dir) // temporary data
		}
	}
	if processIdentity != nil {
		processIdentity.srv.Close()
	}
}

// Stop stops an Azurite this process started, for a TestMain that already
// runs the tests through another Main (e.g. pgtest.Main).
func Stop() { stop() }
