package identity

import "context"

// authenticateRepoToken checks user/pass as one of registry's
// repository-scoped tokens. ok is false when user names no token of the
// registry, so the next kind of credential is tried.
func (s *Service) authenticateRepoToken(ctx context.Context, registry, user, pass string) (p Principal, ok bool, err error) {
	_, _, _, _ = ctx, registry, user, pass
	return Principal{}, false, nil
}

// authorizeRepoToken grants what a token principal's scope map allows; ok is
// false when p is not a token.
func (s *Service) authorizeRepoToken(ctx context.Context, p Principal, registry string, requested []Access) (acc []Access, ok bool, err error) {
	_, _, _, _ = ctx, p, registry, requested
	return nil, false, nil
}
