package rbac

import (
	"strings"
	"testing"
)

const (
	sub    = "/subscriptions/00000000-0000-0000-0000-000000000001"
	rg     = sub + "/resourceGroups/team"
	reg    = rg + "/providers/Microsoft.ContainerRegistry/registries/teamreg"
	other  = sub + "/resourceGroups/other/providers/Microsoft.ContainerRegistry/registries/otherreg"
	userID = "11111111-1111-1111-1111-111111111111"
)

// TestRoleMatrix is ACR's role table (container-registry-roles): which
// built-in role may manage through ARM, create/delete registries, push,
// pull, delete image data, change policies, sign, import and list the
// catalog.
func TestRoleMatrix(t *testing.T) {
	type row struct {
		arm, createDelete, push, pull, deleteData, policies, sign, importImage, catalog bool
	}
	table := map[string]row{
		"Owner":          {arm: true, createDelete: true, push: true, pull: true, deleteData: true, policies: true, importImage: true, catalog: true},
		"Contributor":    {arm: true, createDelete: true, push: true, pull: true, deleteData: true, policies: true, importImage: true, catalog: true},
		"Reader":         {arm: true, pull: true, catalog: true},
		"AcrPush":        {push: true, pull: true, catalog: true},
		"AcrPull":        {pull: true, catalog: true},
		"AcrDelete":      {deleteData: true},
		"AcrImageSigner": {sign: true},
		"Container Registry Data Importer and Data Reader": {arm: true, pull: true, importImage: true, catalog: true},
	}
	if len(table) != len(BuiltIn()) {
		t.Fatalf("the table has %d rows, there are %d built-in roles", len(table), len(BuiltIn()))
	}
	for name, want := range table {
		t.Run(name, func(t *testing.T) {
			d, ok := Lookup(name)
			if !ok {
				t.Fatalf("no role %q", name)
			}
			as := []Assignment{{Name: "a", Scope: reg, RoleDefinitionID: DefinitionID(sub, d.ID), PrincipalID: userID}}
			dp := DataPlane(as, userID, reg)
			got := row{
				arm:          Allowed(as, userID, ActionRegistryRead, reg),
				createDelete: Allowed(as, userID, ActionRegistryWrite, reg) && Allowed(as, userID, ActionRegistryDelete, reg),
				push:         dp.Push,
				pull:         dp.Pull,
				deleteData:   dp.Delete,
				policies:     Allowed(as, userID, ActionRegistryWrite, reg),
				sign:         dp.Sign,
				importImage:  Allowed(as, userID, ActionImportImage, reg),
				catalog:      dp.Catalog,
			}
			if got != want {
				t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
			}
			// No role lets another principal in, or reaches another registry.
			if DataPlane(as, "22222222-2222-2222-2222-222222222222", reg) != (DataPlaneRights{}) {
				t.Error("another principal got rights")
			}
			if DataPlane(as, userID, other) != (DataPlaneRights{}) {
				t.Error("rights leaked to another registry")
			}
		})
	}
}

func TestRoleAssignmentRights(t *testing.T) {
	for _, tc := range []struct {
		role                string
		write, del, read, x bool
	}{
		{"Owner", true, true, true, true},
		{"Contributor", false, false, true, true},
		{"Reader", false, false, true, false},
		{"AcrPush", false, false, false, false},
	} {
		as := []Assignment{{Name: "a", Scope: sub, RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/" + mustID(t, tc.role), PrincipalID: userID}}
		if got := Allowed(as, userID, ActionRoleAssignmentWrite, reg); got != tc.write {
			t.Errorf("%s roleAssignments/write = %v", tc.role, got)
		}
		if got := Allowed(as, userID, ActionRoleAssignmentDelete, reg); got != tc.del {
			t.Errorf("%s roleAssignments/delete = %v", tc.role, got)
		}
		if got := Allowed(as, userID, ActionRoleAssignmentRead, reg); got != tc.read {
			t.Errorf("%s roleAssignments/read = %v", tc.role, got)
		}
		if got := Allowed(as, userID, "Microsoft.Resources/subscriptions/resourceGroups/write", rg); got != tc.x {
			t.Errorf("%s resourceGroups/write = %v", tc.role, got)
		}
	}
}

func mustID(t *testing.T, name string) string {
	t.Helper()
	d, ok := Lookup(name)
	if !ok {
		t.Fatalf("no role %q", name)
	}
	return d.ID
}

func TestInheritance(t *testing.T) {
	pull := DefinitionID("", AcrPullID)
	for _, tc := range []struct {
		scope, target string
		want          bool
	}{
		{"/", reg, true},
		{"/", "/subscriptions/x", true},
		{sub, reg, true},
		{strings.ToUpper(sub), reg, true},
		{rg, reg, true},
		{rg + "/", reg, true},
		{reg, reg, true},
		{reg, reg + "/scopeMaps/m1", true},
		{reg, strings.ToLower(reg), true},
		{reg + "/scopeMaps/m1", reg, false},
		{rg, sub, false},
		{rg, other, false},
		{sub + "/resourceGroups/tea", reg, false},
		{reg[:len(reg)-1], reg, false},
		{"", reg, false},
	} {
		as := []Assignment{{Name: "a", Scope: tc.scope, RoleDefinitionID: pull, PrincipalID: userID}}
		if got := Allowed(as, userID, ActionPull, tc.target); got != tc.want {
			t.Errorf("assignment at %q, pull at %q: %v, want %v", tc.scope, tc.target, got, tc.want)
		}
	}
}

func TestAllowedFailsClosed(t *testing.T) {
	owner := DefinitionID(sub, OwnerID)
	for name, tc := range map[string]struct {
		as                      []Assignment
		principal, action, into string
	}{
		"no assignments":        {nil, userID, ActionPull, reg},
		"empty principal":       {[]Assignment{{Scope: "/", RoleDefinitionID: owner, PrincipalID: ""}}, "", ActionPull, reg},
		"unknown role":          {[]Assignment{{Scope: "/", RoleDefinitionID: DefinitionID("", "00000000-0000-0000-0000-00000000dead"), PrincipalID: userID}}, userID, ActionPull, reg},
		"empty action":          {[]Assignment{{Scope: "/", RoleDefinitionID: owner, PrincipalID: userID}}, userID, "", reg},
		"empty scope":           {[]Assignment{{Scope: "/", RoleDefinitionID: owner, PrincipalID: userID}}, userID, ActionPull, ""},
		"principal id differs":  {[]Assignment{{Scope: "/", RoleDefinitionID: owner, PrincipalID: userID + "0"}}, userID, ActionPull, reg},
		"role named not by id":  {[]Assignment{{Scope: "/", RoleDefinitionID: "/providers/Microsoft.Authorization/roleDefinitions/Owner", PrincipalID: userID}}, userID, ActionPull, reg},
		"reader cannot write":   {[]Assignment{{Scope: "/", RoleDefinitionID: DefinitionID("", ReaderID), PrincipalID: userID}}, userID, ActionPush, reg},
		"acrpull cannot delete": {[]Assignment{{Scope: "/", RoleDefinitionID: DefinitionID("", AcrPullID), PrincipalID: userID}}, userID, ActionDelete, reg},
	} {
		if Allowed(tc.as, tc.principal, tc.action, tc.into) {
			t.Errorf("%s: allowed", name)
		}
	}
	// Principal ids compare case-insensitively (they are GUIDs).
	as := []Assignment{{Scope: "/", RoleDefinitionID: owner, PrincipalID: strings.ToUpper("abcdef00-1111-1111-1111-111111111111")}}
	if !Allowed(as, "abcdef00-1111-1111-1111-111111111111", ActionPush, reg) {
		t.Error("upper-case principal id in the assignment did not match")
	}
}

func TestMatchAction(t *testing.T) {
	for _, tc := range []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.ContainerRegistry/registries/write", true},
		{"*/read", "Microsoft.ContainerRegistry/registries/pull/read", true},
		{"*/read", "Microsoft.ContainerRegistry/registries/push/write", false},
		{"*/read", "read", false},
		{"Microsoft.ContainerRegistry/*", "microsoft.containerregistry/registries/delete", true},
		{"Microsoft.ContainerRegistry/*", "Microsoft.ContainerRegistryX/registries/delete", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/read", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/a/b/write", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a**", "a", true},
		{"", "", true},
		{"", "x", false},
		{"exact/action", "EXACT/ACTION", true},
		{"exact/action", "exact/action/more", false},
	} {
		if got := MatchAction(tc.pattern, tc.action); got != tc.want {
			t.Errorf("MatchAction(%q, %q) = %v, want %v", tc.pattern, tc.action, got, tc.want)
		}
	}
}

func TestLookup(t *testing.T) {
	for ref, want := range map[string]string{
		"AcrPull":                  AcrPullID,
		"acrpull":                  AcrPullID,
		AcrPushID:                  AcrPushID,
		strings.ToUpper(AcrPushID): AcrPushID,
		DefinitionID(sub, OwnerID): OwnerID,
		DefinitionID("", ReaderID): ReaderID,
		"/providers/Microsoft.Authorization/roleDefinitions/" + DataImporterReaderID: DataImporterReaderID,
		"Container Registry Data Importer and Data Reader":                           DataImporterReaderID,
		" Contributor ": ContributorID,
	} {
		d, ok := Lookup(ref)
		if !ok || d.ID != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", ref, d.ID, ok, want)
		}
	}
	for _, ref := range []string{"", "Owners", "/providers/Microsoft.Authorization/roleDefinitions/AcrPull", "00000000-0000-0000-0000-000000000000", sub} {
		if d, ok := Lookup(ref); ok {
			t.Errorf("Lookup(%q) = %s", ref, d.Name)
		}
	}
}

func TestParseScope(t *testing.T) {
	for in, want := range map[string]ScopeKind{
		"/":                   ScopeRoot,
		sub:                   ScopeSubscription,
		sub + "/":             ScopeSubscription,
		rg:                    ScopeResourceGroup,
		strings.ToLower(rg):   ScopeResourceGroup,
		reg:                   ScopeResource,
		reg + "/scopeMaps/m1": ScopeResource,
		rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1": ScopeResource,
	} {
		s, err := ParseScope(in)
		if err != nil || s.Kind != want {
			t.Errorf("ParseScope(%q) = %+v, %v; want kind %d", in, s, err, want)
		}
	}
	s, _ := ParseScope(reg + "/scopeMaps/m1")
	if s.Provider != "Microsoft.ContainerRegistry" || strings.Join(s.Types, ",") != "registries,scopeMaps" || strings.Join(s.Names, ",") != "teamreg,m1" ||
		s.ResourceGroup != "team" || s.Subscription != "00000000-0000-0000-0000-000000000001" {
		t.Errorf("parsed %+v", s)
	}
	for _, in := range []string{
		"", "//", "subscriptions/x", "/subscriptions", "/subscriptions/", "/subscriptions//resourceGroups/x",
		"/tenants/x", sub + "/resourceGroups", sub + "/providers/Microsoft.ContainerRegistry/registries/x",
		rg + "/providers", rg + "/providers/Microsoft.ContainerRegistry", rg + "/providers/Microsoft.ContainerRegistry/registries",
		reg + "/scopeMaps", reg + "/providers/Microsoft.Authorization/roleAssignments/x", sub + "?x", sub + "%2F", sub + " ",
		"/" + strings.Repeat("a", maxScopeLen+1),
	} {
		if s, err := ParseScope(in); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want an error", in, s)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"/", sub, rg, reg, reg + "/scopeMaps/m1", "/subscriptions//x", rg + "/providers/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		// A parsed scope covers itself, and re-parses to the same kind.
		if !Covers(sc.ID, sc.ID) {
			t.Fatalf("%q does not cover itself", sc.ID)
		}
		again, err := ParseScope(sc.ID)
		if err != nil || again.Kind != sc.Kind {
			t.Fatalf("re-parsing %q: %+v, %v", sc.ID, again, err)
		}
		if sc.Kind == ScopeResource && len(sc.Types) != len(sc.Names) {
			t.Fatalf("%q: %d types, %d names", s, len(sc.Types), len(sc.Names))
		}
	})
}

func FuzzMatchAction(f *testing.F) {
	f.Add("*/read", "Microsoft.ContainerRegistry/registries/pull/read")
	f.Add("a*b*c*", "aXbYc")
	f.Fuzz(func(t *testing.T, pattern, action string) {
		got := MatchAction(pattern, action)
		// A pattern without '*' matches exactly its own text, any case.
		if !strings.Contains(pattern, "*") && got != strings.EqualFold(pattern, action) && strings.ToLower(pattern) == pattern && strings.ToLower(action) == action {
			t.Fatalf("MatchAction(%q, %q) = %v", pattern, action, got)
		}
		if MatchAction("*", action) != true {
			t.Fatal("* must match everything")
		}
		if !MatchAction(strings.ToLower(action), action) && !strings.Contains(action, "*") {
			t.Fatalf("%q does not match itself", action)
		}
	})
}
