package identity

import "context"

// AuthenticateRegistry checks Basic credentials presented to one registry's
// data plane: the registry's admin user (adminuser.go), one of its
// repository-scoped tokens (repotoken.go), or else a deployment principal
// (AuthenticateBasic). registry is the registry's name.
func (s *Service) AuthenticateRegistry(ctx context.Context, registry, user, pass string) (Principal, error) {
	if p, ok, err := s.authenticateAdminUser(ctx, registry, user, pass); ok {
		return p, err
	}
	if p, ok, err := s.authenticateRepoToken(ctx, registry, user, pass); ok {
		return p, err
	}
	return s.AuthenticateBasic(ctx, user, pass)
}
