package identity

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseScope_Valid(t *testing.T) {
	tests := []struct {
		in   string
		want Access
	}{
		{"repository:library/alpine:pull", Access{"repository", "library/alpine", []string{"pull"}}},
		{"repository:library/alpine:pull,push", Access{"repository", "library/alpine", []string{"pull", "push"}}},
		{"repository:alpine:*", Access{"repository", "alpine", []string{"*"}}},
		{"repository:alpine:delete,*", Access{"repository", "alpine", []string{"delete", "*"}}},
		{"repository:alpine:pull,pull", Access{"repository", "alpine", []string{"pull", "pull"}}},
		{"registry:catalog:*", Access{"registry", "catalog", []string{"*"}}},
		{"repository(plugin):vieux/sshfs:pull", Access{"repository(plugin)", "vieux/sshfs", []string{"pull"}}},
		{"repository:localhost:5000/library/alpine:pull", Access{"repository", "localhost:5000/library/alpine", []string{"pull"}}},
		{"repository:Registry.Example.com:443/a/b:push", Access{"repository", "Registry.Example.com:443/a/b", []string{"push"}}},
		{"repository:a.b-c_d/e__f/g--h:pull", Access{"repository", "a.b-c_d/e__f/g--h", []string{"pull"}}},
		{"repository:samples/hello-world:metadata_read", Access{"repository", "samples/hello-world", []string{"metadata_read"}}},
		{"repository:x:content-read", Access{"repository", "x", []string{"content-read"}}},
		{"repository:0/9:pull", Access{"repository", "0/9", []string{"pull"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseScope(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if back := FormatScope(got); back != tt.in {
				t.Fatalf("FormatScope(ParseScope(%q)) = %q", tt.in, back)
			}
		})
	}
}

func TestParseScope_Invalid(t *testing.T) {
	tests := []string{
		"",
		"repository",
		"repository:alpine",
		"repository::pull",
		":alpine:pull",
		"::",
		"repository:alpine:",
		"repository:alpine:pull,",
		"repository:alpine:,pull",
		"repository:alpine:pull,,push",
		"repository:alpine:latest:pull", // a tag is not part of a scope
		"repository:alpine@sha256:abc:pull",
		"Repository:alpine:pull",
		"repo-sitory:alpine:pull",
		"repository(:x:pull",
		"repository(plugin:x:pull",
		"repository():x:pull",
		"repository(Plugin):x:pull",
		"repository(plugin)x:y:pull",
		"(plugin):x:pull",
		"repository:/alpine:pull",
		"repository:alpine/:pull",
		"repository:a//b:pull",
		"repository:../x:pull",
		"repository:a/../x:pull",
		"repository:./x:pull",
		"repository:.x:pull",
		"repository:x-:pull",
		"repository:a b:pull",
		"repository:a\tb:pull",
		"repository:a\nb:pull",
		"repository:a\x00b:pull",
		"repository:alpïne:pull",
		"repository:alpine:PULL",
		"repository:alpine:pu ll",
		"repository:alpine:1pull",
		"repository:alpine:**",
		"repository:alpine:pull push",
		"repository:alpine:pull repository:b:pull",
		"repository:localhost:port/x:pull",
		"repository:localhost:123456/x:pull",
		"repository:localhost:/x:pull",
		"repository::5000/x:pull",
		"repository:localhost:5000:pull",
		"repository:localhost:5000/a:b:pull",
		"repository:a/localhost:5000/b:pull",
		"repository:" + strings.Repeat("a", maxScopeLen) + ":pull",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			got, err := ParseScope(in)
			if !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("ParseScope(%q) = %#v, %v; want ErrInvalidScope", in, got, err)
			}
		})
	}
}

func TestParseScope_LengthLimit(t *testing.T) {
	prefix, suffix := "repository:", ":pull"
	name := strings.Repeat("a", maxScopeLen-len(prefix)-len(suffix))
	if _, err := ParseScope(prefix + name + suffix); err != nil {
		t.Fatalf("scope of exactly %d bytes refused: %v", maxScopeLen, err)
	}
	if _, err := ParseScope(prefix + name + "a" + suffix); !errors.Is(err, ErrInvalidScope) {
		t.Fatalf("scope of %d bytes: err = %v, want ErrInvalidScope", maxScopeLen+1, err)
	}
}

func TestFormatScope(t *testing.T) {
	tests := []struct {
		in   Access
		want string
	}{
		{Access{"repository", "library/alpine", []string{"pull", "push"}}, "repository:library/alpine:pull,push"},
		{Access{"registry", "catalog", []string{"*"}}, "registry:catalog:*"},
		{Access{"repository", "localhost:5000/x", []string{"pull"}}, "repository:localhost:5000/x:pull"},
		{Access{"repository", "x", nil}, "repository:x:"},
	}
	for _, tt := range tests {
		if got := FormatScope(tt.in); got != tt.want {
			t.Errorf("FormatScope(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:library/alpine:pull,push",
		"registry:catalog:*",
		"repository(plugin):vieux/sshfs:pull",
		"repository:localhost:5000/library/alpine:pull",
		"repository:alpine:latest:pull",
		"repository:a//b:pull",
		"repository:alpine:",
		":::",
		"repository(:x:pull",
		"repository:samples/hello-world:metadata_read",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidScope) {
				t.Fatalf("ParseScope(%q) error %v does not wrap ErrInvalidScope", s, err)
			}
			return
		}
		if len(a.Actions) == 0 || a.Type == "" || a.Name == "" {
			t.Fatalf("ParseScope(%q) = %#v: accepted with an empty part", s, a)
		}
		back := FormatScope(a)
		if back != s {
			t.Fatalf("FormatScope(ParseScope(%q)) = %q", s, back)
		}
		again, err := ParseScope(back)
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("ParseScope(FormatScope(%#v)) = %#v, %v", a, again, err)
		}
	})
}
