package main

import (
	"context"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// TestLoginServicePrincipal gets a token with a service principal's client
// secret from moat's issuer (in process: moat serve has no command yet
// that creates service principals), and turns a wrong secret into one line.
func TestLoginServicePrincipal(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ids, err := identity.New(ctx, store, identity.Options{Issuer: "moat", BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	sp, secret, err := ids.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(ids.EntraHandler())
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	hc, err := newHTTPClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	p := profile{Server: srv.URL, CAFile: caFile, Username: sp.AppID, ServicePrincipal: true, Tenant: defaultTenant, SubscriptionID: defaultSubscriptionID}
	tok, err := acquireToken(ctx, p, secret, hc)
	if err != nil {
		t.Fatalf("service principal login: %v", err)
	}
	if _, err := ids.VerifyManagementToken(ctx, tok.Token); err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	_, err = acquireToken(ctx, p, "wrong-secret", hc)
	var ce *cliError
	if !errors.As(err, &ce) || ce.Code != "AuthenticationFailed" || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong secret: %q", err)
	}
	t.Logf("wrong secret: %v", err)
}

func TestNewHTTPClientRefusesBadCAFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, filepath.Join(t.TempDir(), "missing.pem")} {
		var ce *cliError
		if _, err := newHTTPClient(f); !errors.As(err, &ce) || ce.Code != "InvalidCAFile" {
			t.Errorf("%s: %v", f, err)
		}
	}
}
