package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertFiles serves a certificate and key from files given by the operator
// (--tls-cert/--tls-key) and picks up replaced files (e.g. a renewal by an
// ACME client) without a restart: at most once per checkEvery it compares
// the files' modification times and reloads when they changed. A reload
// that fails is logged and the previous certificate is kept.
type CertFiles struct {
	certPath, keyPath string
	logger            *slog.Logger
	now               func() time.Time
	checkEvery        time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
}

// LoadCertFiles loads the pair once and fails if it is not usable.
func LoadCertFiles(certPath, keyPath string, logger *slog.Logger) (*CertFiles, error) {
	if logger == nil {
		logger = slog.Default()
	}
	c := &CertFiles{certPath: certPath, keyPath: keyPath, logger: logger, now: time.Now, checkEvery: time.Minute}
	if err := c.reload(); err != nil {
		return nil, err
	}
	c.lastCheck = c.now()
	return c, nil
}

// Certificate is the certificate currently served.
func (c *CertFiles) Certificate() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert
}

// GetCertificate is for tls.Config.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.lastCheck) >= c.checkEvery {
		c.lastCheck = now
		if c.changed() {
			if err := c.reload(); err != nil {
				c.logger.Error("reloading the TLS certificate failed; serving the previous one", "error", err)
			} else {
				c.logger.Info("reloaded the TLS certificate", "cert", c.certPath, "expires", c.cert.Leaf.NotAfter)
			}
		}
	}
	return c.cert, nil
}

func (c *CertFiles) changed() bool {
	ci, err1 := os.Stat(c.certPath)
	ki, err2 := os.Stat(c.keyPath)
	if err1 != nil || err2 != nil {
		return true // let reload report it
	}
	return !ci.ModTime().Equal(c.certMod) || !ki.ModTime().Equal(c.keyMod)
}

// reload reads both files; the caller holds mu (or is the constructor).
func (c *CertFiles) reload() error {
	ci, err := os.Stat(c.certPath)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	ki, err := os.Stat(c.keyPath)
	if err != nil {
		return fmt.Errorf("TLS key: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.certPath, c.keyPath, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", c.certPath, err)
		}
	}
	c.cert, c.certMod, c.keyMod = &pair, ci.ModTime(), ki.ModTime()
	return nil
}
