package identity

// Managed identities.
//
// A managed identity is a principal that belongs to an Azure resource
// instead of a person or an app registration:
//
//   - system-assigned: created with a service instance
//     (Microsoft.ContainerInstance/containerGroups, …/registries/tasks,
//     Microsoft.MachineLearningServices/workspaces, Microsoft.Web/sites)
//     whose "identity" names SystemAssigned, deleted with it; its resource id
//     is the instance's;
//   - user-assigned: a Microsoft.ManagedIdentity/userAssignedIdentities
//     resource, attached to any number of instances.
//
// Storage: a managed identity is a meta.Principal of kind
// KindManagedIdentity whose ID is the principal (object) id and whose Name
// is its resource id lower-cased (so the store's (kind, name) uniqueness
// gives one principal per resource); Properties keep the resource id as
// spelt and the client id.
//
// A service instance that carries identities is an identity host: a
// meta.Principal of kind kindIdentityHost (never a caller: nothing issues it
// tokens or grants it roles) named by the instance's lower-cased resource id,
// whose Properties list the identities attached and whose SecretHash is the
// SHA-256 of the instance's IDENTITY_HEADER secret. The secret is
// "<host id>~<43 base64url characters>" (256 random bits): the host id picks
// the record, the hash is compared in constant time. A fast hash is enough
// for a random 256-bit secret; bcrypt would only slow every token request.
//
// Tokens (see msi_handler.go) are Entra-style tokens of the deployment
// issuer: oid/sub = the principal id, appid = the client id, idtyp "app",
// xms_mirid = the identity's resource id, and xms_az_rid = the resource id
// of the instance the token was requested on (the one the secret selected).
// For a system-assigned identity both name the instance; for a
// user-assigned one xms_az_rid is what tells the trusted-services check
// which service the caller runs in.
//
// Verifying such a token (VerifyEntraToken) re-checks that the principal
// exists, that it is still attached to the instance, and that both resources
// still exist; it answers a Principal of kind KindManagedIdentity whose Name
// is the identity's resource id (xms_mirid) and whose ResourceID is the
// instance (xms_az_rid): ResourceID is what data-plane tokens carry and what
// the trusted-services check classifies.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// KindManagedIdentity is the kind of managed-identity principals.
	KindManagedIdentity = "managedIdentity"
	// kindIdentityHost is the kind of identity-host records (service
	// instances with identities and their IDENTITY_HEADER secret hash).
	kindIdentityHost = "managedIdentityHost"

	hostSecretBytes = 32
	// maxHostSecretLen refuses absurd header values before any lookup.
	maxHostSecretLen = 128
	// maxUserAssigned bounds the user-assigned identities of one instance
	// (ARM allows a few dozen; containerGroups allow 5… workspaces more).
	maxUserAssigned = 64
)

var (
	// ErrManagedIdentityNotFound: no managed identity has that resource id.
	ErrManagedIdentityNotFound = errors.New("identity: managed identity not found")
	// ErrIdentityHostNotFound: the instance has no managed identities.
	ErrIdentityHostNotFound = errors.New("identity: the resource has no managed identity")
)

// ManagedIdentity is a managed-identity principal.
type ManagedIdentity struct {
	// PrincipalID is the object id: token oid, role assignments' principalId.
	PrincipalID string
	// ClientID is the application id (token appid, the client_id selector).
	ClientID string
	// TenantID is the deployment tenant.
	TenantID string
	// ResourceID is the service instance (system-assigned) or the
	// userAssignedIdentities resource (user-assigned), as first spelt.
	ResourceID   string
	UserAssigned bool
}

// IdentityHost is a service instance with managed identities.
type IdentityHost struct {
	// ResourceID is the instance's resource id, as first spelt.
	ResourceID string
	// SystemAssigned is the system-assigned identity's principal id, or "".
	SystemAssigned string
	// UserAssigned are the resource ids of the attached user-assigned
	// identities.
	UserAssigned []string
}

type miProperties struct {
	ResourceID   string `json:"resourceId"`
	ClientID     string `json:"clientId"`
	UserAssigned bool   `json:"userAssigned,omitempty"`
}

type hostProperties struct {
	ResourceID     string   `json:"resourceId"`
	SystemAssigned string   `json:"systemAssigned,omitempty"`
	UserAssigned   []string `json:"userAssigned,omitempty"`
}

// miMu serialises this process's read-modify-write of managed identities
// and hosts (the store has no compare-and-swap for principals; two
// processes changing one instance at once may lose one change, as for
// service principals' secrets).
var miMu sync.Mutex

func miName(resourceID string) string { return strings.ToLower(resourceID) }

// EnsureManagedIdentity returns the managed identity of resourceID,
// creating it (with new principal and client ids) when there is none. A
// stored identity of the other flavour (system vs user-assigned) is an
// error: resource ids of the two never coincide.
func (s *Service) EnsureManagedIdentity(ctx context.Context, resourceID string, userAssigned bool) (ManagedIdentity, error) {
	if resourceID == "" || !strings.HasPrefix(resourceID, "/") || strings.ContainsFunc(resourceID, isControl) {
		return ManagedIdentity{}, fmt.Errorf("%w: resource id %q", ErrInvalidArgument, resourceID)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		return ManagedIdentity{}, err
	}
	for range 3 {
		mi, err := s.GetManagedIdentity(ctx, resourceID)
		if err == nil {
			if mi.UserAssigned != userAssigned {
				return ManagedIdentity{}, fmt.Errorf("%w: %s already has a managed identity of the other kind", ErrInvalidArgument, resourceID)
			}
			return mi, nil
		}
		if !errors.Is(err, ErrManagedIdentityNotFound) {
			return ManagedIdentity{}, err
		}
		props := miProperties{ResourceID: resourceID, ClientID: uuid.NewString(), UserAssigned: userAssigned}
		raw, err := json.Marshal(props)
		if err != nil {
			return ManagedIdentity{}, fmt.Errorf("identity: encoding managed identity: %w", err)
		}
		p := meta.Principal{ID: uuid.NewString(), Kind: KindManagedIdentity, Name: miName(resourceID), Properties: raw}
		err = s.store.PutPrincipal(ctx, p)
		if errors.Is(err, meta.ErrAlreadyExists) {
			continue // created concurrently; read theirs
		}
		if err != nil {
			return ManagedIdentity{}, fmt.Errorf("identity: storing the managed identity of %s: %w", resourceID, err)
		}
		s.log.InfoContext(ctx, "created managed identity", "resource", resourceID, "principal", p.ID, "user_assigned", userAssigned)
		return ManagedIdentity{PrincipalID: p.ID, ClientID: props.ClientID, TenantID: tenant, ResourceID: resourceID, UserAssigned: userAssigned}, nil
	}
	return ManagedIdentity{}, fmt.Errorf("identity: the managed identity of %s could neither be read nor created", resourceID)
}

// GetManagedIdentity returns the managed identity whose resource id is
// resourceID (any case); ErrManagedIdentityNotFound when there is none.
func (s *Service) GetManagedIdentity(ctx context.Context, resourceID string) (ManagedIdentity, error) {
	p, err := s.store.GetPrincipalByName(ctx, KindManagedIdentity, miName(resourceID))
	if errors.Is(err, meta.ErrNotFound) {
		return ManagedIdentity{}, fmt.Errorf("%w: %s", ErrManagedIdentityNotFound, resourceID)
	}
	if err != nil {
		return ManagedIdentity{}, fmt.Errorf("identity: reading the managed identity of %s: %w", resourceID, err)
	}
	return s.toManagedIdentity(ctx, p)
}

func (s *Service) toManagedIdentity(ctx context.Context, p meta.Principal) (ManagedIdentity, error) {
	var props miProperties
	if err := json.Unmarshal(p.Properties, &props); err != nil {
		return ManagedIdentity{}, fmt.Errorf("identity: decoding managed identity %s: %w", p.ID, err)
	}
	tenant, err := s.TenantID(ctx)
	if err != nil {
		return ManagedIdentity{}, err
	}
	return ManagedIdentity{PrincipalID: p.ID, ClientID: props.ClientID, TenantID: tenant, ResourceID: props.ResourceID, UserAssigned: props.UserAssigned}, nil
}

// DeleteManagedIdentity removes the managed identity of resourceID; its
// tokens are refused from the next verification that reads the store (at
// most entraCacheTTL later). Deleting one that does not exist is not an
// error (deletes are idempotent in ARM).
func (s *Service) DeleteManagedIdentity(ctx context.Context, resourceID string) error {
	p, err := s.store.GetPrincipalByName(ctx, KindManagedIdentity, miName(resourceID))
	if errors.Is(err, meta.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("identity: reading the managed identity of %s: %w", resourceID, err)
	}
	if err := s.store.DeletePrincipal(ctx, p.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("identity: deleting the managed identity of %s: %w", resourceID, err)
	}
	s.log.InfoContext(ctx, "deleted managed identity", "resource", resourceID, "principal", p.ID)
	return nil
}

// SetIdentityHost records which identities the instance carries: its
// system-assigned identity's principal id ("" for none) and the resource
// ids of the user-assigned ones. When the instance had no host record one
// is created and its IDENTITY_HEADER secret is returned (the only time it
// is shown); otherwise secret is "" and the secret is unchanged. With no
// identity at all the record is removed (and its secret dies with it).
func (s *Service) SetIdentityHost(ctx context.Context, instanceID, systemAssigned string, userAssigned []string) (secret string, err error) {
	if len(userAssigned) > maxUserAssigned {
		return "", fmt.Errorf("%w: at most %d user-assigned identities per resource", ErrInvalidArgument, maxUserAssigned)
	}
	miMu.Lock()
	defer miMu.Unlock()
	existing, err := s.store.GetPrincipalByName(ctx, kindIdentityHost, miName(instanceID))
	found := err == nil
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return "", fmt.Errorf("identity: reading the identity host %s: %w", instanceID, err)
	}
	if systemAssigned == "" && len(userAssigned) == 0 {
		if found {
			if err := s.store.DeletePrincipal(ctx, existing.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
				return "", fmt.Errorf("identity: deleting the identity host %s: %w", instanceID, err)
			}
		}
		return "", nil
	}
	props := hostProperties{ResourceID: instanceID, SystemAssigned: systemAssigned, UserAssigned: slices.Clone(userAssigned)}
	raw, err := json.Marshal(props)
	if err != nil {
		return "", fmt.Errorf("identity: encoding identity host: %w", err)
	}
	p := existing
	if !found {
		p = meta.Principal{ID: uuid.NewString(), Kind: kindIdentityHost, Name: miName(instanceID)}
		var hash []byte
		secret, hash, err = newHostSecret(p.ID)
		if err != nil {
			return "", err
		}
		p.SecretHash = hash
	} else {
		var old hostProperties
		if json.Unmarshal(existing.Properties, &old) == nil && old.ResourceID != "" {
			props.ResourceID = old.ResourceID // keep the first spelling, as ARM does
			if raw, err = json.Marshal(props); err != nil {
				return "", fmt.Errorf("identity: encoding identity host: %w", err)
			}
		}
	}
	p.Properties = raw
	if err := s.store.PutPrincipal(ctx, p); err != nil {
		return "", fmt.Errorf("identity: storing the identity host %s: %w", instanceID, err)
	}
	return secret, nil
}

// GetIdentityHost returns the identities the instance carries;
// ErrIdentityHostNotFound when it carries none.
func (s *Service) GetIdentityHost(ctx context.Context, instanceID string) (IdentityHost, error) {
	p, err := s.store.GetPrincipalByName(ctx, kindIdentityHost, miName(instanceID))
	if errors.Is(err, meta.ErrNotFound) {
		return IdentityHost{}, fmt.Errorf("%w: %s", ErrIdentityHostNotFound, instanceID)
	}
	if err != nil {
		return IdentityHost{}, fmt.Errorf("identity: reading the identity host %s: %w", instanceID, err)
	}
	return decodeHost(p)
}

func decodeHost(p meta.Principal) (IdentityHost, error) {
	var props hostProperties
	if err := json.Unmarshal(p.Properties, &props); err != nil {
		return IdentityHost{}, fmt.Errorf("identity: decoding identity host %s: %w", p.ID, err)
	}
	return IdentityHost(props), nil
}

// RotateIdentityHostSecret replaces the instance's IDENTITY_HEADER secret
// and returns the new one; the old one stops working at once.
func (s *Service) RotateIdentityHostSecret(ctx context.Context, instanceID string) (string, error) {
	miMu.Lock()
	defer miMu.Unlock()
	p, err := s.store.GetPrincipalByName(ctx, kindIdentityHost, miName(instanceID))
	if errors.Is(err, meta.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", ErrIdentityHostNotFound, instanceID)
	}
	if err != nil {
		return "", fmt.Errorf("identity: reading the identity host %s: %w", instanceID, err)
	}
	secret, hash, err := newHostSecret(p.ID)
	if err != nil {
		return "", err
	}
	p.SecretHash = hash
	if err := s.store.PutPrincipal(ctx, p); err != nil {
		return "", fmt.Errorf("identity: storing the identity host %s: %w", instanceID, err)
	}
	s.log.InfoContext(ctx, "rotated the identity secret", "resource", instanceID)
	return secret, nil
}

func newHostSecret(hostID string) (secret string, hash []byte, err error) {
	b := make([]byte, hostSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("identity: generating an identity secret: %w", err)
	}
	secret = hostID + "~" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return secret, sum[:], nil
}

// hostBySecret returns the identity host whose secret is secret. Every
// failure wraps ErrUnauthenticated except a store failure.
func (s *Service) hostBySecret(ctx context.Context, secret string) (IdentityHost, error) {
	if secret == "" || len(secret) > maxHostSecretLen {
		return IdentityHost{}, fmt.Errorf("%w: identity header missing or too long", ErrUnauthenticated)
	}
	id, _, ok := strings.Cut(secret, "~")
	if !ok || uuid.Validate(id) != nil {
		return IdentityHost{}, fmt.Errorf("%w: malformed identity header", ErrUnauthenticated)
	}
	p, err := s.store.GetPrincipal(ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		return IdentityHost{}, fmt.Errorf("%w: unknown identity header", ErrUnauthenticated)
	}
	if err != nil {
		return IdentityHost{}, fmt.Errorf("identity: reading identity host %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(secret))
	if p.Kind != kindIdentityHost || subtle.ConstantTimeCompare(sum[:], p.SecretHash) != 1 {
		return IdentityHost{}, fmt.Errorf("%w: wrong identity header", ErrUnauthenticated)
	}
	h, err := decodeHost(p)
	if err != nil {
		return IdentityHost{}, err
	}
	// The instance may have been deleted with its resource group, which
	// does not know about hosts: a host without its resource is dead.
	if _, err := s.store.GetResource(ctx, h.ResourceID); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return IdentityHost{}, fmt.Errorf("%w: the resource %s no longer exists", ErrUnauthenticated, h.ResourceID)
		}
		return IdentityHost{}, fmt.Errorf("identity: reading resource %s: %w", h.ResourceID, err)
	}
	return h, nil
}

// identitySelector picks one of a host's identities, as the App Service
// protocol's query parameters do; the zero value is the system-assigned one.
type identitySelector struct {
	clientID, principalID, resourceID string
}

// selectIdentity resolves sel among h's identities. A selector that
// matches none wraps ErrManagedIdentityNotFound.
func (s *Service) selectIdentity(ctx context.Context, h IdentityHost, sel identitySelector) (ManagedIdentity, error) {
	var candidates []ManagedIdentity
	if h.SystemAssigned != "" {
		p, err := s.store.GetPrincipal(ctx, h.SystemAssigned)
		switch {
		case err == nil:
			mi, err := s.toManagedIdentity(ctx, p)
			if err != nil {
				return ManagedIdentity{}, err
			}
			candidates = append(candidates, mi)
		case !errors.Is(err, meta.ErrNotFound):
			return ManagedIdentity{}, fmt.Errorf("identity: reading managed identity %s: %w", h.SystemAssigned, err)
		}
	}
	if sel == (identitySelector{}) {
		if len(candidates) == 0 || candidates[0].UserAssigned {
			return ManagedIdentity{}, fmt.Errorf("%w: %s has no system-assigned identity; name a user-assigned one with client_id, principal_id or mi_res_id", ErrManagedIdentityNotFound, h.ResourceID)
		}
		return candidates[0], nil
	}
	for _, id := range h.UserAssigned {
		mi, err := s.GetManagedIdentity(ctx, id)
		if errors.Is(err, ErrManagedIdentityNotFound) {
			continue // deleted since it was attached
		}
		if err != nil {
			return ManagedIdentity{}, err
		}
		if _, err := s.store.GetResource(ctx, mi.ResourceID); err != nil {
			if errors.Is(err, meta.ErrNotFound) {
				continue
			}
			return ManagedIdentity{}, fmt.Errorf("identity: reading resource %s: %w", mi.ResourceID, err)
		}
		candidates = append(candidates, mi)
	}
	for _, mi := range candidates {
		if (sel.clientID != "" && strings.EqualFold(mi.ClientID, sel.clientID)) ||
			(sel.principalID != "" && strings.EqualFold(mi.PrincipalID, sel.principalID)) ||
			(sel.resourceID != "" && strings.EqualFold(mi.ResourceID, sel.resourceID)) {
			return mi, nil
		}
	}
	return ManagedIdentity{}, fmt.Errorf("%w: no identity of %s matches the request", ErrManagedIdentityNotFound, h.ResourceID)
}

// managedPrincipal checks, for VerifyEntraToken, that a token's managed
// identity stored (the principal the token names) still has resource id
// mirid and is still attached to the instance azRID, and returns the
// caller: Name the identity's resource id, ResourceID the instance.
func (s *Service) managedPrincipal(ctx context.Context, stored meta.Principal, mirid, azRID string) (Principal, error) {
	mi, err := s.toManagedIdentity(ctx, stored)
	if err != nil {
		return Principal{}, err
	}
	if mirid == "" || azRID == "" || !strings.EqualFold(mi.ResourceID, mirid) {
		return Principal{}, fmt.Errorf("%w: the token's managed identity does not match its resource", ErrUnauthenticated)
	}
	h, err := s.GetIdentityHost(ctx, azRID)
	if errors.Is(err, ErrIdentityHostNotFound) {
		return Principal{}, fmt.Errorf("%w: %s no longer carries managed identities", ErrUnauthenticated, azRID)
	}
	if err != nil {
		return Principal{}, err
	}
	attached := h.SystemAssigned == mi.PrincipalID && !mi.UserAssigned
	if mi.UserAssigned {
		attached = slices.ContainsFunc(h.UserAssigned, func(id string) bool { return strings.EqualFold(id, mi.ResourceID) })
	}
	if !attached {
		return Principal{}, fmt.Errorf("%w: the managed identity is no longer attached to %s", ErrUnauthenticated, azRID)
	}
	for _, id := range []string{h.ResourceID, mi.ResourceID} {
		if _, err := s.store.GetResource(ctx, id); err != nil {
			if errors.Is(err, meta.ErrNotFound) {
				return Principal{}, fmt.Errorf("%w: the resource %s no longer exists", ErrUnauthenticated, id)
			}
			return Principal{}, fmt.Errorf("identity: reading resource %s: %w", id, err)
		}
	}
	return Principal{ID: mi.PrincipalID, Kind: KindManagedIdentity, Name: mi.ResourceID, ResourceID: h.ResourceID}, nil
}
