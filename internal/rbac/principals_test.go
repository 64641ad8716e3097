package rbac

import "testing"

// TestPrincipalAdminRights: the Moat.Identity routes (internal/arm
// principals.go) require Microsoft.Authorization/principals/write at "/"
// to create, reset and delete users and service principals; Contributor's
// notActions (Microsoft.Authorization/*/Write) keep it from doing so.
func TestPrincipalAdminRights(t *testing.T) {
	const write, read = "Microsoft.Authorization/principals/write", "Microsoft.Authorization/principals/read"
	for _, tc := range []struct {
		role        string
		write, read bool
	}{
		{"Owner", true, true},
		{"Contributor", false, true},
		{"Reader", false, true},
		{"AcrPush", false, false},
	} {
		as := []Assignment{{Name: "a", Scope: "/", RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/" + mustID(t, tc.role), PrincipalID: userID}}
		if got := Allowed(as, userID, write, "/"); got != tc.write {
			t.Errorf("%s principals/write = %v", tc.role, got)
		}
		if got := Allowed(as, userID, read, "/"); got != tc.read {
			t.Errorf("%s principals/read = %v", tc.role, got)
		}
		// Assigned below the root, even Owner administers no principals.
		below := []Assignment{{Name: "a", Scope: sub, RoleDefinitionID: as[0].RoleDefinitionID, PrincipalID: userID}}
		if Allowed(below, userID, write, "/") {
			t.Errorf("%s at a subscription administers principals", tc.role)
		}
	}
}
