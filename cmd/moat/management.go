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
// Entra-style bearer token from moat's own issuer and returns the caller;
// what the caller may do is then decided per route by its role assignments
// (the deployment admin is Owner at "/").
func managementAuthorizer(ids *identity.Service) func(context.Context, *http.Request) (arm.Caller, error) {
	return func(ctx context.Context, r *http.Request) (arm.Caller, error) {
		scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
			return arm.Caller{}, fmt.Errorf("a bearer token from moat's token endpoint is required")
		}
		p, err := ids.VerifyManagementToken(ctx, raw)
		if err != nil {
			return arm.Caller{}, err
		}
		return arm.Caller{ID: p.ID, Name: p.Name, Kind: p.Kind}, nil
	}
}

// newManagementPlane builds the ARM-compatible API; onChange runs after every
// registry change so the data plane stops serving stale configuration.
func newManagementPlane(o *serveOptions, deps planeDeps, logger *slog.Logger) http.Handler {
	return arm.New(arm.Options{
		Meta:          deps.meta,
		Logger:        logger,
		Authorize:     managementAuthorizer(deps.ids),
		PrincipalType: deps.ids.PrincipalType,
		ResolvePrincipal: func(ctx context.Context, ref string) (arm.ResolvedPrincipal, bool, error) {
			id, typ, name, found, err := deps.ids.ResolvePrincipal(ctx, ref)
			return arm.ResolvedPrincipal{ID: id, PrincipalType: typ, Name: name}, found, err
		},
		OnRoleAssignmentChange: func(context.Context) {
			deps.ids.InvalidateRoleAssignments()
		},
		OnRegistryChange:  deps.onRegistryChange,
		Domain:            o.domain,
		ManagedIdentities: deps.ids,
		Import:            deps.importer,
		Pipelines:         deps.pipelines,
		ImportLease:       o.pipelineLease,
	})
}

// planeDeps are what the planes share.
type planeDeps struct {
	importer         *transfer.Remote
	pipelines        *transfer.Pipelines
	meta             meta.Store
	ids              *identity.Service
	onRegistryChange func(ctx context.Context, name string)
}
