package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// CertificateForIP returns a certificate for the server's names plus the
// address a, for a listener on a that clients reach by IP (a private
// endpoint: such clients send no server name). It is signed by the CA and
// kept in memory only (never written to the data directory, whose
// server.pem stays the main listener's); one per address, re-issued when it
// nears expiry, like the server certificate. Addresses come from the
// listeners moat opens, not from clients, so the cache stays small.
func (c *CA) CertificateForIP(a netip.Addr) (*tls.Certificate, error) {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" || a.IsUnspecified() {
		return nil, fmt.Errorf("server certificate: %q cannot be a certificate name", a)
	}
	c.ipMu.Lock()
	defer c.ipMu.Unlock()
	if cert := c.ipCerts[a]; cert != nil && c.now().Before(cert.Leaf.NotAfter.Add(-RenewBefore)) {
		return cert, nil
	}
	ns := names{dns: slices.Clone(c.names.dns), ips: append(slices.Clone(c.names.ips), a)}.normalized()
	cert, err := c.sign(ns)
	if err != nil {
		return nil, err
	}
	if c.ipCerts == nil {
		c.ipCerts = map[netip.Addr]*tls.Certificate{}
	}
	c.ipCerts[a] = cert
	return cert, nil
}

// sign issues an in-memory leaf certificate for ns.
func (c *CA) sign(ns names) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("server certificate: generating key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := c.now()
	notAfter := now.Add(CertLifetime)
	if notAfter.After(c.caCert.NotAfter) {
		notAfter = c.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"moat"}, CommonName: "moat private endpoint"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              ns.dns,
	}
	for _, ip := range ns.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
