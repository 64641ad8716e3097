package main

import (
	"crypto/x509"
	"fmt"
	"os"
)

// loadImportCAs reads the roots that imports from registries outside the
// deployment trust: nil (the system roots) without --import-ca-file, else
// the system roots plus every file given (e.g. another moat deployment's
// <data-dir>/ca.pem). serve calls it before the data dir exists, so that a
// bad file refuses the start with nothing created.
func loadImportCAs(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool() // no system pool here: only the given CAs
	}
	for _, f := range files {
		b, err := os.ReadFile(f) //nolint:gosec // an operator-given path
		if err != nil {
			return nil, fmt.Errorf("--import-ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--import-ca-file %s: no PEM certificate in it", f)
		}
	}
	return pool, nil
}
