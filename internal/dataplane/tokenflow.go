package dataplane

// ACR's OAuth2 form flow:
//
//	POST /oauth2/exchange  grant_type=access_token, service, [tenant], access_token
//	                       → {"refresh_token": …} bound to this registry
//	POST /oauth2/token     grant_type=refresh_token, service, scope, refresh_token
//	                       grant_type=password, service, scope, [username, password]
//	                       → {"access_token": …}
//
// A password grant without username and password is the anonymous caller
// (azcontainerregistry without a credential asks this way); it succeeds only
// where anonymous pull is on. Errors are RFC 6749 bodies
// ({"error","error_description"}): 400 invalid_request for missing or
// malformed parameters, 400 unsupported_grant_type, 400 invalid_scope, and
// 401 invalid_grant for credentials or tokens that are wrong, expired, for
// another registry or of a principal that no longer exists (401 rather than
// RFC 6749's 400, as ACR answers refused credentials). A store failure is
// 500 server_error.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/internal/identity"
)

// maxFormBody bounds the form of a token request: tokens are a few KiB.
const maxFormBody = 64 << 10

// OAuth2 error codes (RFC 6749 §5.2).
const (
	oauthInvalidRequest       = "invalid_request"
	oauthInvalidGrant         = "invalid_grant"
	oauthUnsupportedGrantType = "unsupported_grant_type"
	oauthInvalidScope         = "invalid_scope"
	oauthServerError          = "server_error"
)

// oauthFail sends an RFC 6749 error and records it for the log.
func (q *request) oauthFail(status int, code, desc string, cause error) {
	ec := codeUnsupported
	switch status {
	case http.StatusUnauthorized:
		ec = codeUnauthorized
		q.decision = decisionUnauthenticated
	case http.StatusInternalServerError:
		ec = codeUnknown
	}
	q.err = &apiError{Code: ec, Status: status, Message: code + ": " + desc, Cause: cause}
	body, _ := json.Marshal(oauthError{Error: code, Description: desc}) // only strings: cannot fail
	writeJSONNoStore(q, status, body)
}

// oauthFailErr answers an error from the identity service: a refusal is 401
// invalid_grant, anything else a server fault.
func (q *request) oauthFailErr(err error, what string) {
	if errors.Is(err, identity.ErrUnauthenticated) {
		q.oauthFail(http.StatusUnauthorized, oauthInvalidGrant, what+" refused", err)
		return
	}
	q.oauthFail(http.StatusInternalServerError, oauthServerError, "the request could not be completed", err)
}

// tokenForm reads the form of a POST token request and checks its service.
// On failure it has answered.
func (q *request) tokenForm() (formValues, bool) {
	q.r.Body = http.MaxBytesReader(&q.statusWriter, q.r.Body, maxFormBody)
	if err := q.r.ParseForm(); err != nil {
		q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the body is not a readable application/x-www-form-urlencoded form", err)
		return nil, false
	}
	f := formValues(q.r.PostForm)
	for k, vs := range f {
		if len(vs) > 1 && k != "scope" {
			q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, fmt.Sprintf("parameter %q is given more than once", k), nil)
			return nil, false
		}
	}
	service := f.get("service")
	if service == "" {
		q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the service parameter is required", nil)
		return nil, false
	}
	if !strings.EqualFold(service, q.login) {
		q.oauthFail(http.StatusBadRequest, oauthInvalidRequest,
			fmt.Sprintf("service %q is not this registry's login server %q", service, q.login), nil)
		return nil, false
	}
	return f, true
}

type formValues map[string][]string

func (f formValues) get(k string) string {
	if vs := f[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// serveTokenPost answers POST /oauth2/token.
func (h *Handler) serveTokenPost(q *request) {
	f, ok := q.tokenForm()
	if !ok {
		return
	}
	ctx := q.r.Context()
	var p identity.Principal
	switch grant := f.get("grant_type"); grant {
	case "refresh_token":
		rt := f.get("refresh_token")
		if rt == "" {
			q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the refresh_token parameter is required", nil)
			return
		}
		var err error
		if p, err = h.id.VerifyRefreshToken(ctx, rt, q.registry, q.login); err != nil {
			q.oauthFailErr(err, "the refresh token was")
			return
		}
	case "password":
		user, pass := f.get("username"), f.get("password")
		switch {
		case user == "" && pass == "":
			if !h.anonymousPull(q) {
				q.oauthFail(http.StatusUnauthorized, oauthInvalidGrant, "anonymous access is not enabled on this registry; send username and password", nil)
				return
			}
			p = identity.AnonymousPrincipal(q.registry)
		case user == "" || pass == "":
			q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the password grant needs both username and password", nil)
			return
		default:
			var err error
			if p, err = h.basicPrincipal(q, user, pass); err != nil {
				if lo := lockout(err); lo != nil {
					q.oauthTooManyLogins(lo)
					return
				}
				q.oauthFailErr(err, "the username or password was")
				return
			}
		}
	case "":
		q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the grant_type parameter is required", nil)
		return
	default:
		q.oauthFail(http.StatusBadRequest, oauthUnsupportedGrantType,
			fmt.Sprintf("grant_type %q is not supported; use refresh_token or password", grant), nil)
		return
	}
	q.principal = p.Name
	requested, e := parseScopes(f["scope"])
	if e != nil {
		q.oauthFail(http.StatusBadRequest, oauthInvalidScope, e.message(), e)
		return
	}
	tok, err := h.issueAccessToken(ctx, q, p, requested)
	if err != nil {
		q.oauthFailErr(err, "the token request was")
		return
	}
	q.decision = decisionAllowed
	h.writeToken(q, tok)
}

// refreshTokenResponse is the answer of /oauth2/exchange.
type refreshTokenResponse struct {
	RefreshToken string `json:"refresh_token"`
}

// serveExchange answers POST /oauth2/exchange: an Entra token from moat's
// issuer for a refresh token bound to this registry.
func (h *Handler) serveExchange(q *request) {
	f, ok := q.tokenForm()
	if !ok {
		return
	}
	switch grant := f.get("grant_type"); grant {
	case "access_token":
	case "":
		q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the grant_type parameter is required", nil)
		return
	default:
		q.oauthFail(http.StatusBadRequest, oauthUnsupportedGrantType,
			fmt.Sprintf("grant_type %q is not supported; use access_token", grant), nil)
		return
	}
	at := f.get("access_token")
	if at == "" {
		q.oauthFail(http.StatusBadRequest, oauthInvalidRequest, "the access_token parameter is required", nil)
		return
	}
	rt, err := h.id.ExchangeEntraToken(q.r.Context(), at, f.get("tenant"), q.registry, q.login)
	if err != nil {
		q.oauthFailErr(err, "the access token was")
		return
	}
	q.principal = rt.Principal.Name
	q.decision = decisionAllowed
	//nolint:gosec // G117: handing out the token is what this endpoint is for.
	body, err := json.Marshal(refreshTokenResponse{RefreshToken: rt.Token})
	if err != nil {
		q.oauthFail(http.StatusInternalServerError, oauthServerError, "encoding the answer failed", err)
		return
	}
	writeJSONNoStore(q, http.StatusOK, body)
}
