package identity

import (
	"context"
	"fmt"
	"slices"

	"github.com/moat-registry/moat/internal/rbac"
)

// role is a named set of rights on a registry, as resolved from a
// principal's role assignments (roleFromRights).
type role struct {
	name string
	// repositoryActions are the actions allowed on every repository of the
	// registry. "*" here lets a requested "*" through; it is not expanded.
	repositoryActions []string
	// catalog allows listing the registry's repositories (registry:catalog:*).
	catalog bool
}

// roleDeploymentAdmin is everything on every registry: what Owner,
// Contributor and the deployment admin (Owner at "/") hold.
var roleDeploymentAdmin = roleFromRights("full", rbac.DataPlaneRights{Pull: true, Push: true, Delete: true, Catalog: true})

// Authorize returns what p may do of requested on registry: one entry per
// requested entry, in order, with the requested actions that p's roles allow
// (each once, in the order requested). Entries with no actions left keep an
// empty, non-nil Actions list, as Docker token servers answer. Unknown
// principals, kinds, resource types and actions get nothing. An error means
// the roles could not be resolved (the store failed), never a denial.
func (s *Service) Authorize(ctx context.Context, p Principal, registry string, requested []Access) ([]Access, error) {
	// Registry-bound credentials carry their rights themselves.
	if acc, ok, err := s.authorizeAdminUser(ctx, p, registry, requested); ok {
		return acc, err
	}
	if acc, ok, err := s.authorizeRepoToken(ctx, p, registry, requested); ok {
		return acc, err
	}
	if acc, ok, err := s.authorizeScanner(ctx, p, requested); ok { // defender.go
		return acc, err
	}
	roles, err := s.rolesOf(ctx, p, registry)
	if err != nil {
		return nil, err
	}
	return grant(roles, requested), nil
}

// rolesOf resolves the roles p holds on registry from the role assignments
// that cover the registry's resource id (cached for roleCacheTTL, dropped at
// once by InvalidateRoleAssignments). Registry-bound principals (admin user,
// repository tokens) carry their rights themselves and get no roles here,
// whatever their id.
func (s *Service) rolesOf(ctx context.Context, p Principal, registry string) ([]role, error) {
	if p.ID == "" || p.Registry != "" {
		return nil, nil
	}
	as, err := s.roleAssignments(ctx)
	if err != nil {
		return nil, fmt.Errorf("identity: resolving roles of %s %q: %w", p.Kind, p.Name, err)
	}
	scope, err := s.registryScope(ctx, registry)
	if err != nil {
		return nil, err
	}
	r := rbac.DataPlane(as, p.ID, scope)
	if r == (rbac.DataPlaneRights{}) {
		return nil, nil
	}
	return []role{roleFromRights("assigned", r)}, nil
}

// grant is the authorization decision: the intersection of requested and
// what roles allow. It is a pure function.
func grant(roles []role, requested []Access) []Access {
	out := make([]Access, 0, len(requested))
	for _, req := range requested {
		var allowed func(action string) bool
		switch {
		case req.Type == TypeRepository:
			allowed = func(action string) bool {
				for _, r := range roles {
					if slices.Contains(r.repositoryActions, action) {
						return true
					}
				}
				return false
			}
		case req.Type == TypeRegistry && req.Name == CatalogName:
			allowed = func(action string) bool {
				if action != ActionAll {
					return false
				}
				return slices.ContainsFunc(roles, func(r role) bool { return r.catalog })
			}
		default:
			allowed = func(string) bool { return false }
		}
		acts := []string{}
		for _, a := range req.Actions {
			if allowed(a) && !slices.Contains(acts, a) {
				acts = append(acts, a)
			}
		}
		out = append(out, Access{Type: req.Type, Name: req.Name, Actions: acts})
	}
	return out
}
