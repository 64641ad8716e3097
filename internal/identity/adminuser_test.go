package identity

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/moat-registry/moat/internal/storage/meta"
)

func createRegistry(t *testing.T, store meta.Store, name string, adminEnabled bool) meta.Registry {
	t.Helper()
	props := `{"adminUserEnabled":false}`
	if adminEnabled {
		props = `{"adminUserEnabled":true}`
	}
	reg, err := store.CreateRegistry(context.Background(), meta.Registry{
		Name: name, SKU: "Premium", Location: "local", Properties: []byte(props),
		ResourceID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/" + name,
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func setAdminEnabled(t *testing.T, store meta.Store, reg meta.Registry, on bool) meta.Registry {
	t.Helper()
	reg.Properties = []byte(`{"adminUserEnabled":false}`)
	if on {
		reg.Properties = []byte(`{"adminUserEnabled":true}`)
	}
	got, err := store.UpdateRegistry(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAdminUser_Lifecycle(t *testing.T) {
	store, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	reg := createRegistry(t, store, "rega", true)
	createRegistry(t, store, "regb", true)

	creds, err := ListAdminCredentials(ctx, store, reg)
	if err != nil {
		t.Fatalf("ListAdminCredentials: %v", err)
	}
	if creds.Username != "rega" || len(creds.Passwords) != 2 || creds.Passwords[0].Name != "password" || creds.Passwords[1].Name != "password2" ||
		creds.Passwords[0].Value == "" || creds.Passwords[0].Value == creds.Passwords[1].Value {
		t.Fatalf("credentials = %+v", creds)
	}
	again, err := ListAdminCredentials(ctx, store, reg)
	if err != nil || !reflect.DeepEqual(again, creds) {
		t.Fatalf("second listing = %+v, %v; want the same", again, err)
	}
	pw1, pw2 := creds.Passwords[0].Value, creds.Passwords[1].Value

	for _, pw := range []string{pw1, pw2} {
		p, err := s.AuthenticateRegistry(ctx, "rega", "rega", pw)
		if err != nil {
			t.Fatalf("AuthenticateRegistry: %v", err)
		}
		if p.Kind != KindAdminUser || p.Registry != "rega" {
			t.Errorf("principal = %+v", p)
		}
		// Case of the user name does not matter.
		if _, err := s.AuthenticateRegistry(ctx, "rega", "REGA", pw); err != nil {
			t.Errorf("upper-case user name: %v", err)
		}
		// The same credentials at another registry are nothing.
		if _, err := s.AuthenticateRegistry(ctx, "regb", "rega", pw); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("rega's admin at regb: %v", err)
		}
	}
	for _, bad := range []string{"", "wrong", pw1 + "x", pw1[:10]} {
		if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("password %q: %v", bad, err)
		}
	}

	// Regenerating password2 keeps password working.
	regen, err := RegenerateAdminPassword(ctx, store, reg, AdminPassword2Name)
	if err != nil {
		t.Fatal(err)
	}
	if regen.Passwords[0].Value != pw1 || regen.Passwords[1].Value == pw2 {
		t.Fatalf("after regenerating password2: %+v", regen)
	}
	if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", pw2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("old password2 still works: %v", err)
	}
	for _, pw := range []string{pw1, regen.Passwords[1].Value} {
		if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", pw); err != nil {
			t.Errorf("current password refused: %v", err)
		}
	}
	if _, err := RegenerateAdminPassword(ctx, store, reg, "password3"); !errors.Is(err, ErrInvalidPasswordName) {
		t.Errorf("password3: %v", err)
	}

	// Disabled: listing refused, passwords no longer authenticate.
	reg = setAdminEnabled(t, store, reg, false)
	if _, err := ListAdminCredentials(ctx, store, reg); !errors.Is(err, ErrAdminUserDisabled) {
		t.Errorf("listing while disabled: %v", err)
	}
	if _, err := RegenerateAdminPassword(ctx, store, reg, AdminPasswordName); !errors.Is(err, ErrAdminUserDisabled) {
		t.Errorf("regenerating while disabled: %v", err)
	}
	if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", pw1); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("admin user authenticated while disabled: %v", err)
	}
	// Enabled again: the same passwords (ACR keeps them too).
	setAdminEnabled(t, store, reg, true)
	if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", pw1); err != nil {
		t.Errorf("re-enabled: %v", err)
	}

	// Deleted and created again: the old passwords are gone.
	if err := store.DeleteRegistry(ctx, "rega"); err != nil {
		t.Fatal(err)
	}
	reg = createRegistry(t, store, "rega", true)
	if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", pw1); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a former registry's password works: %v", err)
	}
	fresh, err := ListAdminCredentials(ctx, store, reg)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Passwords[0].Value == pw1 {
		t.Error("the recreated registry kept the old password")
	}
	if _, err := s.AuthenticateRegistry(ctx, "rega", "rega", fresh.Passwords[0].Value); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestAdminUser_Authorize(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	p := Principal{ID: "x", Kind: KindAdminUser, Name: "rega", Registry: "rega"}
	requested := []Access{
		acc(TypeRepository, "app", ActionPull, ActionPush, ActionDelete, ActionAll),
		acc(TypeRegistry, CatalogName, ActionAll),
		acc("bogus", "x", ActionPull),
	}
	got, err := s.Authorize(ctx, p, "rega", requested)
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		acc(TypeRepository, "app", ActionPull, ActionPush, ActionDelete),
		acc(TypeRegistry, CatalogName, ActionAll),
		acc("bogus", "x"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("own registry: %+v, want %+v", got, want)
	}
	got, err = s.Authorize(ctx, p, "regb", requested)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if len(a.Actions) != 0 {
			t.Errorf("other registry granted %+v", got)
		}
	}
}

func TestAnonymousGrant(t *testing.T) {
	tests := []struct {
		in, want []Access
	}{
		{[]Access{acc(TypeRepository, "a", ActionPull)}, []Access{acc(TypeRepository, "a", ActionPull)}},
		{[]Access{acc(TypeRepository, "a", ActionPull, ActionPush, ActionDelete, ActionAll)}, []Access{acc(TypeRepository, "a", ActionPull)}},
		{[]Access{acc(TypeRepository, "a", ActionPush)}, []Access{acc(TypeRepository, "a")}},
		{[]Access{acc(TypeRepository, "a", ActionAll)}, []Access{acc(TypeRepository, "a")}},
		{[]Access{acc(TypeRegistry, CatalogName, ActionAll)}, []Access{acc(TypeRegistry, CatalogName)}},
		{[]Access{acc(TypeRegistry, CatalogName, ActionPull)}, []Access{acc(TypeRegistry, CatalogName)}},
		{nil, []Access{}},
	}
	for _, tt := range tests {
		if got := AnonymousGrant(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("AnonymousGrant(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
