package identity

// Entra-compatible management-plane tokens.
//
// moat answers the Entra ID (Azure AD) v2.0 token protocol for one tenant,
// the deployment tenant, so that azidentity credentials pointed at moat
// obtain tokens the management API accepts. Decisions:
//
//   - The deployment tenant id is a UUID generated on first use and stored as
//     a meta.Principal of kind "tenant" named "deployment" whose ID is the
//     tenant id. The store's (kind, name) uniqueness makes concurrent first
//     uses in several processes agree on one id.
//   - Tokens are ES256 JWTs signed with the same keyring as data-plane tokens
//     (so one rotation covers both, and the JWKS publishes those keys). Entra
//     signs with RS256, but MSAL and azidentity never verify access tokens;
//     only moat does, and it accepts ES256 alone.
//   - "iss" is https://<host>/<tenant id>/v2.0 with the host the client used
//     (as Entra's v2.0 issuer). A deployment is reached under several names
//     (listeners, replicas, proxies), so verification does not check the
//     host: it checks the signature (moat's keys), that the issuer's path and
//     "tid" both name the deployment tenant, the audience, and the times.
//   - Audiences: the management resource under both of its names
//     (https://management.core.windows.net/ and https://management.azure.com/),
//     and ACR's data-plane resource https://containerregistry.azure.net (the
//     token azcontainerregistry exchanges at /oauth2/exchange).
//   - Verification re-reads the principal from the store on a cache miss and
//     caches the answer for at most entraCacheTTL, so deleting a principal
//     stops its tokens within that time.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// Canonical token audiences ("aud") of the resources moat issues tokens for.
const (
	// AudienceManagement is the classic name of the ARM resource, the one
	// azidentity asks for (scope https://management.core.windows.net//.default).
	AudienceManagement = "https://management.core.windows.net/"
	// AudienceARM is ARM's other name.
	AudienceARM = "https://management.azure.com/"
	// AudienceContainerRegistry is ACR's data-plane resource.
	AudienceContainerRegistry = "https://containerregistry.azure.net"
)

// ManagementAudiences are the audiences VerifyManagementToken accepts.
var ManagementAudiences = []string{AudienceManagement, AudienceARM}

const (
	// kindTenant and tenantRecordName name the stored deployment tenant.
	kindTenant       = "tenant"
	tenantRecordName = "deployment"

	// idType* are the values of "idtyp".
	idTypeApp  = "app"
	idTypeUser = "user"

	// entraCacheTTL bounds how long a verified Entra token is answered from
	// the cache without re-reading its principal.
	entraCacheTTL = time.Minute
	// entraCachePrefix marks cache entries of Entra tokens in the shared
	// token cache; no registry's service name starts with a NUL byte, so
	// VerifyAccessToken never takes one of them (nor this one of its).
	entraCachePrefix = "\x00entra:"
)

// entraClaims is the payload of an Entra-style access or id token.
type entraClaims struct {
	jwt.RegisteredClaims
	// Audience shadows RegisteredClaims.Audience: Entra's "aud" is a single
	// string, and MSAL refuses an id token whose "aud" is an array.
	Audience          string `json:"aud"`
	TenantID          string `json:"tid"`
	ObjectID          string `json:"oid"`
	AppID             string `json:"appid,omitempty"`
	AuthorizedParty   string `json:"azp,omitempty"`
	IDType            string `json:"idtyp,omitempty"`
	UPN               string `json:"upn,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Version           string `json:"ver"`
	// MIRID and AzRID are set on managed identities' tokens (managed.go).
	MIRID string `json:"xms_mirid,omitempty"`
	AzRID string `json:"xms_az_rid,omitempty"`
}

// TenantID returns the deployment tenant id, creating it on first use.
func (s *Service) TenantID(ctx context.Context) (string, error) {
	for range 3 {
		p, err := s.store.GetPrincipalByName(ctx, kindTenant, tenantRecordName)
		if err == nil {
			return p.ID, nil
		}
		if !errors.Is(err, meta.ErrNotFound) {
			return "", fmt.Errorf("identity: reading the deployment tenant: %w", err)
		}
		id := uuid.NewString()
		err = s.store.PutPrincipal(ctx, meta.Principal{ID: id, Kind: kindTenant, Name: tenantRecordName})
		if errors.Is(err, meta.ErrAlreadyExists) {
			continue // another process created it first; read theirs
		}
		if err != nil {
			return "", fmt.Errorf("identity: creating the deployment tenant: %w", err)
		}
		s.log.InfoContext(ctx, "created the deployment tenant", "tenant", id)
		return id, nil
	}
	return "", errors.New("identity: the deployment tenant could neither be read nor created")
}

// normaliseResource maps a resource URI to its canonical audience, or "" if
// moat issues no tokens for it. Scheme and host compare case-insensitively
// and trailing slashes do not matter.
func normaliseResource(res string) string {
	u, err := url.Parse(res)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return ""
	}
	if strings.Trim(u.Path, "/") != "" {
		return ""
	}
	switch strings.ToLower(u.Host) {
	case "management.core.windows.net":
		return AudienceManagement
	case "management.azure.com":
		return AudienceARM
	case "containerregistry.azure.net":
		return AudienceContainerRegistry
	}
	return ""
}

// entraSubject is who an Entra token is for.
type entraSubject struct {
	p Principal
	// appID is the client the token was issued to: the service principal's
	// own app id, or the public client that asked for a user's token.
	appID string
}

// issueEntraToken signs an access token for sub with audience aud, whose
// issuer is authority (scheme://host[:port]) + "/<tenant>/v2.0".
func (s *Service) issueEntraToken(ctx context.Context, authority, tenant string, sub entraSubject, aud string) (string, time.Time, error) {
	c := s.entraBaseClaims(authority, tenant, sub.p, aud)
	c.AppID, c.AuthorizedParty = sub.appID, sub.appID
	switch sub.p.Kind {
	case KindServicePrincipal:
		c.IDType = idTypeApp
	case KindUser:
		c.IDType = idTypeUser
		c.UPN, c.Name = sub.p.Name, sub.p.Name
	default:
		return "", time.Time{}, fmt.Errorf("identity: no Entra tokens for principals of kind %q", sub.p.Kind)
	}
	raw, err := s.signEntra(ctx, c)
	return raw, c.ExpiresAt.Time, err
}

// issueIDToken signs an OpenID Connect id token for a user, for the client
// clientID. It carries no idtyp, so it is never accepted as an access token.
func (s *Service) issueIDToken(ctx context.Context, authority, tenant string, p Principal, clientID string) (string, error) {
	c := s.entraBaseClaims(authority, tenant, p, clientID)
	c.PreferredUsername, c.Name = p.Name, p.Name
	return s.signEntra(ctx, c)
}

func (s *Service) entraBaseClaims(authority, tenant string, p Principal, aud string) entraClaims {
	now := s.now().Truncate(time.Second)
	return entraClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    authority + "/" + tenant + "/v2.0",
			Subject:   p.ID,
			ExpiresAt: jwt.NewNumericDate(now.Add(s.lifetime)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Audience: aud,
		TenantID: tenant,
		ObjectID: p.ID,
		Version:  "2.0",
	}
}

func (s *Service) signEntra(ctx context.Context, c entraClaims) (string, error) {
	key, err := s.currentSigner(ctx)
	if err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = key.id
	signed, err := tok.SignedString(key.priv)
	if err != nil {
		return "", fmt.Errorf("identity: signing an Entra token with key %s: %w", key.id, err)
	}
	return signed, nil
}

// VerifyManagementToken checks an Entra-style token for the management API
// and returns its principal; see VerifyEntraToken.
func (s *Service) VerifyManagementToken(ctx context.Context, raw string) (Principal, error) {
	return s.VerifyEntraToken(ctx, raw, ManagementAudiences...)
}

// VerifyEntraToken checks a token moat's Entra endpoint issued: signature
// (ES256 by a known key), exp/nbf/iat with clockSkew leeway, an audience in
// audiences (canonical forms, see the Audience constants), issuer path and
// tid naming the deployment tenant, and that the principal still exists
// with the kind the token says. Every refusal wraps ErrUnauthenticated; any
// other error means the store could not be read and is not the caller's
// fault.
func (s *Service) VerifyEntraToken(ctx context.Context, raw string, audiences ...string) (Principal, error) {
	if raw == "" || len(audiences) == 0 {
		return Principal{}, fmt.Errorf("%w: empty token or no accepted audience", ErrUnauthenticated)
	}
	if len(raw) > maxTokenLen {
		return Principal{}, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, maxTokenLen)
	}
	now := s.now()
	if c, ok := s.tokenCache.get(raw, now); ok {
		if aud, isEntra := strings.CutPrefix(c.Service, entraCachePrefix); isEntra && slices.Contains(audiences, aud) {
			return c.Principal, nil
		}
	}

	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(s.now),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	)
	var tc entraClaims
	if _, err := parser.ParseWithClaims(raw, &tc, func(t *jwt.Token) (any, error) {
		return s.verificationKey(ctx, t)
	}); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	aud := tc.Audience
	if aud == "" || !slices.Contains(audiences, aud) {
		return Principal{}, fmt.Errorf("%w: token audience %q not accepted", ErrUnauthenticated, aud)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		return Principal{}, err
	}
	if tc.TenantID != tenant || issuerTenant(tc.Issuer) != tenant {
		return Principal{}, fmt.Errorf("%w: token is for another tenant", ErrUnauthenticated)
	}
	var kind string
	switch tc.IDType {
	case idTypeApp:
		kind = KindServicePrincipal
	case idTypeUser:
		kind = KindUser
	default:
		return Principal{}, fmt.Errorf("%w: not an access token (idtyp %q)", ErrUnauthenticated, tc.IDType)
	}
	if tc.Subject == "" || tc.Subject != tc.ObjectID {
		return Principal{}, fmt.Errorf("%w: token names no principal", ErrUnauthenticated)
	}
	stored, err := s.store.GetPrincipal(ctx, tc.Subject)
	if errors.Is(err, meta.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: the token's principal no longer exists", ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("identity: looking up principal %s: %w", tc.Subject, err)
	}
	p := Principal{ID: stored.ID, Kind: stored.Kind, Name: stored.Name}
	switch {
	case kind == KindServicePrincipal && stored.Kind == KindManagedIdentity:
		if p, err = s.managedPrincipal(ctx, stored, tc.MIRID, tc.AzRID); err != nil {
			return Principal{}, err
		}
	case stored.Kind != kind:
		return Principal{}, fmt.Errorf("%w: the token's principal is not a %s", ErrUnauthenticated, kind)
	}
	if p.Kind == KindUser && p.Name == AdminName {
		s.setAdminID(p.ID)
	}
	expires := now.Add(entraCacheTTL)
	if tc.ExpiresAt.Before(expires) {
		expires = tc.ExpiresAt.Time
	}
	s.tokenCache.put(raw, Claims{Principal: p, Service: entraCachePrefix + aud, Expiry: tc.ExpiresAt.Time}, expires, now)
	return p, nil
}

// issuerTenant returns the tenant named by an issuer
// scheme://host/<tenant>/v2.0, or "". A path with percent-escapes names no
// tenant: tenants are GUIDs or domain names, and an escaped segment such as
// "%00" would otherwise decode into a tenant the issuer string never spelt.
func issuerTenant(iss string) string {
	u, err := url.Parse(iss)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	path := u.EscapedPath()
	if strings.Contains(path, "%") {
		return ""
	}
	tenant, ok := strings.CutSuffix(strings.TrimPrefix(path, "/"), "/v2.0")
	if !ok || tenant == "" || strings.Contains(tenant, "/") {
		return ""
	}
	return tenant
}
