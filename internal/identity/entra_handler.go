package identity

// The Entra-compatible HTTP endpoints. What real clients need from them
// (read from MSAL Go and azidentity):
//
//   - The authority must be https (azidentity refuses others), and the
//     discovery document's endpoints and issuer must have the authority's
//     scheme and host:port, so they are built from the request: https when
//     the connection is TLS, http otherwise, and the Host header (checked to
//     be a plain host[:port]). Behind a TLS-terminating proxy the proxy must
//     therefore speak TLS to moat as well.
//   - Clients must set DisableInstanceDiscovery: MSAL sends instance
//     discovery for hosts it does not know to login.microsoftonline.com, not
//     to the authority, so moat cannot answer it.
//   - The token response carries no "scope": MSAL fails a response whose
//     scope list lacks a requested scope (it would count openid, profile and
//     offline_access as declined), and an absent scope means all granted.
//   - The password grant (UsernamePasswordCredential) first reads
//     /common/UserRealm/{user}; "Managed" makes MSAL post the password. Its
//     answer gets an id_token and client_info (MSAL builds the account from
//     them) but no refresh token: when the access token expires MSAL asks
//     with the password again.
//   - The "claims" parameter (CAE challenges) is accepted and ignored.
//   - The password grant's client_id names the public client application
//     (e.g. the Azure CLI's); moat has no app registrations for those, so
//     any GUID is accepted there. User names are moat's ("admin").
//   - Ten wrong credentials for one client id or user name within five
//     minutes lock it for the rest of the window (see entra_limit.go).

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

const (
	// maxTokenRequestBytes bounds a token request's form body.
	maxTokenRequestBytes = 64 << 10

	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
)

// entraError is an OAuth2 error as Entra answers it.
type entraError struct {
	status int
	code   string // OAuth2 "error"
	aadsts int    // AADSTS number
	msg    string
}

func (e *entraError) Error() string { return fmt.Sprintf("AADSTS%d: %s", e.aadsts, e.msg) }

// EntraHandler serves the Entra-compatible endpoints for the deployment
// tenant (also reachable as "common" and "organizations"):
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/discovery/v2.0/keys
//	POST /{tenant}/oauth2/v2.0/token   (client_credentials, password)
//	GET  /common/UserRealm/{user}
//
// Every other path answers 404 in Entra's error shape. To serve these
// endpoints next to others on one mux, use RegisterEntraRoutes instead.
func (s *Service) EntraHandler() http.Handler {
	mux := http.NewServeMux()
	s.RegisterEntraRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeEntraError(w, r, &entraError{http.StatusNotFound, "invalid_request", 90100, "the requested endpoint does not exist"})
	})
	return mux
}

// RegisterEntraRoutes registers the endpoints EntraHandler serves on mux
// (patterns rooted at "/{tenant}/" and "/common/UserRealm/"). Each call has
// its own brute-force limiter.
func (s *Service) RegisterEntraRoutes(mux *http.ServeMux) {
	fails := newFailureLimiter(s.now)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleOpenIDConfiguration)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleJWKS)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		s.handleToken(w, r, fails)
	})
	mux.HandleFunc("GET /common/UserRealm/{user}", s.handleUserRealm)
}

// resolveTenant checks the path's tenant and returns the deployment tenant.
func (s *Service) resolveTenant(ctx context.Context, pathTenant string) (string, error) {
	tenant, err := s.TenantID(ctx)
	if err != nil {
		return "", err
	}
	switch strings.ToLower(pathTenant) {
	case tenant, "common", "organizations":
		return tenant, nil
	}
	return "", &entraError{http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", truncate(pathTenant, 64))}
}

// requestAuthority is scheme://host[:port] as the client addressed moat.
func requestAuthority(r *http.Request) (string, error) {
	host := r.Host
	if !validHost(host) {
		return "", &entraError{http.StatusBadRequest, "invalid_request", 90023, "the request's Host header is not a valid host[:port]"}
	}
	if r.TLS != nil {
		return "https://" + host, nil
	}
	return "http://" + host, nil
}

// validHost accepts a DNS name or IPv4 address made of letters, digits, '.',
// '-' and '_', or a bracketed IPv6 address, each with an optional numeric
// port: nothing that could change the meaning of a URL built from it.
func validHost(h string) bool {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 || net.ParseIP(h[1:end]) == nil || !strings.Contains(h[1:end], ":") {
			return false
		}
		rest := h[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return false
			}
			port = p
			return validPort(port)
		}
		return true
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if name == "" || len(name) > 253 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if !isDigit(p[i]) {
			return false
		}
	}
	return true
}

func (s *Service) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	pathTenant := r.PathValue("tenant")
	tenant, err := s.resolveTenant(r.Context(), pathTenant)
	if err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	auth, err := requestAuthority(r)
	if err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	base := auth + "/" + url.PathEscape(pathTenant)
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                auth + "/" + tenant + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"token"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{signingAlg},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"grant_types_supported":                 []string{grantClientCredentials, grantPassword},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "name", "preferred_username", "ver"},
		"tenant_region_scope":                   nil,
		"cloud_instance_name":                   host,
		"cloud_graph_host_name":                 host,
		"msgraph_host":                          host,
	})
}

// jwk is a public P-256 key in JWK form.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if _, err := s.resolveTenant(r.Context(), r.PathValue("tenant")); err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	// Refreshes the keyring when stale, so keys minted by other replicas
	// appear here.
	if _, err := s.currentSigner(r.Context()); err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	keys, err := s.publicJWKs()
	if err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// publicJWKs returns every key that still verifies tokens, sorted by kid.
func (s *Service) publicJWKs() ([]jwk, error) {
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	now := s.now()
	out := make([]jwk, 0, len(s.keys.verifiers))
	for kid, k := range s.keys.verifiers {
		if !k.retiredAt.IsZero() && !now.Before(k.retiredAt.Add(s.retiredKeyWindow())) {
			continue
		}
		j, err := toJWK(kid, k.pub)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b jwk) int { return strings.Compare(a.Kid, b.Kid) })
	return out, nil
}

func toJWK(kid string, pub *ecdsa.PublicKey) (jwk, error) {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil || len(b) != 65 {
		return jwk{}, fmt.Errorf("identity: encoding key %s as a JWK: %v", kid, err)
	}
	enc := base64.RawURLEncoding
	return jwk{Kty: "EC", Use: "sig", Alg: signingAlg, Kid: kid, Crv: "P-256", X: enc.EncodeToString(b[1:33]), Y: enc.EncodeToString(b[33:])}, nil
}

// tokenResponse is the token endpoint's success answer.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

func (s *Service) handleToken(w http.ResponseWriter, r *http.Request, fails *failureLimiter) {
	ctx := r.Context()
	tenant, err := s.resolveTenant(ctx, r.PathValue("tenant"))
	if err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	auth, err := requestAuthority(r)
	if err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		s.writeEntraError(w, r, &entraError{http.StatusBadRequest, "invalid_request", 900144, "the request body must be an application/x-www-form-urlencoded form of at most 64 KiB"})
		return
	}
	form := r.PostForm
	grant := form.Get("grant_type")
	var resp tokenResponse
	switch grant {
	case "":
		err = missingParam("grant_type")
	case grantClientCredentials:
		resp, err = s.clientCredentialsGrant(ctx, r, form, auth, tenant, fails)
	case grantPassword:
		resp, err = s.passwordGrant(ctx, form, auth, tenant, fails)
	default:
		err = &entraError{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", truncate(grant, 64))}
	}
	if err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) clientCredentialsGrant(ctx context.Context, r *http.Request, form url.Values, auth, tenant string, fails *failureLimiter) (tokenResponse, error) {
	clientID, secret, err := clientCredentials(r, form)
	if err != nil {
		return tokenResponse{}, err
	}
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		return tokenResponse{}, &entraError{http.StatusUnauthorized, "invalid_client", 700027, "Client assertions (certificate credentials) are not supported by moat; use a client secret."}
	}
	if secret == "" {
		return tokenResponse{}, &entraError{http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."}
	}
	aud, err := requestedAudience(form, grantClientCredentials)
	if err != nil {
		return tokenResponse{}, err
	}
	key := failureKey(KindServicePrincipal, clientID)
	if fails.locked(key) {
		s.log.WarnContext(ctx, "client credentials refused: locked after repeated failures", "app_id", truncate(clientID, 64), "client_ip", r.RemoteAddr)
		return tokenResponse{}, lockedError("invalid_client", http.StatusUnauthorized)
	}
	p, err := s.AuthenticateServicePrincipal(ctx, clientID, secret)
	switch {
	case errors.Is(err, ErrServicePrincipalNotFound):
		fails.fail(key)
		return tokenResponse{}, &entraError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", truncate(clientID, 64), tenant)}
	case errors.Is(err, ErrUnauthenticated):
		nowLocked := fails.fail(key)
		s.log.WarnContext(ctx, "client credentials refused", "app_id", truncate(clientID, 64), "client_ip", r.RemoteAddr, "locked", nowLocked, "err", err)
		return tokenResponse{}, &entraError{http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + truncate(clientID, 64) + "'."}
	case err != nil:
		return tokenResponse{}, err
	}
	fails.succeed(key)
	tok, exp, err := s.issueEntraToken(ctx, auth, tenant, entraSubject{p: p, appID: p.Name}, aud)
	if err != nil {
		return tokenResponse{}, err
	}
	return s.newTokenResponse(tok, exp), nil
}

func (s *Service) passwordGrant(ctx context.Context, form url.Values, auth, tenant string, fails *failureLimiter) (tokenResponse, error) {
	clientID := form.Get("client_id")
	if clientID == "" {
		return tokenResponse{}, missingParam("client_id")
	}
	if _, err := uuid.Parse(clientID); err != nil {
		return tokenResponse{}, &entraError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", truncate(clientID, 64), tenant)}
	}
	user, pass := form.Get("username"), form.Get("password")
	if user == "" {
		return tokenResponse{}, missingParam("username")
	}
	if pass == "" {
		return tokenResponse{}, missingParam("password")
	}
	aud, err := requestedAudience(form, grantPassword)
	if err != nil {
		return tokenResponse{}, err
	}
	key := failureKey(KindUser, user)
	if fails.locked(key) {
		s.log.WarnContext(ctx, "password grant refused: locked after repeated failures", "user", truncate(user, 64))
		return tokenResponse{}, lockedError("invalid_grant", http.StatusBadRequest)
	}
	p, err := s.AuthenticateBasic(ctx, user, pass)
	if errors.Is(err, ErrUnauthenticated) {
		nowLocked := fails.fail(key)
		s.log.WarnContext(ctx, "password grant refused", "user", truncate(user, 64), "locked", nowLocked, "err", err)
		return tokenResponse{}, &entraError{http.StatusBadRequest, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."}
	}
	if err != nil {
		return tokenResponse{}, err
	}
	fails.succeed(key)
	tok, exp, err := s.issueEntraToken(ctx, auth, tenant, entraSubject{p: p, appID: strings.ToLower(clientID)}, aud)
	if err != nil {
		return tokenResponse{}, err
	}
	resp := s.newTokenResponse(tok, exp)
	if hasScope(form.Get("scope"), "openid") {
		if resp.IDToken, err = s.issueIDToken(ctx, auth, tenant, p, strings.ToLower(clientID)); err != nil {
			return tokenResponse{}, err
		}
	}
	if form.Get("client_info") == "1" {
		ci, err := json.Marshal(map[string]string{"uid": p.ID, "utid": tenant})
		if err != nil {
			return tokenResponse{}, fmt.Errorf("identity: encoding client_info: %w", err)
		}
		resp.ClientInfo = base64.RawURLEncoding.EncodeToString(ci)
	}
	return resp, nil
}

func (s *Service) newTokenResponse(tok string, exp time.Time) tokenResponse {
	secs := int64(exp.Sub(s.now()) / time.Second)
	return tokenResponse{TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: tok}
}

// clientCredentials reads client_id and client_secret from the form or from
// Basic authentication (RFC 6749 §2.3.1: form-encoded inside Basic). Both at
// once must agree on the client id.
func clientCredentials(r *http.Request, form url.Values) (string, string, error) {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if bu, bp, ok := r.BasicAuth(); ok {
		uid, err1 := url.QueryUnescape(bu)
		upw, err2 := url.QueryUnescape(bp)
		if err1 != nil || err2 != nil {
			return "", "", &entraError{http.StatusUnauthorized, "invalid_client", 7000215, "the Basic credentials are not form-encoded"}
		}
		if id != "" && id != uid {
			return "", "", &entraError{http.StatusBadRequest, "invalid_request", 900144, "client_id in the body and in the Authorization header differ"}
		}
		if secret != "" && upw != secret {
			return "", "", &entraError{http.StatusBadRequest, "invalid_request", 900144, "client_secret in the body and in the Authorization header differ"}
		}
		id, secret = uid, upw
	}
	if id == "" {
		return "", "", missingParam("client_id")
	}
	return id, secret, nil
}

// oidcScopes are the scopes that name no resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// requestedAudience returns the canonical audience of the one resource the
// scope parameter names. The client-credentials grant needs
// "<resource>/.default"; the password grant also takes
// "<resource>/user_impersonation".
func requestedAudience(form url.Values, grant string) (string, error) {
	scope := form.Get("scope")
	if strings.TrimSpace(scope) == "" {
		return "", missingParam("scope")
	}
	return parseScope(scope, grant)
}

func parseScope(scope, grant string) (string, error) {
	aud := ""
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[strings.ToLower(sc)] {
			continue
		}
		res, ok := strings.CutSuffix(sc, "/.default")
		if !ok && grant == grantPassword {
			res, ok = strings.CutSuffix(sc, "/user_impersonation")
		}
		if !ok {
			if grant == grantClientCredentials {
				return "", &entraError{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", truncate(sc, 128))}
			}
			return "", &entraError{http.StatusBadRequest, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", truncate(sc, 128))}
		}
		a := normaliseResource(res)
		if a == "" {
			return "", &entraError{http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant. moat issues tokens for %s, %s and %s.", truncate(res, 128), AudienceManagement, AudienceARM, AudienceContainerRegistry)}
		}
		if aud != "" && aud != a {
			return "", &entraError{http.StatusBadRequest, "invalid_scope", 28000, "The provided value for the input parameter scope is not valid because it contains more than one resource."}
		}
		aud = a
	}
	if aud == "" {
		return "", &entraError{http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' names no resource; ask for e.g. https://management.core.windows.net//.default."}
	}
	return aud, nil
}

func hasScope(scope, want string) bool {
	for _, sc := range strings.Fields(scope) {
		if strings.EqualFold(sc, want) {
			return true
		}
	}
	return false
}

func lockedError(code string, status int) *entraError {
	return &entraError{status, code, 50053, fmt.Sprintf("The account is locked because of too many sign-in attempts with wrong credentials. Try again in %s.", failureWindow)}
}

func missingParam(name string) *entraError {
	return &entraError{http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func (s *Service) handleUserRealm(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if user == "" || len(user) > maxUsernameLen {
		s.writeEntraError(w, r, &entraError{http.StatusBadRequest, "invalid_request", 90014, "a user name is required"})
		return
	}
	if _, err := requestAuthority(r); err != nil {
		s.writeEntraError(w, r, err)
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	domain := host
	if _, d, ok := strings.Cut(user, "@"); ok && d != "" {
		domain = d
	}
	// Every user is a cloud ("Managed") account: moat checks passwords
	// itself and federates with nothing. The answer does not depend on
	// whether the user exists, as Entra's does not.
	writeJSON(w, http.StatusOK, map[string]string{
		"ver":                 "1.0",
		"account_type":        "Managed",
		"domain_name":         domain,
		"cloud_instance_name": host,
		"cloud_audience_urn":  "urn:federation:MicrosoftOnline",
	})
}

// writeEntraError answers err in Entra's error shape. Errors that are not
// *entraError are moat's own failures (the store): 500, logged, with no
// detail for the client.
func (s *Service) writeEntraError(w http.ResponseWriter, r *http.Request, err error) {
	var ee *entraError
	if !errors.As(err, &ee) {
		s.log.ErrorContext(r.Context(), "Entra endpoint failed", "path", r.URL.Path, "err", err)
		ee = &entraError{http.StatusInternalServerError, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."}
	}
	corr := r.Header.Get("client-request-id")
	if _, perr := uuid.Parse(corr); perr != nil || len(corr) != 36 {
		corr = uuid.NewString()
	}
	trace := uuid.NewString()
	ts := s.now().UTC().Format("2006-01-02 15:04:05Z")
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", ee.aadsts, ee.msg, trace, corr, ts)
	if ee.status < 500 {
		s.log.Log(r.Context(), slog.LevelDebug, "Entra request refused", "path", r.URL.Path, "error", ee.code, "aadsts", ee.aadsts)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, ee.status, map[string]any{
		"error":             ee.code,
		"error_description": desc,
		"error_codes":       []int{ee.aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the client went away; nothing to do
}

// truncate bounds client-supplied text echoed in messages and logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
