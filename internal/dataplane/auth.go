package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Actions the endpoints need on their repository. Shared, never modified.
var (
	actionsPull     = []string{identity.ActionPull}
	actionsPullPush = []string{identity.ActionPull, identity.ActionPush}
	actionsDelete   = []string{identity.ActionDelete}

	// catalogScope is what /v2/_catalog needs and what the 401 of /v2/
	// suggests asking for: a token good for the whole registry's listing.
	catalogScope = []identity.Access{{Type: identity.TypeRegistry, Name: identity.CatalogName, Actions: []string{identity.ActionAll}}}
)

// maxScopes bounds the scopes of one token request.
const maxScopes = 64

// caller is an authenticated client: by a bearer token (claims set) or by
// Basic credentials (claims nil, rights resolved per request).
type caller struct {
	principal identity.Principal
	claims    *identity.Claims
}

// errNoCredentials: the request carries no Authorization header.
var errNoCredentials = errors.New("no credentials")

// authenticate reads the Authorization header: a bearer token minted for
// this registry's login server, or Basic credentials. presentedToken tells a
// refused token from absent credentials, for the challenge.
func (h *Handler) authenticate(q *request) (c caller, presentedToken bool, err error) {
	hdr := q.r.Header.Get("Authorization")
	if hdr == "" {
		return caller{}, false, errNoCredentials
	}
	scheme, rest, _ := strings.Cut(hdr, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		claims, err := h.id.VerifyAccessToken(q.r.Context(), strings.TrimSpace(rest), q.login)
		if err != nil {
			return caller{}, true, err
		}
		if err := h.stillEnabled(q, claims.Principal); err != nil {
			return caller{}, true, err
		}
		return caller{principal: claims.Principal, claims: &claims}, true, nil
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := q.r.BasicAuth()
		if !ok {
			return caller{}, false, fmt.Errorf("%w: malformed Basic credentials", identity.ErrUnauthenticated)
		}
		p, err := h.basicPrincipal(q, user, pass)
		if err != nil {
			return caller{}, false, err
		}
		return caller{principal: p}, false, nil
	}
	return caller{}, false, fmt.Errorf("%w: unsupported authorization scheme %q", identity.ErrUnauthenticated, scheme)
}

// basicPrincipal authenticates Basic credentials presented to the request's
// registry: the refresh-token user name with a refresh token as password,
// else the registry's credentials (admin user, tokens, principals).
func (h *Handler) basicPrincipal(q *request, user, pass string) (identity.Principal, error) {
	if user == identity.RefreshTokenUser {
		return h.id.VerifyRefreshToken(q.r.Context(), pass, q.registry, q.login)
	}
	return h.registryLogin(q, user, pass)
}

// stillEnabled refuses an access token whose rights come from a registry
// setting that has since been turned off: the admin user's and anonymous
// pull's tokens die with the setting, not an hour later.
func (h *Handler) stillEnabled(q *request, p identity.Principal) error {
	switch p.Kind {
	case identity.KindAnonymous:
		if !h.anonymousPull(q) {
			return fmt.Errorf("%w: anonymous pull is disabled on registry %q", identity.ErrUnauthenticated, q.registry)
		}
	case identity.KindAdminUser:
		e, err := h.registries.lookup(q.r.Context(), h.meta, q.registry, h.now())
		if err != nil {
			return fmt.Errorf("looking up registry %q: %w", q.registry, err)
		}
		if !identity.AdminUserEnabled(e.reg) {
			return fmt.Errorf("%w: the admin user of registry %q is disabled", identity.ErrUnauthenticated, q.registry)
		}
	}
	return nil
}

// anonymousPull reports whether the request's registry lets clients without
// credentials pull: anonymousPullEnabled on a Standard or Premium registry.
// A registry that cannot be read allows nothing.
func (h *Handler) anonymousPull(q *request) bool {
	e, err := h.registries.lookup(q.r.Context(), h.meta, q.registry, h.now())
	if err != nil {
		return false
	}
	return anonymousPullEnabled(e.reg)
}

// anonymousPullEnabled reads the setting from a stored registry. The SKU is
// checked too: the management plane refuses the setting on Basic, and a
// downgrade must not leave it working.
func anonymousPullEnabled(reg meta.Registry) bool {
	if !strings.EqualFold(reg.SKU, "Standard") && !strings.EqualFold(reg.SKU, "Premium") {
		return false
	}
	var p struct {
		AnonymousPullEnabled bool `json:"anonymousPullEnabled"`
	}
	if len(reg.Properties) == 0 || json.Unmarshal(reg.Properties, &p) != nil {
		return false
	}
	return p.AnonymousPullEnabled
}

// anonymousAllows reports whether an anonymous caller may do need on the
// request's registry: only pulls, only where anonymous pull is on.
func (h *Handler) anonymousAllows(q *request, need []identity.Access) bool {
	if len(need) == 0 {
		return false // "any authenticated caller" is not an anonymous one
	}
	return covers(identity.AnonymousGrant(need), need) && h.anonymousPull(q)
}

// granted returns what c may do of need on the request's registry.
func (h *Handler) granted(q *request, c caller, need []identity.Access) ([]identity.Access, error) {
	if c.claims != nil {
		return c.claims.Access, nil
	}
	acc, err := h.id.Authorize(q.r.Context(), c.principal, q.registry, need)
	if err != nil {
		return nil, fmt.Errorf("authorizing %s %q: %w", c.principal.Kind, c.principal.Name, err)
	}
	return acc, nil
}

// covers reports whether granted includes every action of every entry of
// need.
func covers(granted, need []identity.Access) bool {
	cl := identity.Claims{Access: granted}
	for _, n := range need {
		for _, a := range n.Actions {
			if !cl.Allows(n.Type, n.Name, a) {
				return false
			}
		}
	}
	return true
}

// authorize authenticates the request and checks that the caller may do
// everything in need (nil: any authenticated caller will do). On refusal it
// sends the answer, a 401 challenge naming scope or a 403, and returns false.
func (h *Handler) authorize(q *request, need, scope []identity.Access) (caller, bool) {
	c, presented, err := h.authenticate(q)
	if errors.Is(err, errNoCredentials) && h.anonymousAllows(q, need) {
		q.principal = identity.KindAnonymous
		q.decision = decisionAllowed
		return caller{principal: identity.AnonymousPrincipal(q.registry)}, true
	}
	if lo := lockout(err); lo != nil {
		h.tooManyLogins(q, lo)
		return caller{}, false
	}
	if err != nil {
		q.decision = decisionUnauthenticated
		if errors.Is(err, errNoCredentials) || errors.Is(err, identity.ErrUnauthenticated) {
			errParam := ""
			if presented {
				errParam = "invalid_token"
			}
			h.challenge(q, scope, errParam, err)
			return caller{}, false
		}
		q.failErr(fmt.Errorf("authenticating: %w", err), nil)
		return caller{}, false
	}
	q.principal = c.principal.Name
	if len(need) == 0 {
		q.decision = decisionAllowed
		return c, true
	}
	acc, err := h.granted(q, c, need)
	if err != nil {
		q.decision = decisionDenied
		q.failErr(err, nil)
		return caller{}, false
	}
	if covers(acc, need) {
		q.decision = decisionAllowed
		return c, true
	}
	q.decision = decisionDenied
	if c.claims != nil {
		// A token can be replaced by a better one: tell the client which.
		h.challenge(q, scope, "insufficient_scope", nil)
	} else {
		q.fail(&apiError{Code: codeDenied, Detail: scope})
	}
	return caller{}, false
}

// authorizeRepo authorizes actions on the request's repository.
func (h *Handler) authorizeRepo(q *request, actions []string) bool {
	need := []identity.Access{{Type: identity.TypeRepository, Name: q.route.Name, Actions: actions}}
	_, ok := h.authorize(q, need, need)
	return ok
}

// challenge sends 401 with the Bearer challenge of the Docker token flow.
func (h *Handler) challenge(q *request, scope []identity.Access, errParam string, cause error) {
	h.challengeHeader(q, scope, errParam)
	q.fail(&apiError{Code: codeUnauthorized, Detail: scope, Cause: cause})
}

// challengeHeader sets WWW-Authenticate. The scope is always named, so
// clients ask for a token that will do; errParam is RFC 6750's error
// ("invalid_token", "insufficient_scope") or empty.
func (h *Handler) challengeHeader(q *request, scope []identity.Access, errParam string) {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	b.WriteString(tokenRealm(q))
	b.WriteString(`",service="`)
	b.WriteString(q.login)
	b.WriteByte('"')
	if len(scope) > 0 {
		b.WriteString(`,scope="`)
		for i, s := range scope {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(identity.FormatScope(s))
		}
		b.WriteByte('"')
	}
	if errParam != "" {
		b.WriteString(`,error="`)
		b.WriteString(errParam)
		b.WriteByte('"')
	}
	q.Header().Set("WWW-Authenticate", b.String())
}

// tokenRealm is the token endpoint on the host and port the client used (so
// that clients which insist on the same origin, like go-containerregistry on
// loopback, follow it).
func tokenRealm(q *request) string {
	scheme := "http"
	if q.r.TLS != nil {
		scheme = "https"
	}
	host := q.r.Host
	if host == "" || strings.ContainsAny(host, "\" \\,") {
		host = q.login
	}
	return scheme + "://" + host + "/oauth2/token"
}

// tokenResponse is the Docker token endpoint's answer; token and
// access_token carry the same value for old and new clients.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// oauthError is the RFC 6749 error body of the POST (OAuth2) token flow.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// serveToken is GET /oauth2/token (the Docker token flow: Basic credentials
// or none, service and scope parameters) and POST /oauth2/token (the OAuth2
// form flow, tokenflow.go).
//
// Basic credentials are the registry's (admin user, tokens, principals) or
// the refresh-token user name with a refresh token. Without credentials, a
// registry with anonymous pull answers a token granting pull only; any
// other registry challenges for Basic credentials.
func (h *Handler) serveToken(q *request) {
	if q.r.Method == http.MethodPost {
		h.serveTokenPost(q)
		return
	}
	ctx := q.r.Context()
	var p identity.Principal
	user, pass, ok := q.r.BasicAuth()
	switch {
	case ok:
		var err error
		p, err = h.basicPrincipal(q, user, pass)
		if lo := lockout(err); lo != nil {
			h.tooManyLogins(q, lo)
			return
		}
		if err != nil {
			q.decision = decisionUnauthenticated
			if errors.Is(err, identity.ErrUnauthenticated) {
				q.Header().Set("WWW-Authenticate", `Basic realm="moat"`)
				q.fail(&apiError{Code: codeUnauthorized, Message: "invalid username or password", Cause: err})
				return
			}
			q.failErr(fmt.Errorf("authenticating: %w", err), nil)
			return
		}
	case q.r.Header.Get("Authorization") == "" && h.anonymousPull(q):
		p = identity.AnonymousPrincipal(q.registry)
	default:
		q.decision = decisionUnauthenticated
		q.Header().Set("WWW-Authenticate", `Basic realm="moat"`)
		q.fail(newError(codeUnauthorized, "authentication required: send Basic credentials", nil))
		return
	}
	q.principal = p.Name

	query := q.r.URL.Query()
	if service := query.Get("service"); !strings.EqualFold(service, q.login) {
		q.fail(&apiError{Code: codeUnsupported, Status: http.StatusBadRequest,
			Message: fmt.Sprintf("service %q is not this registry's login server %q", service, q.login)})
		return
	}
	requested, e := parseScopes(query["scope"])
	if e != nil {
		q.fail(e)
		return
	}
	tok, err := h.issueAccessToken(ctx, q, p, requested)
	if err != nil {
		q.failErr(fmt.Errorf("issuing token: %w", err), nil)
		return
	}
	q.decision = decisionAllowed
	h.writeToken(q, tok)
}

// issueAccessToken issues p's access token for requested on the request's
// registry; the anonymous caller gets pull only.
func (h *Handler) issueAccessToken(ctx context.Context, q *request, p identity.Principal, requested []identity.Access) (identity.Token, error) {
	if p.Kind == identity.KindAnonymous {
		return h.id.IssueAnonymousToken(ctx, q.registry, q.login, requested)
	}
	return h.id.IssueAccessToken(ctx, p, q.registry, q.login, requested)
}

// writeToken sends an access token as both token endpoints answer it.
func (h *Handler) writeToken(q *request, tok identity.Token) {
	//nolint:gosec // G117: handing out the token is what this endpoint is for.
	body, err := json.Marshal(tokenResponse{
		Token:       tok.Token,
		AccessToken: tok.Token,
		ExpiresIn:   int64(tok.ExpiresIn / time.Second),
		IssuedAt:    tok.IssuedAt.UTC().Format(time.RFC3339),
	})
	if err != nil {
		q.failErr(fmt.Errorf("encoding token response: %w", err), nil)
		return
	}
	writeJSONNoStore(q, http.StatusOK, body)
}

// writeJSONNoStore sends a JSON body that must not be cached (tokens and
// token errors).
func writeJSONNoStore(q *request, status int, body []byte) {
	hdr := q.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	q.WriteHeader(status)
	_, _ = q.Write(body)
}

// parseScopes parses the scope parameters of a token request. Each may hold
// several scopes separated by spaces (the OAuth2 form, which clients also
// use when a challenge named several).
func parseScopes(params []string) ([]identity.Access, *apiError) {
	var out []identity.Access
	for _, p := range params {
		for _, s := range strings.Fields(p) {
			if len(out) == maxScopes {
				return nil, &apiError{Code: codeUnsupported, Status: http.StatusBadRequest,
					Message: fmt.Sprintf("too many scopes (at most %d)", maxScopes)}
			}
			a, err := identity.ParseScope(s)
			if err != nil {
				return nil, &apiError{Code: codeUnsupported, Status: http.StatusBadRequest,
					Message: fmt.Sprintf("invalid scope %q", s), Cause: err}
			}
			if a.Type == identity.TypeRepository && !validName(a.Name) {
				return nil, &apiError{Code: codeNameInvalid,
					Message: fmt.Sprintf("invalid repository name %q in scope %q", a.Name, s)}
			}
			out = append(out, a)
		}
	}
	return out, nil
}
