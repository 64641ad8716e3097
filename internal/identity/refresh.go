package identity

// ACR's data-plane refresh tokens.
//
// A client that holds an Entra token (from moat's Entra endpoint) exchanges
// it at a registry's /oauth2/exchange for a refresh token bound to that
// registry, then trades the refresh token for access tokens at
// /oauth2/token (grant_type=refresh_token, or Basic credentials with the
// user name RefreshTokenUser). Decisions:
//
//   - Refresh tokens are ES256 JWTs signed with the access-token keyring.
//     They differ from access tokens in three ways, each checked on both
//     sides: the header "typ" is refreshTokenType, the claim "grant_type" is
//     "refresh_token", and "aud" is refreshAudience(login server), which no
//     access-token check ever asks for. The principal's kind is in
//     "principal_kind", not the "kind" every access token must have. So
//     neither kind is accepted as the other.
//   - A refresh token is bound to one registry: its audience names the login
//     server and its "reg" claim the registry name; both must match where it
//     is presented.
//   - It lives RefreshTokenLifetime (ACR: three hours). Its principal is
//     re-read from the store at every use, so deleting the principal stops
//     its refresh tokens from the next token request on; removing a role
//     shows in the next access token's grant (Authorize runs every time).
//   - The principal's ResourceID (a managed identity's xms_mirid) travels in
//     the refresh token into every access token made from it.
//   - The payload's JSON escapes '?', '~' and DEL as \u sequences. Those are
//     the only ASCII bytes that make base64url differ from standard base64
//     (as the last byte of a 3-byte group), and azcontainerregistry decodes
//     the payload with standard base64 to read "exp".
//   - A retired signing key keeps verifying refresh tokens for
//     RefreshTokenLifetime (plus skew) after its retirement, so a rotation
//     does not log out every docker client.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// RefreshTokenLifetime is how long a refresh token is valid.
	RefreshTokenLifetime = 3 * time.Hour
	// RefreshTokenUser is the user name that says "the password is a refresh
	// token" in Basic credentials (docker login with az acr login's token).
	RefreshTokenUser = "00000000-0000-0000-0000-000000000000"

	refreshTokenType  = "acr-refresh+jwt" //nolint:gosec // G101: a JWT "typ" value, not a credential
	refreshGrantClaim = "refresh_token"
)

// ExchangeAudiences are the Entra token audiences /oauth2/exchange accepts:
// ARM under both names (what az acr login sends) and ACR's data-plane
// resource (what azcontainerregistry asks for).
var ExchangeAudiences = []string{AudienceManagement, AudienceARM, AudienceContainerRegistry}

// refreshAudience is the "aud" of refresh tokens for a login server.
func refreshAudience(login string) string { return "refresh:" + strings.ToLower(login) }

// refreshClaims is the payload of a refresh token.
type refreshClaims struct {
	jwt.RegisteredClaims
	GrantType string `json:"grant_type"`
	// Reg is the registry name the token is for.
	Reg string `json:"reg"`
	// Kind is not "kind": access-token verification requires "kind", so a
	// refresh token fails it whatever audience it is checked for.
	Kind     string `json:"principal_kind"`
	Name     string `json:"name,omitempty"`
	Registry string `json:"registry,omitempty"`
	MIRID    string `json:"xms_mirid,omitempty"`
}

// RefreshToken is an issued refresh token.
type RefreshToken struct {
	Token     string
	ExpiresAt time.Time
	// Principal is whom the token is for.
	Principal Principal
}

// ExchangeEntraToken verifies an Entra token moat issued (any of
// ExchangeAudiences) and returns a refresh token for its principal, bound to
// registry (its name) at login (its login server). tenant, when not empty,
// must be the deployment tenant. Refusals wrap ErrUnauthenticated.
func (s *Service) ExchangeEntraToken(ctx context.Context, entraToken, tenant, registry, login string) (RefreshToken, error) {
	p, err := s.VerifyEntraToken(ctx, entraToken, ExchangeAudiences...)
	if err != nil {
		return RefreshToken{}, err
	}
	if tenant != "" {
		dep, err := s.TenantID(ctx)
		if err != nil {
			return RefreshToken{}, err
		}
		if !strings.EqualFold(tenant, dep) {
			return RefreshToken{}, fmt.Errorf("%w: tenant %q is not this deployment's tenant", ErrUnauthenticated, tenant)
		}
	}
	return s.IssueRefreshToken(ctx, p, registry, login)
}

// IssueRefreshToken signs a refresh token for p bound to registry at login.
func (s *Service) IssueRefreshToken(ctx context.Context, p Principal, registry, login string) (RefreshToken, error) {
	if p.ID == "" || p.Kind == "" {
		return RefreshToken{}, fmt.Errorf("%w: principal has no id or kind", ErrUnauthenticated)
	}
	if registry == "" || login == "" {
		return RefreshToken{}, errors.New("identity: issuing a refresh token for an empty registry or login server")
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti) // crypto/rand.Read never fails since Go 1.24
	now := s.now().Truncate(time.Second)
	exp := now.Add(RefreshTokenLifetime)
	c := refreshClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   p.ID,
			Audience:  jwt.ClaimStrings{refreshAudience(login)},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		GrantType: refreshGrantClaim,
		Reg:       strings.ToLower(registry),
		Kind:      p.Kind,
		Name:      p.Name,
		Registry:  p.Registry,
		MIRID:     p.ResourceID,
	}
	raw, err := s.signStdBase64Safe(ctx, refreshTokenType, c)
	if err != nil {
		return RefreshToken{}, err
	}
	return RefreshToken{Token: raw, ExpiresAt: exp, Principal: p}, nil
}

// signStdBase64Safe signs claims as an ES256 JWS whose payload segment also
// decodes as standard base64 (see the package notes above).
func (s *Service) signStdBase64Safe(ctx context.Context, typ string, claims any) (string, error) {
	key, err := s.currentSigner(ctx)
	if err != nil {
		return "", err
	}
	hdr, err := json.Marshal(map[string]string{"alg": signingAlg, "typ": typ, "kid": key.id})
	if err != nil {
		return "", fmt.Errorf("identity: encoding a token header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("identity: encoding token claims: %w", err)
	}
	payload = stdBase64SafeJSON(payload)
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := jwt.SigningMethodES256.Sign(signing, key.priv)
	if err != nil {
		return "", fmt.Errorf("identity: signing a token with key %s: %w", key.id, err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// stdBase64SafeJSON makes JSON text whose base64url encoding has no '-' or
// '_', so that it also decodes as standard base64. In ASCII only '?', '~'
// and DEL (and '>', which json.Marshal already escapes) can produce those
// sextets; any byte of a multi-byte UTF-8 sequence can. So those three and
// every non-ASCII character are written as \uXXXX escapes (surrogate pairs
// above U+FFFF); in JSON they can only occur inside strings, where an
// escape means the same character.
func stdBase64SafeJSON(b []byte) []byte {
	safe := true
	for _, c := range b {
		if c == '?' || c == '~' || c >= 0x7f {
			safe = false
			break
		}
	}
	if safe {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i, r := range string(b) {
		switch {
		case r == '?' || r == '~' || r == 0x7f:
			out = fmt.Appendf(out, `\u%04x`, r)
		case r < 0x80:
			out = append(out, b[i])
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}

// VerifyRefreshToken checks a refresh token presented to registry at login:
// signature, times, type, audience and registry binding, and that its
// principal still exists with the kind the token names. It returns the
// principal (with ResourceID and Registry as the token carries them). Every
// refusal wraps ErrUnauthenticated; other errors mean the store failed.
func (s *Service) VerifyRefreshToken(ctx context.Context, raw, registry, login string) (Principal, error) {
	if raw == "" || registry == "" || login == "" {
		return Principal{}, fmt.Errorf("%w: empty refresh token", ErrUnauthenticated)
	}
	if len(raw) > maxTokenLen {
		return Principal{}, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, maxTokenLen)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(refreshAudience(login)),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(s.now),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	)
	var rc refreshClaims
	if _, err := parser.ParseWithClaims(raw, &rc, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != refreshTokenType {
			return nil, fmt.Errorf("not a refresh token (typ %q)", typ)
		}
		return s.refreshVerificationKey(ctx, t)
	}); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if rc.GrantType != refreshGrantClaim {
		return Principal{}, fmt.Errorf("%w: not a refresh token (grant_type %q)", ErrUnauthenticated, rc.GrantType)
	}
	if !strings.EqualFold(rc.Reg, registry) {
		return Principal{}, fmt.Errorf("%w: refresh token is for registry %q", ErrUnauthenticated, rc.Reg)
	}
	// A refresh token can live longer than the token it came from: the
	// principal must still exist, as what it was.
	if rc.Subject == "" || rc.Kind == "" {
		return Principal{}, fmt.Errorf("%w: refresh token names no principal", ErrUnauthenticated)
	}
	stored, err := s.store.GetPrincipal(ctx, rc.Subject)
	if errors.Is(err, meta.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: the refresh token's principal no longer exists", ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("identity: looking up principal %s: %w", rc.Subject, err)
	}
	if stored.Kind != rc.Kind {
		return Principal{}, fmt.Errorf("%w: the refresh token's principal is not a %s", ErrUnauthenticated, rc.Kind)
	}
	p := Principal{ID: stored.ID, Kind: stored.Kind, Name: stored.Name, Registry: rc.Registry, ResourceID: rc.MIRID}
	if p.Kind == KindUser && p.Name == AdminName {
		s.setAdminID(p.ID)
	}
	return p, nil
}

// refreshVerificationKey is verificationKey with the window of refresh
// tokens: a key retired at t verifies them until t plus the time a replica
// may still sign with it, their lifetime and the skew.
func (s *Service) refreshVerificationKey(ctx context.Context, t *jwt.Token) (any, error) {
	if t.Method.Alg() != signingAlg {
		return nil, fmt.Errorf("algorithm %q not accepted", t.Method.Alg())
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, errors.New("token names no key (kid)")
	}
	k, ok := s.lookupKey(kid)
	if !ok && s.mayReloadForKid() {
		if err := s.reloadKeys(ctx); err != nil {
			s.log.WarnContext(ctx, "reloading signing keys for an unknown kid failed", "kid", kid, "err", err)
		}
		k, ok = s.lookupKey(kid)
	}
	if !ok {
		return nil, fmt.Errorf("unknown key %q", kid)
	}
	window := keyRefreshInterval + RefreshTokenLifetime + clockSkew
	if !k.retiredAt.IsZero() && !s.now().Before(k.retiredAt.Add(window)) {
		return nil, fmt.Errorf("key %q was retired at %s", kid, k.retiredAt.Format(time.RFC3339))
	}
	return k.pub, nil
}
