package identity

// The registry admin user.
//
// A registry with adminUserEnabled has a user named after the registry with
// two passwords, "password" and "password2", either of which works. The
// management API lists them (listCredentials) and regenerates one at a time
// (regenerateCredential).
//
// Storage: one meta.Principal of kind KindAdminUser per registry, named
// after the registry (lower-case), with adminProperties JSON. Each password
// is kept twice: its SHA-256, which authentication compares in constant
// time, and its value, because listCredentials must answer the plaintext as
// ACR does. Encrypting the value would need a key, and the only place moat
// could keep one is the same metadata store (or its configuration, readable
// by the same operator), so it would protect nothing; the store is the
// secret, as it is for the token-signing keys. SHA-256 rather than bcrypt is
// enough because the passwords are 256 random bits, not chosen by people.
//
// The record names the registry's creation time: a registry deleted and
// created again under the same name does not inherit the old passwords
// (the stale record is replaced when credentials are next listed, and never
// authenticates). Passwords are created on first listing.
//
// Rights: pull, push and delete on every repository of its own registry and
// the catalog; nothing on any other registry. Authentication refuses while
// the registry's adminUserEnabled is false.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// KindAdminUser is the kind of registry admin users.
	KindAdminUser = "registryAdminUser"
	// AdminPasswordName and AdminPassword2Name name the two passwords.
	AdminPasswordName  = "password"
	AdminPassword2Name = "password2"
)

var (
	// ErrAdminUserDisabled: the registry's admin user is disabled.
	ErrAdminUserDisabled = errors.New("identity: the registry's admin user is disabled")
	// ErrInvalidPasswordName: a password name is neither "password" nor
	// "password2".
	ErrInvalidPasswordName = errors.New(`identity: password name must be "password" or "password2"`)
)

// roleAdminUser is what an admin user may do on its own registry.
var roleAdminUser = role{
	name:              "admin user",
	repositoryActions: []string{ActionPull, ActionPush, ActionDelete},
	catalog:           true,
}

// AdminCredentials is the answer of listCredentials.
type AdminCredentials struct {
	Username  string
	Passwords []AdminPassword
}

// AdminPassword is one named password.
type AdminPassword struct {
	Name  string
	Value string
}

type adminProperties struct {
	RegistryCreatedAt time.Time           `json:"registryCreatedAt"`
	Passwords         []adminPasswordItem `json:"passwords"`
}

type adminPasswordItem struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	SHA256 []byte `json:"sha256"`
}

// adminMu serialises read-modify-write of admin-user records in this
// process. Two processes regenerating one registry's password at the same
// instant can lose one regeneration; both answers are then valid passwords
// until the next regeneration, except the lost one.
var adminMu sync.Mutex

// AdminUserEnabled reports whether a stored registry's properties enable the
// admin user. Unreadable properties enable nothing.
func AdminUserEnabled(reg meta.Registry) bool {
	var p struct {
		AdminUserEnabled bool `json:"adminUserEnabled"`
	}
	if len(reg.Properties) == 0 || json.Unmarshal(reg.Properties, &p) != nil {
		return false
	}
	return p.AdminUserEnabled
}

// adminUsername is the admin user's name: the registry's name as its
// resource id spells it (ACR keeps the case it was created with).
func adminUsername(reg meta.Registry) string {
	if i := strings.LastIndexByte(reg.ResourceID, '/'); i >= 0 && strings.EqualFold(reg.ResourceID[i+1:], reg.Name) {
		return reg.ResourceID[i+1:]
	}
	return reg.Name
}

// ListAdminCredentials returns the admin user's credentials of reg, creating
// the passwords on first use. It refuses with ErrAdminUserDisabled while the
// admin user is disabled. store is the metadata store reg was read from.
func ListAdminCredentials(ctx context.Context, store meta.Store, reg meta.Registry) (AdminCredentials, error) {
	if !AdminUserEnabled(reg) {
		return AdminCredentials{}, ErrAdminUserDisabled
	}
	adminMu.Lock()
	defer adminMu.Unlock()
	_, props, err := loadOrCreateAdmin(ctx, store, reg)
	if err != nil {
		return AdminCredentials{}, err
	}
	return adminAnswer(reg, props), nil
}

// RegenerateAdminPassword replaces the named password of reg's admin user
// with a new random one and returns the credentials.
func RegenerateAdminPassword(ctx context.Context, store meta.Store, reg meta.Registry, name string) (AdminCredentials, error) {
	if name != AdminPasswordName && name != AdminPassword2Name {
		return AdminCredentials{}, ErrInvalidPasswordName
	}
	if !AdminUserEnabled(reg) {
		return AdminCredentials{}, ErrAdminUserDisabled
	}
	adminMu.Lock()
	defer adminMu.Unlock()
	rec, props, err := loadOrCreateAdmin(ctx, store, reg)
	if err != nil {
		return AdminCredentials{}, err
	}
	item, err := newAdminPassword(name)
	if err != nil {
		return AdminCredentials{}, err
	}
	for i := range props.Passwords {
		if props.Passwords[i].Name == name {
			props.Passwords[i] = item
		}
	}
	if err := putAdmin(ctx, store, rec, props); err != nil {
		return AdminCredentials{}, err
	}
	return adminAnswer(reg, props), nil
}

func adminAnswer(reg meta.Registry, props adminProperties) AdminCredentials {
	out := AdminCredentials{Username: adminUsername(reg)}
	for _, p := range props.Passwords {
		out.Passwords = append(out.Passwords, AdminPassword{Name: p.Name, Value: p.Value})
	}
	return out
}

func newAdminPassword(name string) (adminPasswordItem, error) {
	v, err := GeneratePassword()
	if err != nil {
		return adminPasswordItem{}, err
	}
	sum := sha256.Sum256([]byte(v))
	return adminPasswordItem{Name: name, Value: v, SHA256: sum[:]}, nil
}

// readAdmin returns reg's admin record if one exists for this incarnation
// of the registry; found is false for none or a stale one (rec is then the
// stale record, whose ID may be reused).
func readAdmin(ctx context.Context, store meta.Store, reg meta.Registry) (rec meta.Principal, props adminProperties, found bool, err error) {
	rec, err = store.GetPrincipalByName(ctx, KindAdminUser, strings.ToLower(reg.Name))
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Principal{}, adminProperties{}, false, nil
	}
	if err != nil {
		return meta.Principal{}, adminProperties{}, false, fmt.Errorf("identity: reading the admin user of registry %q: %w", reg.Name, err)
	}
	if err := json.Unmarshal(rec.Properties, &props); err != nil || !props.RegistryCreatedAt.Equal(reg.CreatedAt) || len(props.Passwords) != 2 {
		return rec, adminProperties{}, false, nil //nolint:nilerr // an unreadable record is replaced like a stale one
	}
	return rec, props, true, nil
}

// loadOrCreateAdmin returns the current admin record of reg, creating (or
// replacing a stale one) with two new passwords. Hold adminMu.
func loadOrCreateAdmin(ctx context.Context, store meta.Store, reg meta.Registry) (meta.Principal, adminProperties, error) {
	for range 3 {
		rec, props, found, err := readAdmin(ctx, store, reg)
		if err != nil {
			return meta.Principal{}, adminProperties{}, err
		}
		if found {
			return rec, props, nil
		}
		props = adminProperties{RegistryCreatedAt: reg.CreatedAt}
		for _, name := range []string{AdminPasswordName, AdminPassword2Name} {
			item, err := newAdminPassword(name)
			if err != nil {
				return meta.Principal{}, adminProperties{}, err
			}
			props.Passwords = append(props.Passwords, item)
		}
		if rec.ID != "" {
			if err := store.DeletePrincipal(ctx, rec.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
				return meta.Principal{}, adminProperties{}, fmt.Errorf("identity: removing the stale admin user of registry %q: %w", reg.Name, err)
			}
		}
		// Always a new id: tokens of a former registry of the same name
		// never name this record.
		rec = meta.Principal{ID: uuid.NewString(), Kind: KindAdminUser, Name: strings.ToLower(reg.Name)}
		err = putAdmin(ctx, store, rec, props)
		if errors.Is(err, meta.ErrAlreadyExists) {
			continue // another process created it first: use theirs
		}
		if err != nil {
			return meta.Principal{}, adminProperties{}, err
		}
		return rec, props, nil
	}
	return meta.Principal{}, adminProperties{}, fmt.Errorf("identity: the admin user of registry %q could neither be read nor created", reg.Name)
}

func putAdmin(ctx context.Context, store meta.Store, rec meta.Principal, props adminProperties) error {
	raw, err := json.Marshal(props)
	if err != nil {
		return fmt.Errorf("identity: encoding the admin user of registry %q: %w", rec.Name, err)
	}
	rec.Properties = raw
	if err := store.PutPrincipal(ctx, rec); err != nil {
		return fmt.Errorf("identity: storing the admin user of registry %q: %w", rec.Name, err)
	}
	return nil
}

// authenticateAdminUser checks user/pass as registry's admin user. ok is
// false when user is not that registry's admin user name or the admin user
// is disabled, so the next kind of credential is tried.
func (s *Service) authenticateAdminUser(ctx context.Context, registry, user, pass string) (p Principal, ok bool, err error) {
	if registry == "" || !strings.EqualFold(user, registry) {
		return Principal{}, false, nil
	}
	reg, err := s.store.GetRegistry(ctx, registry)
	if errors.Is(err, meta.ErrNotFound) {
		return Principal{}, false, nil
	}
	if err != nil {
		return Principal{}, true, fmt.Errorf("identity: reading registry %q: %w", registry, err)
	}
	if !AdminUserEnabled(reg) {
		return Principal{}, false, nil
	}
	if pass == "" || len(pass) > maxPasswordLen {
		return Principal{}, true, fmt.Errorf("%w: wrong admin user password", ErrUnauthenticated)
	}
	rec, props, found, err := readAdmin(ctx, s.store, reg)
	if err != nil {
		return Principal{}, true, err
	}
	sum := sha256.Sum256([]byte(pass))
	match := 0
	for _, pw := range props.Passwords {
		match |= subtle.ConstantTimeCompare(sum[:], pw.SHA256)
	}
	if !found || match != 1 {
		return Principal{}, true, fmt.Errorf("%w: wrong admin user password", ErrUnauthenticated)
	}
	return Principal{ID: rec.ID, Kind: KindAdminUser, Name: adminUsername(reg), Registry: reg.Name}, true, nil
}

// authorizeAdminUser grants what an admin-user principal may do; ok is false
// when p is not one.
func (s *Service) authorizeAdminUser(_ context.Context, p Principal, registry string, requested []Access) (acc []Access, ok bool, err error) {
	if p.Kind != KindAdminUser {
		return nil, false, nil
	}
	if p.Registry == "" || !strings.EqualFold(p.Registry, registry) {
		return grant(nil, requested), true, nil
	}
	return grant([]role{roleAdminUser}, requested), true, nil
}
