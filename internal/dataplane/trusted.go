package dataplane

// Trusted services (DESIGN.md §3 step 2, seed 001).
//
// The network decision runs before authentication, but the trusted-services
// bypass depends on who the caller is. So, only for a request the network
// rules would refuse, trustedService verifies the credential the request
// carries and classifies the verified principal:
//
//   - a bearer access token of this registry (VerifyAccessToken: moat's
//     signature, audience, expiry) whose principal is a managed identity:
//     netrule.ClassifyResource of its ResourceID, the service instance the
//     identity's token was obtained on (xms_az_rid; see identity/managed.go);
//   - the same token for the built-in Defender scanner principal:
//     netrule.DefenderForCloud;
//   - POST /oauth2/exchange: the Entra token in the form's access_token
//     (VerifyEntraToken, which re-checks that the identity still exists and
//     is attached to the instance), classified the same way;
//   - POST /oauth2/token with grant_type=refresh_token: the form's
//     refresh_token, and Basic credentials whose user name is
//     identity.RefreshTokenUser on any route (docker's way of presenting
//     `moat acr login --expose-token`'s token): VerifyRefreshToken
//     (signature, expiry, bound to this registry and login server, principal
//     still exists), then classified by the ResourceID the refresh token
//     carries from the Entra token it was exchanged for.
//
// Anything else, including a token that fails verification, is
// netrule.None, so the request is denied exactly as before and learns
// nothing from the attempt. A token is never classified before it is
// verified. netrule.Decide then applies the rest: App Service never
// bypasses, tasks only with networkRuleBypassAllowedForTasks, nothing with
// networkRuleBypassOptions None. Authentication afterwards verifies the same
// token again and RBAC applies as usual.
//
// The first request of a stock client carries no credentials
// (azcontainerregistry sends the real request bare and expects a 401
// challenge naming service and scope; crane and regctl ping /v2/ first).
// Where the refusal could still be lifted by a trusted service's token
// (public endpoint, networkRuleBypassOptions AzureServices), such a request
// gets the ordinary Bearer challenge instead of 403 DENIED (challengeTrusted):
// 401 UNAUTHORIZED, the scope echoing the request's own path and method, no
// lookup of the repository or anything else. It allows nothing: the token
// endpoints are judged again and refuse any caller that is not a verified
// trusted service (anonymous pull included), and the denial is audited. The
// only thing it tells a stranger is that the registry accepts trusted
// services, which the registry's owner chose. Where no token could help
// (bypass None, a private endpoint, an unreadable configuration) and for
// requests that do carry credentials, the answer stays 403 DENIED.

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/netrule"
)

// exchangePath is ACR's Entra-token exchange endpoint; tokenPath its token
// endpoint.
const (
	exchangePath = "/oauth2/exchange"
	tokenPath    = "/oauth2/token" //nolint:gosec // G101: a URL path, not a credential
)

// maxExchangeForm bounds the form body read for classification; the
// token handlers apply their own limit to what they read again.
const maxExchangeForm = 64 << 10

// trustedService classifies the caller of q for the network decision; see
// the file comment. checkNetwork asks only for requests the rules refused
// without it, so requests they allow never pay for a token check.
func (h *Handler) trustedService(q *request) netrule.TrustedService {
	ctx := q.r.Context()
	if q.r.Method == http.MethodPost && q.r.URL.Path == exchangePath {
		raw := formField(q.r, "", "access_token")
		if raw == "" {
			return netrule.None
		}
		p, err := h.id.VerifyEntraToken(ctx, raw, identity.AudienceContainerRegistry, identity.AudienceManagement, identity.AudienceARM)
		if err != nil {
			return netrule.None
		}
		return h.classifyPrincipal(q, p)
	}
	if q.r.Method == http.MethodPost && q.r.URL.Path == tokenPath {
		return h.classifyRefreshToken(q, formField(q.r, "refresh_token", "refresh_token"))
	}
	scheme, raw, ok := strings.Cut(q.r.Header.Get("Authorization"), " ")
	switch {
	case !ok:
		return netrule.None
	case strings.EqualFold(scheme, "Basic"):
		if user, pass, ok := q.r.BasicAuth(); ok && user == identity.RefreshTokenUser {
			return h.classifyRefreshToken(q, pass)
		}
		return netrule.None
	case !strings.EqualFold(scheme, "Bearer"):
		return netrule.None
	}
	claims, err := h.id.VerifyAccessToken(ctx, strings.TrimSpace(raw), q.login)
	if err != nil {
		return netrule.None
	}
	return h.classifyPrincipal(q, claims.Principal)
}

// classifyRefreshToken verifies a refresh token for the request's registry
// and classifies its principal; "" or a refused token is None.
func (h *Handler) classifyRefreshToken(q *request, raw string) netrule.TrustedService {
	if raw == "" {
		return netrule.None
	}
	p, err := h.id.VerifyRefreshToken(q.r.Context(), raw, q.registry, q.login)
	if err != nil {
		return netrule.None
	}
	return h.classifyPrincipal(q, p)
}

// classifyPrincipal maps a verified principal to its trusted service.
func (h *Handler) classifyPrincipal(q *request, p identity.Principal) netrule.TrustedService {
	switch p.Kind {
	case identity.KindManagedIdentity:
		return netrule.ClassifyResource(p.ResourceID)
	case identity.KindServicePrincipal:
		is, err := h.id.IsDefenderScanner(q.r.Context(), p)
		if err != nil {
			h.log.WarnContext(q.r.Context(), "checking for the Defender scanner failed; not trusted", "err", err)
			return netrule.None
		}
		if is {
			return netrule.DefenderForCloud
		}
	}
	return netrule.None
}

// formField reads field from a POST form and puts the body back for the
// handler. grant, when not empty, must be the form's grant_type. A body
// that is too long or not a form gives "".
func formField(r *http.Request, grant, field string) string {
	if r.Body == nil || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxExchangeForm+1))
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
	if err != nil || len(b) > maxExchangeForm {
		return ""
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return ""
	}
	if grant != "" && form.Get("grant_type") != grant {
		return ""
	}
	return form.Get(field)
}

// challengeTrusted answers a request the network decision d refused with
// the Bearer challenge instead of 403 DENIED, when a trusted service's token
// could still let it through and the request carries no credentials at all;
// see the file comment. It reports whether it answered.
func (h *Handler) challengeTrusted(q *request, e registryEntry, d netrule.Decision) bool {
	if q.endpoint != "" || q.r.Header.Get("Authorization") != "" ||
		q.route.Kind == routeToken || q.route.Kind == routeExchange || q.route.Kind == routeUnknown {
		return false
	}
	// Would a container group's verified identity pass from here? Only the
	// bypass setting decides that; the caller's identity is not known yet.
	if !e.policy.Decide(netrule.Request{ClientIP: q.ip, TrustedService: netrule.ContainerInstances}).Allowed {
		return false
	}
	q.decision = decisionDenied
	q.netReason = d.Reason + "; no credentials: challenged for a trusted service's token"
	h.auditDenial(q, q.ip, q.netStep, q.netReason, e.policy.Version())
	// The body still says why, in the words of a denial: from here only a
	// trusted service's token will do.
	h.challengeHeader(q, challengeScope(q), "")
	q.fail(&apiError{Code: codeUnauthorized, Cause: errNoCredentials,
		Message: netrule.DeniedMessage(q.ip) + " Only a trusted service's token is accepted from this address."})
	return true
}

// challengeScope is the scope the endpoint would challenge for, from the
// route and method alone (nothing is looked up): the catalog for /v2/ and
// /v2/_catalog, else the repository with the actions the method needs. A
// malformed repository name names no scope.
func challengeScope(q *request) []identity.Access {
	switch q.route.Kind {
	case routeBase, routeCatalog:
		return catalogScope
	}
	if !validName(q.route.Name) {
		return nil
	}
	actions := actionsPull
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodDelete:
		actions = actionsDelete
	default:
		actions = actionsPullPush
	}
	return []identity.Access{{Type: identity.TypeRepository, Name: q.route.Name, Actions: actions}}
}
