package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// role is a named set of rights on a registry. Today only the deployment
// admin's role exists; the identity issue adds ACR's built-in roles (AcrPull:
// pull; AcrPush: pull, push; AcrDelete: delete; ...) and stored role
// assignments, and Authorize stays the same: resolve roles, then grant.
type role struct {
	name string
	// repositoryActions are the actions allowed on every repository of the
	// registry. "*" here lets a requested "*" through; it is not expanded.
	repositoryActions []string
	// catalog allows listing the registry's repositories (registry:catalog:*).
	catalog bool
}

// roleDeploymentAdmin is everything on every registry.
var roleDeploymentAdmin = role{
	name:              "deployment admin",
	repositoryActions: []string{ActionPull, ActionPush, ActionDelete, ActionAll},
	catalog:           true,
}

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

// rolesOf resolves the roles p holds on registry. Only the deployment admin
// holds one today, and only when p is the stored admin principal: a Principal
// value that merely says "user"/"admin" with another ID gets nothing.
func (s *Service) rolesOf(ctx context.Context, p Principal, _ string) ([]role, error) {
	if p.Kind != KindUser || p.Name != AdminName || p.ID == "" {
		return nil, nil
	}
	if id := s.adminID.Load(); id != nil && *id == p.ID {
		return []role{roleDeploymentAdmin}, nil
	}
	// Not cached yet, or the admin was re-created elsewhere: ask the store.
	stored, err := s.store.GetPrincipalByName(ctx, KindUser, AdminName)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("identity: resolving roles of %s %q: %w", p.Kind, p.Name, err)
	}
	s.setAdminID(stored.ID)
	if stored.ID != p.ID {
		return nil, nil
	}
	return []role{roleDeploymentAdmin}, nil
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
