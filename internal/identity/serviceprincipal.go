package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// Service principals are stored as meta.Principal records of kind
// KindServicePrincipal: ID is the object id, Name the application (client)
// id, both UUIDs moat generates. SecretHash stays empty; the secrets (each
// bcrypt-hashed, with a public tag, a hint and an expiry) and the display name
// live in Properties as spProperties JSON.
//
// A secret has the form "<tag>~<random>": the tag (6 base64url characters,
// stored in clear) picks the one stored hash to check, so authenticating
// costs one bcrypt however many secrets a principal has.

const (
	// KindServicePrincipal is the kind of service principals (app
	// registrations with client secrets).
	KindServicePrincipal = "servicePrincipal"

	// DefaultSecretLifetime is how long a client secret is valid when the
	// caller does not say (az ad sp create-for-rbac's default).
	DefaultSecretLifetime = 365 * 24 * time.Hour
	// MaxSecretLifetime bounds requested secret lifetimes (Entra allows two
	// years for new secrets).
	MaxSecretLifetime = 2 * 365 * 24 * time.Hour
	// maxSecretsPerPrincipal bounds the stored secrets of one principal.
	maxSecretsPerPrincipal = 16
	// maxDisplayNameLen bounds display names (Entra's limit is 120).
	maxDisplayNameLen = 120

	secretTagBytes  = 4  // 6 base64url characters
	secretBodyBytes = 30 // 40 base64url characters
)

var (
	// ErrServicePrincipalNotFound: no service principal has that app id.
	ErrServicePrincipalNotFound = errors.New("identity: service principal not found")
	// ErrInvalidArgument: a display name, lifetime or id is not acceptable.
	ErrInvalidArgument = errors.New("identity: invalid argument")
)

// ServicePrincipal is a service principal as callers see it; secrets are
// listed without their values.
type ServicePrincipal struct {
	// AppID is the application (client) id, the client_id of the
	// client-credentials grant.
	AppID string
	// ObjectID is the principal id (token "oid" and "sub", the principal id of
	// role assignments).
	ObjectID    string
	DisplayName string
	CreatedAt   time.Time
	Secrets     []SecretInfo
}

// SecretInfo describes one client secret without its value.
type SecretInfo struct {
	// KeyID identifies the secret for removal.
	KeyID string
	// Hint is the secret's first three characters, as Entra shows them.
	Hint      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// spProperties is the JSON in a service principal's Properties.
type spProperties struct {
	DisplayName string     `json:"displayName"`
	Secrets     []spSecret `json:"secrets"`
}

type spSecret struct {
	KeyID     string    `json:"keyId"`
	Tag       string    `json:"tag"`
	Hint      string    `json:"hint"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// spMu serialises read-modify-write of service principals' secret lists in
// this process. The store has no compare-and-swap for principals, so two
// processes changing one principal's secrets at the same instant can lose one
// change; secret management is an admin action where that is acceptable.
var spMu sync.Mutex

// CreateServicePrincipal creates a service principal with new ids and one
// client secret valid for DefaultSecretLifetime, and returns it with the
// secret's value (which moat cannot show again).
func (s *Service) CreateServicePrincipal(ctx context.Context, displayName string) (ServicePrincipal, string, error) {
	if displayName == "" || len(displayName) > maxDisplayNameLen || strings.ContainsFunc(displayName, isControl) {
		return ServicePrincipal{}, "", fmt.Errorf("%w: display name must be 1-%d printable characters", ErrInvalidArgument, maxDisplayNameLen)
	}
	now := s.now().UTC()
	sec, value, err := s.newSecret(now, DefaultSecretLifetime)
	if err != nil {
		return ServicePrincipal{}, "", err
	}
	props := spProperties{DisplayName: displayName, Secrets: []spSecret{sec}}
	raw, err := json.Marshal(props)
	if err != nil {
		return ServicePrincipal{}, "", fmt.Errorf("identity: encoding service principal: %w", err)
	}
	p := meta.Principal{ID: uuid.NewString(), Kind: KindServicePrincipal, Name: uuid.NewString(), Properties: raw}
	if err := s.store.PutPrincipal(ctx, p); err != nil {
		return ServicePrincipal{}, "", fmt.Errorf("identity: storing service principal %q: %w", displayName, err)
	}
	s.log.InfoContext(ctx, "created service principal", "app_id", p.Name, "object_id", p.ID, "display_name", displayName)
	p.CreatedAt = now
	return toServicePrincipal(p, props), value, nil
}

// AddServicePrincipalSecret adds a client secret valid for lifetime
// (DefaultSecretLifetime when 0) and returns it with its value.
func (s *Service) AddServicePrincipalSecret(ctx context.Context, appID string, lifetime time.Duration) (SecretInfo, string, error) {
	if lifetime == 0 {
		lifetime = DefaultSecretLifetime
	}
	if lifetime < 0 || lifetime > MaxSecretLifetime {
		return SecretInfo{}, "", fmt.Errorf("%w: secret lifetime %s outside 0..%s", ErrInvalidArgument, lifetime, MaxSecretLifetime)
	}
	spMu.Lock()
	defer spMu.Unlock()
	p, props, err := s.loadServicePrincipal(ctx, appID)
	if err != nil {
		return SecretInfo{}, "", err
	}
	now := s.now().UTC()
	// Expired secrets make room first; they can never authenticate again.
	props.Secrets = liveSecrets(props.Secrets, now)
	if len(props.Secrets) >= maxSecretsPerPrincipal {
		return SecretInfo{}, "", fmt.Errorf("%w: service principal %s already has %d secrets; remove one first", ErrInvalidArgument, appID, maxSecretsPerPrincipal)
	}
	sec, value, err := s.newSecret(now, lifetime)
	if err != nil {
		return SecretInfo{}, "", err
	}
	props.Secrets = append(props.Secrets, sec)
	if err := s.saveServicePrincipal(ctx, p, props); err != nil {
		return SecretInfo{}, "", err
	}
	s.log.InfoContext(ctx, "added service principal secret", "app_id", appID, "key_id", sec.KeyID)
	return sec.info(), value, nil
}

// RemoveServicePrincipalSecret removes the secret with keyID; it stops
// authenticating at once (tokens already issued with it live on until they
// expire).
func (s *Service) RemoveServicePrincipalSecret(ctx context.Context, appID, keyID string) error {
	spMu.Lock()
	defer spMu.Unlock()
	p, props, err := s.loadServicePrincipal(ctx, appID)
	if err != nil {
		return err
	}
	kept := props.Secrets[:0:0]
	for _, sec := range props.Secrets {
		if sec.KeyID != keyID {
			kept = append(kept, sec)
		}
	}
	if len(kept) == len(props.Secrets) {
		return fmt.Errorf("%w: service principal %s has no secret %q", ErrInvalidArgument, appID, keyID)
	}
	props.Secrets = kept
	if err := s.saveServicePrincipal(ctx, p, props); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "removed service principal secret", "app_id", appID, "key_id", keyID)
	return nil
}

// GetServicePrincipal returns the service principal with that app id.
func (s *Service) GetServicePrincipal(ctx context.Context, appID string) (ServicePrincipal, error) {
	p, props, err := s.loadServicePrincipal(ctx, appID)
	if err != nil {
		return ServicePrincipal{}, err
	}
	return toServicePrincipal(p, props), nil
}

// DeleteServicePrincipal removes the service principal with that app id. Its
// secrets stop working at once; its management tokens are refused within
// entraCacheTTL (verification re-reads the principal).
func (s *Service) DeleteServicePrincipal(ctx context.Context, appID string) error {
	spMu.Lock()
	defer spMu.Unlock()
	p, _, err := s.loadServicePrincipal(ctx, appID)
	if err != nil {
		return err
	}
	if err := s.store.DeletePrincipal(ctx, p.ID); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrServicePrincipalNotFound, appID)
		}
		return fmt.Errorf("identity: deleting service principal %s: %w", appID, err)
	}
	s.log.InfoContext(ctx, "deleted service principal", "app_id", appID, "object_id", p.ID)
	return nil
}

// ListServicePrincipals returns every service principal, by app id.
func (s *Service) ListServicePrincipals(ctx context.Context) ([]ServicePrincipal, error) {
	stored, err := s.store.ListPrincipals(ctx, KindServicePrincipal)
	if err != nil {
		return nil, fmt.Errorf("identity: listing service principals: %w", err)
	}
	out := make([]ServicePrincipal, 0, len(stored))
	for _, p := range stored {
		props, err := decodeSPProperties(p)
		if err != nil {
			s.log.WarnContext(ctx, "skipping unreadable service principal", "app_id", p.Name, "err", err)
			continue
		}
		out = append(out, toServicePrincipal(p, props))
	}
	return out, nil
}

// AuthenticateServicePrincipal checks a client id and secret. Wrong
// credentials wrap ErrUnauthenticated; ErrServicePrincipalNotFound is also
// wrapped when the app id is unknown (Entra tells that case apart, and so
// does the token endpoint). Any other error means the store failed. Unknown
// ids, unknown tags and expired secrets cost the same bcrypt work as a real
// check.
func (s *Service) AuthenticateServicePrincipal(ctx context.Context, appID, secret string) (Principal, error) {
	if appID == "" || secret == "" {
		return Principal{}, fmt.Errorf("%w: empty client id or secret", ErrUnauthenticated)
	}
	if len(appID) > maxUsernameLen || len(secret) > maxPasswordLen {
		return Principal{}, fmt.Errorf("%w: client id or secret too long", ErrUnauthenticated)
	}
	p, props, err := s.loadServicePrincipal(ctx, appID)
	if errors.Is(err, ErrServicePrincipalNotFound) {
		if err := s.burnBcrypt(ctx, secret); err != nil {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if err != nil {
		return Principal{}, err
	}
	tag, _, ok := strings.Cut(secret, "~")
	now := s.now()
	for _, sec := range props.Secrets {
		if !ok || sec.Tag != tag {
			continue
		}
		if !now.Before(sec.ExpiresAt) {
			break
		}
		if err := s.compareHash(ctx, sec.Hash, secret); err != nil {
			if errors.Is(err, errPasswordCheckWait) {
				return Principal{}, err
			}
			return Principal{}, fmt.Errorf("%w: invalid client secret", ErrUnauthenticated)
		}
		return Principal{ID: p.ID, Kind: KindServicePrincipal, Name: p.Name}, nil
	}
	if err := s.burnBcrypt(ctx, secret); err != nil {
		return Principal{}, err
	}
	return Principal{}, fmt.Errorf("%w: invalid or expired client secret", ErrUnauthenticated)
}

func (s *Service) loadServicePrincipal(ctx context.Context, appID string) (meta.Principal, spProperties, error) {
	if _, err := uuid.Parse(appID); err != nil || len(appID) != 36 {
		// Every app id moat hands out is a canonical UUID; anything else
		// cannot name one, and is not worth a store query.
		return meta.Principal{}, spProperties{}, fmt.Errorf("%w: %q", ErrServicePrincipalNotFound, appID)
	}
	p, err := s.store.GetPrincipalByName(ctx, KindServicePrincipal, strings.ToLower(appID))
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Principal{}, spProperties{}, fmt.Errorf("%w: %s", ErrServicePrincipalNotFound, appID)
	}
	if err != nil {
		return meta.Principal{}, spProperties{}, fmt.Errorf("identity: looking up service principal %s: %w", appID, err)
	}
	props, err := decodeSPProperties(p)
	if err != nil {
		return meta.Principal{}, spProperties{}, err
	}
	return p, props, nil
}

func (s *Service) saveServicePrincipal(ctx context.Context, p meta.Principal, props spProperties) error {
	raw, err := json.Marshal(props)
	if err != nil {
		return fmt.Errorf("identity: encoding service principal %s: %w", p.Name, err)
	}
	p.Properties = raw
	if err := s.store.PutPrincipal(ctx, p); err != nil {
		return fmt.Errorf("identity: storing service principal %s: %w", p.Name, err)
	}
	return nil
}

func decodeSPProperties(p meta.Principal) (spProperties, error) {
	var props spProperties
	if len(p.Properties) == 0 {
		return props, nil
	}
	if err := json.Unmarshal(p.Properties, &props); err != nil {
		return spProperties{}, fmt.Errorf("identity: decoding service principal %s: %w", p.Name, err)
	}
	return props, nil
}

// newSecret generates a secret value and its stored form.
func (s *Service) newSecret(now time.Time, lifetime time.Duration) (spSecret, string, error) {
	b := make([]byte, secretTagBytes+secretBodyBytes)
	if _, err := rand.Read(b); err != nil {
		return spSecret{}, "", fmt.Errorf("identity: generating a secret: %w", err)
	}
	tag := base64.RawURLEncoding.EncodeToString(b[:secretTagBytes])
	value := tag + "~" + base64.RawURLEncoding.EncodeToString(b[secretTagBytes:])
	hash, err := bcrypt.GenerateFromPassword([]byte(value), s.cost)
	if err != nil {
		return spSecret{}, "", fmt.Errorf("identity: hashing a secret: %w", err)
	}
	return spSecret{
		KeyID:     uuid.NewString(),
		Tag:       tag,
		Hint:      value[:3],
		Hash:      hash,
		CreatedAt: now,
		ExpiresAt: now.Add(lifetime),
	}, value, nil
}

func (sec spSecret) info() SecretInfo {
	return SecretInfo{KeyID: sec.KeyID, Hint: sec.Hint, CreatedAt: sec.CreatedAt, ExpiresAt: sec.ExpiresAt}
}

func liveSecrets(secs []spSecret, now time.Time) []spSecret {
	out := secs[:0:0]
	for _, sec := range secs {
		if now.Before(sec.ExpiresAt) {
			out = append(out, sec)
		}
	}
	return out
}

func toServicePrincipal(p meta.Principal, props spProperties) ServicePrincipal {
	sp := ServicePrincipal{AppID: p.Name, ObjectID: p.ID, DisplayName: props.DisplayName, CreatedAt: p.CreatedAt}
	for _, sec := range props.Secrets {
		sp.Secrets = append(sp.Secrets, sec.info())
	}
	return sp
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
