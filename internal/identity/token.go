package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// signingAlg is the only JWS algorithm moat signs or accepts.
	signingAlg = "ES256"
	// clockSkew is the leeway for exp, nbf and iat: replicas' clocks differ a
	// little, and a token must work on the replica next to the one that issued
	// it.
	clockSkew = 30 * time.Second
	// keyRefreshInterval is how stale a process's view of the signing keys may
	// get before issuing a token reloads it, so a rotation on one replica
	// reaches the others' signing within about this long.
	keyRefreshInterval = time.Minute
	// unknownKidReloadInterval rate-limits reloads triggered by tokens naming
	// a key this process has not seen (new on another replica, or forged).
	unknownKidReloadInterval = time.Second
	// tokenCacheEntries bounds the verified-token cache; an entry is the token
	// string plus its claims, about 1-2 KiB.
	tokenCacheEntries = 4096
	// maxTokenLen refuses absurd inputs before any parsing. moat's tokens are
	// well under 2 KiB even with many access entries.
	maxTokenLen = 16 << 10
)

// tokenClaims is the JWT payload of an access token: the registered claims,
// Docker's "access", and who the subject is so Claims can name it without a
// store lookup.
type tokenClaims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
	Kind   string   `json:"kind,omitempty"`
	Name   string   `json:"name,omitempty"`
	// Registry and MIRID carry Principal.Registry and Principal.ResourceID.
	Registry string `json:"registry,omitempty"`
	MIRID    string `json:"xms_mirid,omitempty"`
}

// keyring is this process's view of the signing keys in the store.
type keyring struct {
	// reloadMu serialises reloads and rotations.
	reloadMu sync.Mutex

	mu        sync.RWMutex
	signer    signingKey
	verifiers map[string]verifyKey
	loadedAt  time.Time

	// lastKidReload is when (UnixNano) an unknown kid last caused a reload.
	// Atomic so that a flood of forged kids does not take mu for writing.
	lastKidReload atomic.Int64
}

type signingKey struct {
	id        string
	priv      *ecdsa.PrivateKey
	createdAt time.Time
}

type verifyKey struct {
	pub *ecdsa.PublicKey
	// retiredAt is zero for an active key.
	retiredAt time.Time
}

// IssueAccessToken authorizes requested for p on registry (see Authorize) and
// signs a token carrying what was granted, with audience service (the
// registry's login server). An empty grant still yields a token, as Docker
// token servers do for "docker login".
func (s *Service) IssueAccessToken(ctx context.Context, p Principal, registry, service string, requested []Access) (Token, error) {
	if p.ID == "" {
		return Token{}, fmt.Errorf("%w: principal has no id", ErrUnauthenticated)
	}
	if service == "" {
		return Token{}, errors.New("identity: issuing a token for an empty service")
	}
	granted, err := s.Authorize(ctx, p, registry, requested)
	if err != nil {
		return Token{}, err
	}
	return s.signAccessToken(ctx, p, service, granted)
}

// signAccessToken signs an access token for p with audience service carrying
// granted, which the caller has decided.
func (s *Service) signAccessToken(ctx context.Context, p Principal, service string, granted []Access) (Token, error) {
	key, err := s.currentSigner(ctx)
	if err != nil {
		return Token{}, err
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return Token{}, fmt.Errorf("identity: generating a token id: %w", err)
	}
	now := s.now().Truncate(time.Second) // NumericDate has second precision
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   p.ID,
			Audience:  jwt.ClaimStrings{service},
			ExpiresAt: jwt.NewNumericDate(now.Add(s.lifetime)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		Access:   granted,
		Kind:     p.Kind,
		Name:     p.Name,
		Registry: p.Registry,
		MIRID:    p.ResourceID,
	})
	tok.Header["kid"] = key.id
	signed, err := tok.SignedString(key.priv)
	if err != nil {
		return Token{}, fmt.Errorf("identity: signing a token with key %s: %w", key.id, err)
	}
	return Token{Token: signed, IssuedAt: now, ExpiresIn: s.lifetime, Access: granted}, nil
}

// VerifyAccessToken checks a token's signature (ES256 only, by a known key
// named in "kid"), its exp, nbf and iat (with clockSkew leeway), that iss is
// this Service's issuer and that aud contains service. Every failure wraps
// ErrUnauthenticated.
//
// Verified tokens are cached by their exact string until they expire, so
// verifying the same token again (a client pulling many manifests) costs a
// map lookup instead of an ECDSA verification. The cached answer is only used
// for the same service.
func (s *Service) VerifyAccessToken(ctx context.Context, raw, service string) (Claims, error) {
	if raw == "" || service == "" {
		return Claims{}, fmt.Errorf("%w: empty token or service", ErrUnauthenticated)
	}
	if len(raw) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: token longer than %d bytes", ErrUnauthenticated, maxTokenLen)
	}
	now := s.now()
	if c, ok := s.tokenCache.get(raw, now); ok && c.Service == service {
		return c.clone(), nil
	}

	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(service),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(s.now),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	)
	var tc tokenClaims
	if _, err := parser.ParseWithClaims(raw, &tc, func(t *jwt.Token) (any, error) {
		return s.verificationKey(ctx, t)
	}); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if tc.Subject == "" || tc.Kind == "" {
		return Claims{}, fmt.Errorf("%w: token names no principal", ErrUnauthenticated)
	}
	c := Claims{
		Principal: Principal{ID: tc.Subject, Kind: tc.Kind, Name: tc.Name, Registry: tc.Registry, ResourceID: tc.MIRID},
		Service:   service,
		Access:    tc.Access,
		Expiry:    tc.ExpiresAt.Time,
	}
	s.tokenCache.put(raw, c, c.Expiry, now)
	return c.clone(), nil
}

// clone deep-copies c so a caller cannot change a cached answer.
func (c Claims) clone() Claims {
	acc := make([]Access, len(c.Access))
	for i, a := range c.Access {
		acc[i] = Access{Type: a.Type, Name: a.Name, Actions: append([]string{}, a.Actions...)}
	}
	c.Access = acc
	return c
}

// verificationKey is the jwt.Keyfunc: the public key named by kid, if it is
// known (reloading once in a while for kids minted by another replica) and,
// when retired, still inside the window its tokens can live.
func (s *Service) verificationKey(ctx context.Context, t *jwt.Token) (any, error) {
	if t.Method.Alg() != signingAlg { // also enforced by WithValidMethods
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
	if !k.retiredAt.IsZero() && !s.now().Before(k.retiredAt.Add(s.retiredKeyWindow())) {
		return nil, fmt.Errorf("key %q was retired at %s", kid, k.retiredAt.Format(time.RFC3339))
	}
	return k.pub, nil
}

// retiredKeyWindow is how long after retirement a key still verifies: a
// replica that has not yet reloaded may sign with it for keyRefreshInterval,
// and those tokens live s.lifetime, give or take the clocks.
func (s *Service) retiredKeyWindow() time.Duration {
	return keyRefreshInterval + s.lifetime + clockSkew
}

func (s *Service) lookupKey(kid string) (verifyKey, bool) {
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	k, ok := s.keys.verifiers[kid]
	return k, ok
}

// mayReloadForKid reports whether this caller may reload the keys for an
// unknown kid: at most one caller per unknownKidReloadInterval.
func (s *Service) mayReloadForKid() bool {
	now := s.now().UnixNano()
	last := s.keys.lastKidReload.Load()
	if now-last < int64(unknownKidReloadInterval) {
		return false
	}
	return s.keys.lastKidReload.CompareAndSwap(last, now)
}

// currentSigner returns the key to sign with, reloading the keyring first if
// it is older than keyRefreshInterval. A failed reload keeps the current key:
// it is still valid, and the store being briefly away must not stop logins.
func (s *Service) currentSigner(ctx context.Context) (signingKey, error) {
	s.keys.mu.RLock()
	k, loadedAt := s.keys.signer, s.keys.loadedAt
	s.keys.mu.RUnlock()
	if s.now().Sub(loadedAt) < keyRefreshInterval && k.priv != nil {
		return k, nil
	}
	if err := s.reloadKeys(ctx); err != nil {
		if k.priv == nil {
			return signingKey{}, err
		}
		s.log.WarnContext(ctx, "refreshing signing keys failed; signing with the loaded key", "kid", k.id, "err", err)
		return k, nil
	}
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	return s.keys.signer, nil
}

// RotateSigningKey adds a new signing key and retires the ones active before
// it: new tokens are signed with the new key, and tokens signed with the old
// ones keep verifying until they expire. It returns the new key's id. Other
// replicas switch to the new key within keyRefreshInterval.
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	s.keys.reloadMu.Lock()
	defer s.keys.reloadMu.Unlock()
	k, err := newSigningKey(s.now())
	if err != nil {
		return "", err
	}
	if err := s.store.AddSigningKey(ctx, k); err != nil {
		return "", fmt.Errorf("identity: storing signing key %s: %w", k.ID, err)
	}
	stored, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return "", fmt.Errorf("identity: listing signing keys: %w", err)
	}
	now := s.now()
	for _, old := range stored {
		if old.ID == k.ID || old.RetiredAt != nil {
			continue
		}
		if err := s.store.RetireSigningKey(ctx, old.ID, now); err != nil {
			return "", fmt.Errorf("identity: retiring signing key %s: %w", old.ID, err)
		}
		s.log.InfoContext(ctx, "retired token signing key", "kid", old.ID)
	}
	if err := s.reloadKeysLocked(ctx); err != nil {
		return "", err
	}
	s.log.InfoContext(ctx, "rotated token signing key", "kid", k.ID)
	return k.ID, nil
}

func (s *Service) reloadKeys(ctx context.Context) error {
	s.keys.reloadMu.Lock()
	defer s.keys.reloadMu.Unlock()
	return s.reloadKeysLocked(ctx)
}

// reloadKeysLocked reads the keys from the store and installs them; if none
// can sign, it creates one. Another process creating one at the same moment
// is fine: both keys verify, and the newest signs after the next reload.
func (s *Service) reloadKeysLocked(ctx context.Context) error {
	for range 3 {
		stored, err := s.store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("identity: listing signing keys: %w", err)
		}
		signer, verifiers := s.parseKeys(ctx, stored)
		if signer.priv != nil {
			s.keys.mu.Lock()
			s.keys.signer, s.keys.verifiers, s.keys.loadedAt = signer, verifiers, s.now()
			s.keys.mu.Unlock()
			return nil
		}
		k, err := newSigningKey(s.now())
		if err != nil {
			return err
		}
		err = s.store.AddSigningKey(ctx, k)
		if errors.Is(err, meta.ErrAlreadyExists) {
			continue // someone stored the same id first; read what is there
		}
		if err != nil {
			return fmt.Errorf("identity: storing signing key %s: %w", k.ID, err)
		}
		s.log.InfoContext(ctx, "created token signing key", "kid", k.ID)
	}
	return errors.New("identity: no usable signing key in the store after creating one")
}

// parseKeys turns stored keys into the signer (newest active ES256 key) and
// the verification set. Keys it cannot use are logged and left out, so tokens
// naming them fail verification.
func (s *Service) parseKeys(ctx context.Context, stored []meta.SigningKey) (signingKey, map[string]verifyKey) {
	var signer signingKey
	verifiers := make(map[string]verifyKey, len(stored))
	for _, sk := range stored {
		if sk.Algorithm != signingAlg {
			s.log.WarnContext(ctx, "ignoring signing key with unsupported algorithm", "kid", sk.ID, "alg", sk.Algorithm)
			continue
		}
		priv, err := parseP256(sk.PrivateKey)
		if err != nil {
			s.log.WarnContext(ctx, "ignoring unreadable signing key", "kid", sk.ID, "err", err)
			continue
		}
		vk := verifyKey{pub: &priv.PublicKey}
		if sk.RetiredAt != nil {
			vk.retiredAt = *sk.RetiredAt
		} else if signer.priv == nil || sk.CreatedAt.After(signer.createdAt) {
			signer = signingKey{id: sk.ID, priv: priv, createdAt: sk.CreatedAt}
		}
		verifiers[sk.ID] = vk
	}
	return signer, verifiers
}

// newSigningKey generates a P-256 key whose id is its RFC 7638 JWK
// thumbprint, so ids are unique without coordination and can be published in
// a JWKS later.
func newSigningKey(now time.Time) (meta.SigningKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return meta.SigningKey{}, fmt.Errorf("identity: generating a signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return meta.SigningKey{}, fmt.Errorf("identity: encoding a signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return meta.SigningKey{}, err
	}
	return meta.SigningKey{ID: kid, Algorithm: signingAlg, PrivateKey: der, CreatedAt: now}, nil
}

func parseP256(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8: %w", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("not a P-256 ECDSA key (%T)", k)
	}
	return priv, nil
}

// thumbprint is the RFC 7638 JWK thumbprint of a P-256 public key, base64url.
func thumbprint(pub *ecdsa.PublicKey) (string, error) {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil || len(b) != 65 {
		return "", fmt.Errorf("identity: encoding a P-256 public key: %v (%d bytes)", err, len(b))
	}
	enc := base64.RawURLEncoding
	jwk := `{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(b[1:33]) + `","y":"` + enc.EncodeToString(b[33:]) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return enc.EncodeToString(sum[:]), nil
}
