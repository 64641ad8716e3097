package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/moat-registry/moat/internal/transfer"
)

// newImportRemote configures imports from registries outside the
// deployment: the system roots plus every --import-ca-file (e.g. another moat
// deployment's <data-dir>/ca.pem), and plain HTTP to loopback sources only
// with --import-plain-http-loopback. It reads only the CA files, before the
// data dir exists; the caller sets Blobs once the blob store is open.
func newImportRemote(o *serveOptions, logger *slog.Logger) (*transfer.Remote, error) {
	r := &transfer.Remote{PlainHTTPLoopback: o.importPlainHTTPLoopback, Logger: logger}
	if len(o.importCAFiles) == 0 {
		return r, nil // nil RootCAs: the system roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool() // no system pool here: only the given CAs
	}
	for _, f := range o.importCAFiles {
		b, err := os.ReadFile(f) //nolint:gosec // an operator-given path
		if err != nil {
			return nil, fmt.Errorf("--import-ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--import-ca-file %s: no PEM certificate in it", f)
		}
	}
	r.RootCAs = pool
	return r, nil
}
