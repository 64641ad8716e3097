package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestRepoGroups: az's "--repository REPO ACTION..." groups survive pflag's
// parsing, interleaved with other flags.
func TestRepoGroups(t *testing.T) {
	cases := []struct {
		args []string
		want []string // actionStrings of the groups
		err  string
	}{
		{args: []string{"--repository", "samples/hello", "content/read", "content/write"},
			want: []string{"repositories/samples/hello/content/read", "repositories/samples/hello/content/write"}},
		{args: []string{"--repository", "a", "content/read", "-n", "x", "--repository=b/*", "content/write", "--add-repository", "c", "content/delete"},
			want: []string{"repositories/a/content/read", "repositories/b/*/content/write", "repositories/c/content/delete"}},
		{args: []string{"-n", "x", "--repository", "a", "content/read", "content/read"}, want: []string{"repositories/a/content/read"}},
		{args: []string{"-n", "x"}},
		{args: []string{"content/read", "--repository", "a"}, err: "before --repository"},
		{args: []string{"--repository", "a", "--repository", "b", "content/read"}, err: "--repository a names no action"},
		{args: []string{"content/read"}, err: "actions follow --repository"},
	}
	for _, c := range cases {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.StringP("name", "n", "", "")
		g := newRepoGroups(fs, "repository", "add-repository")
		if err := fs.Parse(c.args); err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		groups, err := g.assign(fs.Args())
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || exitCode(err) != 2 {
				t.Errorf("%q: err %v, want a usage error containing %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if got := actionStrings(groups); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %q, want %q", c.args, got, c.want)
		}
	}
}
