package identity

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/scopemap"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const tokenRegID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/"

// tokenFixture stores registries and tokens the way internal/arm does.
type tokenFixture struct {
	t     *testing.T
	store meta.Store
}

func (f tokenFixture) registry(name string) {
	f.t.Helper()
	if _, err := f.store.CreateRegistry(context.Background(), meta.Registry{Name: name, ResourceID: tokenRegID + name, Location: "l", SKU: "Basic", Properties: []byte("{}")}); err != nil {
		f.t.Fatal(err)
	}
}

func (f tokenFixture) scopeMap(registry, name string, actions ...string) string {
	f.t.Helper()
	id := scopemap.ScopeMapID(tokenRegID+registry, name)
	b, _ := json.Marshal(scopemap.ScopeMap{Actions: actions})
	if _, err := f.store.PutResource(context.Background(), meta.Resource{ID: id, Type: scopemap.ScopeMapResourceType, Name: name, Properties: b}); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// token stores a token whose password1 is pw (expiring at exp when set).
func (f tokenFixture) token(registry, name, scopeMapID, status, pw string, exp *time.Time) scopemap.Token {
	f.t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		f.t.Fatal(err)
	}
	tok := scopemap.Token{PrincipalID: "pid-" + name, ScopeMapID: scopeMapID, Status: status,
		Passwords: []scopemap.Password{{Name: scopemap.Password1, Hash: h, Expiry: exp}}}
	b, _ := json.Marshal(tok)
	if _, err := f.store.PutResource(context.Background(), meta.Resource{ID: scopemap.TokenID(tokenRegID+registry, name), Type: scopemap.TokenResourceType, Name: name, Properties: b}); err != nil {
		f.t.Fatal(err)
	}
	return tok
}

func TestRepoToken_AuthenticateAndAuthorize(t *testing.T) {
	store := openStore(t)
	clock := newTestClock()
	s := newService(t, store, clock)
	ctx := context.Background()
	f := tokenFixture{t, store}
	f.registry("rega1")
	f.registry("regb1")
	sm := f.scopeMap("rega1", "hello-rw", "repositories/samples/hello/content/read", "repositories/samples/hello/content/write")
	f.token("rega1", "ci-token", sm, scopemap.StatusEnabled, "pw-1", nil)
	soon := clock.Now().Add(time.Hour)
	f.token("rega1", "short-token", scopemap.ScopeMapID(tokenRegID+"rega1", "_repositories_pull"), scopemap.StatusEnabled, "pw-2", &soon)
	f.token("rega1", "off-token", sm, scopemap.StatusDisabled, "pw-3", nil)

	p, err := s.AuthenticateRegistry(ctx, "rega1", "ci-token", "pw-1")
	if err != nil || p.Kind != KindRepoToken || p.Name != "ci-token" || p.Registry != "rega1" || p.ID != "pid-ci-token" {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	req := []Access{
		{Type: TypeRepository, Name: "samples/hello", Actions: []string{ActionPull, ActionPush, ActionDelete}},
		{Type: TypeRepository, Name: "samples/other", Actions: []string{ActionPull}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{ActionAll}},
	}
	got, err := s.Authorize(ctx, p, "rega1", req)
	want := []Access{
		{Type: TypeRepository, Name: "samples/hello", Actions: []string{ActionPull, ActionPush}},
		{Type: TypeRepository, Name: "samples/other", Actions: []string{}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("authorize: %+v %v", got, err)
	}
	// Bound to its registry: registry B neither authenticates nor authorizes it.
	if _, err := s.AuthenticateRegistry(ctx, "regb1", "ci-token", "pw-1"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("token on another registry: %v", err)
	}
	got, _ = s.Authorize(ctx, p, "regb1", req[:1])
	if len(got[0].Actions) != 0 {
		t.Fatalf("token authorized on another registry: %+v", got)
	}
	if _, err := s.AuthenticateRegistry(ctx, "rega1", "ci-token", "wrong"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.AuthenticateRegistry(ctx, "rega1", "off-token", "pw-3"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("disabled token: %v", err)
	}
	// The built-in pull scope map, until the password expires.
	p2, err := s.AuthenticateRegistry(ctx, "rega1", "short-token", "pw-2")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Authorize(ctx, p2, "rega1", []Access{{Type: TypeRepository, Name: "any/repo", Actions: []string{ActionPush, ActionPull}}})
	if !reflect.DeepEqual(got[0].Actions, []string{ActionPull}) {
		t.Fatalf("built-in pull: %+v", got)
	}
	clock.Advance(time.Hour)
	if _, err := s.AuthenticateRegistry(ctx, "rega1", "short-token", "pw-2"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired password: %v", err)
	}

	// Changes apply to the next request: edit the scope map, then disable.
	f.scopeMap("rega1", "hello-rw", "repositories/samples/*/content/read")
	got, _ = s.Authorize(ctx, p, "rega1", req[:2])
	if !reflect.DeepEqual(got[0].Actions, []string{ActionPull}) || !reflect.DeepEqual(got[1].Actions, []string{ActionPull}) {
		t.Fatalf("after the scope-map edit: %+v", got)
	}
	f.token("rega1", "ci-token", sm, scopemap.StatusDisabled, "pw-1", nil)
	if got, _ = s.Authorize(ctx, p, "rega1", req[:1]); len(got[0].Actions) != 0 {
		t.Fatalf("disabled token still authorized (a refresh token must stop working): %+v", got)
	}
	if _, err := s.AuthenticateRegistry(ctx, "rega1", "ci-token", "pw-1"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("disabled token authenticated: %v", err)
	}
	// Deleted and created again: the old principal gets nothing.
	if err := store.DeleteResource(ctx, scopemap.TokenID(tokenRegID+"rega1", "ci-token")); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Authorize(ctx, p, "rega1", req[:1]); len(got[0].Actions) != 0 {
		t.Fatalf("deleted token authorized: %+v", got)
	}
	// A principal that only claims to be a token of the registry gets nothing.
	forged := Principal{ID: "x", Kind: KindRepoToken, Name: "short-token", Registry: "rega1"}
	if got, _ = s.Authorize(ctx, forged, "rega1", req[:1]); len(got[0].Actions) != 0 {
		t.Fatalf("forged principal authorized: %+v", got)
	}
}

// TestGrantRepoToken is the table of the intersection of a requested scope
// with a scope map's grants.
func TestGrantRepoToken(t *testing.T) {
	rules, err := scopemap.ParseActions([]string{"repositories/a/content/read", "repositories/a/content/delete", "repositories/team/*/content/write",
		"repositories/team/*/content/read", "repositories/m/metadata/read"})
	if err != nil {
		t.Fatal(err)
	}
	acc := func(typ, name string, acts ...string) Access {
		if acts == nil {
			acts = []string{}
		}
		return Access{Type: typ, Name: name, Actions: acts}
	}
	cases := []struct {
		name      string
		rules     []scopemap.Rule
		req, want []Access
	}{
		{"pull granted", rules, []Access{acc("repository", "a", "pull")}, []Access{acc("repository", "a", "pull")}},
		{"push refused", rules, []Access{acc("repository", "a", "pull", "push")}, []Access{acc("repository", "a", "pull")}},
		{"delete", rules, []Access{acc("repository", "a", "delete")}, []Access{acc("repository", "a", "delete")}},
		{"wildcard push", rules, []Access{acc("repository", "team/x", "push", "pull")}, []Access{acc("repository", "team/x", "push", "pull")}},
		{"metadata_read", rules, []Access{acc("repository", "m", "metadata_read", "pull")}, []Access{acc("repository", "m", "metadata_read")}},
		{"star never granted", rules, []Access{acc("repository", "a", "*")}, []Access{acc("repository", "a")}},
		{"duplicates once", rules, []Access{acc("repository", "a", "pull", "pull")}, []Access{acc("repository", "a", "pull")}},
		{"catalog never", rules, []Access{acc("registry", "catalog", "*")}, []Access{acc("registry", "catalog")}},
		{"resource class", rules, []Access{acc("repository(plugin)", "a", "pull")}, []Access{acc("repository(plugin)", "a")}},
		{"no rules", nil, []Access{acc("repository", "a", "pull")}, []Access{acc("repository", "a")}},
		{"nothing requested", rules, nil, []Access{}},
	}
	for _, c := range cases {
		if got := grantRepoToken(c.rules, c.req); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
