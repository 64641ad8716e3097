package main

import (
	"context"
	"errors"
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
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPrincipalsEndToEnd: the admin makes a service principal with `moat ad
// sp create-for-rbac --role AcrPush`, which then gets tokens with
// azidentity's client-secret credential, is refused registry reads its role
// lacks, pushes with Basic app id and secret, and loses access with its old
// secret on `credential reset`; a user made with `moat ad user create` logs
// in with `moat login` until deleted.
func TestPrincipalsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "principals-secret-1"
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
	poller, err := registries.BeginCreate(ctx, "team", "spreg01", armcontainerregistry.Registry{
		Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	caFile := filepath.Join(dataDir, "ca.pem")
	cfg := filepath.Join(t.TempDir(), "cfg")
	if r := cli(t, cfg, []string{"MOAT_PASSWORD=" + password}, "", "login", "--server", m.url, "--ca-file", caFile, "-u", "admin"); r.code != 0 {
		t.Fatalf("login: %s", r.stderr)
	}
	cliFails(t, cfg, 1, "moat: RoleDefinitionDoesNotExist: ", "ad", "sp", "create-for-rbac", "-n", "bad", "--role", "AcrPusher", "--scopes", *reg.ID)
	cliFails(t, cfg, 2, "moat: --role and --scopes go together", "ad", "sp", "create-for-rbac", "-n", "bad", "--role", "AcrPush")
	if out := cliOK(t, cfg, "ad", "sp", "list", "-o", "json"); strings.Contains(out, `"bad"`) {
		t.Fatalf("a refused create-for-rbac left a principal: %s", out)
	}

	created := cliJSON(t, cliOK(t, cfg, "ad", "sp", "create-for-rbac", "-n", "ci", "--role", "AcrPush", "--scopes", *reg.ID, "-o", "json"))
	appID, _ := created["appId"].(string)
	secret, _ := created["password"].(string)
	tenant, _ := created["tenant"].(string)
	if appID == "" || secret == "" || tenant == "" || created["displayName"] != "ci" || len(created) != 4 {
		t.Fatalf("create-for-rbac printed %v", created)
	}

	// azidentity's client-secret credential, against moat as authority.
	spRegistries := func(secret string) *armcontainerregistry.RegistriesClient {
		cred, err := azidentity.NewClientSecretCredential(tenant, appID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: m.opts, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := armcontainerregistry.NewRegistriesClient(sub, cred, armOpts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// AcrPush has no registries/read: the token is good, the read refused.
	_, err = spRegistries(secret).Get(ctx, "team", "spreg01", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "AuthorizationFailed" {
		t.Fatalf("AcrPush reading the registry: %v", err)
	}
	cliOK(t, cfg, "role", "assignment", "create", "--assignee", appID, "--role", "Reader", "--scope", *reg.ID)
	if got, err := spRegistries(secret).Get(ctx, "team", "spreg01", nil); err != nil || !strings.EqualFold(*got.ID, *reg.ID) {
		t.Fatalf("Reader reading the registry: %v", err)
	}

	// The data plane with Basic app id and secret.
	login := "spreg01.localhost:" + m.port
	push := func(tag, secret string) error {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(mustRef(t, login+"/ci:"+tag), img,
			remote.WithAuth(&authn.Basic{Username: appID, Password: secret}), remote.WithTransport(m.http.Transport))
	}
	if err := push("v1", secret); err != nil {
		t.Fatalf("push as the new service principal: %v", err)
	}

	// Reads never show a secret.
	if out := cliOK(t, cfg, "ad", "sp", "show", "--id", appID, "-o", "json"); strings.Contains(out, secret) || !strings.Contains(out, appID) {
		t.Fatalf("show: %s", out)
	}
	if out := cliOK(t, cfg, "ad", "sp", "list", "-o", "table"); !strings.Contains(out, appID) || !strings.Contains(out, "ci") {
		t.Fatalf("list:\n%s", out)
	}

	// credential reset: the old secret fails at once, the new one works.
	reset := cliJSON(t, cliOK(t, cfg, "ad", "sp", "credential", "reset", "--id", appID, "-o", "json"))
	newSecret, _ := reset["password"].(string)
	if newSecret == "" || newSecret == secret || reset["appId"] != appID {
		t.Fatalf("reset printed %v", reset)
	}
	if err := push("v2", secret); err == nil {
		t.Fatal("the old secret pushes after a reset")
	}
	if _, err := spRegistries(secret).Get(ctx, "team", "spreg01", nil); err == nil {
		t.Fatal("the old secret gets a management token after a reset")
	}
	if err := push("v2", newSecret); err != nil {
		t.Fatalf("push with the new secret: %v", err)
	}

	spCfg := filepath.Join(t.TempDir(), "sp")
	if r := cli(t, spCfg, []string{"MOAT_PASSWORD=" + newSecret}, "", "login", "--server", m.url, "--ca-file", caFile, "--service-principal", "-u", appID, "--tenant", tenant); r.code != 0 {
		t.Fatalf("moat login as the service principal: %s", r.stderr)
	}

	// Deleting the principal: its secret and its role assignments go.
	cliOK(t, cfg, "ad", "sp", "delete", "--id", appID)
	if err := push("v3", newSecret); err == nil {
		t.Fatal("a deleted service principal pushes")
	}
	if out := cliOK(t, cfg, "role", "assignment", "list", "--scope", *reg.ID, "-o", "json"); strings.Contains(out, appID) {
		t.Fatalf("assignments of the deleted principal remain: %s", out)
	}
	cliFails(t, cfg, 1, "moat: PrincipalNotFound: ", "ad", "sp", "show", "--id", appID)

	// Users.
	cliFails(t, cfg, 1, "moat: PasswordPolicyViolation: ", "ad", "user", "create", "--user-principal-name", "dev@moat", "--password", "short")
	u := cliJSON(t, cliOK(t, cfg, "ad", "user", "create", "--user-principal-name", "dev@moat", "--password", "dev-password-123", "--display-name", "Dev", "-o", "json"))
	if u["userPrincipalName"] != "dev@moat" || u["displayName"] != "Dev" || u["password"] != nil {
		t.Fatalf("user create printed %v", u)
	}
	cliFails(t, cfg, 1, "moat: PrincipalAlreadyExists: ", "ad", "user", "create", "--user-principal-name", "dev@moat", "--password", "dev-password-123")
	devCfg := filepath.Join(t.TempDir(), "dev")
	loginAs := func(pw string) cliRun {
		return cli(t, devCfg, []string{"MOAT_PASSWORD=" + pw}, "", "login", "--server", m.url, "--ca-file", caFile, "-u", "dev@moat")
	}
	if r := loginAs("dev-password-123"); r.code != 0 {
		t.Fatalf("login as the new user: %s", r.stderr)
	}
	cliOK(t, cfg, "ad", "user", "update", "--id", "dev@moat", "--password", "dev-password-456")
	if r := loginAs("dev-password-123"); r.code == 0 {
		t.Fatal("the old password logs in after update")
	}
	if r := loginAs("dev-password-456"); r.code != 0 {
		t.Fatalf("login with the new password: %s", r.stderr)
	}
	if out := cliOK(t, cfg, "ad", "user", "list", "-o", "tsv"); !strings.Contains(out, "dev@moat") || !strings.Contains(out, "admin") {
		t.Fatalf("user list: %s", out)
	}
	cliFails(t, cfg, 1, "moat: PrincipalProtected: ", "ad", "user", "delete", "--id", "admin")
	cliOK(t, cfg, "ad", "user", "delete", "--id", "dev@moat")
	if r := loginAs("dev-password-456"); r.code == 0 {
		t.Fatal("a deleted user logs in")
	}
}
