package dataplane

import (
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The spec's grammars, used only to check the hand-written matchers.
var (
	specName = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTag  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"library/alpine", true},
		{"a.b_c__d-e---f", true},
		{"a/b/c/d", true},
		{"manifests/blobs/uploads", true},
		{"0", true},
		{"", false},
		{"A", false},
		{"library/Alpine", false},
		{"../x", false},
		{"a/../b", false},
		{"./a", false},
		{"a/", false},
		{"/a", false},
		{"a//b", false},
		{"a..b", false},
		{"a___b", false},
		{"a_.b", false},
		{"a-", false},
		{"-a", false},
		{"a.", false},
		{"a b", false},
		{"a:b", false},
		{"a%2fb", false},
		{strings.Repeat("a", maxNameLen), true},
		{strings.Repeat("a", maxNameLen+1), false},
	}
	for _, tt := range tests {
		if got := validName(tt.name); got != tt.ok {
			t.Errorf("validName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestValidTag(t *testing.T) {
	tests := []struct {
		tag string
		ok  bool
	}{
		{"latest", true},
		{"v1.2.3", true},
		{"_x", true},
		{"A-b.C_d", true},
		{"sha256-abc", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{".x", false},
		{"-x", false},
		{".INVALID_MANIFEST_NAME", false},
		{"a:b", false},
		{"a/b", false},
		{"a b", false},
	}
	for _, tt := range tests {
		if got := validTag(tt.tag); got != tt.ok {
			t.Errorf("validTag(%q) = %v, want %v", tt.tag, got, tt.ok)
		}
	}
}

func TestParseDigest(t *testing.T) {
	sha256 := digest.SHA256.FromString("x").String()
	sha512 := digest.SHA512.FromString("x").String()
	tests := []struct {
		in   string
		want digestStatus
	}{
		{sha256, digestOK},
		{sha512, digestOK},
		{"sha256:" + strings.Repeat("A", 64), digestMalformed},
		{sha256[:len(sha256)-1], digestMalformed},
		{sha256 + "0", digestMalformed},
		{"sha512:" + strings.Repeat("a", 64), digestMalformed},
		{"sha256:baddigeststring", digestMalformed},
		{"sha256:totallywrong", digestMalformed},
		{"md5:abc", digestUnsupported},
		{"blake3:" + strings.Repeat("a", 64), digestUnsupported},
		{"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", digestUnsupported},
		{"sha256", digestMalformed},
		{"sha256:", digestMalformed},
		{":abc", digestMalformed},
		{"SHA256:abc", digestMalformed},
		{"sha256:abc/def", digestMalformed},
		{"a++b:abc", digestMalformed},
		{"", digestMalformed},
	}
	for _, tt := range tests {
		d, got := parseDigest(tt.in)
		if got != tt.want {
			t.Errorf("parseDigest(%q) status = %v, want %v", tt.in, got, tt.want)
		}
		if got == digestOK && d.String() != tt.in {
			t.Errorf("parseDigest(%q) = %q", tt.in, d)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "library/alpine", "a.b_c__d-e---f", "../x", "a//b", "A", "a___b", "a_-b", strings.Repeat("ab/", 90)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := specName.MatchString(s) && len(s) <= maxNameLen
		if got := validName(s); got != want {
			t.Fatalf("validName(%q) = %v, spec grammar says %v", s, got, want)
		}
	})
}

func FuzzValidTag(f *testing.F) {
	for _, s := range []string{"latest", "_", ".x", "a.b-c_d", strings.Repeat("t", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validTag(s), specTag.MatchString(s); got != want {
			t.Fatalf("validTag(%q) = %v, spec grammar says %v", s, got, want)
		}
	})
}

// FuzzParseDigest checks the hand-written digest parser against go-digest:
// whatever it accepts, go-digest accepts and recognises as sha256 or sha512.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		digest.SHA256.FromString("a").String(), digest.SHA512.FromString("a").String(),
		"sha256:baddigeststring", "md5:abc", "sha256:", ":", "a+b.c_d-e:AZaz09=_-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, st := parseDigest(s)
		switch st {
		case digestOK:
			if err := d.Validate(); err != nil {
				t.Fatalf("parseDigest(%q) accepted what go-digest refuses: %v", s, err)
			}
			if a := d.Algorithm(); a != digest.SHA256 && a != digest.SHA512 {
				t.Fatalf("parseDigest(%q) accepted algorithm %q", s, a)
			}
		case digestUnsupported:
			if !digest.DigestRegexpAnchored.MatchString(s) {
				t.Fatalf("parseDigest(%q) = unsupported, but it does not follow the digest grammar", s)
			}
		case digestMalformed:
			if err := digest.Digest(s).Validate(); err == nil {
				if a := digest.Digest(s).Algorithm(); a == digest.SHA256 || a == digest.SHA512 {
					t.Fatalf("parseDigest(%q) refused a valid %s digest", s, a)
				}
			}
		}
	})
}
