package identity

import (
	"fmt"
	"strings"
)

// maxScopeLen bounds a scope string; real ones are a few dozen bytes.
const maxScopeLen = 1024

// ParseScope parses one Docker scope string
//
//	resourcetype[(resourceclass)]:resourcename:action[,action]*
//
// into an Access, e.g. "repository:library/alpine:pull,push" or
// "registry:catalog:*". A resource class stays part of Type
// ("repository(plugin)"), so Authorize, which does not know it, grants
// nothing on it.
//
// The type ends at the first ':' and the actions start after the last one.
// A name may contain ':' only as the port of a registry host in its first
// path component ("localhost:5000/library/alpine"); repository names never
// do, so "repository:alpine:latest:pull" is refused rather than read as a
// tag. Every failure wraps ErrInvalidScope. Actions are kept as given, in
// order and with duplicates, so FormatScope(ParseScope(s)) == s.
func ParseScope(s string) (Access, error) {
	if s == "" {
		return Access{}, fmt.Errorf("%w: empty", ErrInvalidScope)
	}
	if len(s) > maxScopeLen {
		return Access{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidScope, maxScopeLen)
	}
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Access{}, fmt.Errorf("%w: %q is not type:name:actions", ErrInvalidScope, s)
	}
	typ, name, actions := s[:first], s[first+1:last], s[last+1:]
	if err := checkResourceType(typ); err != nil {
		return Access{}, fmt.Errorf("%w: %q: %w", ErrInvalidScope, s, err)
	}
	if err := checkResourceName(name); err != nil {
		return Access{}, fmt.Errorf("%w: %q: %w", ErrInvalidScope, s, err)
	}
	acts := strings.Split(actions, ",")
	for _, a := range acts {
		if err := checkAction(a); err != nil {
			return Access{}, fmt.Errorf("%w: %q: %w", ErrInvalidScope, s, err)
		}
	}
	return Access{Type: typ, Name: name, Actions: acts}, nil
}

// FormatScope is the inverse of ParseScope, used for WWW-Authenticate
// scope="...". It does not validate a; an Access with no actions formats to
// a string ending in ':' that ParseScope refuses.
func FormatScope(a Access) string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// checkResourceType accepts resourcetypevalue [ '(' resourcetypevalue ')' ],
// each value /[a-z0-9]+/.
func checkResourceType(t string) error {
	base, class, hasClass := strings.Cut(t, "(")
	if hasClass {
		var ok bool
		class, ok = strings.CutSuffix(class, ")")
		if !ok {
			return fmt.Errorf("resource type %q: unclosed class", t)
		}
		if !isLowerAlnum(class) {
			return fmt.Errorf("resource type %q: class must be [a-z0-9]+", t)
		}
	}
	if !isLowerAlnum(base) {
		return fmt.Errorf("resource type %q must be [a-z0-9]+", t)
	}
	return nil
}

// checkResourceName accepts '/'-separated components of [A-Za-z0-9._-] that
// start and end with a letter or digit (so no ".", ".." or empty components),
// where the first component may be host:port when more components follow.
// Case and the finer repository grammar are the data plane's to enforce on
// the request itself.
func checkResourceName(n string) error {
	if n == "" {
		return fmt.Errorf("empty resource name")
	}
	comps := strings.Split(n, "/")
	if host, port, ok := strings.Cut(comps[0], ":"); ok {
		if len(comps) < 2 {
			return fmt.Errorf("resource name %q: ':' is allowed only in a registry host:port prefix", n)
		}
		if !isPort(port) {
			return fmt.Errorf("resource name %q: port %q must be 1 to 5 digits", n, port)
		}
		comps[0] = host
	}
	for _, c := range comps {
		if !isNameComponent(c) {
			return fmt.Errorf("resource name %q: bad component %q", n, c)
		}
	}
	return nil
}

// checkAction accepts "*" or /[a-z][a-z0-9_-]*/ (pull, push, delete, and
// ACR's metadata_read and friends).
func checkAction(a string) error {
	if a == ActionAll {
		return nil
	}
	if a == "" || a[0] < 'a' || a[0] > 'z' {
		return fmt.Errorf("action %q must be '*' or start with a lower-case letter", a)
	}
	for i := 1; i < len(a); i++ {
		c := a[i]
		if !isLower(c) && !isDigit(c) && c != '_' && c != '-' {
			return fmt.Errorf("action %q: bad character %q", a, c)
		}
	}
	return nil
}

func isLowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLower(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isNameComponent(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isLower(c) || isDigit(c) || (c >= 'A' && c <= 'Z') }
