package main

import (
	"slices"
	"testing"
)

func TestJoinBareBoolValues(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{}, []string{}},
		{[]string{"acr", "update", "-n", "r", "--admin-enabled"}, []string{"acr", "update", "-n", "r", "--admin-enabled"}},
		{[]string{"acr", "update", "--admin-enabled", "false"}, []string{"acr", "update", "--admin-enabled=false"}},
		{[]string{"acr", "create", "--admin-enabled", "--anonymous-pull-enabled", "TRUE", "-n", "r"},
			[]string{"acr", "create", "--admin-enabled", "--anonymous-pull-enabled=true", "-n", "r"}},
		{[]string{"acr", "update", "--admin-enabled", "true", "--anonymous-pull-enabled", "False"},
			[]string{"acr", "update", "--admin-enabled=true", "--anonymous-pull-enabled=false"}},
		// Not a boolean: left for cobra to report as an argument.
		{[]string{"acr", "update", "--admin-enabled", "yes"}, []string{"acr", "update", "--admin-enabled", "yes"}},
		{[]string{"acr", "update", "--admin-enabled=false"}, []string{"acr", "update", "--admin-enabled=false"}},
		// Other flags keep their separate values; "--" ends the rewriting.
		{[]string{"acr", "update", "--public-network-enabled", "false"}, []string{"acr", "update", "--public-network-enabled", "false"}},
		{[]string{"x", "--", "--admin-enabled", "true"}, []string{"x", "--", "--admin-enabled", "true"}},
	} {
		if got := joinBareBoolValues(c.in); !slices.Equal(got, c.want) {
			t.Errorf("joinBareBoolValues(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
