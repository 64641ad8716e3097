package main

import (
	"strings"
	"testing"
)

// TestADUsage: the ad commands refuse bad flags before they sign in or
// send anything (usage errors, exit 2).
func TestADUsage(t *testing.T) {
	t.Setenv("MOAT_CONFIG_DIR", t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ad", "sp", "create-for-rbac"}, "--name is required"},
		{[]string{"ad", "sp", "create-for-rbac", "-n", "x", "--scopes", "/"}, "--role and --scopes go together"},
		{[]string{"ad", "sp", "show"}, "--id is required"},
		{[]string{"ad", "sp", "delete", "--id", "../users/admin"}, "not a valid id"},
		{[]string{"ad", "sp", "credential", "reset", "--id", "a?b"}, "not a valid id"},
		{[]string{"ad", "user", "create"}, "--user-principal-name is required"},
		{[]string{"ad", "user", "update", "--id", "dev"}, "--password is required"},
		{[]string{"ad", "user", "delete", "--id", ".."}, "not a valid id"},
		{[]string{"ad", "user", "list", "-o", "yaml"}, "--output"},
		{[]string{"ad"}, "needs a subcommand"},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 2 {
			t.Errorf("moat %s: %v (exit %d), want a usage error with %q", strings.Join(tc.args, " "), err, exitCode(err), tc.want)
		}
	}
}
