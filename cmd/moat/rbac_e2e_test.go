package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// TestRoleMatrixEndToEnd is ACR's role table through a real `moat serve`:
// for each built-in role, a service principal assigned that role on one
// registry (with armauthorization, as the admin) pushes, pulls, deletes and
// lists the catalog with go-containerregistry (Basic credentials: app id and
// secret, through the token flow) and manages the registry with
// armcontainerregistry (its own client-secret credential). Each is allowed
// exactly where the table says; a removed role is refused at the next token
// request; the CLI manages assignments.
func TestRoleMatrixEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "rbac-secret-1"
	dataDir := filepath.Join(t.TempDir(), "data")
	m := startManagedMoatIn(t, password, dataDir)
	ctx := context.Background()
	const sub = "00000000-0000-0000-0000-000000000000"
	m.putGroup(t, "team")

	armOpts := &azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true}
	registries, err := armcontainerregistry.NewRegistriesClient(sub, m.cred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	poller, err := registries.BeginCreate(ctx, "team", "rolesreg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	authz, err := armauthorization.NewClientFactory(sub, m.cred, armOpts)
	if err != nil {
		t.Fatal(err)
	}
	assignments := authz.NewRoleAssignmentsClient()

	// Service principals are made in the server's store (see startManagedMoatIn).
	store, err := sqlite.Open(ctx, filepath.Join(dataDir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ids, err := identity.New(ctx, store, identity.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}

	login := "rolesreg01.localhost:" + m.port
	admin := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(m.http.Transport)}
	pushAs := func(ref string, opts []remote.Option) error {
		r, err := name.ParseReference(login + "/" + ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(r, img, opts...)
	}
	if err := pushAs("base:v1", admin); err != nil {
		t.Fatalf("admin push: %v", err)
	}

	type row struct{ push, pull, del, catalog, manage bool }
	matrix := []struct {
		role string
		want row
	}{
		{"Owner", row{true, true, true, true, true}},
		{"Contributor", row{true, true, true, true, true}},
		{"Reader", row{false, true, false, true, false}},
		{"AcrPush", row{true, true, false, true, false}},
		{"AcrPull", row{false, true, false, true, false}},
		{"AcrDelete", row{false, false, true, false, false}},
		{"AcrImageSigner", row{false, false, false, false, false}},
		{"Container Registry Data Importer and Data Reader", row{false, true, false, true, false}},
	}
	var pushSP identity.ServicePrincipal
	var pushSecret, pushAssignment string
	for i, tc := range matrix {
		def, ok := rbac.Lookup(tc.role)
		if !ok {
			t.Fatalf("no role %s", tc.role)
		}
		sp, secret, err := ids.CreateServicePrincipal(ctx, "matrix-"+def.ID[:8])
		if err != nil {
			t.Fatal(err)
		}
		assignmentName := "7e000000-0000-0000-0000-00000000000" + string(rune('1'+i))
		if _, err := assignments.Create(ctx, *reg.ID, assignmentName, armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr(rbac.DefinitionID("/subscriptions/"+sub, def.ID)), PrincipalID: to.Ptr(sp.ObjectID),
				PrincipalType: to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil); err != nil {
			t.Fatalf("%s: assigning: %v", tc.role, err)
		}
		if tc.role == "AcrPush" {
			pushSP, pushSecret, pushAssignment = sp, secret, assignmentName
		}
		as := []remote.Option{remote.WithAuth(&authn.Basic{Username: sp.AppID, Password: secret}), remote.WithTransport(m.http.Transport)}

		var got row
		got.push = pushAs("pushed-"+def.ID[:8]+":v1", as) == nil
		base, _ := name.ParseReference(login + "/base:v1")
		_, err = remote.Head(base, as...)
		got.pull = err == nil
		// Each role deletes an image of its own, pushed by the admin.
		victim := "victim-" + def.ID[:8] + ":v1"
		if err := pushAs(victim, admin); err != nil {
			t.Fatal(err)
		}
		vref, _ := name.ParseReference(login + "/" + victim)
		desc, err := remote.Head(vref, admin...)
		if err != nil {
			t.Fatal(err)
		}
		dref, _ := name.ParseReference(login + "/" + strings.Split(victim, ":")[0] + "@" + desc.Digest.String())
		got.del = remote.Delete(dref, as...) == nil
		regName, _ := name.NewRegistry(login)
		_, err = remote.Catalog(ctx, regName, as...)
		got.catalog = err == nil

		cred, err := azidentity.NewClientSecretCredential("organizations", sp.AppID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: m.opts, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		spRegistries, err := armcontainerregistry.NewRegistriesClient(sub, cred, armOpts)
		if err != nil {
			t.Fatal(err)
		}
		up, err := spRegistries.BeginUpdate(ctx, "team", "rolesreg01", armcontainerregistry.RegistryUpdateParameters{
			Tags: map[string]*string{"touchedBy": to.Ptr(def.ID[:8])}}, nil)
		if err == nil {
			_, err = up.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
		}
		got.manage = err == nil
		var re *azcore.ResponseError
		if err != nil && (!errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "AuthorizationFailed" ||
			!strings.Contains(err.Error(), sp.ObjectID) || !strings.Contains(err.Error(), "Microsoft.ContainerRegistry/registries/write")) {
			t.Errorf("%s: refused management is not ARM's AuthorizationFailed naming the caller and action: %v", tc.role, err)
		}
		if got != tc.want {
			t.Errorf("%s: push, pull, delete, catalog, manage = %+v, want %+v", tc.role, got, tc.want)
		}
	}

	// A removed role is refused from the next token request on.
	if _, err := assignments.Delete(ctx, *reg.ID, pushAssignment, nil); err != nil {
		t.Fatal(err)
	}
	as := []remote.Option{remote.WithAuth(&authn.Basic{Username: pushSP.AppID, Password: pushSecret}), remote.WithTransport(m.http.Transport)}
	if err := pushAs("after-removal:v1", as); err == nil {
		t.Fatal("push after the AcrPush assignment was removed succeeded")
	}

	// The CLI: the admin gives the AcrPush principal AcrPull back by app id
	// and role name, lists and deletes it.
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", m.url, "--ca-file", filepath.Join(dataDir, "ca.pem"), "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	created := cliJSON(t, cliOK(t, cfg, "role", "assignment", "create", "--assignee", pushSP.AppID, "--role", "acrpull", "--scope", *reg.ID, "-o", "json"))
	if created["principalId"] != pushSP.ObjectID || created["roleDefinitionName"] != "AcrPull" || !strings.EqualFold(created["scope"].(string), *reg.ID) {
		t.Fatalf("created %v", created)
	}
	if err := pushAs("after-removal:v1", as); err == nil {
		t.Fatal("AcrPull lets the principal push")
	}
	if _, err := remote.Head(mustRef(t, login+"/base:v1"), as...); err != nil {
		t.Fatalf("pull with the AcrPull the CLI assigned: %v", err)
	}
	table := cliOK(t, cfg, "role", "assignment", "list", "--scope", *reg.ID, "--assignee", pushSP.AppID, "-o", "table")
	if !strings.Contains(table, "AcrPull") || strings.Count(strings.TrimSpace(table), "\n") != 2 {
		t.Fatalf("list:\n%s", table)
	}
	cliFails(t, cfg, 1, "moat: RoleDefinitionDoesNotExist: ", "role", "assignment", "create", "--assignee", pushSP.AppID, "--role", "AcrPuller", "--scope", *reg.ID)
	cliFails(t, cfg, 1, "moat: PrincipalNotFound: ", "role", "assignment", "create", "--assignee", "nobody", "--role", "AcrPull", "--scope", *reg.ID)
	cliFails(t, cfg, 1, "moat: RoleAssignmentExists: ", "role", "assignment", "create", "--assignee", pushSP.AppID, "--role", "AcrPull", "--scope", *reg.ID)
	cliOK(t, cfg, "role", "assignment", "delete", "--assignee", pushSP.AppID, "--role", "AcrPull", "--scope", *reg.ID)
	if _, err := remote.Head(mustRef(t, login+"/base:v1"), as...); err == nil {
		t.Fatal("pull after the CLI deleted the assignment succeeded")
	}
	defs := cliOK(t, cfg, "role", "definition", "list", "--name", "AcrPush", "-o", "json")
	if !strings.Contains(defs, rbac.AcrPushID) || !strings.Contains(defs, rbac.ActionPush) {
		t.Fatalf("definition list: %s", defs)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
