package identity

import (
	"context"
	"reflect"
	"testing"
)

func acc(typ, name string, actions ...string) Access {
	if actions == nil {
		actions = []string{}
	}
	return Access{Type: typ, Name: name, Actions: actions}
}

func TestGrant(t *testing.T) {
	admin := []role{roleDeploymentAdmin}
	tests := []struct {
		name      string
		roles     []role
		requested []Access
		want      []Access
	}{
		{"admin pull", admin, []Access{acc("repository", "a", "pull")}, []Access{acc("repository", "a", "pull")}},
		{"admin pull push", admin, []Access{acc("repository", "a/b", "pull", "push")}, []Access{acc("repository", "a/b", "pull", "push")}},
		{"admin exactly what was asked", admin, []Access{acc("repository", "a", "delete")}, []Access{acc("repository", "a", "delete")}},
		{"admin wildcard", admin, []Access{acc("repository", "a", "*")}, []Access{acc("repository", "a", "*")}},
		{"admin all four", admin, []Access{acc("repository", "a", "pull", "push", "delete", "*")}, []Access{acc("repository", "a", "pull", "push", "delete", "*")}},
		{"duplicates once, in order", admin, []Access{acc("repository", "a", "push", "pull", "push")}, []Access{acc("repository", "a", "push", "pull")}},
		{"unknown action dropped", admin, []Access{acc("repository", "a", "pull", "metadata_read", "PULL")}, []Access{acc("repository", "a", "pull")}},
		{"only unknown actions leave an empty entry", admin, []Access{acc("repository", "a", "frobnicate")}, []Access{acc("repository", "a")}},
		{"catalog wildcard", admin, []Access{acc("registry", "catalog", "*")}, []Access{acc("registry", "catalog", "*")}},
		{"catalog other actions dropped", admin, []Access{acc("registry", "catalog", "pull", "*")}, []Access{acc("registry", "catalog", "*")}},
		{"other registry resource", admin, []Access{acc("registry", "config", "*")}, []Access{acc("registry", "config")}},
		{"unknown type", admin, []Access{acc("repository(plugin)", "a", "pull")}, []Access{acc("repository(plugin)", "a")}},
		{"empty type", admin, []Access{acc("", "a", "pull")}, []Access{acc("", "a")}},
		{"nil actions", admin, []Access{{Type: "repository", Name: "a"}}, []Access{acc("repository", "a")}},
		{"several entries keep order", admin,
			[]Access{acc("repository", "b", "push"), acc("bogus", "x", "pull"), acc("repository", "a", "pull")},
			[]Access{acc("repository", "b", "push"), acc("bogus", "x"), acc("repository", "a", "pull")}},
		{"no roles: nothing", nil,
			[]Access{acc("repository", "a", "pull", "*"), acc("registry", "catalog", "*")},
			[]Access{acc("repository", "a"), acc("registry", "catalog")}},
		{"role without catalog", []role{{name: "puller", repositoryActions: []string{"pull"}}},
			[]Access{acc("repository", "a", "pull", "push", "*"), acc("registry", "catalog", "*")},
			[]Access{acc("repository", "a", "pull"), acc("registry", "catalog")}},
		{"roles add up", []role{{repositoryActions: []string{"pull"}}, {repositoryActions: []string{"delete"}}},
			[]Access{acc("repository", "a", "pull", "push", "delete")},
			[]Access{acc("repository", "a", "pull", "delete")}},
		{"nothing requested", admin, nil, []Access{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := grant(tt.roles, tt.requested)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("grant = %#v\nwant    %#v", got, tt.want)
			}
			for _, a := range got {
				if a.Actions == nil {
					t.Fatalf("entry %#v has nil Actions; Docker expects []", a)
				}
			}
		})
	}
}

func TestAuthorize_Principals(t *testing.T) {
	store, clock, s, admin, _ := newAdmin(t)
	ctx := context.Background()
	requested := []Access{acc("repository", "a", "pull", "push"), acc("registry", "catalog", "*")}
	all := []Access{acc("repository", "a", "pull", "push"), acc("registry", "catalog", "*")}
	none := []Access{acc("repository", "a"), acc("registry", "catalog")}

	// A second Service over the same store has not seen the admin yet and
	// must resolve it from the store.
	fresh := newService(t, store, clock)

	tests := []struct {
		name string
		s    *Service
		p    Principal
		want []Access
	}{
		{"admin", s, admin, all},
		{"admin, fresh process", fresh, admin, all},
		{"admin name with another id", s, Principal{ID: "00000000-0000-0000-0000-000000000001", Kind: KindUser, Name: AdminName}, none},
		// Roles follow the object id, as in Azure; registry-bound
		// principals never hold roles, whatever their id.
		{"admin id, registry-bound", s, Principal{ID: admin.ID, Kind: KindUser, Name: AdminName, Registry: "moat"}, none},
		{"empty principal", s, Principal{}, none},
		{"admin without id", fresh, Principal{Kind: KindUser, Name: AdminName}, none},
		{"unknown user", s, Principal{ID: "x", Kind: KindUser, Name: "alice"}, none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, reg := range []string{"moat", "other", ""} {
				got, err := tt.s.Authorize(ctx, tt.p, reg, requested)
				if err != nil {
					t.Fatalf("Authorize: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Authorize(%+v, %q) = %#v, want %#v", tt.p, reg, got, tt.want)
				}
			}
		})
	}
}

func TestAuthorize_NoAdminYet(t *testing.T) {
	s := newService(t, openStore(t), newTestClock())
	got, err := s.Authorize(context.Background(), Principal{ID: "id", Kind: KindUser, Name: AdminName}, "moat",
		[]Access{acc("repository", "a", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Access{acc("repository", "a")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Authorize before the admin exists = %#v, want %#v", got, want)
	}
}
