package dataplane

import (
	"github.com/opencontainers/go-digest"
)

// maxNameLen bounds a repository name. The spec's grammar has no limit, but
// clients cap "host/name" at 255 characters, so a longer name could never be
// pulled by them anyway.
const maxNameLen = 255

// maxTagLen is the spec's limit on a tag.
const maxTagLen = 128

// validName reports whether s matches the distribution spec's repository name
// grammar
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// and is at most maxNameLen bytes. It is a hand-written scanner because it
// runs on every request.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if !validNameComponent(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// validNameComponent checks one path component: runs of [a-z0-9] joined by
// exactly ".", "_", "__" or one or more "-".
func validNameComponent(c string) bool {
	if len(c) == 0 || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 1; i < len(c); {
		if isLowerAlnum(c[i]) {
			i++
			continue
		}
		// A separator run; the component's last byte is alphanumeric, so the
		// run always ends before the end of c.
		j := i
		for j < len(c) && !isLowerAlnum(c[j]) {
			j++
		}
		switch sep := c[i:j]; {
		case sep == "." || sep == "_" || sep == "__":
		case allDashes(sep):
		default:
			return false
		}
		i = j
	}
	return true
}

func allDashes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }

func isAlnum(c byte) bool { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z') }

func isLowerHex(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') }

// validTag reports whether s matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func validTag(s string) bool {
	if len(s) == 0 || len(s) > maxTagLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// digestStatus is the outcome of parseDigest.
type digestStatus int

const (
	digestOK digestStatus = iota
	// digestMalformed: not "algorithm:encoded" with a valid encoding.
	digestMalformed
	// digestUnsupported: well-formed, but an algorithm other than sha256 or
	// sha512.
	digestUnsupported
)

// parseDigest checks s as a content digest moat can verify: sha256 with 64 or
// sha512 with 128 lower-case hex digits. Other algorithms that follow the
// image spec's digest grammar are reported as unsupported rather than
// malformed, so the error message can say which. No regexp: this runs on
// every blob and manifest request.
func parseDigest(s string) (digest.Digest, digestStatus) {
	colon := -1
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			colon = i
			break
		}
	}
	if colon <= 0 || colon == len(s)-1 {
		return "", digestMalformed
	}
	alg, enc := s[:colon], s[colon+1:]
	var want int
	switch alg {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	default:
		if validAlgorithm(alg) && validEncoded(enc) {
			return "", digestUnsupported
		}
		return "", digestMalformed
	}
	if len(enc) != want {
		return "", digestMalformed
	}
	for i := 0; i < len(enc); i++ {
		if !isLowerHex(enc[i]) {
			return "", digestMalformed
		}
	}
	return digest.Digest(s), digestOK
}

// validAlgorithm follows the image spec's grammar
// algorithm-component (algorithm-separator algorithm-component)* with
// components [a-z0-9]+ and separators [+._-].
func validAlgorithm(a string) bool {
	if len(a) == 0 || !isLowerAlnum(a[0]) || !isLowerAlnum(a[len(a)-1]) {
		return false
	}
	for i := 1; i < len(a); i++ {
		c := a[i]
		if isLowerAlnum(c) {
			continue
		}
		if c != '+' && c != '.' && c != '_' && c != '-' {
			return false
		}
		if !isLowerAlnum(a[i-1]) {
			return false // two separators in a row
		}
	}
	return true
}

// validEncoded follows the image spec's encoded grammar [a-zA-Z0-9=_-]+.
func validEncoded(e string) bool {
	if len(e) == 0 {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; !isAlnum(c) && c != '=' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
