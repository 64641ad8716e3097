package scopemap

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ARM resource types of the child resources, as meta.Resource.Type.
const (
	ScopeMapResourceType = "Microsoft.ContainerRegistry/registries/scopeMaps"
	TokenResourceType    = "Microsoft.ContainerRegistry/registries/tokens"
	// ScopeMapsSegment and TokensSegment are the id segments below a
	// registry's id.
	ScopeMapsSegment = "scopeMaps"
	TokensSegment    = "tokens"
)

// Scope-map kinds shown in properties.type. ACR answers SystemDefined for
// its built-in scope maps (az acr scope-map list shows it).
const (
	KindSystemDefined = "SystemDefined"
	KindUserDefined   = "UserDefined"
)

// Token statuses.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Password names.
const (
	Password1 = "password1"
	Password2 = "password2"
)

// DefaultBcryptCost is the cost of token password hashes when the caller
// sets none; it matches identity.DefaultBcryptCost.
const DefaultBcryptCost = 12

// ScopeMapID is the ARM id of scope map name in the registry with id
// registryID.
func ScopeMapID(registryID, name string) string {
	return registryID + "/" + ScopeMapsSegment + "/" + name
}

// TokenID is the ARM id of token name in the registry with id registryID.
func TokenID(registryID, name string) string {
	return registryID + "/" + TokensSegment + "/" + name
}

// ScopeMapName returns the scope map's name when id names a scope map of the
// registry with id registryID (ARM ids compare case-insensitively).
func ScopeMapName(registryID, id string) (string, bool) {
	prefix := registryID + "/" + ScopeMapsSegment + "/"
	if len(id) <= len(prefix) || !strings.EqualFold(id[:len(prefix)], prefix) {
		return "", false
	}
	name := id[len(prefix):]
	if strings.Contains(name, "/") {
		return "", false
	}
	return name, true
}

// ValidName reports whether name is a valid scope-map or token name: 5 to 50
// letters, digits, '-' and '_'.
func ValidName(name string) bool {
	if len(name) < 5 || len(name) > 50 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// ScopeMap is a scope map's properties as stored (meta.Resource.Properties)
// and as built in.
type ScopeMap struct {
	Description  string    `json:"description,omitempty"`
	Actions      []string  `json:"actions"`
	CreationDate time.Time `json:"creationDate"`
	// Kind is KindSystemDefined for built-ins; not stored.
	Kind string `json:"-"`
}

// Rules parses the stored actions; stored actions were validated when
// written, so an error means the record is corrupt.
func (m ScopeMap) Rules() ([]Rule, error) { return ParseActions(m.Actions) }

// builtIns are ACR's system-defined scope maps, in name order.
var builtIns = []struct {
	name, description string
	actions           []string
}{
	{"_repositories_admin", "Can perform all read, write and delete operations on the registry",
		[]string{"repositories/*/metadata/read", "repositories/*/metadata/write", "repositories/*/content/read", "repositories/*/content/write", "repositories/*/content/delete"}},
	{"_repositories_pull", "Can pull any repository of the registry",
		[]string{"repositories/*/content/read"}},
	{"_repositories_pull_metadata_read", "Can perform all read operations on the registry",
		[]string{"repositories/*/content/read", "repositories/*/metadata/read"}},
	{"_repositories_push", "Can push to any repository of the registry",
		[]string{"repositories/*/content/read", "repositories/*/content/write"}},
	{"_repositories_push_metadata_write", "Can perform all read and write operations on the registry",
		[]string{"repositories/*/metadata/read", "repositories/*/metadata/write", "repositories/*/content/read", "repositories/*/content/write"}},
}

// BuiltInNames lists the built-in scope maps' names.
func BuiltInNames() []string {
	out := make([]string, len(builtIns))
	for i, b := range builtIns {
		out[i] = b.name
	}
	return out
}

// BuiltIn returns the built-in scope map called name (any case), dated
// created (the registry's creation date).
func BuiltIn(name string, created time.Time) (ScopeMap, string, bool) {
	for _, b := range builtIns {
		if strings.EqualFold(b.name, name) {
			return ScopeMap{Description: b.description, Actions: append([]string(nil), b.actions...), CreationDate: created, Kind: KindSystemDefined}, b.name, true
		}
	}
	return ScopeMap{}, "", false
}

// Password is one stored token password.
type Password struct {
	Name         string     `json:"name"`
	CreationTime time.Time  `json:"creationTime"`
	Expiry       *time.Time `json:"expiry,omitempty"`
	Hash         []byte     `json:"hash"`
}

// Expired reports whether the password has expired at now.
func (p Password) Expired(now time.Time) bool {
	return p.Expiry != nil && !now.Before(*p.Expiry)
}

// Token is a token's properties as stored (meta.Resource.Properties).
type Token struct {
	// PrincipalID identifies this token as a principal (the "sub" of its
	// access tokens); a token deleted and created again gets a new one.
	PrincipalID  string     `json:"principalId"`
	ScopeMapID   string     `json:"scopeMapId"`
	Status       string     `json:"status"`
	CreationDate time.Time  `json:"creationDate"`
	Passwords    []Password `json:"passwords,omitempty"`
}

// DecodeToken reads a stored token.
func DecodeToken(b []byte) (Token, error) {
	var t Token
	if err := json.Unmarshal(b, &t); err != nil {
		return Token{}, fmt.Errorf("stored token: %w", err)
	}
	return t, nil
}

// DecodeScopeMap reads a stored scope map.
func DecodeScopeMap(b []byte) (ScopeMap, error) {
	var m ScopeMap
	if err := json.Unmarshal(b, &m); err != nil {
		return ScopeMap{}, fmt.Errorf("stored scope map: %w", err)
	}
	m.Kind = KindUserDefined
	return m, nil
}

// NewPassword returns a fresh password value (32 random bytes, base64url,
// 43 characters, under bcrypt's 72-byte limit) and its bcrypt hash.
func NewPassword(cost int) (value string, hash []byte, err error) {
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generating a token password: %w", err)
	}
	value = base64.RawURLEncoding.EncodeToString(b)
	hash, err = bcrypt.GenerateFromPassword([]byte(value), cost)
	if err != nil {
		return "", nil, fmt.Errorf("hashing a token password: %w", err)
	}
	return value, hash, nil
}
