package e2e

// TLS mode, the default: moat creates a CA in its data dir on first start,
// serves a certificate from it, and clients that trust ca.pem push and pull.

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestTLSWithLocalCA(t *testing.T) {
	t.Parallel()
	s, err := startServer(t.TempDir(), serverOptions{generatedPassword: true})
	if err != nil {
		t.Fatalf("starting a TLS server: %v", err)
	}
	s.logOnFailure(t)
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("stopping the TLS server: %v", err)
		}
	})

	t.Run("ca.pem is a CA and is announced", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(s.dataDir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE" {
			t.Fatalf("ca.pem does not start with a PEM certificate")
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !ca.IsCA {
			t.Errorf("ca.pem is not a CA certificate")
		}
		log, err := os.ReadFile(s.logPath)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "ca.pem") {
			t.Errorf("the start-up log does not say where ca.pem is")
		}
	})

	t.Run("generated admin password", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(s.dataDir, "admin-password"))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("admin-password has mode %o, want 600", perm)
		}
		if len(s.password) < 16 {
			t.Errorf("generated password has only %d characters", len(s.password))
		}
		resp, body := s.do(t, request{method: http.MethodGet, path: "/v2/"})
		expectStatus(t, "GET /v2/ with the generated password", resp, body, http.StatusOK)
	})

	t.Run("challenge realm is https", func(t *testing.T) {
		resp, _ := s.do(t, request{method: http.MethodGet, path: "/v2/", auth: "none"})
		if c := parseChallenge(t, resp); c["realm"] != "https://"+s.addr+"/oauth2/token" {
			t.Errorf("realm %q, want https://%s/oauth2/token", c["realm"], s.addr)
		}
	})

	t.Run("push and pull with go-containerregistry", func(t *testing.T) {
		ctx := context.Background()
		opts := s.ggcrOpts(ctx, nil)
		idx := multiPlatformIndex(t)
		want, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ref := s.ref(t, "tls/multi:v1")
		if err := remote.WriteIndex(ref, idx, opts...); err != nil {
			t.Fatalf("push over TLS: %v", err)
		}
		got, err := remote.Index(ref, opts...)
		if err != nil {
			t.Fatalf("pull over TLS: %v", err)
		}
		if d, _ := got.Digest(); d != want {
			t.Errorf("pulled %s, want %s", d, want)
		}
	})

	t.Run("push and pull with regclient", func(t *testing.T) {
		rc := s.regclient(t, nil)
		r := s.rcRef(t, "tls/rc")
		data := randomBytes(3 * rcBlobMax)
		d := rcPutBlob(t, rc, r, mtOCILayer, data)
		br, err := rc.BlobGet(context.Background(), r, d)
		if err != nil {
			t.Fatalf("regclient blob get over TLS: %v", err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("untrusting client is refused", func(t *testing.T) {
		resp, err := http.Get(s.url("/v2/"))
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("a client without the CA connected")
		}
	})
}
