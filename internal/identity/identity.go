// Package identity owns principals, their authentication, the tokens moat
// issues and verifies, and the authorization decision of what a principal may
// do.
//
// CONTRACT (issue 2 scope; the identity issue generalises it): one
// deployment admin principal (kind "user", name "admin") with full rights on
// every registry; data-plane access tokens are ES256 JWTs signed with keys kept
// in the metadata store, bound to one registry's service name (aud), carrying
// Docker-style access claims.
package identity

import (
	"errors"
	"time"
)

var (
	// ErrUnauthenticated: credentials or token missing, malformed, wrong,
	// expired, or for another audience. Maps to 401.
	ErrUnauthenticated = errors.New("identity: unauthenticated")
	// ErrInvalidScope: a scope string that does not parse. Maps to 400.
	ErrInvalidScope = errors.New("identity: invalid scope")
)

// Principal is an authenticated caller.
type Principal struct {
	ID   string
	Kind string
	Name string
}

// Access is one Docker-token access entry: a resource and actions on it,
// e.g. {Type: "repository", Name: "library/alpine", Actions: ["pull","push"]}
// or {Type: "registry", Name: "catalog", Actions: ["*"]}.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Token is an issued access token.
type Token struct {
	Token     string
	IssuedAt  time.Time
	ExpiresIn time.Duration
	Access    []Access
}

// Claims is what a verified access token says.
type Claims struct {
	Principal Principal
	// Service is the audience: the login server of the registry the token is
	// for.
	Service string
	Access  []Access
	Expiry  time.Time
}

// Allows reports whether the claims grant action on a resource. A granted "*"
// matches every action.
func (c Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type != typ || a.Name != name {
			continue
		}
		for _, act := range a.Actions {
			if act == action || act == "*" {
				return true
			}
		}
	}
	return false
}

// The Service type and its methods are provided in service.go:
//
//	func New(ctx context.Context, store meta.Store, opts Options) (*Service, error)
//	type Options struct {
//	    Issuer        string        // "iss" of data-plane tokens, e.g. "moat"
//	    TokenLifetime time.Duration // default 1h (ACR: 75 min for access tokens)
//	    Logger        *slog.Logger
//	    Now           func() time.Time // for tests; default time.Now
//	}
//	// EnsureAdmin makes sure the deployment admin exists. If it does not, it is
//	// created with password (or a generated one when password is ""), and
//	// created=true with the password actually set is returned. If it exists and
//	// password != "", the password is reset to it.
//	func (s *Service) EnsureAdmin(ctx context.Context, password string) (pw string, created bool, err error)
//	// AuthenticateBasic checks a username/password (ErrUnauthenticated when
//	// wrong). Successful verifications are cached briefly so Basic auth on
//	// every /v2 request does not pay bcrypt each time.
//	func (s *Service) AuthenticateBasic(ctx context.Context, user, pass string) (Principal, error)
//	// Authorize returns the subset of requested that p may do on registry
//	// (intersection of requested actions and p's rights; entries with no
//	// actions left are kept with an empty Actions list, as Docker expects).
//	func (s *Service) Authorize(ctx context.Context, p Principal, registry string, requested []Access) ([]Access, error)
//	// IssueAccessToken authorizes requested for p on registry and signs a
//	// token with audience service.
//	func (s *Service) IssueAccessToken(ctx context.Context, p Principal, registry, service string, requested []Access) (Token, error)
//	// VerifyAccessToken checks signature (known key; alg must be ES256, never
//	// "none"), expiry, not-before, issuer and that aud == service.
//	func (s *Service) VerifyAccessToken(ctx context.Context, raw, service string) (Claims, error)
//	// ParseScope parses one Docker scope string "type:name:action,action"
//	// (name may contain ':' only as a port in a registry host; repository
//	// names never do) into an Access; ErrInvalidScope otherwise.
//	func ParseScope(s string) (Access, error)
//	// FormatScope is the inverse, used for WWW-Authenticate scope="...".
//	func FormatScope(a Access) string
