package scopemap

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAction(t *testing.T) {
	ok := []struct {
		in   string
		want Rule
	}{
		{"repositories/hello/content/read", Rule{Repository: "hello", Permission: ContentRead}},
		{"repositories/samples/hello-world/content/write", Rule{Repository: "samples/hello-world", Permission: ContentWrite}},
		{"repositories/samples/*/content/delete", Rule{Repository: "samples/", Wildcard: true, Permission: ContentDelete}},
		{"repositories/a/b/c/*/metadata/read", Rule{Repository: "a/b/c/", Wildcard: true, Permission: MetadataRead}},
		{"repositories/*/metadata/write", Rule{Wildcard: true, Permission: MetadataWrite}},
		{"repositories/a.b__c--d/content/read", Rule{Repository: "a.b__c--d", Permission: ContentRead}},
	}
	for _, c := range ok {
		got, err := ParseAction(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseAction(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if got.String() != c.in {
			t.Errorf("String() = %q, want %q", got.String(), c.in)
		}
	}
	bad := []struct{ in, why string }{
		{"", "want repositories/"},
		{"repositories", "want repositories/"},
		{"repositories/hello", "want repositories/"},
		{"repositories/content/read", "want repositories/"},
		{"repositories//content/read", "not a valid repository name"},
		{"repositories/hello/content/execute", "permission \"content/execute\""},
		{"repositories/hello/metadata/delete", "permission \"metadata/delete\""},
		{"repositories/hello/Content/Read", "permission"},
		{"repositories/Hello/content/read", "not a valid repository name"},
		{"repositories/sample/*/teamA/content/read", "wildcard"},
		{"repositories/sample/teamA*/content/read", "wildcard"},
		{"repositories/sample/*/projectb/*/content/read", "may appear once"},
		{"repositories/**/content/read", "wildcard"},
		{"repositories/-x/*/content/read", "prefix"},
		{"repositories/hello/content/read/", "permission"},
		{"gateway/edge/config/read", "connected registry"},
		{"registry/catalog/read", "want repositories/"},
		{"repositories/" + strings.Repeat("a", 300) + "/content/read", "longer than"},
	}
	for _, c := range bad {
		_, err := ParseAction(c.in)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("ParseAction(%q) = %v, want an error containing %q", c.in, err, c.why)
		}
	}
}

// TestGrants is the table of the token authorization decision: scope-map
// actions × repository → Docker actions.
func TestGrants(t *testing.T) {
	rules := func(actions ...string) []Rule {
		r, err := ParseActions(actions)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name  string
		rules []Rule
		repo  string
		want  []string
	}{
		{"content/read is pull", rules("repositories/hello/content/read"), "hello", []string{DockerPull}},
		{"content/write is push", rules("repositories/hello/content/write"), "hello", []string{DockerPush}},
		{"content/delete is delete", rules("repositories/hello/content/delete"), "hello", []string{DockerDelete}},
		{"metadata/read", rules("repositories/hello/metadata/read"), "hello", []string{DockerMetadataRead}},
		{"metadata/write", rules("repositories/hello/metadata/write"), "hello", []string{DockerMetadataWrite}},
		{"other repository gets nothing", rules("repositories/hello/content/read"), "hello2", nil},
		{"exact name is not a prefix", rules("repositories/samples/content/read"), "samples/x", nil},
		{"wildcard prefix", rules("repositories/samples/*/content/read"), "samples/hello", []string{DockerPull}},
		{"wildcard prefix nested", rules("repositories/samples/*/content/read"), "samples/a/b", []string{DockerPull}},
		{"wildcard does not match the prefix itself", rules("repositories/samples/*/content/read"), "samples", nil},
		{"wildcard does not match a longer component", rules("repositories/samples/*/content/read"), "samplesx/a", nil},
		{"root wildcard", rules("repositories/*/content/read", "repositories/*/content/write"), "any/thing", []string{DockerPull, DockerPush}},
		{"additive (ACR's sample/teamA/projectB)", rules("repositories/sample/*/content/read", "repositories/sample/teama/*/content/write",
			"repositories/sample/teama/projectb/content/delete"), "sample/teama/projectb", []string{DockerPull, DockerPush, DockerDelete}},
		{"additive, sibling", rules("repositories/sample/*/content/read", "repositories/sample/teama/*/content/write",
			"repositories/sample/teama/projectb/content/delete"), "sample/teama/projectc", []string{DockerPull, DockerPush}},
		{"duplicates once, fixed order", rules("repositories/*/content/write", "repositories/a/content/write", "repositories/a/content/read"), "a",
			[]string{DockerPull, DockerPush}},
		{"no rules", nil, "a", nil},
	}
	for _, c := range cases {
		if got := Grants(c.rules, c.repo); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Grants(%s) = %v, want %v", c.name, c.repo, got, c.want)
		}
	}
}

func TestBuiltInsParse(t *testing.T) {
	for _, n := range BuiltInNames() {
		m, name, ok := BuiltIn(strings.ToUpper(n), time.Time{})
		if !ok || name != n || m.Kind != KindSystemDefined {
			t.Fatalf("BuiltIn(%q) = %v %q %v", n, m, name, ok)
		}
		if _, err := m.Rules(); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if _, _, ok := BuiltIn("_repositories_other", time.Time{}); ok {
		t.Fatal("unknown built-in found")
	}
}

func TestNames(t *testing.T) {
	for name, want := range map[string]bool{"abcde": true, "My-Token_1": true, "abcd": false, strings.Repeat("a", 51): false,
		strings.Repeat("a", 50): true, "with space": false, "a/b/c/d": false, "tökenx": false} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v", name, got)
		}
	}
	reg := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg1"
	for id, want := range map[string]string{
		reg + "/scopeMaps/MyMap":                         "MyMap",
		strings.ToUpper(reg) + "/SCOPEMAPS/MyMap":        "MyMap",
		reg + "2/scopeMaps/MyMap":                        "",
		reg + "/scopeMaps/":                              "",
		reg + "/scopeMaps/a/b":                           "",
		reg + "/tokens/MyMap":                            "",
		"/subscriptions/s/resourceGroups/rg/scopeMaps/x": "",
	} {
		got, ok := ScopeMapName(reg, id)
		if got != want || ok != (want != "") {
			t.Errorf("ScopeMapName(%q) = %q %v, want %q", id, got, ok, want)
		}
	}
}

func FuzzParseAction(f *testing.F) {
	for _, s := range []string{"repositories/hello/content/read", "repositories/samples/*/content/write", "repositories/*/metadata/read",
		"gateway/x/config/read", "repositories/a/*/b/content/read", "repositories//content/read"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseAction(s)
		if err != nil {
			return
		}
		// Whatever parses prints back as itself and matches consistently.
		if r.String() != s {
			t.Fatalf("String() = %q for %q", r.String(), s)
		}
		if r.Wildcard && r.Repository != "" && !strings.HasSuffix(r.Repository, "/") {
			t.Fatalf("wildcard prefix %q without '/'", r.Repository)
		}
		if !r.Wildcard && !r.Matches(r.Repository) {
			t.Fatalf("%q does not match its own repository", s)
		}
	})
}
