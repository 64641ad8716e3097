package rbac

import (
	"errors"
	"fmt"
	"strings"
)

// ScopeKind says what a scope names.
type ScopeKind int

// Scope kinds, from the widest.
const (
	ScopeRoot ScopeKind = iota + 1
	ScopeSubscription
	ScopeResourceGroup
	ScopeResource
)

// Scope is a parsed assignment scope.
type Scope struct {
	Kind ScopeKind
	// ID is the scope as given, without a trailing slash; "/" for the root.
	ID                          string
	Subscription, ResourceGroup string
	// Provider, Types and Names are set for ScopeResource:
	// /providers/{Provider}/{Types[0]}/{Names[0]}/{Types[1]}/{Names[1]}…
	Provider string
	Types    []string
	Names    []string
}

// ErrInvalidScope: the scope is not an ARM scope moat knows.
var ErrInvalidScope = errors.New("rbac: invalid scope")

// maxScopeLen bounds scopes; ARM ids are far shorter.
const maxScopeLen = 1024

// ParseScope parses "/", "/subscriptions/{sub}",
// "/subscriptions/{sub}/resourceGroups/{rg}" or a resource id below a
// resource group ("…/providers/{ns}/{type}/{name}[/{type}/{name}]…").
// Segments match case-insensitively; empty segments, '?', '#' and '%' are
// refused.
func ParseScope(s string) (Scope, error) {
	if s == "/" {
		return Scope{Kind: ScopeRoot, ID: "/"}, nil
	}
	if len(s) > maxScopeLen {
		return Scope{}, fmt.Errorf("%w: longer than %d characters", ErrInvalidScope, maxScopeLen)
	}
	if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?#%\\ \t\r\n") {
		return Scope{}, fmt.Errorf("%w: %q is not an ARM id (it must start with /subscriptions/ or be /)", ErrInvalidScope, s)
	}
	id := strings.TrimSuffix(s, "/")
	seg := strings.Split(id[1:], "/")
	for _, x := range seg {
		if x == "" {
			return Scope{}, fmt.Errorf("%w: %q has an empty segment", ErrInvalidScope, s)
		}
	}
	if !strings.EqualFold(seg[0], "subscriptions") || len(seg) < 2 {
		return Scope{}, fmt.Errorf("%w: %q does not start with /subscriptions/{id}", ErrInvalidScope, s)
	}
	sc := Scope{Kind: ScopeSubscription, ID: id, Subscription: seg[1]}
	rest := seg[2:]
	if len(rest) == 0 {
		return sc, nil
	}
	if !strings.EqualFold(rest[0], "resourceGroups") || len(rest) < 2 {
		return Scope{}, fmt.Errorf("%w: %q: expected resourceGroups/{name} after the subscription", ErrInvalidScope, s)
	}
	sc.Kind, sc.ResourceGroup = ScopeResourceGroup, rest[1]
	rest = rest[2:]
	if len(rest) == 0 {
		return sc, nil
	}
	if !strings.EqualFold(rest[0], "providers") || len(rest) < 4 || (len(rest)-2)%2 != 0 {
		return Scope{}, fmt.Errorf("%w: %q: expected providers/{namespace}/{type}/{name} after the resource group", ErrInvalidScope, s)
	}
	sc.Kind, sc.Provider = ScopeResource, rest[1]
	for i := 2; i < len(rest); i += 2 {
		if strings.EqualFold(rest[i], "providers") {
			return Scope{}, fmt.Errorf("%w: %q: extension resources are not scopes moat serves", ErrInvalidScope, s)
		}
		sc.Types = append(sc.Types, rest[i])
		sc.Names = append(sc.Names, rest[i+1])
	}
	return sc, nil
}

// Covers reports whether an assignment at scope applies at target: scope
// is "/", or target is scope or lies below it. Ids compare
// case-insensitively; a trailing slash is ignored.
func Covers(scope, target string) bool {
	if scope == "/" {
		return true
	}
	scope = strings.ToLower(strings.TrimSuffix(scope, "/"))
	target = strings.ToLower(strings.TrimSuffix(target, "/"))
	if scope == "" || target == "" {
		return false
	}
	return target == scope || strings.HasPrefix(target, scope+"/")
}
