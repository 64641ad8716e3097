package identity

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestDefenderScanner: created once with its secret handed to save, it
// gets Entra tokens through azidentity's ClientSecretCredential with the
// well-known client id, and Authorize grants it pull and the catalog on any
// registry without a role assignment, nothing else.
func TestDefenderScanner(t *testing.T) {
	s, tenant, srv, _ := newEntraTLSServer(t)
	ctx := context.Background()
	var secret string
	created, err := s.EnsureDefenderScanner(ctx, func(v string) error { secret = v; return nil })
	if err != nil || !created || secret == "" {
		t.Fatalf("EnsureDefenderScanner = %v, %v (secret %q)", created, err, secret)
	}
	again, err := s.EnsureDefenderScanner(ctx, func(string) error { t.Error("save called for an existing scanner"); return nil })
	if err != nil || again {
		t.Fatalf("second EnsureDefenderScanner = %v, %v", again, err)
	}

	cred, err := azidentity.NewClientSecretCredential(tenant, DefenderScannerAppID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: sdkClientOptions(srv), DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://containerregistry.azure.net/.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	p, err := s.VerifyEntraToken(ctx, tok.Token, AudienceContainerRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if is, err := s.IsDefenderScanner(ctx, p); err != nil || !is {
		t.Fatalf("IsDefenderScanner(%+v) = %v, %v", p, is, err)
	}
	got, err := s.Authorize(ctx, p, "anyreg", []Access{
		{Type: TypeRepository, Name: "app", Actions: []string{ActionPull, ActionPush, ActionDelete, ActionAll}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{ActionAll}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		{Type: TypeRepository, Name: "app", Actions: []string{ActionPull}},
		{Type: TypeRegistry, Name: CatalogName, Actions: []string{ActionAll}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Authorize = %+v, want %+v", got, want)
	}

	// A principal value that only claims the app id is not the scanner, and
	// gets nothing.
	fake := Principal{ID: "11111111-2222-4333-8444-555555555555", Kind: KindServicePrincipal, Name: DefenderScannerAppID}
	if is, _ := s.IsDefenderScanner(ctx, fake); is {
		t.Error("a principal with another object id is taken for the scanner")
	}
	got, err = s.Authorize(ctx, fake, "anyreg", []Access{{Type: TypeRepository, Name: "app", Actions: []string{ActionPull}}})
	if err != nil || len(got[0].Actions) != 0 {
		t.Errorf("fake scanner granted %+v, %v", got, err)
	}
}

// TestDefenderScanner_SaveFailureStoresNothing: a secret that could not be
// saved never becomes the scanner's only secret.
func TestDefenderScanner_SaveFailureStoresNothing(t *testing.T) {
	_, _, s, _, _ := newAdmin(t)
	ctx := context.Background()
	boom := errors.New("disk full")
	if _, err := s.EnsureDefenderScanner(ctx, func(string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("EnsureDefenderScanner = %v, want the save error", err)
	}
	if _, err := s.GetServicePrincipal(ctx, DefenderScannerAppID); !errors.Is(err, ErrServicePrincipalNotFound) {
		t.Errorf("scanner stored although its secret was not saved: %v", err)
	}
}
