package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// roleCacheTTL is how long a read of the role assignments (and of registry
// resource ids) is reused. Within this process a change is seen at once
// (InvalidateRoleAssignments); another replica's change within this time,
// so a removed role is refused from the next token request a second later
// at most.
const roleCacheTTL = time.Second

// roleCache holds the stored role assignments and the registries' ARM ids,
// read at most once per roleCacheTTL.
type roleCache struct {
	mu     sync.Mutex
	gen    uint64 // bumped by invalidate; a load that started before is not kept
	valid  bool
	loaded time.Time
	as     []rbac.Assignment
	regIDs map[string]regIDEntry
}

type regIDEntry struct {
	id     string
	expiry time.Time
}

// InvalidateRoleAssignments drops the cached role assignments, so the next
// authorization reads them again. The management plane calls it after it
// created or deleted one.
func (s *Service) InvalidateRoleAssignments() {
	c := &s.roles
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.valid = false
	c.as = nil
	c.regIDs = nil
}

// roleAssignments returns every stored role assignment, cached.
func (s *Service) roleAssignments(ctx context.Context) ([]rbac.Assignment, error) {
	c := &s.roles
	now := time.Now()
	c.mu.Lock()
	if c.valid && now.Sub(c.loaded) < roleCacheTTL {
		as := c.as
		c.mu.Unlock()
		return as, nil
	}
	gen := c.gen
	c.mu.Unlock()
	as, err := rbac.Load(ctx, s.store)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	c.mu.Lock()
	if c.gen == gen {
		c.as, c.loaded, c.valid = as, now, true
	}
	c.mu.Unlock()
	return as, nil
}

// registryScope is the ARM id of registry, the scope its data-plane actions
// are checked at. A registry the store does not know gets an id under the
// root that only root assignments cover, so nothing but a deployment-wide
// role reaches it.
func (s *Service) registryScope(ctx context.Context, registry string) (string, error) {
	key := strings.ToLower(registry)
	c := &s.roles
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.regIDs[key]; ok && now.Before(e.expiry) {
		c.mu.Unlock()
		return e.id, nil
	}
	gen := c.gen
	c.mu.Unlock()
	id := "/providers/Microsoft.ContainerRegistry/registries/" + key
	reg, err := s.store.GetRegistry(ctx, registry)
	switch {
	case err == nil && reg.ResourceID != "":
		id = reg.ResourceID
	case err == nil || errors.Is(err, meta.ErrNotFound):
	default:
		return "", fmt.Errorf("identity: reading registry %q: %w", registry, err)
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.regIDs == nil || len(c.regIDs) > 4096 {
			c.regIDs = map[string]regIDEntry{}
		}
		c.regIDs[key] = regIDEntry{id: id, expiry: now.Add(roleCacheTTL)}
	}
	c.mu.Unlock()
	return id, nil
}

// roleFromRights is the data-plane role that rbac's rights amount to.
func roleFromRights(name string, r rbac.DataPlaneRights) role {
	ro := role{name: name, catalog: r.Catalog}
	if r.Pull {
		ro.repositoryActions = append(ro.repositoryActions, ActionPull)
	}
	if r.Push {
		ro.repositoryActions = append(ro.repositoryActions, ActionPush)
	}
	if r.Delete {
		ro.repositoryActions = append(ro.repositoryActions, ActionDelete)
	}
	// "*" is every action: granted only to whoever holds all of them.
	if r.Pull && r.Push && r.Delete {
		ro.repositoryActions = append(ro.repositoryActions, ActionAll)
	}
	return ro
}

// PrincipalType resolves a principal id for role assignments: ARM's
// principalType of the stored principal and whether there is one. Users
// are "User"; service principals and managed identities "ServicePrincipal"
// (as in Entra). Registry-bound and internal records are not principals
// one can assign roles to.
func (s *Service) PrincipalType(ctx context.Context, id string) (string, bool, error) {
	if _, err := uuid.Parse(id); err != nil {
		return "", false, nil
	}
	p, err := s.store.GetPrincipal(ctx, strings.ToLower(id))
	if errors.Is(err, meta.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("identity: looking up principal %s: %w", id, err)
	}
	switch p.Kind {
	case KindUser:
		return "User", true, nil
	case KindServicePrincipal, KindManagedIdentity:
		// ARM reports managed identities as ServicePrincipal. The hosts
		// that carry their secrets (kindIdentityHost) never sign in and
		// take no roles.
		return "ServicePrincipal", true, nil
	}
	return "", false, nil
}

// adminOwnerNamespace derives the name of the bootstrap admin's Owner
// assignment from the admin's id, so every replica writes the same one.
var adminOwnerNamespace = uuid.MustParse("5d7f3a52-0c0e-4f7e-9a43-7b1de0c2a6f1")

// ensureAdminOwner makes the deployment admin an Owner at the deployment
// root ("/"), unless it already is through that assignment. It runs at
// every start, so the bootstrap admin regains Owner after a restart even if
// the assignment was deleted: whoever runs moat controls it anyway.
func (s *Service) ensureAdminOwner(ctx context.Context, adminID string) error {
	name := uuid.NewSHA1(adminOwnerNamespace, []byte(adminID)).String()
	id := rbac.AssignmentID("/", name)
	if _, err := s.store.GetResource(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("identity: reading the admin's Owner assignment: %w", err)
	}
	now := s.now().UTC()
	res, err := rbac.ToResource(rbac.Assignment{
		Name: name, Scope: "/", RoleDefinitionID: rbac.DefinitionID("", rbac.OwnerID), PrincipalID: adminID,
		PrincipalType: "User", Description: "the deployment admin (created by moat at start)", CreatedOn: now, UpdatedOn: now,
	})
	if err != nil {
		return err
	}
	if _, err := s.store.PutResource(ctx, res); err != nil {
		return fmt.Errorf("identity: making the admin Owner at /: %w", err)
	}
	s.InvalidateRoleAssignments()
	s.log.InfoContext(ctx, "made the deployment admin Owner at /", "principal", adminID, "assignment", id)
	return nil
}

// authenticateServicePrincipalBasic checks user/pass as a service
// principal's application id and client secret; ok is false when user names
// no service principal, so user names are tried next.
func (s *Service) authenticateServicePrincipalBasic(ctx context.Context, user, pass string) (Principal, bool, error) {
	if _, err := uuid.Parse(user); err != nil || len(user) != 36 {
		return Principal{}, false, nil
	}
	p, err := s.AuthenticateServicePrincipal(ctx, user, pass)
	if errors.Is(err, ErrServicePrincipalNotFound) {
		return Principal{}, false, nil
	}
	return p, true, err
}

// ResolvePrincipal finds the principal role assignments can name by ref: an
// object id, a service principal's application id, or a user name. It
// returns the object id, ARM's principalType and the sign-in name.
func (s *Service) ResolvePrincipal(ctx context.Context, ref string) (id, principalType, name string, found bool, err error) {
	typ, ok, err := s.PrincipalType(ctx, ref)
	if err != nil {
		return "", "", "", false, err
	}
	if ok {
		p, err := s.store.GetPrincipal(ctx, strings.ToLower(ref))
		if err != nil {
			return "", "", "", false, fmt.Errorf("identity: looking up principal %s: %w", ref, err)
		}
		return p.ID, typ, p.Name, true, nil
	}
	for _, k := range []struct{ kind, typ, name string }{
		{KindServicePrincipal, "ServicePrincipal", strings.ToLower(ref)},
		{KindUser, "User", ref},
	} {
		p, err := s.store.GetPrincipalByName(ctx, k.kind, k.name)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", "", "", false, fmt.Errorf("identity: looking up %s %q: %w", k.kind, ref, err)
		}
		return p.ID, k.typ, p.Name, true, nil
	}
	return "", "", "", false, nil
}
