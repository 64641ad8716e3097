// Package localca owns moat's own certificate authority: the CA that moat
// creates in its data directory on first start, and the server certificate
// it signs for the names moat answers to, so that TLS works with no set-up
// beyond trusting one file (ca.pem).
//
// Invariants:
//
//   - The CA is created once and then only ever reused: clients trust it, so
//     moat never replaces it on its own. A CA certificate without its key, or
//     an expired CA, is an error that tells the operator what to do.
//   - The CA key (ca-key.pem) and the server key (server-key.pem) are written
//     with mode 0600, certificates with 0644; every file is written to a
//     temporary name and renamed, so a crash never leaves half a file.
//   - The server certificate covers exactly the requested names. It is
//     re-issued when the names differ, when it was not signed by the CA, when
//     it does not match its key, or when it expires within RenewBefore; a
//     running server renews it the same way on the next TLS handshake.
//   - Keys are ECDSA P-256. The CA lives 10 years and may sign only leaf
//     certificates (path length 0); server certificates live 397 days at most
//     and never outlive the CA.
package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/moat-registry/moat/internal/atomicfile"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names inside the directory.
const (
	CAFile         = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
)

const (
	// CALifetime is how long a new CA is valid.
	CALifetime = 10 * 365 * 24 * time.Hour
	// CertLifetime is how long a server certificate is valid (the longest
	// that browsers accept).
	CertLifetime = 397 * 24 * time.Hour
	// RenewBefore: a server certificate expiring sooner than this is
	// re-issued.
	RenewBefore = 30 * 24 * time.Hour
	// backdate covers clocks of clients that run slightly behind.
	backdate = time.Hour
)

// Options configure Load.
type Options struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives renewals; nil means slog.Default().
	Logger *slog.Logger
}

// CA is the local CA of one data directory and the server certificate it
// issued. It is safe for concurrent use.
type CA struct {
	dir    string
	names  names
	now    func() time.Time
	logger *slog.Logger

	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey

	// CACreated reports whether Load created the CA (first start).
	CACreated bool
	// CertIssued reports whether Load issued a new server certificate.
	CertIssued bool

	cert    atomic.Pointer[tls.Certificate]
	renewMu sync.Mutex

	ipMu    sync.Mutex // guards ipCerts (ipcert.go)
	ipCerts map[netip.Addr]*tls.Certificate
}

// Load returns the CA in dir, creating it if ca.pem does not exist, and a
// server certificate for hosts (DNS names, "*.domain" wildcards and IP
// addresses), reusing server.pem when it still fits. dir must exist.
func Load(dir string, hosts []string, opts Options) (*CA, error) {
	ns, err := parseNames(hosts)
	if err != nil {
		return nil, err
	}
	c := &CA{dir: dir, names: ns, now: opts.Now, logger: opts.Logger}
	if c.now == nil {
		c.now = time.Now
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if err := c.loadOrCreateCA(); err != nil {
		return nil, err
	}
	cert, issued, err := c.loadOrIssueCert()
	if err != nil {
		return nil, err
	}
	c.CertIssued = issued
	c.cert.Store(cert)
	return c, nil
}

// CAPath is the file clients trust.
func (c *CA) CAPath() string { return filepath.Join(c.dir, CAFile) }

// CACertificate is the CA's certificate.
func (c *CA) CACertificate() *x509.Certificate { return c.caCert }

// Certificate is the current server certificate.
func (c *CA) Certificate() *tls.Certificate { return c.cert.Load() }

// GetCertificate serves the current server certificate, renewing it first
// when it is about to expire, so a long-running server never presents an
// expired certificate. A failed renewal is logged and the old certificate is
// served until it can be renewed.
func (c *CA) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert := c.cert.Load()
	if c.now().Before(cert.Leaf.NotAfter.Add(-RenewBefore)) {
		return cert, nil
	}
	c.renewMu.Lock()
	defer c.renewMu.Unlock()
	cert = c.cert.Load()
	if c.now().Before(cert.Leaf.NotAfter.Add(-RenewBefore)) {
		return cert, nil // renewed by another handshake meanwhile
	}
	fresh, err := c.issue()
	if err != nil {
		c.logger.Error("renewing the server certificate failed; serving the old one", "error", err, "expires", cert.Leaf.NotAfter)
		return cert, nil
	}
	c.logger.Info("renewed the server certificate", "expires", fresh.Leaf.NotAfter)
	c.cert.Store(fresh)
	return fresh, nil
}

func (c *CA) path(name string) string { return filepath.Join(c.dir, name) }

func (c *CA) loadOrCreateCA() error {
	certPEM, err := os.ReadFile(c.path(CAFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c.createCA()
	}
	if err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	// From here on the CA exists and clients may trust it: never replace it.
	fix := fmt.Sprintf("restore it, or remove %s and %s to create a new CA (clients must then trust the new %s)",
		c.path(CAFile), c.path(CAKeyFile), CAFile)
	cert, err := parseCert(certPEM)
	if err != nil {
		return fmt.Errorf("local CA: %s: %w; %s", c.path(CAFile), err, fix)
	}
	keyPEM, err := os.ReadFile(c.path(CAKeyFile))
	if err != nil {
		return fmt.Errorf("local CA: %s exists but its key cannot be read: %w; %s", CAFile, err, fix)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("local CA: %s: %w; %s", c.path(CAKeyFile), err, fix)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return fmt.Errorf("local CA: %s does not belong to %s; %s", CAKeyFile, CAFile, fix)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("local CA: %s is not a CA certificate; %s", c.path(CAFile), fix)
	}
	if now := c.now(); now.After(cert.NotAfter) {
		return fmt.Errorf("local CA: %s expired on %s; remove %s and %s to create a new CA (clients must then trust the new %s)",
			c.path(CAFile), cert.NotAfter.Format(time.DateOnly), CAFile, CAKeyFile, CAFile)
	} else if now.Add(RenewBefore).After(cert.NotAfter) {
		c.logger.Warn("the local CA expires soon; remove ca.pem and ca-key.pem to create a new one", "path", c.path(CAFile), "expires", cert.NotAfter)
	}
	c.caCert, c.caKey = cert, key
	return nil
}

func (c *CA) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("local CA: generating key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The serial in the name tells apart the CAs of several installations
		// in one trust store.
		Subject: pkix.Name{
			Organization: []string{"moat"},
			CommonName:   "moat local CA " + serial.Text(16)[:8],
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("local CA: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	// Key first: ca.pem is what marks the CA as existing, so a crash between
	// the two writes leaves a stray key that the next start overwrites.
	if err := atomicfile.Write(c.path(CAKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	if err := atomicfile.Write(c.path(CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("local CA: %w", err)
	}
	c.caCert, c.caKey, c.CACreated = cert, key, true
	return nil
}

// loadOrIssueCert reuses server.pem when it fits, else issues a new one.
func (c *CA) loadOrIssueCert() (*tls.Certificate, bool, error) {
	if cert, why := c.loadCert(); why == "" {
		return cert, false, nil
	} else if why != "missing" {
		c.logger.Info("issuing a new server certificate", "reason", why)
	}
	cert, err := c.issue()
	if err != nil {
		return nil, false, err
	}
	return cert, true, nil
}

// loadCert returns the stored server certificate, or why it cannot be used.
func (c *CA) loadCert() (*tls.Certificate, string) {
	certPEM, err := os.ReadFile(c.path(ServerCertFile))
	if err != nil {
		return nil, "missing"
	}
	keyPEM, err := os.ReadFile(c.path(ServerKeyFile))
	if err != nil {
		return nil, "missing"
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "unreadable or mismatched key pair"
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, "unreadable certificate"
		}
		pair.Leaf = leaf
	}
	if leaf.CheckSignatureFrom(c.caCert) != nil {
		return nil, "not signed by the local CA"
	}
	if !namesOf(leaf).equal(c.names) {
		return nil, "names changed"
	}
	now := c.now()
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter.Add(-RenewBefore)) {
		return nil, "expires soon"
	}
	return &pair, ""
}

// issue signs and stores a new server certificate.
func (c *CA) issue() (*tls.Certificate, error) {
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
		Subject:               pkix.Name{Organization: []string{"moat"}, CommonName: "moat server"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              c.names.dns,
	}
	for _, a := range c.names.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(c.path(ServerKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	if err := atomicfile.Write(c.path(ServerCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// names are a certificate's subject alternative names, normalized: DNS
// names lower-case, IPs unmapped, both sorted and without duplicates.
type names struct {
	dns []string
	ips []netip.Addr
}

func parseNames(hosts []string) (names, error) {
	var ns names
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			if a.Zone() != "" || a.IsUnspecified() {
				return names{}, fmt.Errorf("server certificate: %q cannot be a certificate name", h)
			}
			ns.ips = append(ns.ips, a.Unmap())
			continue
		}
		if !ValidDNSName(h) {
			return names{}, fmt.Errorf("server certificate: %q is not a valid host name", h)
		}
		ns.dns = append(ns.dns, h)
	}
	if len(ns.dns) == 0 && len(ns.ips) == 0 {
		return names{}, errors.New("server certificate: no host names")
	}
	return ns.normalized(), nil
}

func namesOf(cert *x509.Certificate) names {
	ns := names{dns: slices.Clone(cert.DNSNames)}
	for i := range ns.dns {
		ns.dns[i] = strings.ToLower(ns.dns[i])
	}
	for _, ip := range cert.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			ns.ips = append(ns.ips, a.Unmap())
		}
	}
	return ns.normalized()
}

func (n names) normalized() names {
	slices.Sort(n.dns)
	n.dns = slices.Compact(n.dns)
	slices.SortFunc(n.ips, func(a, b netip.Addr) int { return a.Compare(b) })
	n.ips = slices.Compact(n.ips)
	return n
}

func (n names) equal(o names) bool {
	return slices.Equal(n.dns, o.dns) && slices.Equal(n.ips, o.ips)
}

// ValidDNSName accepts host names of lower-case letters, digits and hyphens,
// with an optional leading "*." wildcard label.
func ValidDNSName(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("local CA: serial number: %w", err)
	}
	return serial.SetBit(serial, 127, 1), nil // full length, never zero
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
