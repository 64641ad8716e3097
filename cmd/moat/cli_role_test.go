package main

import (
	"errors"
	"testing"
)

func TestRoleScopeOf(t *testing.T) {
	s := &session{prof: profile{SubscriptionID: "sub1"}}
	for _, tc := range []struct {
		f    roleFlags
		want string
	}{
		{roleFlags{}, "/subscriptions/sub1"},
		{roleFlags{resourceGroup: "team"}, "/subscriptions/sub1/resourceGroups/team"},
		{roleFlags{scope: "/"}, "/"},
		{roleFlags{scope: "/subscriptions/x/resourceGroups/y/"}, "/subscriptions/x/resourceGroups/y"},
	} {
		got, err := tc.f.scopeOf(s)
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.f, got, err, tc.want)
		}
	}
	for _, f := range []roleFlags{{scope: "/x", resourceGroup: "y"}, {scope: "resourceGroups/y"}, {scope: "/tenants/x"}} {
		var ue *usageError
		if _, err := f.scopeOf(s); !errors.As(err, &ue) {
			t.Errorf("%+v: %v, want a usage error", f, err)
		}
	}
	if got := assignmentsPath("/"); got != "/providers/Microsoft.Authorization/roleAssignments" {
		t.Errorf("root path %q", got)
	}
}

func TestAssignmentIDPattern(t *testing.T) {
	for _, id := range []string{
		"/providers/Microsoft.Authorization/roleAssignments/6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01",
		"/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01",
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/providers/microsoft.authorization/roleassignments/6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01",
	} {
		if !assignmentIDPattern.MatchString(id) {
			t.Errorf("%s does not match", id)
		}
	}
	for _, id := range []string{"", "6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01", "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x",
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.Authorization/roleAssignments/6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01/x"} {
		if assignmentIDPattern.MatchString(id) {
			t.Errorf("%s matches", id)
		}
	}
}

func TestRoleCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"role", "assignment", "create", "--role", "AcrPull"},
		{"role", "assignment", "create", "--assignee", "x"},
		{"role", "assignment", "delete"},
		{"role", "assignment", "delete", "--ids", "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/6a1f4e1c-9f4b-4c3e-8a8e-3d1c2b0a9f01", "--role", "AcrPull"},
		{"role", "assignment", "delete", "--ids", "not-an-id"},
	} {
		_, err := runCLI(t, args...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("moat %v: %v, want a usage error", args, err)
		}
	}
}
