package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// Users other than the deployment admin are created through the management
// API (internal/arm principals.go). A user is a meta.Principal of KindUser:
// Name is the user principal name (the login name, exact case), SecretHash
// the bcrypt hash of the password, Properties userProperties JSON.
//
// Password policy: MinPasswordLen..72 bytes (bcrypt's limit), no control
// characters. A generated password is 43 base64url characters.

const (
	// MinPasswordLen is the shortest password CreateUser and
	// SetUserPassword accept.
	MinPasswordLen = 12
	// maxUserNameLen bounds user principal names (Entra's limit is 113
	// before the '@'; moat keeps one bound for the whole name).
	maxUserNameLen = 113
)

var (
	// ErrUserNotFound: no user has that name.
	ErrUserNotFound = errors.New("identity: user not found")
	// ErrUserExists: a user with that name exists already.
	ErrUserExists = errors.New("identity: user already exists")
	// ErrWeakPassword: the password breaks the policy.
	ErrWeakPassword = errors.New("identity: password does not meet the policy")
	// ErrProtectedPrincipal: the deployment admin cannot be deleted.
	ErrProtectedPrincipal = errors.New("identity: the deployment admin cannot be deleted")
)

// User is a user as callers see it (never with its password).
type User struct {
	// ObjectID is the principal id of role assignments.
	ObjectID          string
	UserPrincipalName string
	DisplayName       string
	CreatedAt         time.Time
}

type userProperties struct {
	DisplayName string `json:"displayName,omitempty"`
}

// ValidUserName reports whether name can be a user principal name: 1-113
// printable characters without whitespace or ':' (Basic auth splits at the
// first ':'), and not a UUID (a UUID names object and application ids in
// principal lookups).
func ValidUserName(name string) error {
	if name == "" || len(name) > maxUserNameLen {
		return fmt.Errorf("%w: user principal name must be 1-%d characters", ErrInvalidArgument, maxUserNameLen)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || isControl(r) || r == ':' || r == '/' }) {
		return fmt.Errorf("%w: user principal name %q contains whitespace, a control character, ':' or '/'", ErrInvalidArgument, name)
	}
	if _, err := uuid.Parse(name); err == nil {
		return fmt.Errorf("%w: user principal name %q must not be a UUID", ErrInvalidArgument, name)
	}
	return nil
}

// CheckPasswordPolicy reports whether pw is an acceptable user password.
func CheckPasswordPolicy(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return fmt.Errorf("%w: at least %d characters are required", ErrWeakPassword, MinPasswordLen)
	case len(pw) > maxPasswordLen:
		return fmt.Errorf("%w: at most %d bytes are allowed", ErrWeakPassword, maxPasswordLen)
	case strings.ContainsFunc(pw, isControl):
		return fmt.Errorf("%w: control characters are not allowed", ErrWeakPassword)
	}
	return nil
}

func checkDisplayName(d string) error {
	if len(d) > maxDisplayNameLen || strings.ContainsFunc(d, isControl) {
		return fmt.Errorf("%w: display name must be at most %d printable characters", ErrInvalidArgument, maxDisplayNameLen)
	}
	return nil
}

// CreateUser creates a user. With password "" a password is generated; the
// password set is returned (moat cannot show it again).
func (s *Service) CreateUser(ctx context.Context, name, password, displayName string) (User, string, error) {
	if err := ValidUserName(name); err != nil {
		return User{}, "", err
	}
	if err := checkDisplayName(displayName); err != nil {
		return User{}, "", err
	}
	if password == "" {
		var err error
		if password, err = GeneratePassword(); err != nil {
			return User{}, "", err
		}
	}
	if err := CheckPasswordPolicy(password); err != nil {
		return User{}, "", err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return User{}, "", fmt.Errorf("identity: hashing the password of %q: %w", name, err)
	}
	raw, err := json.Marshal(userProperties{DisplayName: displayName})
	if err != nil {
		return User{}, "", fmt.Errorf("identity: encoding user %q: %w", name, err)
	}
	// User principal names are case-insensitive in Entra: "Admin" must not
	// sit beside "admin". The store's uniqueness is exact, so compare here
	// (two creators racing with names differing only in case can both win;
	// user creation is a rare admin action).
	existing, err := s.store.ListPrincipals(ctx, KindUser)
	if err != nil {
		return User{}, "", fmt.Errorf("identity: listing users: %w", err)
	}
	for _, e := range existing {
		if strings.EqualFold(e.Name, name) {
			return User{}, "", fmt.Errorf("%w: %s", ErrUserExists, e.Name)
		}
	}
	p := meta.Principal{ID: uuid.NewString(), Kind: KindUser, Name: name, SecretHash: hash, Properties: raw}
	// The store refuses a second user of that name with another id, so a
	// concurrent creator cannot be overwritten.
	if err := s.store.PutPrincipal(ctx, p); err != nil {
		if errors.Is(err, meta.ErrAlreadyExists) {
			return User{}, "", fmt.Errorf("%w: %s", ErrUserExists, name)
		}
		return User{}, "", fmt.Errorf("identity: storing user %q: %w", name, err)
	}
	s.log.InfoContext(ctx, "created user", "user", name, "object_id", p.ID)
	p.CreatedAt = s.now().UTC()
	return toUser(p), password, nil
}

// GetUser returns the user named name.
func (s *Service) GetUser(ctx context.Context, name string) (User, error) {
	p, err := s.loadUser(ctx, name)
	if err != nil {
		return User{}, err
	}
	return toUser(p), nil
}

// ListUsers returns every user, the deployment admin among them.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	stored, err := s.store.ListPrincipals(ctx, KindUser)
	if err != nil {
		return nil, fmt.Errorf("identity: listing users: %w", err)
	}
	out := make([]User, 0, len(stored))
	for _, p := range stored {
		out = append(out, toUser(p))
	}
	return out, nil
}

// DeleteUser removes a user; its password stops working at once in this
// process (the Basic cache is dropped) and within basicCacheTTL on other
// replicas. The deployment admin cannot be deleted (ErrProtectedPrincipal).
func (s *Service) DeleteUser(ctx context.Context, name string) (User, error) {
	if name == AdminName {
		return User{}, ErrProtectedPrincipal
	}
	p, err := s.loadUser(ctx, name)
	if err != nil {
		return User{}, err
	}
	if err := s.store.DeletePrincipal(ctx, p.ID); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return User{}, fmt.Errorf("%w: %s", ErrUserNotFound, name)
		}
		return User{}, fmt.Errorf("identity: deleting user %q: %w", name, err)
	}
	s.invalidateBasic()
	s.log.InfoContext(ctx, "deleted user", "user", name, "object_id", p.ID)
	return toUser(p), nil
}

// SetUserPassword sets a user's password (the admin's too); with password
// "" a password is generated. The password set is returned. The old one
// stops working at once in this process.
func (s *Service) SetUserPassword(ctx context.Context, name, password string) (string, error) {
	if password == "" {
		var err error
		if password, err = GeneratePassword(); err != nil {
			return "", err
		}
	}
	if err := CheckPasswordPolicy(password); err != nil {
		return "", err
	}
	p, err := s.loadUser(ctx, name)
	if err != nil {
		return "", err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return "", fmt.Errorf("identity: hashing the password of %q: %w", name, err)
	}
	p.SecretHash = hash
	if err := s.store.PutPrincipal(ctx, p); err != nil {
		return "", fmt.Errorf("identity: storing the password of %q: %w", name, err)
	}
	s.invalidateBasic()
	s.log.InfoContext(ctx, "set user password", "user", name, "object_id", p.ID)
	return password, nil
}

// ResetServicePrincipalSecret replaces every client secret of a service
// principal with one new secret valid for DefaultSecretLifetime (az ad sp
// credential reset); the old secrets stop working at once.
func (s *Service) ResetServicePrincipalSecret(ctx context.Context, appID string) (ServicePrincipal, string, error) {
	spMu.Lock()
	defer spMu.Unlock()
	p, props, err := s.loadServicePrincipal(ctx, appID)
	if err != nil {
		return ServicePrincipal{}, "", err
	}
	sec, value, err := s.newSecret(s.now().UTC(), DefaultSecretLifetime)
	if err != nil {
		return ServicePrincipal{}, "", err
	}
	props.Secrets = []spSecret{sec}
	if err := s.saveServicePrincipal(ctx, p, props); err != nil {
		return ServicePrincipal{}, "", err
	}
	s.log.InfoContext(ctx, "reset service principal secrets", "app_id", appID, "key_id", sec.KeyID)
	return toServicePrincipal(p, props), value, nil
}

func (s *Service) loadUser(ctx context.Context, name string) (meta.Principal, error) {
	if ValidUserName(name) != nil {
		return meta.Principal{}, fmt.Errorf("%w: %q", ErrUserNotFound, name)
	}
	p, err := s.store.GetPrincipalByName(ctx, KindUser, name)
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Principal{}, fmt.Errorf("%w: %s", ErrUserNotFound, name)
	}
	if err != nil {
		return meta.Principal{}, fmt.Errorf("identity: looking up user %q: %w", name, err)
	}
	return p, nil
}

func toUser(p meta.Principal) User {
	var props userProperties
	// Properties are written only by CreateUser; an unreadable or empty
	// record (the admin has none) just has no display name.
	_ = json.Unmarshal(p.Properties, &props)
	return User{ObjectID: p.ID, UserPrincipalName: p.Name, DisplayName: props.DisplayName, CreatedAt: p.CreatedAt}
}
