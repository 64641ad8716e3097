package identity

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const testRegID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/team/providers/Microsoft.ContainerRegistry/registries/teamreg"

func putAssignment(t *testing.T, store meta.Store, name, scope, role, principal string) {
	t.Helper()
	res, err := rbac.ToResource(rbac.Assignment{Name: name, Scope: scope, RoleDefinitionID: rbac.DefinitionID("", role), PrincipalID: principal})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutResource(context.Background(), res); err != nil {
		t.Fatal(err)
	}
}

// TestAuthorize_Roles resolves a service principal's data-plane rights
// from its role assignments, per built-in role, and sees a removed role at
// once in this process and within roleCacheTTL in another.
func TestAuthorize_Roles(t *testing.T) {
	store, clock, s, _, _ := newAdmin(t)
	ctx := context.Background()
	if _, err := store.CreateRegistry(ctx, meta.Registry{Name: "teamreg", ResourceID: testRegID, SKU: "Premium", Properties: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	sp, _, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{ID: sp.ObjectID, Kind: KindServicePrincipal, Name: sp.AppID}
	requested := []Access{acc("repository", "app", "pull", "push", "delete", "*"), acc("registry", "catalog", "*")}
	for _, tc := range []struct {
		role          string
		repo, catalog []string
	}{
		{rbac.OwnerID, []string{"pull", "push", "delete", "*"}, []string{"*"}},
		{rbac.ContributorID, []string{"pull", "push", "delete", "*"}, []string{"*"}},
		{rbac.ReaderID, []string{"pull"}, []string{"*"}},
		{rbac.AcrPushID, []string{"pull", "push"}, []string{"*"}},
		{rbac.AcrPullID, []string{"pull"}, []string{"*"}},
		{rbac.AcrDeleteID, []string{"delete"}, []string{}},
		{rbac.AcrImageSignerID, []string{}, []string{}},
		{rbac.DataImporterReaderID, []string{"pull"}, []string{"*"}},
	} {
		name := "1a000000-0000-0000-0000-" + tc.role[24:]
		putAssignment(t, store, name, testRegID, tc.role, sp.ObjectID)
		s.InvalidateRoleAssignments()
		got, err := s.Authorize(ctx, p, "teamreg", requested)
		if err != nil {
			t.Fatal(err)
		}
		want := []Access{acc("repository", "app", tc.repo...), acc("registry", "catalog", tc.catalog...)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("role %s: %#v, want %#v", tc.role, got, want)
		}
		// The assignment is on teamreg only.
		if got, _ := s.Authorize(ctx, p, "otherreg", requested); !reflect.DeepEqual(got, []Access{acc("repository", "app"), acc("registry", "catalog")}) {
			t.Errorf("role %s reaches another registry: %#v", tc.role, got)
		}
		if err := store.DeleteResource(ctx, rbac.AssignmentID(testRegID, name)); err != nil {
			t.Fatal(err)
		}
	}

	// Another replica sharing the store: a grant and its removal are seen
	// within roleCacheTTL.
	other := newService(t, store, clock)
	pull := []Access{acc("repository", "app", "pull")}
	putAssignment(t, store, "1b000000-0000-0000-0000-000000000001", "/subscriptions/00000000-0000-0000-0000-000000000000", rbac.AcrPullID, sp.ObjectID)
	s.InvalidateRoleAssignments()
	waitFor(t, func() bool {
		got, err := other.Authorize(ctx, p, "teamreg", pull)
		return err == nil && len(got[0].Actions) == 1
	})
	if err := store.DeleteResource(ctx, rbac.AssignmentID("/subscriptions/00000000-0000-0000-0000-000000000000", "1b000000-0000-0000-0000-000000000001")); err != nil {
		t.Fatal(err)
	}
	s.InvalidateRoleAssignments()
	if got, _ := s.Authorize(ctx, p, "teamreg", pull); len(got[0].Actions) != 0 {
		t.Fatalf("removed role still granted in this process: %#v", got)
	}
	start := time.Now()
	waitFor(t, func() bool {
		got, err := other.Authorize(ctx, p, "teamreg", pull)
		return err == nil && len(got[0].Actions) == 0
	})
	if d := time.Since(start); d > roleCacheTTL+500*time.Millisecond {
		t.Fatalf("the other replica took %s", d)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("condition not met within 3s")
}

func TestEnsureAdminOwnerIsIdempotent(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	count := func() int {
		as, err := rbac.Load(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range as {
			if a.PrincipalID == admin.ID && a.Scope == "/" {
				n++
				if d, _ := a.Role(); d.ID != rbac.OwnerID {
					t.Fatalf("admin's root assignment is %s", d.Name)
				}
			}
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d Owner assignments after the first start", n)
	}
	// A restart (another Service, same store), with and without a password.
	again := newService(t, store, clock)
	if _, _, err := again.EnsureAdmin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := again.EnsureAdmin(ctx, "new-password-1"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d Owner assignments after restarts", n)
	}
	// Deleted, it comes back at the next start.
	as, _ := rbac.Load(ctx, store)
	for _, a := range as {
		if err := store.DeleteResource(ctx, a.ID()); err != nil {
			t.Fatal(err)
		}
	}
	s.InvalidateRoleAssignments()
	if got, _ := s.Authorize(ctx, admin, "moat", []Access{acc("repository", "a", "pull")}); len(got[0].Actions) != 0 {
		t.Fatalf("admin without its assignment still pulls: %#v", got)
	}
	if _, _, err := again.EnsureAdmin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d Owner assignments after the restart that restored it", n)
	}
}

func TestPrincipalType(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	const aci = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/app"
	mi, err := s.EnsureManagedIdentity(ctx, aci, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetIdentityHost(ctx, aci, mi.PrincipalID, nil); err != nil {
		t.Fatal(err)
	}
	host, err := s.store.GetPrincipalByName(ctx, kindIdentityHost, miName(aci))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, typ string
		found   bool
	}{
		{admin.ID, "User", true},
		{sp.ObjectID, "ServicePrincipal", true},
		{mi.PrincipalID, "ServicePrincipal", true},
		{host.ID, "", false},  // carries the instance's secret; never signs in
		{sp.AppID, "", false}, // the app id is not the object id
		{"00000000-0000-0000-0000-000000000009", "", false},
		{"not-a-guid", "", false},
	} {
		typ, found, err := s.PrincipalType(ctx, tc.id)
		if err != nil || typ != tc.typ || found != tc.found {
			t.Errorf("PrincipalType(%s) = %q, %v, %v", tc.id, typ, found, err)
		}
	}
}

func TestAuthenticateBasicServicePrincipal(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	sp, secret, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.AuthenticateRegistry(ctx, "moat", sp.AppID, secret)
	if err != nil || p.ID != sp.ObjectID || p.Kind != KindServicePrincipal {
		t.Fatalf("AuthenticateRegistry = %+v, %v", p, err)
	}
	if _, err := s.AuthenticateBasic(ctx, sp.AppID, secret+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := s.DeleteServicePrincipal(ctx, sp.AppID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateBasic(ctx, sp.AppID, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("deleted service principal: %v", err)
	}
}

func TestResolvePrincipal(t *testing.T) {
	_, _, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{admin.ID: admin.ID, AdminName: admin.ID, sp.ObjectID: sp.ObjectID, sp.AppID: sp.ObjectID} {
		id, _, _, found, err := s.ResolvePrincipal(ctx, ref)
		if err != nil || !found || id != want {
			t.Errorf("ResolvePrincipal(%s) = %s, %v, %v; want %s", ref, id, found, err, want)
		}
	}
	for _, ref := range []string{"nobody", "00000000-0000-0000-0000-000000000009", ""} {
		if id, _, _, found, err := s.ResolvePrincipal(ctx, ref); found || err != nil {
			t.Errorf("ResolvePrincipal(%q) = %s, %v, %v", ref, id, found, err)
		}
	}
}
