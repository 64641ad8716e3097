package identity

// Repository-scoped tokens (ACR's tokens and scope maps). The management
// plane stores them as meta.Resources below their registry's id in the form
// of internal/scopemap; this file authenticates them and grants what their
// scope map allows.
//
// Every request reads the token and its scope map from the store, so a
// disabled or deleted token, a removed or expired password and an edited
// scope map take effect from the next request on (no cache to wait for).
// Only the bcrypt comparison is cached: passwordMatches remembers for
// repoTokenMatchTTL that a password matches a stored hash. The key includes
// the hash, whose salt is unique to each generated password, so an entry can
// never vouch for a regenerated password, and the cache is safe to share
// between Services.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/scopemap"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// KindRepoToken is the principal kind of a repository-scoped token; its
// Name is the token's name and Registry the registry it belongs to.
const KindRepoToken = "token"

const (
	repoTokenMatchTTL     = time.Minute
	repoTokenMatchEntries = 1024
)

// repoTokenMatches caches successful bcrypt comparisons by
// sha256(len(hash) ':' hash password).
var repoTokenMatches = newTTLCache[struct{}](repoTokenMatchEntries)

// passwordMatches reports whether pass matches the bcrypt hash. err is set
// only when the check could not be made (see compareHash).
func (s *Service) passwordMatches(ctx context.Context, hash []byte, pass string, now time.Time) (bool, error) {
	b := make([]byte, 0, 16+len(hash)+len(pass))
	b = fmt.Appendf(b, "%d:", len(hash))
	b = append(b, hash...)
	b = append(b, pass...)
	sum := sha256.Sum256(b)
	key := string(sum[:])
	if _, ok := repoTokenMatches.get(key, now); ok {
		return true, nil
	}
	if err := s.compareHash(ctx, hash, pass); err != nil {
		if errors.Is(err, errPasswordCheckWait) {
			return false, err
		}
		return false, nil
	}
	repoTokenMatches.put(key, struct{}{}, now.Add(repoTokenMatchTTL), now)
	return true, nil
}

// loadRepoToken reads token name of registry; found is false when the
// registry or the token does not exist.
func (s *Service) loadRepoToken(ctx context.Context, registry, name string) (reg meta.Registry, t scopemap.Token, found bool, err error) {
	reg, err = s.store.GetRegistry(ctx, registry)
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Registry{}, scopemap.Token{}, false, nil
	}
	if err != nil {
		return meta.Registry{}, scopemap.Token{}, false, fmt.Errorf("identity: reading registry %q: %w", registry, err)
	}
	res, err := s.store.GetResource(ctx, scopemap.TokenID(reg.ResourceID, name))
	if errors.Is(err, meta.ErrNotFound) {
		return reg, scopemap.Token{}, false, nil
	}
	if err != nil {
		return reg, scopemap.Token{}, false, fmt.Errorf("identity: reading token %q of registry %q: %w", name, registry, err)
	}
	t, err = scopemap.DecodeToken(res.Properties)
	if err != nil {
		return reg, scopemap.Token{}, false, fmt.Errorf("identity: token %q of registry %q: %w", name, registry, err)
	}
	return reg, t, true, nil
}

// authenticateRepoToken checks user/pass as one of registry's
// repository-scoped tokens. ok is false when user names no token of the
// registry, or when pass is none of its passwords, so the next kind of
// credential is tried. A matching password of a disabled token, or an
// expired one, is refused (ok true, ErrUnauthenticated).
func (s *Service) authenticateRepoToken(ctx context.Context, registry, user, pass string) (p Principal, ok bool, err error) {
	if !scopemap.ValidName(user) || pass == "" || len(pass) > maxPasswordLen {
		return Principal{}, false, nil
	}
	_, t, found, err := s.loadRepoToken(ctx, registry, user)
	if err != nil {
		return Principal{}, true, err
	}
	if !found {
		return Principal{}, false, nil
	}
	now := s.now()
	var matched *scopemap.Password
	for i := range t.Passwords {
		ok, err := s.passwordMatches(ctx, t.Passwords[i].Hash, pass, now)
		if err != nil {
			return Principal{}, true, err
		}
		if ok {
			matched = &t.Passwords[i]
			break
		}
	}
	if matched == nil {
		return Principal{}, false, nil
	}
	if t.Status != scopemap.StatusEnabled {
		return Principal{}, true, fmt.Errorf("%w: token %q of registry %q is disabled", ErrUnauthenticated, user, registry)
	}
	if matched.Expired(now) {
		return Principal{}, true, fmt.Errorf("%w: %s of token %q expired at %s", ErrUnauthenticated, matched.Name, user, matched.Expiry.UTC().Format(time.RFC3339))
	}
	return Principal{ID: t.PrincipalID, Kind: KindRepoToken, Name: user, Registry: strings.ToLower(registry)}, true, nil
}

// authorizeRepoToken grants what a token principal's scope map allows; ok is
// false when p is not a token. A token for another registry, a token that was
// deleted (or deleted and created again), disabled, or whose scope map is
// gone gets nothing.
func (s *Service) authorizeRepoToken(ctx context.Context, p Principal, registry string, requested []Access) (acc []Access, ok bool, err error) {
	if p.Kind != KindRepoToken {
		return nil, false, nil
	}
	if p.ID == "" || !strings.EqualFold(p.Registry, registry) {
		return grantRepoToken(nil, requested), true, nil
	}
	reg, t, found, err := s.loadRepoToken(ctx, registry, p.Name)
	if err != nil {
		return nil, true, err
	}
	if !found || t.PrincipalID != p.ID || t.Status != scopemap.StatusEnabled {
		return grantRepoToken(nil, requested), true, nil
	}
	rules, err := s.scopeMapRules(ctx, reg, t.ScopeMapID)
	if err != nil {
		return nil, true, err
	}
	return grantRepoToken(rules, requested), true, nil
}

// scopeMapRules reads the rules of the scope map with id; none when it does
// not exist (any more).
func (s *Service) scopeMapRules(ctx context.Context, reg meta.Registry, id string) ([]scopemap.Rule, error) {
	name, ok := scopemap.ScopeMapName(reg.ResourceID, id)
	if !ok {
		return nil, nil
	}
	m, _, builtIn := scopemap.BuiltIn(name, reg.CreatedAt)
	if !builtIn {
		res, err := s.store.GetResource(ctx, id)
		if errors.Is(err, meta.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("identity: reading scope map %q: %w", id, err)
		}
		if m, err = scopemap.DecodeScopeMap(res.Properties); err != nil {
			return nil, fmt.Errorf("identity: scope map %q: %w", id, err)
		}
	}
	rules, err := m.Rules()
	if err != nil {
		return nil, fmt.Errorf("identity: scope map %q: %w", id, err)
	}
	return rules, nil
}

// grantRepoToken is the token authorization decision, a pure function: per
// requested entry, the requested actions the rules grant on that
// repository. Registry-wide entries (the catalog) get nothing: ACR's
// repository-scoped permissions cannot list the catalog.
func grantRepoToken(rules []scopemap.Rule, requested []Access) []Access {
	out := make([]Access, 0, len(requested))
	for _, req := range requested {
		acts := []string{}
		if req.Type == TypeRepository {
			allowed := scopemap.Grants(rules, req.Name)
			for _, a := range req.Actions {
				if slices.Contains(allowed, a) && !slices.Contains(acts, a) {
					acts = append(acts, a)
				}
			}
		}
		out = append(out, Access{Type: req.Type, Name: req.Name, Actions: acts})
	}
	return out
}
