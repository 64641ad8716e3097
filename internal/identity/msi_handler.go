package identity

// The managed-identity token endpoint: the App Service protocol that
// azidentity.ManagedIdentityCredential (through MSAL) speaks when
// IDENTITY_ENDPOINT and IDENTITY_HEADER are set (and
// IDENTITY_SERVER_THUMBPRINT is not):
//
//	GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<uri>
//	    [&client_id=<id> | &principal_id=<id> | &object_id=<id> | &mi_res_id=<resource id>]
//	X-IDENTITY-HEADER: <the instance's secret>
//
//	200 {"access_token","expires_on":"<unix seconds>","resource","token_type":"Bearer","client_id"}
//
// Decisions:
//   - The secret selects the service instance; without a selector the
//     token is for its system-assigned identity, with one for the attached
//     user-assigned identity it names (principal_id and object_id are
//     synonyms; MSAL sends object_id, App Service documents principal_id).
//   - resource is one of the audiences moat issues tokens for
//     (management, containerregistry); a trailing "/.default" is accepted.
//   - Errors are JSON {"error","error_description"} (the shape App Service
//     answers): 400 for a malformed request (missing header, bad
//     api-version, unknown resource, several selectors, no such identity),
//     401 for a wrong or revoked secret. MSAL retries 500/503/504 on this
//     protocol, so a store failure is 503.
//   - MSAL caches tokens in memory per process, so a client keeps using a
//     token until it nears expiry even after its secret was rotated; the
//     token itself dies when the identity is detached or deleted.

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MSIPath is where ManagedIdentityHandler is mounted: IDENTITY_ENDPOINT is
// moat's base URL plus MSIPath.
const MSIPath = "/msi/token"

// msiAPIVersion is the App Service protocol version azidentity speaks.
const msiAPIVersion = "2019-08-01"

// msiError is an App Service token endpoint error.
type msiError struct {
	status int
	code   string
	msg    string
}

func (e *msiError) Error() string { return e.code + ": " + e.msg }

// ManagedIdentityHandler serves MSIPath.
func (s *Service) ManagedIdentityHandler() http.Handler {
	return http.HandlerFunc(s.handleMSIToken)
}

func (s *Service) handleMSIToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeMSIError(w, &msiError{http.StatusMethodNotAllowed, "invalid_request", "use GET"})
		return
	}
	body, err := s.msiToken(r)
	if err != nil {
		var me *msiError
		if !errors.As(err, &me) {
			s.log.ErrorContext(r.Context(), "managed identity token endpoint failed", "err", err)
			me = &msiError{http.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be issued; try again"}
		} else if me.status == http.StatusUnauthorized {
			s.log.WarnContext(r.Context(), "managed identity token refused", "remote", r.RemoteAddr, "reason", err)
		}
		writeMSIError(w, me)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

type msiTokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id"`
}

func (s *Service) msiToken(r *http.Request) (msiTokenResponse, error) {
	q := r.URL.Query()
	if v := q.Get("api-version"); v != msiAPIVersion {
		return msiTokenResponse{}, &msiError{http.StatusBadRequest, "invalid_request", "api-version must be " + msiAPIVersion + ", got " + strconv.Quote(truncate(v, 32))}
	}
	resource := q.Get("resource")
	aud := normaliseResource(strings.TrimSuffix(resource, "/.default"))
	if aud == "" {
		return msiTokenResponse{}, &msiError{http.StatusBadRequest, "invalid_resource",
			"resource " + strconv.Quote(truncate(resource, 128)) + " is not one moat issues tokens for (" + AudienceManagement + ", " + AudienceContainerRegistry + ")"}
	}
	var sel identitySelector
	n := 0
	for _, p := range []struct {
		name string
		dst  *string
	}{{"client_id", &sel.clientID}, {"principal_id", &sel.principalID}, {"object_id", &sel.principalID}, {"mi_res_id", &sel.resourceID}} {
		if v := q.Get(p.name); v != "" {
			*p.dst = v
			n++
		}
	}
	if n > 1 {
		return msiTokenResponse{}, &msiError{http.StatusBadRequest, "invalid_request", "name at most one of client_id, principal_id, object_id and mi_res_id"}
	}
	secret := r.Header.Get("X-IDENTITY-HEADER")
	if secret == "" {
		return msiTokenResponse{}, &msiError{http.StatusBadRequest, "invalid_request", "the X-IDENTITY-HEADER header (the instance's IDENTITY_HEADER) is required"}
	}
	auth, err := requestAuthority(r)
	if err != nil {
		return msiTokenResponse{}, &msiError{http.StatusBadRequest, "invalid_request", "the request's Host header is not a valid host[:port]"}
	}
	ctx := r.Context()
	h, err := s.hostBySecret(ctx, secret)
	if errors.Is(err, ErrUnauthenticated) {
		return msiTokenResponse{}, &msiError{http.StatusUnauthorized, "unauthorized_client", "the X-IDENTITY-HEADER value is not valid: " + err.Error()}
	}
	if err != nil {
		return msiTokenResponse{}, err
	}
	mi, err := s.selectIdentity(ctx, h, sel)
	if errors.Is(err, ErrManagedIdentityNotFound) {
		return msiTokenResponse{}, &msiError{http.StatusBadRequest, "invalid_request", err.Error()}
	}
	if err != nil {
		return msiTokenResponse{}, err
	}
	raw, exp, err := s.issueManagedToken(r, auth, mi, h.ResourceID, aud)
	if err != nil {
		return msiTokenResponse{}, err
	}
	return msiTokenResponse{
		AccessToken: raw,
		ExpiresOn:   strconv.FormatInt(exp.Unix(), 10),
		Resource:    resource,
		TokenType:   "Bearer",
		ClientID:    mi.ClientID,
	}, nil
}

// issueManagedToken signs an Entra-style token for mi running on instance.
func (s *Service) issueManagedToken(r *http.Request, authority string, mi ManagedIdentity, instance, aud string) (string, time.Time, error) {
	c := s.entraBaseClaims(authority, mi.TenantID, Principal{ID: mi.PrincipalID}, aud)
	c.AppID, c.AuthorizedParty, c.IDType = mi.ClientID, mi.ClientID, idTypeApp
	c.MIRID, c.AzRID = mi.ResourceID, instance
	raw, err := s.signEntra(r.Context(), c)
	return raw, c.ExpiresAt.Time, err
}

func writeMSIError(w http.ResponseWriter, e *msiError) {
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.msg})
}
