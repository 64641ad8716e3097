// Package identity owns principals, their authentication, the tokens moat
// issues and verifies, and the decision of what a principal may do.
//
// Today (the registry-core scope) there is one principal that can sign in:
// the deployment admin (kind "user", name "admin"), with full rights on every
// registry. Data-plane access tokens are ES256 JWTs signed with keys kept in
// the metadata store, bound to one registry's service name (aud), and carry
// Docker-style access claims. Users, service principals, managed identities
// and RBAC role assignments plug into the same places: AuthenticateBasic's
// principal lookup and Authorize's role resolution.
//
// Invariants:
//
//   - Security decisions fail closed: an unknown principal, kind, resource
//     type or action is granted nothing; a token whose algorithm is not ES256,
//     whose key is unknown, or whose issuer or audience differs is refused.
//   - Passwords are stored only as bcrypt hashes. Verifying an unknown user
//     costs the same bcrypt work as a known one.
//   - Caches (successful Basic verifications, verified tokens) are bounded in
//     size and never answer for longer than their entry is valid: a Basic
//     entry lives at most basicCacheTTL and dies when this process resets the
//     password; a token entry never outlives the token's exp.
//   - Signing keys are never deleted by this package; a retired key keeps
//     verifying until every token it can have signed has expired.
package identity

import (
	"errors"
	"time"
)

var (
	// ErrUnauthenticated means credentials or a token were missing, malformed,
	// wrong, expired, or for another audience. Maps to 401.
	ErrUnauthenticated = errors.New("identity: unauthenticated")
	// ErrInvalidScope means a scope string does not parse. Maps to 400.
	ErrInvalidScope = errors.New("identity: invalid scope")
)

// Principal kinds and the deployment admin's login name.
const (
	// KindUser is the kind of human users, the deployment admin among them.
	KindUser = "user"
	// AdminName is the deployment admin's login name.
	AdminName = "admin"
)

// Resource types and actions of Docker access entries that moat knows.
const (
	// TypeRepository is the resource type of a repository scope
	// ("repository:library/alpine:pull").
	TypeRepository = "repository"
	// TypeRegistry is the resource type of registry-wide scopes; the only
	// registry resource is CatalogName ("registry:catalog:*").
	TypeRegistry = "registry"
	// CatalogName is the registry resource that /v2/_catalog needs.
	CatalogName = "catalog"

	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	// ActionAll is the wildcard action; granted, it matches every action.
	ActionAll = "*"
)

// Principal is an authenticated caller.
type Principal struct {
	ID   string
	Kind string
	Name string
	// Registry is the registry a registry-bound principal (the admin user, a
	// repository-scoped token) belongs to; "" for deployment principals.
	Registry string
	// ResourceID is, for a managed identity, the service-instance resource
	// its token was obtained on (xms_az_rid; for a system-assigned identity
	// also its xms_mirid, see managed.go): what the trusted-services check
	// classifies. "" for other principals.
	ResourceID string
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
			if act == action || act == ActionAll {
				return true
			}
		}
	}
	return false
}
