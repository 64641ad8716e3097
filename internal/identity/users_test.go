package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"elevenchars", false},
		{"twelve-chars", true},
		{strings.Repeat("x", 72), true},
		{strings.Repeat("x", 73), false},
		{"twelve-chars\n", false},
	} {
		if err := CheckPasswordPolicy(tc.pw); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrWeakPassword)) {
			t.Errorf("CheckPasswordPolicy(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
	}
}

func TestValidUserName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"alice@example.com", true},
		{"", false},
		{"al ice", false},
		{"al:ice", false},
		{"a/b", false},
		{"bad\x00", false},
		{strings.Repeat("a", 113), true},
		{strings.Repeat("a", 114), false},
		{"0c000000-0000-0000-0000-0000000000c1", false}, // would shadow object and app ids
	} {
		if err := ValidUserName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidUserName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestUser_Lifecycle(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()

	u, pw, err := s.CreateUser(ctx, "dev@moat", "", "Dev")
	if err != nil || pw == "" || u.UserPrincipalName != "dev@moat" || u.DisplayName != "Dev" || u.ObjectID == "" {
		t.Fatalf("CreateUser = %+v, %q, %v", u, pw, err)
	}
	if _, _, err := s.CreateUser(ctx, "dev@moat", "another-password", ""); !errors.Is(err, ErrUserExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, _, err := s.CreateUser(ctx, "admin", "another-password", ""); !errors.Is(err, ErrUserExists) {
		t.Fatalf("a second admin: %v", err)
	}
	if _, _, err := s.CreateUser(ctx, "ADMIN", "another-password", ""); !errors.Is(err, ErrUserExists) {
		t.Fatalf("the admin in other case: %v", err)
	}
	if _, _, err := s.CreateUser(ctx, "weak", "short", ""); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("weak: %v", err)
	}
	p, err := s.AuthenticateBasic(ctx, "dev@moat", pw)
	if err != nil || p.ID != u.ObjectID || p.Kind != KindUser {
		t.Fatalf("AuthenticateBasic = %+v, %v", p, err)
	}

	// The cached sign-in does not outlive a password change.
	if _, err := s.SetUserPassword(ctx, "dev@moat", "a-new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateBasic(ctx, "dev@moat", pw); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old password after a change: %v", err)
	}
	if _, err := s.AuthenticateBasic(ctx, "dev@moat", "a-new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetUserPassword(ctx, "nobody", "a-new-password"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("unknown user: %v", err)
	}

	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 2 {
		t.Fatalf("ListUsers = %+v, %v", users, err)
	}
	if _, err := s.DeleteUser(ctx, AdminName); !errors.Is(err, ErrProtectedPrincipal) {
		t.Fatalf("deleting the admin: %v", err)
	}
	if _, err := s.DeleteUser(ctx, "dev@moat"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateBasic(ctx, "dev@moat", "a-new-password"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a deleted user: %v", err)
	}
	if _, err := s.GetUser(ctx, "dev@moat"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("GetUser after delete: %v", err)
	}
}

func TestResetServicePrincipalSecret(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	sp, old, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddServicePrincipalSecret(ctx, sp.AppID, 0); err != nil {
		t.Fatal(err)
	}
	got, fresh, err := s.ResetServicePrincipalSecret(ctx, sp.AppID)
	if err != nil || len(got.Secrets) != 1 || fresh == old {
		t.Fatalf("reset = %+v, %v", got, err)
	}
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, old); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old secret after reset: %v", err)
	}
	if _, err := s.AuthenticateServicePrincipal(ctx, sp.AppID, fresh); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ResetServicePrincipalSecret(ctx, "0c000000-0000-0000-0000-0000000000c1"); !errors.Is(err, ErrServicePrincipalNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
}
