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
//     is attached to the instance), classified the same way.
//
// Anything else, including a token that fails verification, is
// netrule.None, so the request is denied exactly as before and learns
// nothing from the attempt. netrule.Decide then applies the rest: App
// Service never bypasses, tasks only with networkRuleBypassAllowedForTasks,
// nothing with networkRuleBypassOptions None. Authentication afterwards
// verifies the same token again (a cache hit) and RBAC applies as usual.
//
// Not recognised here: refresh tokens presented to /oauth2/token (the
// token-flow code owns their format); a trusted caller therefore needs its
// access token from /oauth2/exchange + /oauth2/token while the network
// lets the exchange through, as above.

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/netrule"
)

// exchangePath is ACR's Entra-token exchange endpoint.
const exchangePath = "/oauth2/exchange"

// maxExchangeForm bounds the form body read for classification; the
// exchange handler applies its own limit to what it reads again.
const maxExchangeForm = 64 << 10

// trustedService classifies the caller of q for the network decision of e;
// see the file comment. It costs nothing for requests the rules allow.
func (h *Handler) trustedService(q *request, e registryEntry) netrule.TrustedService {
	if e.policy == nil || e.policy.Decide(netrule.Request{ClientIP: q.ip}).Allowed {
		return netrule.None
	}
	ctx := q.r.Context()
	if q.r.Method == http.MethodPost && q.r.URL.Path == exchangePath {
		raw := exchangeToken(q.r)
		if raw == "" {
			return netrule.None
		}
		p, err := h.id.VerifyEntraToken(ctx, raw, identity.AudienceContainerRegistry, identity.AudienceManagement, identity.AudienceARM)
		if err != nil {
			return netrule.None
		}
		return h.classifyPrincipal(q, p)
	}
	scheme, raw, ok := strings.Cut(q.r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return netrule.None
	}
	claims, err := h.id.VerifyAccessToken(ctx, strings.TrimSpace(raw), q.login)
	if err != nil {
		return netrule.None
	}
	return h.classifyPrincipal(q, claims.Principal)
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

// exchangeToken reads the access_token of an exchange form and puts the
// body back for the handler. A body that is too long or not a form gives "".
func exchangeToken(r *http.Request) string {
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
	return form.Get("access_token")
}
