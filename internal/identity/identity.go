// Package identity owns principals, how they authenticate, the tokens moat
// issues and verifies, and the decision of what a principal may do on a
// registry's data plane. The management plane's ARM authorization is
// internal/rbac's; this package resolves the same role assignments for the
// data plane.
//
// Principals (Principal.Kind; each file's doc has the details):
//
//   - users (KindUser; service.go, users.go): a name and a bcrypt-hashed
//     password. The deployment admin ("admin") is one, created at first
//     start and an ordinary Owner at "/" since RBAC; it cannot be deleted.
//     Others are created through the management API (password policy:
//     MinPasswordLen..72 bytes); a password change or deletion drops this
//     process's Basic cache.
//   - service principals (KindServicePrincipal; serviceprincipal.go): an
//     application id and bcrypt-hashed client secrets with expiry.
//   - managed identities (KindManagedIdentity; managed.go, msi_handler.go):
//     system-assigned to a service instance or user-assigned; they get tokens
//     through the IDENTITY_ENDPOINT protocol, and carry the instance's
//     resource id (Principal.ResourceID, claim xms_mirid) that the data
//     plane's trusted-services check reads.
//   - the Defender-for-Cloud scanner (defender.go), a built-in principal.
//   - registry-bound principals (Principal.Registry set): the registry admin
//     user (KindAdminUser; adminuser.go) and repository-scoped tokens
//     (KindRepoToken; repotoken.go, rights from a scope map).
//   - the anonymous caller (KindAnonymous; anonymous.go), where a registry
//     allows anonymous pull.
//
// Tokens:
//
//   - Entra-compatible management tokens (entra.go, entra_handler.go):
//     OpenID discovery, JWKS, client-credentials and password grants, so
//     azidentity pointed at moat works.
//   - ACR's data-plane flow: an Entra token is exchanged for a refresh token
//     bound to one registry (refresh.go), traded for access tokens; Basic
//     credentials (AuthenticateRegistry: admin user, repository token, then
//     users and service principals) get access tokens directly.
//   - Access tokens (token.go) are ES256 JWTs bound to one registry's login
//     server (aud), carrying Docker's access[{type,name,actions}], the
//     principal and, for managed identities, xms_mirid.
//   - Every token moat signs uses one keyring kept in the metadata store.
//     RotateSigningKey (moat keys rotate) adds a key and retires the active
//     one; a process signs with the newest active key it has loaded (reloaded
//     every keyRefreshInterval) and reloads at once, rate-limited, when a
//     token names a kid it does not know.
//
// Authorization (authorize.go): Authorize answers one entry per requested
// entry with exactly the requested actions the principal may do: the
// registry-bound principals' own rights, the scanner's, or else the
// principal's role assignments covering the registry's resource id
// (roles.go, cached for roleCacheTTL and invalidated by the management
// plane). Nothing granted is an empty action list, not an error, as Docker
// token servers answer.
//
// Brute-force protection: the Entra endpoint locks a client id or user name
// after repeated failures (entra_limit.go); the data plane's password logins
// are limited per (registry, user name) and per client address
// (loginlimit.go); bcrypt checks run at most MaxConcurrentPasswordChecks at
// once (bcryptlimit.go).
//
// Invariants:
//
//   - Security decisions fail closed: an unknown principal, kind, resource
//     type or action is granted nothing; a token whose algorithm is not ES256,
//     whose key is unknown, or whose issuer or audience differs is refused.
//     An error that is not ErrUnauthenticated (or ErrLockedOut) means the
//     check could not be made; it is never a silent grant or denial.
//   - Human-chosen secrets (user passwords, client secrets, repository-token
//     passwords) are stored only as bcrypt hashes; random 256-bit secrets
//     (admin-user passwords, identity-host secrets) as SHA-256. Verifying an
//     unknown name costs the same bcrypt work as a known one.
//   - A login refused by the limits is refused whatever its password: a
//     limit that a correct guess escapes protects nothing.
//   - Caches (successful Basic verifications, verified tokens, role
//     assignments) are bounded in size and never answer for longer than their
//     entry is valid: a Basic entry lives at most basicCacheTTL and dies when
//     this process resets the password; a token entry never outlives the
//     token's exp; role assignments are re-read after roleCacheTTL.
//   - Refresh tokens re-read their principal at every use, so deleting it
//     stops them from the next token request on, and the access token
//     granted after a role is removed carries no actions for it.
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
