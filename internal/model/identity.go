package model

import (
	"regexp"
	"slices"
	"strings"
)

// Managed identity of a registry: ARM's top-level "identity" block
// (IdentityProperties in ACR's REST spec, from 2019-12-01-preview on).
//
// Decisions:
//   - identity, when a body sends it, replaces the registry's identity whole
//     (type and the user-assigned list), on PUT and PATCH alike; a member of
//     userAssignedIdentities whose value is null is left out (ARM's way to
//     detach one). A PUT without identity leaves the registry with none.
//   - identity.type is required in a sent block; its values match
//     case-insensitively and "SystemAssigned,UserAssigned" may omit the
//     space. UserAssigned needs at least one identity; identities without
//     UserAssigned in the type are refused rather than dropped.
//   - A registry with type None shows no identity block (as ACR shows none
//     for a registry created without one).
//   - At most MaxUserAssignedIdentities user-assigned identities (the bound
//     moat's identity service puts on one resource), so a body cannot make
//     a request look up thousands.
//   - Only the type and the user-assigned resource ids are stored, in the
//     properties JSON under the moat-internal key "moatIdentity" that Shape
//     never shows as a property. principalId, tenantId and the
//     user-assigned principal/client ids belong to the identity service:
//     callers resolve them into Registry.IdentityDetails before Shape.

// Identity types in ACR's canonical spelling.
const (
	IdentityNone                  = "None"
	IdentitySystemAssigned        = "SystemAssigned"
	IdentityUserAssigned          = "UserAssigned"
	IdentitySystemAndUserAssigned = "SystemAssigned, UserAssigned"
)

// IdentityTypes are the identity.type values.
var IdentityTypes = []string{IdentitySystemAssigned, IdentityUserAssigned, IdentitySystemAndUserAssigned, IdentityNone}

// identityTypeList names the values in errors (the combined one quoted, as
// it holds the list separator).
const identityTypeList = "SystemAssigned, UserAssigned, 'SystemAssigned, UserAssigned', None"

// MaxUserAssignedIdentities bounds a registry's user-assigned identities.
const MaxUserAssignedIdentities = 64

// CodeInvalidIdentityResourceID: a user-assigned identity key is not the id
// of a Microsoft.ManagedIdentity/userAssignedIdentities resource.
const CodeInvalidIdentityResourceID = "InvalidIdentityResourceId"

// Identity is what a registry keeps of its managed identity.
type Identity struct {
	// Type is one of IdentityTypes; "" reads as None.
	Type string `json:"type"`
	// UserAssigned are the attached user-assigned identities' resource ids,
	// as first sent, sorted and unique case-insensitively.
	UserAssigned []string `json:"userAssigned,omitempty"`
}

// None reports whether the registry has no managed identity.
func (i Identity) None() bool { return i.Type == "" || i.Type == IdentityNone }

// System reports whether the registry has a system-assigned identity.
func (i Identity) System() bool {
	return i.Type == IdentitySystemAssigned || i.Type == IdentitySystemAndUserAssigned
}

// IdentityDetails are the read-only values of a registry's identity block,
// which live in the identity service; never stored with the registry.
type IdentityDetails struct {
	PrincipalID string
	TenantID    string
	// UserAssigned is keyed by the lower-cased identity resource id.
	UserAssigned map[string]UserIdentityDetails
}

// UserIdentityDetails are one user-assigned identity's ids.
type UserIdentityDetails struct {
	PrincipalID string
	ClientID    string
}

// HasIdentity reports whether registries have an identity block in v.
func (v APIVersion) HasIdentity() bool { return v.has(featIdentity) }

var userAssignedIDRE = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$`)

// IsUserAssignedIdentityID reports whether id has the shape of a
// Microsoft.ManagedIdentity/userAssignedIdentities resource id.
func IsUserAssignedIdentityID(id string) bool {
	return userAssignedIDRE.MatchString(id) && !strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// parseIdentityType returns the canonical spelling of s.
func parseIdentityType(s string) (string, bool) {
	system, user, none, n := false, false, false, 0
	for part := range strings.SplitSeq(s, ",") {
		n++
		switch p := strings.TrimSpace(part); {
		case strings.EqualFold(p, IdentitySystemAssigned) && !system:
			system = true
		case strings.EqualFold(p, IdentityUserAssigned) && !user:
			user = true
		case strings.EqualFold(p, IdentityNone):
			none = true
		default:
			return "", false
		}
	}
	switch {
	case none && n == 1:
		return IdentityNone, true
	case none:
		return "", false
	case system && user:
		return IdentitySystemAndUserAssigned, true
	case system:
		return IdentitySystemAssigned, true
	default:
		return IdentityUserAssigned, true
	}
}

func (rd *reader) identity(obj object, dst *Identity) {
	const path = "identity"
	tv, ok := field(obj, "type")
	if !ok {
		rd.fail(errorf(statusBadRequest, CodeInvalidRequestContent, path+".type",
			"%s.type is required in an identity block: one of %s", path, identityTypeList))
		return
	}
	s, isString := tv.(string)
	typ, ok := parseIdentityType(s)
	if !isString || !ok {
		rd.fail(typeError(path+".type", "one of "+identityTypeList, tv))
		return
	}
	var ids []string
	if uv, ok := field(obj, "userAssignedIdentities"); ok {
		uo, ok := rd.obj(uv, path+".userAssignedIdentities")
		if !ok {
			return
		}
		for _, m := range uo {
			if m.value == nil {
				continue // null detaches
			}
			if _, ok := m.value.(object); !ok {
				rd.fail(typeError(path+".userAssignedIdentities['"+m.name+"']", "an object", m.value))
				return
			}
			if !IsUserAssignedIdentityID(m.name) {
				rd.fail(errorf(statusBadRequest, CodeInvalidIdentityResourceID, path+".userAssignedIdentities",
					"%s.userAssignedIdentities: %q is not the resource id of a Microsoft.ManagedIdentity/userAssignedIdentities resource", path, m.name))
				return
			}
			ids = append(ids, m.name)
		}
	}
	user := typ == IdentityUserAssigned || typ == IdentitySystemAndUserAssigned
	switch {
	case len(ids) > MaxUserAssignedIdentities:
		rd.fail(errorf(statusBadRequest, CodeInvalidRequestContent, path+".userAssignedIdentities",
			"%s.userAssignedIdentities names %d identities, more than the limit of %d", path, len(ids), MaxUserAssignedIdentities))
		return
	case user && len(ids) == 0:
		rd.fail(errorf(statusBadRequest, CodeInvalidRequestContent, path+".userAssignedIdentities",
			"%s.type %q needs at least one identity in %s.userAssignedIdentities", path, typ, path))
		return
	case !user && len(ids) > 0:
		rd.fail(errorf(statusBadRequest, CodeInvalidRequestContent, path+".userAssignedIdentities",
			"%s.userAssignedIdentities is only allowed when %s.type names UserAssigned (it is %q)", path, path, typ))
		return
	}
	// The parsed object is keyed by lower-cased name, so ids are already
	// unique case-insensitively; sort for a stable stored form.
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	*dst = Identity{Type: typ, UserAssigned: ids}
}

// identityShape is the ARM identity block, or nil when there is none.
func (r Registry) identityShape() map[string]any {
	if r.Identity.None() {
		return nil
	}
	d := r.IdentityDetails
	out := map[string]any{"type": r.Identity.Type}
	if r.Identity.System() {
		if d.PrincipalID != "" {
			out["principalId"] = d.PrincipalID
		}
		if d.TenantID != "" {
			out["tenantId"] = d.TenantID
		}
	}
	if len(r.Identity.UserAssigned) > 0 {
		ua := make(map[string]any, len(r.Identity.UserAssigned))
		for _, id := range r.Identity.UserAssigned {
			ref := map[string]any{}
			if u, ok := d.UserAssigned[strings.ToLower(id)]; ok {
				if u.PrincipalID != "" {
					ref["principalId"] = u.PrincipalID
				}
				if u.ClientID != "" {
					ref["clientId"] = u.ClientID
				}
			}
			ua[id] = ref
		}
		out["userAssignedIdentities"] = ua
	}
	return out
}
