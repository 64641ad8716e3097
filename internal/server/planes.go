package server

import (
	"net/http"
	"strings"
)

// Planes routes a request to the plane that owns its path. The paths of the
// three planes do not overlap, so the choice needs no precedence rules:
//
//   - Management: /subscriptions/… and /providers/… (ARM; case-insensitive,
//     as ARM treats paths);
//   - Identity: /{tenant}/v2.0/…, /{tenant}/discovery/…, /{tenant}/oauth2/v2.0/…
//     and /common/UserRealm/… (the Entra-compatible issuer), and /msi/token
//     (the managed-identity endpoint);
//   - Data: everything else (/v2/…, /oauth2/token, /oauth2/exchange, /acr/v1/…),
//     which answers unknown paths with OCI errors.
//
// A nil plane's paths fall through to Data.
type Planes struct {
	Data       http.Handler
	Management http.Handler
	Identity   http.Handler
}

// ServeHTTP implements http.Handler.
func (p Planes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case p.Management != nil && (hasPrefixFold(path, "/subscriptions/") || hasPrefixFold(path, "/providers/")):
		p.Management.ServeHTTP(w, r)
	case p.Identity != nil && isIdentityPath(path):
		p.Identity.ServeHTTP(w, r)
	default:
		p.Data.ServeHTTP(w, r)
	}
}

// isIdentityPath: /{tenant}/{v2.0|discovery|oauth2}/…, /common/UserRealm/… or /msi/token.
// The data plane's own /oauth2/… has no tenant segment before it.
func isIdentityPath(path string) bool {
	if hasPrefixFold(path, "/common/userrealm/") || path == "/msi/token" {
		return true
	}
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return false
	}
	tenant, rest, ok := strings.Cut(rest, "/")
	if !ok || tenant == "" || tenant == "v2" || tenant == "oauth2" || tenant == "acr" {
		return false
	}
	return strings.HasPrefix(rest, "v2.0/") || strings.HasPrefix(rest, "discovery/") || strings.HasPrefix(rest, "oauth2/v2.0/")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

var _ http.Handler = Planes{}
