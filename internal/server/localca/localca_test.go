package localca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func hosts(domain string) []string {
	return []string{"localhost", "*.localhost", domain, "*." + domain, "127.0.0.1", "::1"}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func load(t *testing.T, dir string, hs []string, c *clock) *CA {
	t.Helper()
	ca, err := Load(dir, hs, Options{Now: c.now, Logger: quiet})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return ca
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify checks that the CA in dir validates the served certificate for
// host, as a client trusting only ca.pem would.
func verify(t *testing.T, dir string, cert *tls.Certificate, host string, at time.Time) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(read(t, filepath.Join(dir, CAFile))) {
		t.Fatal("ca.pem holds no certificate")
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: at})
	return err
}

func TestFirstStartCreatesCAAndCertificate(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	ca := load(t, dir, hosts("example.test"), c)
	if !ca.CACreated || !ca.CertIssued {
		t.Fatalf("CACreated=%v CertIssued=%v, want both", ca.CACreated, ca.CertIssued)
	}
	for name, want := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, ServerCertFile: 0o644, ServerKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	root := ca.CACertificate()
	if !root.IsCA || !root.MaxPathLenZero || root.MaxPathLen != 0 {
		t.Errorf("CA constraints: IsCA=%v MaxPathLen=%d", root.IsCA, root.MaxPathLen)
	}
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve.Params().Name != "P-256" {
		t.Errorf("CA key is %T, want ECDSA P-256", root.PublicKey)
	}
	if life := root.NotAfter.Sub(c.t); life < 9*365*24*time.Hour {
		t.Errorf("CA lifetime %v, want about 10 years", life)
	}
	for _, h := range []string{"localhost", "moat.localhost", "example.test", "reg.example.test", "127.0.0.1", "::1"} {
		if err := verify(t, dir, ca.Certificate(), h, c.t); err != nil {
			t.Errorf("verify %s: %v", h, err)
		}
	}
	for _, h := range []string{"example.com", "a.b.localhost", "10.0.0.1"} {
		if err := verify(t, dir, ca.Certificate(), h, c.t); err == nil {
			t.Errorf("certificate unexpectedly valid for %s", h)
		}
	}
	leaf := ca.Certificate().Leaf
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Errorf("server certificate usage: %v IsCA=%v", leaf.ExtKeyUsage, leaf.IsCA)
	}
}

func TestRestartReusesCAAndCertificate(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	load(t, dir, hosts("localhost"), c)
	caPEM, certPEM := read(t, filepath.Join(dir, CAFile)), read(t, filepath.Join(dir, ServerCertFile))

	c.t = c.t.Add(24 * time.Hour)
	ca := load(t, dir, []string{"::1", "127.0.0.1", "*.localhost", "LOCALHOST", "localhost"}, c) // same set, other order
	if ca.CACreated || ca.CertIssued {
		t.Fatalf("restart: CACreated=%v CertIssued=%v, want neither", ca.CACreated, ca.CertIssued)
	}
	if !bytes.Equal(caPEM, read(t, filepath.Join(dir, CAFile))) || !bytes.Equal(certPEM, read(t, filepath.Join(dir, ServerCertFile))) {
		t.Fatal("files were rewritten on restart")
	}
}

func TestDomainChangeReissuesCertificateUnderSameCA(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	first := load(t, dir, hosts("old.test"), c)
	caPEM := read(t, filepath.Join(dir, CAFile))

	ca := load(t, dir, hosts("new.test"), c)
	if ca.CACreated || !ca.CertIssued {
		t.Fatalf("CACreated=%v CertIssued=%v, want a new certificate only", ca.CACreated, ca.CertIssued)
	}
	if !bytes.Equal(caPEM, read(t, filepath.Join(dir, CAFile))) {
		t.Fatal("CA was replaced")
	}
	if ca.Certificate().Leaf.SerialNumber.Cmp(first.Certificate().Leaf.SerialNumber) == 0 {
		t.Fatal("same certificate")
	}
	if err := verify(t, dir, ca.Certificate(), "reg.new.test", c.t); err != nil {
		t.Errorf("new domain: %v", err)
	}
	if err := verify(t, dir, ca.Certificate(), "reg.old.test", c.t); err == nil {
		t.Error("old domain still covered")
	}
	// And the stored files agree with what is served.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pair.Certificate[0], ca.Certificate().Certificate[0]) {
		t.Fatal("server.pem differs from the served certificate")
	}
}

func TestExpiringCertificateIsReissuedAtStart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	load(t, dir, hosts("localhost"), c)

	c.t = c.t.Add(CertLifetime - RenewBefore + time.Hour)
	ca := load(t, dir, hosts("localhost"), c)
	if !ca.CertIssued || ca.CACreated {
		t.Fatalf("CertIssued=%v CACreated=%v", ca.CertIssued, ca.CACreated)
	}
	if err := verify(t, dir, ca.Certificate(), "localhost", c.t.Add(RenewBefore)); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	}
}

func TestRunningServerRenewsOnHandshake(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	ca := load(t, dir, hosts("localhost"), c)
	first, err := ca.GetCertificate(nil)
	if err != nil || first != ca.Certificate() {
		t.Fatalf("GetCertificate = %v, %v", first, err)
	}

	c.t = first.Leaf.NotAfter.Add(-RenewBefore / 2)
	renewed, err := ca.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatal("certificate was not renewed")
	}
	if again, _ := ca.GetCertificate(nil); again != renewed {
		t.Fatal("renewed twice")
	}
	if !bytes.Contains(read(t, filepath.Join(dir, ServerCertFile)), []byte("CERTIFICATE")) {
		t.Fatal("renewed certificate not stored")
	}
}

func TestCertificateFromAnotherCAIsReplaced(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	c := &clock{time.Now()}
	load(t, dir, hosts("localhost"), c)
	load(t, other, hosts("localhost"), c)
	for _, f := range []string{ServerCertFile, ServerKeyFile} {
		if err := os.WriteFile(filepath.Join(dir, f), read(t, filepath.Join(other, f)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca := load(t, dir, hosts("localhost"), c)
	if !ca.CertIssued {
		t.Fatal("certificate of another CA was reused")
	}
	if err := verify(t, dir, ca.Certificate(), "localhost", c.t); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptServerFilesAreReplaced(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	load(t, dir, hosts("localhost"), c)
	if err := os.WriteFile(filepath.Join(dir, ServerKeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ca := load(t, dir, hosts("localhost"), c); !ca.CertIssued {
		t.Fatal("corrupt key was not replaced")
	}
}

func TestCANeverReplacedSilently(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"key missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
				t.Fatal(err)
			}
		}, "its key cannot be read"},
		{"key garbage", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "no PEM private key"},
		{"key of another CA", func(t *testing.T, dir string) {
			other := t.TempDir()
			load(t, other, hosts("localhost"), &clock{time.Now()})
			if err := os.WriteFile(filepath.Join(dir, CAKeyFile), read(t, filepath.Join(other, CAKeyFile)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not belong"},
		{"cert garbage", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, CAFile), []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			load(t, dir, hosts("localhost"), &clock{time.Now()})
			tt.damage(t, dir)
			before := read(t, filepath.Join(dir, CAFile))
			_, err := Load(dir, hosts("localhost"), Options{Logger: quiet})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "remove") {
				t.Fatalf("err = %v, want %q with advice", err, tt.want)
			}
			if !bytes.Equal(before, read(t, filepath.Join(dir, CAFile))) {
				t.Fatal("ca.pem was touched")
			}
		})
	}
}

func TestStrayCAKeyWithoutCertIsReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ca := load(t, dir, hosts("localhost"), &clock{time.Now()}); !ca.CACreated {
		t.Fatal("CA not created")
	}
}

func TestExpiredCAIsAnError(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	load(t, dir, hosts("localhost"), c)
	c.t = c.t.Add(CALifetime + time.Hour)
	_, err := Load(dir, hosts("localhost"), Options{Now: c.now, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v", err)
	}
}

func TestCertificateNeverOutlivesCA(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	ca := load(t, dir, hosts("localhost"), c)
	c.t = ca.CACertificate().NotAfter.Add(-100 * 24 * time.Hour)
	ca = load(t, dir, []string{"localhost", "other.test"}, c)
	if ca.Certificate().Leaf.NotAfter.After(ca.CACertificate().NotAfter) {
		t.Fatal("server certificate outlives the CA")
	}
}

func TestParseNames(t *testing.T) {
	ok := [][]string{
		{"localhost"},
		{"*.localhost", "[::1]", "::ffff:127.0.0.1", "Example.TEST."},
		{"a-b.c", "10.0.0.1"},
	}
	for _, hs := range ok {
		if _, err := parseNames(hs); err != nil {
			t.Errorf("parseNames(%q): %v", hs, err)
		}
	}
	bad := [][]string{
		{},
		{" "},
		{"0.0.0.0"},
		{"::"},
		{"fe80::1%eth0"},
		{"under_score.test"},
		{"-lead.test"},
		{"a..b"},
		{"*"},
		{"a.*.b"},
		{strings.Repeat("a", 64) + ".test"},
	}
	for _, hs := range bad {
		if _, err := parseNames(hs); err == nil {
			t.Errorf("parseNames(%q) accepted", hs)
		}
	}
	ns, _ := parseNames([]string{"::ffff:127.0.0.1", "127.0.0.1", "B", "a", "b"})
	if len(ns.ips) != 1 || strings.Join(ns.dns, ",") != "a,b" {
		t.Errorf("normalized = %+v", ns)
	}
}
