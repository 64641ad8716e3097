package identity

import "context"

// authenticateAdminUser checks user/pass as registry's admin user. ok is
// false when user is not that registry's admin user name, so the next kind
// of credential is tried.
func (s *Service) authenticateAdminUser(ctx context.Context, registry, user, pass string) (p Principal, ok bool, err error) {
	_, _, _, _ = ctx, registry, user, pass
	return Principal{}, false, nil
}

// authorizeAdminUser grants what an admin-user principal may do; ok is false
// when p is not one.
func (s *Service) authorizeAdminUser(ctx context.Context, p Principal, registry string, requested []Access) (acc []Access, ok bool, err error) {
	_, _, _, _ = ctx, p, registry, requested
	return nil, false, nil
}
