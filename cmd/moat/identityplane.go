package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/moat-registry/moat/internal/atomicfile"
	"github.com/moat-registry/moat/internal/identity"
)

// defenderScannerFile holds the Defender scanner principal's credentials,
// written once, when the principal is created (see identity/defender.go).
const defenderScannerFile = "defender-scanner.json"

// identityPlane serves the Entra-compatible issuer and the managed-identity
// token endpoint (identity.MSIPath).
func identityPlane(ids *identity.Service) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(identity.MSIPath, ids.ManagedIdentityHandler())
	mux.Handle("/", ids.EntraHandler())
	return mux
}

// defenderScannerCredentials is the file's content: what
// azidentity.ClientSecretCredential needs.
type defenderScannerCredentials struct {
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// ensureDefenderScanner creates the built-in Defender scanner principal on
// first start and writes its credentials to the data directory (0600).
func ensureDefenderScanner(ctx context.Context, ids *identity.Service, dataDir string, logger *slog.Logger) error {
	tenant, err := ids.TenantID(ctx)
	if err != nil {
		return fmt.Errorf("reading the deployment tenant: %w", err)
	}
	path := filepath.Join(dataDir, defenderScannerFile)
	created, err := ids.EnsureDefenderScanner(ctx, func(secret string) error {
		//nolint:gosec // G117: writing the secret to its 0600 file is the point
		b, err := json.MarshalIndent(defenderScannerCredentials{TenantID: tenant, ClientID: identity.DefenderScannerAppID, ClientSecret: secret}, "", "  ")
		if err != nil {
			return err
		}
		return atomicfile.Write(path, append(b, '\n'), 0o600)
	})
	if err != nil {
		return fmt.Errorf("setting up the Defender scanner principal: %w", err)
	}
	if created {
		logger.Info("wrote the Defender scanner's credentials", "path", path)
	}
	return nil
}
