package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	serviceA = "moat.localhost:5443"
	serviceB = "other.localhost:5443"
)

func issue(t *testing.T, s *Service, p Principal, requested ...Access) Token {
	t.Helper()
	tok, err := s.IssueAccessToken(context.Background(), p, "moat", serviceA, requested)
	if err != nil {
		t.Fatalf("IssueAccessToken: %v", err)
	}
	return tok
}

func wantUnauthenticated(t *testing.T, s *Service, raw, service string) {
	t.Helper()
	c, err := s.VerifyAccessToken(context.Background(), raw, service)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("VerifyAccessToken accepted (%+v, %v); want ErrUnauthenticated", c, err)
	}
}

// storedKeys returns the signing keys in the store, parsed.
func storedKeys(t *testing.T, store meta.Store) []meta.SigningKey {
	t.Helper()
	keys, err := store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// signWith signs claims as ES256 with key under kid, for forging tests.
func signWith(t *testing.T, method jwt.SigningMethod, key any, kid string, claims tokenClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims(p Principal, now time.Time) tokenClaims {
	return tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "moat",
			Subject:   p.ID,
			Audience:  jwt.ClaimStrings{serviceA},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "forged",
		},
		Access: []Access{acc("repository", "a", "pull", "push", "delete", "*")},
		Kind:   p.Kind,
		Name:   p.Name,
	}
}

func TestIssueVerify_RoundTrip(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	requested := []Access{acc("repository", "library/alpine", "pull", "push"), acc("registry", "catalog", "*"), acc("bogus", "x", "pull")}
	tok := issue(t, s, admin, requested...)
	want := []Access{acc("repository", "library/alpine", "pull", "push"), acc("registry", "catalog", "*"), acc("bogus", "x")}
	if !reflect.DeepEqual(tok.Access, want) {
		t.Fatalf("Token.Access = %#v, want %#v", tok.Access, want)
	}
	if !tok.IssuedAt.Equal(clock.Now()) || tok.ExpiresIn != DefaultTokenLifetime {
		t.Fatalf("IssuedAt %s, ExpiresIn %s", tok.IssuedAt, tok.ExpiresIn)
	}
	for _, svc := range []*Service{s, newService(t, s.store, clock)} { // cached and cold
		c, err := svc.VerifyAccessToken(context.Background(), tok.Token, serviceA)
		if err != nil {
			t.Fatalf("VerifyAccessToken: %v", err)
		}
		if c.Principal != admin || c.Service != serviceA || !reflect.DeepEqual(c.Access, want) ||
			!c.Expiry.Equal(clock.Now().Add(DefaultTokenLifetime)) {
			t.Fatalf("claims = %+v; want %+v for %s, %#v, expiring %s", c, admin, serviceA, want, clock.Now().Add(DefaultTokenLifetime))
		}
		if !c.Allows("repository", "library/alpine", "push") || c.Allows("repository", "library/alpine", "delete") ||
			!c.Allows("registry", "catalog", "list") || c.Allows("bogus", "x", "pull") {
			t.Fatalf("Allows disagrees with the grant: %+v", c.Access)
		}
	}
}

// TestIssue_DockerShape pins the wire format Docker clients and other
// verifiers read.
func TestIssue_DockerShape(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	tok := issue(t, s, admin, acc("repository", "a", "pull"))
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header map[string]any
	decodePart(t, parts[0], &header)
	keys := storedKeys(t, store)
	if header["alg"] != "ES256" || header["typ"] != "JWT" || header["kid"] != keys[0].ID {
		t.Fatalf("header = %v; want ES256, JWT, kid %s", header, keys[0].ID)
	}
	var payload map[string]any
	decodePart(t, parts[1], &payload)
	now := float64(clock.Now().Unix())
	checks := map[string]any{
		"iss": "moat", "sub": admin.ID, "aud": []any{serviceA},
		"iat": now, "nbf": now, "exp": now + 3600,
		"kind": KindUser, "name": AdminName,
		"access": []any{map[string]any{"type": "repository", "name": "a", "actions": []any{"pull"}}},
	}
	for k, v := range checks {
		if !reflect.DeepEqual(payload[k], v) {
			t.Errorf("claim %s = %#v, want %#v", k, payload[k], v)
		}
	}
	if jti, _ := payload["jti"].(string); len(jti) < 16 {
		t.Errorf("jti = %q, want a random id", jti)
	}
	if other := issue(t, s, admin, acc("repository", "a", "pull")); other.Token == tok.Token {
		t.Error("two tokens issued in the same second are identical (jti not random)")
	}
	// docker login asks for no scope: access must still be a JSON array.
	empty := issue(t, s, admin)
	decodePart(t, strings.Split(empty.Token, ".")[1], &payload)
	if arr, ok := payload["access"].([]any); !ok || len(arr) != 0 {
		t.Errorf("access of a scopeless token = %#v, want []", payload["access"])
	}
}

func decodePart(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestIssue_Refusals(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	if _, err := s.IssueAccessToken(ctx, Principal{}, "moat", serviceA, nil); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token for a principal without id: err = %v", err)
	}
	if _, err := s.IssueAccessToken(ctx, admin, "moat", "", nil); err == nil {
		t.Error("token for an empty service issued")
	}
	// A principal with no rights gets a token granting nothing.
	tok, err := s.IssueAccessToken(ctx, Principal{ID: "x", Kind: KindUser, Name: "alice"}, "moat", serviceA,
		[]Access{acc("repository", "a", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.VerifyAccessToken(ctx, tok.Token, serviceA)
	if err != nil {
		t.Fatal(err)
	}
	if c.Allows("repository", "a", "pull") {
		t.Fatal("token of a principal without rights allows pull")
	}
}

func TestVerify_Expiry(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	tok := issue(t, s, admin, acc("repository", "a", "pull"))
	ctx := context.Background()
	if _, err := s.VerifyAccessToken(ctx, tok.Token, serviceA); err != nil { // now cached
		t.Fatal(err)
	}
	clock.Advance(DefaultTokenLifetime + clockSkew/2) // expired, but within the leeway
	if _, err := newService(t, store, clock).VerifyAccessToken(ctx, tok.Token, serviceA); err != nil {
		t.Fatalf("token just past exp, within the leeway: %v", err)
	}
	clock.Advance(clockSkew)
	wantUnauthenticated(t, s, tok.Token, serviceA) // the cache must not outlive exp
	wantUnauthenticated(t, newService(t, store, clock), tok.Token, serviceA)
}

func TestVerify_NotYetValid(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	future := newTestClock()
	future.Advance(time.Hour)
	issuer := newService(t, store, future)
	tok, err := issuer.IssueAccessToken(context.Background(), admin, "moat", serviceA, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthenticated(t, s, tok.Token, serviceA)
	// A few seconds of skew between replicas is tolerated.
	clock.Advance(time.Hour - clockSkew/2)
	if _, err := s.VerifyAccessToken(context.Background(), tok.Token, serviceA); err != nil {
		t.Fatalf("token from a clock %s ahead: %v", clockSkew/2, err)
	}
}

func TestVerify_WrongAudience(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	tok := issue(t, s, admin, acc("repository", "a", "pull"))
	wantUnauthenticated(t, s, tok.Token, serviceB) // cold
	if _, err := s.VerifyAccessToken(context.Background(), tok.Token, serviceA); err != nil {
		t.Fatal(err)
	}
	wantUnauthenticated(t, s, tok.Token, serviceB) // after A's answer is cached
	wantUnauthenticated(t, s, tok.Token, "")
	wantUnauthenticated(t, s, tok.Token, strings.ToUpper(serviceA))
}

func TestVerify_WrongIssuer(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	other := newService(t, store, clock, func(o *Options) { o.Issuer = "someone-else" })
	tok, err := other.IssueAccessToken(context.Background(), admin, "moat", serviceA, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthenticated(t, s, tok.Token, serviceA)
	forged := signWith(t, jwt.SigningMethodES256, s.keys.signer.priv, s.keys.signer.id,
		func() tokenClaims { c := validClaims(admin, clock.Now()); c.Issuer = ""; return c }())
	wantUnauthenticated(t, s, forged, serviceA)
}

func TestVerify_Tampered(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	tok := issue(t, s, admin, acc("repository", "a", "pull"))
	parts := strings.Split(tok.Token, ".")

	// Flip one bit of the signature.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	wantUnauthenticated(t, s, parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(sig), serviceA)

	// Widen the grant in the payload and keep the signature.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	wider := strings.Replace(string(payload), `"actions":["pull"]`, `"actions":["*"]`, 1)
	if wider == string(payload) {
		t.Fatalf("payload %s has no pull grant to widen", payload)
	}
	wantUnauthenticated(t, s, parts[0]+"."+base64.RawURLEncoding.EncodeToString([]byte(wider))+"."+parts[2], serviceA)

	// Drop the signature.
	wantUnauthenticated(t, s, parts[0]+"."+parts[1]+".", serviceA)
	// Valid token with trailing data.
	wantUnauthenticated(t, s, tok.Token+"x", serviceA)
	wantUnauthenticated(t, s, tok.Token+".", serviceA)
}

func TestVerify_AlgNone(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	for _, alg := range []string{"none", "None", "NONE", ""} {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT","kid":"` + s.keys.signer.id + `"}`))
		body, err := json.Marshal(validClaims(admin, clock.Now()))
		if err != nil {
			t.Fatal(err)
		}
		p := base64.RawURLEncoding.EncodeToString(body)
		wantUnauthenticated(t, s, h+"."+p+".", serviceA)
		wantUnauthenticated(t, s, h+"."+p, serviceA)
	}
	// The library's own "none" signing, for good measure.
	none := signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, s.keys.signer.id, validClaims(admin, clock.Now()))
	wantUnauthenticated(t, s, none, serviceA)
}

// TestVerify_HS256WithPublicKey is the algorithm-confusion attack: an HMAC
// token keyed with the verifier's public key, which an attacker knows.
func TestVerify_HS256WithPublicKey(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	pub := &s.keys.signer.priv.PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := []byte("-----BEGIN PUBLIC KEY-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END PUBLIC KEY-----\n")
	for _, key := range [][]byte{der, raw, pemBytes} {
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
			forged := signWith(t, m, key, s.keys.signer.id, validClaims(admin, clock.Now()))
			wantUnauthenticated(t, s, forged, serviceA)
		}
	}
	// Another ECDSA algorithm with the right curve's key is refused too.
	other, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthenticated(t, s, signWith(t, jwt.SigningMethodES384, other, s.keys.signer.id, validClaims(admin, clock.Now())), serviceA)
}

func TestVerify_UnknownOrMissingKid(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := validClaims(admin, clock.Now())
	wantUnauthenticated(t, s, signWith(t, jwt.SigningMethodES256, stranger, "no-such-key", claims), serviceA)
	// A known kid, but signed by another key.
	wantUnauthenticated(t, s, signWith(t, jwt.SigningMethodES256, stranger, s.keys.signer.id, claims), serviceA)
	// No kid at all, though signed by the real key.
	wantUnauthenticated(t, s, signWith(t, jwt.SigningMethodES256, s.keys.signer.priv, "", claims), serviceA)
	// A kid that is not a string.
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = 42
	raw, err := tok.SignedString(s.keys.signer.priv)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthenticated(t, s, raw, serviceA)
	// The real key and kid sign fine: the forging helper is not the problem.
	if _, err := s.VerifyAccessToken(context.Background(), signWith(t, jwt.SigningMethodES256, s.keys.signer.priv, s.keys.signer.id, claims), serviceA); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func TestVerify_ClaimsRequired(t *testing.T) {
	_, clock, s, admin, _ := newAdmin(t)
	now := clock.Now()
	mutations := map[string]func(*tokenClaims){
		"no sub":  func(c *tokenClaims) { c.Subject = "" },
		"no kind": func(c *tokenClaims) { c.Kind = "" },
		"no exp":  func(c *tokenClaims) { c.ExpiresAt = nil },
		"no nbf":  func(c *tokenClaims) { c.NotBefore = nil },
		"no aud":  func(c *tokenClaims) { c.Audience = nil },
		"iat in the future": func(c *tokenClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour))
		},
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			c := validClaims(admin, now)
			mutate(&c)
			wantUnauthenticated(t, s, signWith(t, jwt.SigningMethodES256, s.keys.signer.priv, s.keys.signer.id, c), serviceA)
		})
	}
}

func TestVerify_Garbage(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	good := issue(t, s, admin).Token
	inputs := []string{
		"", "a", "a.b", "a.b.c", "..", "...", "a.b.c.d",
		"Bearer " + good,
		" " + good,
		strings.Repeat("A", maxTokenLen+1),
		strings.Repeat(".", 1000),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"}`)) + ".e30.",
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"x"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`[]`)) + ".AAAA",
		"eyJ\x00.eyJ.AAA",
		"{}",
		strings.Replace(good, ".", "=.", 1), // padded base64 is not strict
	}
	for _, in := range inputs {
		wantUnauthenticated(t, s, in, serviceA)
	}
}

func TestVerify_CachedAnswerIsACopy(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	tok := issue(t, s, admin, acc("repository", "a", "pull"))
	c1, err := s.VerifyAccessToken(context.Background(), tok.Token, serviceA)
	if err != nil {
		t.Fatal(err)
	}
	c1.Access[0].Actions[0] = "*"
	c1.Access = append(c1.Access, acc("repository", "b", "*"))
	c2, err := s.VerifyAccessToken(context.Background(), tok.Token, serviceA)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Access{acc("repository", "a", "pull")}; !reflect.DeepEqual(c2.Access, want) {
		t.Fatalf("cached claims changed by a caller: %#v", c2.Access)
	}
}

func TestSigningKeys_CreatedOnceAndShared(t *testing.T) {
	store := openStore(t)
	clock := newTestClock()
	a := newService(t, store, clock)
	b := newService(t, store, clock)
	keys := storedKeys(t, store)
	if len(keys) != 1 || keys[0].Algorithm != "ES256" || keys[0].RetiredAt != nil {
		t.Fatalf("stored keys after two New = %+v, want one active ES256 key", keys)
	}
	if a.keys.signer.id != keys[0].ID || b.keys.signer.id != keys[0].ID {
		t.Fatalf("signers %s, %s; stored %s", a.keys.signer.id, b.keys.signer.id, keys[0].ID)
	}
	p := Principal{ID: "x", Kind: KindUser, Name: "alice"}
	tok := issue(t, a, p)
	if _, err := b.VerifyAccessToken(context.Background(), tok.Token, serviceA); err != nil {
		t.Fatalf("a token of one Service refused by another over the same store: %v", err)
	}
}

func TestSigningKeys_Rotate(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	peer := newService(t, store, clock) // another replica, loaded before the rotation
	oldKid := s.keys.signer.id
	old := issue(t, s, admin, acc("repository", "a", "pull"))

	newKid, err := s.RotateSigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldKid {
		t.Fatal("rotation kept the key id")
	}
	keys := storedKeys(t, store)
	if len(keys) != 2 {
		t.Fatalf("%d keys stored after rotation, want 2", len(keys))
	}
	for _, k := range keys {
		if (k.ID == oldKid) != (k.RetiredAt != nil) {
			t.Fatalf("key %s retired=%v after rotation", k.ID, k.RetiredAt != nil)
		}
	}
	fresh := issue(t, s, admin, acc("repository", "a", "pull"))
	if kid := tokenKid(t, fresh.Token); kid != newKid {
		t.Fatalf("token after rotation signed by %s, want %s", kid, newKid)
	}
	// The retired key still verifies, on every replica, cold.
	for _, svc := range []*Service{newService(t, store, clock), peer} {
		if _, err := svc.VerifyAccessToken(ctx, old.Token, serviceA); err != nil {
			t.Fatalf("token of the retired key refused: %v", err)
		}
	}
	// The peer learns the new key from the first token that names it...
	if _, err := peer.VerifyAccessToken(ctx, fresh.Token, serviceA); err != nil {
		t.Fatalf("peer refused a token of the new key: %v", err)
	}
	// ...and signs with it once its view is refreshed.
	clock.Advance(keyRefreshInterval)
	if kid := tokenKid(t, issue(t, peer, admin).Token); kid != newKid {
		t.Fatalf("peer signs with %s after refresh, want %s", kid, newKid)
	}
}

// TestSigningKeys_RetiredWindowEnds: a retired key verifies only while tokens
// it may have signed can still be alive; a long-lived token forged with its
// private key afterwards is refused.
func TestSigningKeys_RetiredWindowEnds(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	old := s.keys.signer
	if _, err := s.RotateSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	c := validClaims(admin, clock.Now())
	c.ExpiresAt = jwt.NewNumericDate(clock.Now().Add(30 * 24 * time.Hour))
	long := signWith(t, jwt.SigningMethodES256, old.priv, old.id, c)
	if _, err := newService(t, store, clock).VerifyAccessToken(ctx, long, serviceA); err != nil {
		t.Fatalf("retired key refused inside its window: %v", err)
	}
	clock.Advance(s.retiredKeyWindow())
	wantUnauthenticated(t, newService(t, store, clock), long, serviceA)
}

func TestSigningKeys_UnusableStoredKeysIgnored(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	clock := newTestClock()
	rsaLike := meta.SigningKey{ID: "rs", Algorithm: "RS256", PrivateKey: []byte("x"), CreatedAt: clock.Now()}
	broken := meta.SigningKey{ID: "broken", Algorithm: "ES256", PrivateKey: []byte("not DER"), CreatedAt: clock.Now()}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	wrongCurve := meta.SigningKey{ID: "p384", Algorithm: "ES256", PrivateKey: der, CreatedAt: clock.Now()}
	for _, k := range []meta.SigningKey{rsaLike, broken, wrongCurve} {
		if err := store.AddSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	s := newService(t, store, clock)
	if id := s.keys.signer.id; id == "rs" || id == "broken" || id == "p384" {
		t.Fatalf("signing with unusable key %s", id)
	}
	if len(storedKeys(t, store)) != 4 {
		t.Fatal("New did not add a usable key next to the unusable ones")
	}
	wantUnauthenticated(t, s, signWith(t, jwt.SigningMethodES384, p384, "p384", validClaims(Principal{ID: "x", Kind: KindUser}, clock.Now())), serviceA)
}

func tokenKid(t *testing.T, raw string) string {
	t.Helper()
	var h map[string]any
	decodePart(t, strings.Split(raw, ".")[0], &h)
	kid, _ := h["kid"].(string)
	return kid
}

// TestThumbprint_RFC7517Key checks the kid of the EC key of RFC 7517
// appendix A.1 against its well-known RFC 7638 thumbprint.
func TestThumbprint_RFC7517Key(t *testing.T) {
	x, _ := base64.RawURLEncoding.DecodeString("MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4")
	y, _ := base64.RawURLEncoding.DecodeString("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM")
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	got, err := thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s"; got != want {
		t.Fatalf("thumbprint = %s, want %s", got, want)
	}
}

func TestThumbprint_StableAndDistinct(t *testing.T) {
	k1, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := thumbprint(&k1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := thumbprint(&k1.PublicKey)
	c, _ := thumbprint(&k2.PublicKey)
	if a != b || a == c || len(a) != 43 {
		t.Fatalf("thumbprints %q %q %q", a, b, c)
	}
}

func TestSigningKeys_UnknownKidReloadsRateLimited(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	clock := newTestClock()
	s := newService(t, cs, clock)
	stranger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{ID: "x", Kind: KindUser, Name: "alice"}
	forge := func(kid string) string {
		return signWith(t, jwt.SigningMethodES256, stranger, kid, validClaims(p, clock.Now()))
	}
	before := cs.listKeys.Load()
	for i := range 20 {
		wantUnauthenticated(t, s, forge("forged-"+string(rune('a'+i))), serviceA)
	}
	if n := cs.listKeys.Load() - before; n != 1 {
		t.Fatalf("20 unknown kids within %s reloaded the keys %d times, want 1", unknownKidReloadInterval, n)
	}
	clock.Advance(unknownKidReloadInterval)
	wantUnauthenticated(t, s, forge("forged-later"), serviceA)
	if n := cs.listKeys.Load() - before; n != 2 {
		t.Fatalf("after the interval: %d reloads, want 2", n)
	}
}

// TestSigningKeys_RefreshFailureKeepsSigning: the store being away when the
// keyring is due for a refresh must not stop token issuing.
func TestSigningKeys_RefreshFailureKeepsSigning(t *testing.T) {
	cs := &countingStore{Store: openStore(t)}
	clock := newTestClock()
	s := newService(t, cs, clock)
	kid := s.keys.signer.id
	cs.failListKeys.Store(true)
	clock.Advance(keyRefreshInterval + time.Second)
	tok := issue(t, s, Principal{ID: "x", Kind: KindUser, Name: "alice"})
	if got := tokenKid(t, tok.Token); got != kid {
		t.Fatalf("signed with %s, want the loaded key %s", got, kid)
	}
	cs.failListKeys.Store(false)
	if _, err := s.VerifyAccessToken(context.Background(), tok.Token, serviceA); err != nil {
		t.Fatal(err)
	}
	// New itself fails closed when it cannot read the keys.
	cs.failListKeys.Store(true)
	if _, err := New(context.Background(), cs, Options{BcryptCost: 4}); !errors.Is(err, errInjected) {
		t.Fatalf("New with a failing store: err = %v", err)
	}
}
