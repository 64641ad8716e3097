package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/internal/arm"
	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

// managementAuthorizer authenticates management requests with an
// Entra-style bearer token from moat's own issuer. Until role assignments
// exist, only the deployment admin (Owner at deployment scope) may manage;
// every other principal is refused with 403 (fail closed).
func managementAuthorizer(ids *identity.Service) func(context.Context, *http.Request) (string, error) {
	return func(ctx context.Context, r *http.Request) (string, error) {
		scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
			return "", fmt.Errorf("a bearer token from moat's token endpoint is required")
		}
		p, err := ids.VerifyManagementToken(ctx, raw)
		if err != nil {
			return "", err
		}
		who := p.Name + " (object id " + p.ID + ")"
		admin, err := ids.IsDeploymentAdmin(ctx, p)
		if err != nil {
			return who, fmt.Errorf("checking the caller's role: %w", err)
		}
		if !admin {
			return who, fmt.Errorf("%w: only the deployment admin may manage registries until role assignments are supported", arm.ErrForbidden)
		}
		return who, nil
	}
}

// newManagementPlane builds the ARM-compatible API; onChange runs after every
// registry change so the data plane stops serving stale configuration.
func newManagementPlane(o *serveOptions, deps planeDeps, logger *slog.Logger) http.Handler {
	return arm.New(arm.Options{
		Meta:             deps.meta,
		Logger:           logger,
		Authorize:        managementAuthorizer(deps.ids),
		OnRegistryChange: deps.onRegistryChange,
		Domain:           o.domain,
		Import:           deps.importer,
	})
}

// planeDeps are what the planes share.
type planeDeps struct {
	importer         *transfer.Remote
	meta             meta.Store
	ids              *identity.Service
	onRegistryChange func(ctx context.Context, name string)
}
