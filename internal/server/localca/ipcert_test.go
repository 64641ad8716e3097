package localca

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

// TestCertificateForIP: a private endpoint's address gets a certificate
// from the same CA naming it and the server's names, kept in memory (the
// data directory's server certificate is untouched), reused until it nears
// expiry.
func TestCertificateForIP(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Now()}
	ca := load(t, dir, hosts("example.test"), c)
	before := read(t, filepath.Join(dir, ServerCertFile))

	cert, err := ca.CertificateForIP(netip.MustParseAddr("::ffff:127.0.0.77"))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.77", "reg.example.test", "localhost"} {
		if err := verify(t, dir, cert, host, c.t); err != nil {
			t.Errorf("verify %s: %v", host, err)
		}
	}
	if err := verify(t, dir, cert, "127.0.0.78", c.t); err == nil {
		t.Error("the certificate of 127.0.0.77 also names 127.0.0.78")
	}
	if err := verify(t, dir, ca.Certificate(), "127.0.0.77", c.t); err == nil {
		t.Error("the main certificate names the endpoint's address")
	}
	if !bytes.Equal(before, read(t, filepath.Join(dir, ServerCertFile))) {
		t.Error("server.pem changed")
	}
	again, err := ca.CertificateForIP(netip.MustParseAddr("127.0.0.77"))
	if err != nil || again != cert {
		t.Fatalf("second call issued again: %v", err)
	}
	c.t = cert.Leaf.NotAfter.Add(-RenewBefore)
	renewed, err := ca.CertificateForIP(netip.MustParseAddr("127.0.0.77"))
	if err != nil || renewed == cert || !renewed.Leaf.NotAfter.After(cert.Leaf.NotAfter) {
		t.Fatalf("not renewed near expiry: %v", err)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("fe80::1%eth0")} {
		if _, err := ca.CertificateForIP(bad); err == nil {
			t.Errorf("CertificateForIP(%v) issued a certificate", bad)
		}
	}
}
