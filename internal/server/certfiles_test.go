package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/server/localca"
)

// issuePair makes a certificate and key in a fresh directory.
func issuePair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	if _, err := localca.Load(dir, []string{"registry.example.test"}, localca.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	c, err := os.ReadFile(filepath.Join(dir, localca.ServerCertFile))
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(dir, localca.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func writePair(t *testing.T, certPath, keyPath string, c, k []byte, mod time.Time) {
	t.Helper()
	for p, b := range map[string][]byte{certPath: c, keyPath: k} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCertFilesReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := issuePair(t)
	c2, k2 := issuePair(t)
	base := time.Now().Add(-time.Hour)
	writePair(t, certPath, keyPath, c1, k1, base)

	cf, err := LoadCertFiles(certPath, keyPath, quiet)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cf.now = func() time.Time { return now }
	first, _ := cf.GetCertificate(nil)

	// Replaced files are not read before checkEvery has passed.
	writePair(t, certPath, keyPath, c2, k2, base.Add(time.Minute))
	if got, _ := cf.GetCertificate(nil); got != first {
		t.Fatal("reloaded before checkEvery")
	}
	now = now.Add(2 * time.Minute)
	second, _ := cf.GetCertificate(nil)
	if second == first || second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("replaced certificate was not picked up")
	}

	// A broken replacement keeps the last good certificate.
	writePair(t, certPath, keyPath, c1, k2, base.Add(2*time.Minute)) // mismatched pair
	now = now.Add(2 * time.Minute)
	if got, _ := cf.GetCertificate(nil); got != second {
		t.Fatal("broken pair replaced the served certificate")
	}
}

func TestLoadCertFilesErrors(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := LoadCertFiles(certPath, keyPath, quiet); err == nil {
		t.Fatal("missing files accepted")
	}
	c1, _ := issuePair(t)
	_, k2 := issuePair(t)
	writePair(t, certPath, keyPath, c1, k2, time.Now())
	if _, err := LoadCertFiles(certPath, keyPath, quiet); err == nil {
		t.Fatal("mismatched pair accepted")
	}
}
