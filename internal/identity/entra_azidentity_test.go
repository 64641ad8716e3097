package identity

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// These tests run the real Azure SDK credentials against EntraHandler over
// TLS, as a user of moat configures them: AuthorityHost = moat's URL and
// DisableInstanceDiscovery.

const managementScope = "https://management.core.windows.net//.default"

func newEntraTLSServer(t *testing.T) (*Service, string, *httptest.Server, string) {
	t.Helper()
	_, _, s, _, adminPW := newAdmin(t)
	srv := httptest.NewTLSServer(s.EntraHandler())
	t.Cleanup(srv.Close)
	tenant, err := s.TenantID(context.Background())
	if err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	return s, tenant, srv, adminPW
}

func sdkClientOptions(srv *httptest.Server) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL + "/"},
		Transport: srv.Client(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

func TestAzidentity_ClientSecretCredential(t *testing.T) {
	s, tenant, srv, _ := newEntraTLSServer(t)
	ctx := context.Background()
	sp, secret, err := s.CreateServicePrincipal(ctx, "ci-deployer")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	cred, err := azidentity.NewClientSecretCredential(tenant, sp.AppID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            sdkClientOptions(srv),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if d := time.Until(tok.ExpiresOn); d < 50*time.Minute || d > 70*time.Minute {
		t.Errorf("ExpiresOn is %s away, want about an hour", d)
	}
	p, err := s.VerifyManagementToken(ctx, tok.Token)
	if err != nil {
		t.Fatalf("VerifyManagementToken: %v", err)
	}
	if p.ID != sp.ObjectID || p.Kind != KindServicePrincipal || p.Name != sp.AppID {
		t.Errorf("principal = %+v, want the service principal %+v", p, sp)
	}

	// The other name of ARM works too, and a second request for the first
	// scope is answered from azidentity's cache with the same token.
	tok2, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		t.Fatalf("GetToken(management.azure.com): %v", err)
	}
	if _, err := s.VerifyManagementToken(ctx, tok2.Token); err != nil {
		t.Errorf("VerifyManagementToken(management.azure.com token): %v", err)
	}
	again, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	if err != nil || again.Token != tok.Token {
		t.Errorf("second GetToken = %v (same token %v), want the cached token", err, again.Token == tok.Token)
	}

	// "organizations" as the tenant is accepted as Entra does.
	orgCred, err := azidentity.NewClientSecretCredential("organizations", sp.AppID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            sdkClientOptions(srv),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewClientSecretCredential(organizations): %v", err)
	}
	if tok, err := orgCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}}); err != nil {
		t.Errorf("GetToken via organizations: %v", err)
	} else if _, err := s.VerifyManagementToken(ctx, tok.Token); err != nil {
		t.Errorf("VerifyManagementToken(organizations token): %v", err)
	}
}

func TestAzidentity_ClientSecretCredential_WrongSecret(t *testing.T) {
	s, tenant, srv, _ := newEntraTLSServer(t)
	ctx := context.Background()
	sp, _, err := s.CreateServicePrincipal(ctx, "ci-deployer")
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	cred, err := azidentity.NewClientSecretCredential(tenant, sp.AppID, "abc~wrong", &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            sdkClientOptions(srv),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewClientSecretCredential: %v", err)
	}
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) {
		t.Fatalf("GetToken error = %v, want an AuthenticationFailedError", err)
	}
	if afe.RawResponse == nil || afe.RawResponse.StatusCode != 401 {
		t.Errorf("raw response = %+v, want 401", afe.RawResponse)
	}
}

func TestAzidentity_UsernamePasswordCredential(t *testing.T) {
	s, tenant, srv, adminPW := newEntraTLSServer(t)
	ctx := context.Background()
	// The Azure CLI's public client id, as a user would pass it.
	const cliClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	//nolint:staticcheck // deprecated in azidentity, still used by clients moat must serve
	cred, err := azidentity.NewUsernamePasswordCredential(tenant, cliClientID, AdminName, adminPW, &azidentity.UsernamePasswordCredentialOptions{
		ClientOptions:            sdkClientOptions(srv),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewUsernamePasswordCredential: %v", err)
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	p, err := s.VerifyManagementToken(ctx, tok.Token)
	if err != nil {
		t.Fatalf("VerifyManagementToken: %v", err)
	}
	if p.Kind != KindUser || p.Name != AdminName {
		t.Errorf("principal = %+v, want the admin", p)
	}
	// MSAL built an account from the id token and client_info, so the next
	// request is served silently from its cache.
	again, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}})
	if err != nil || again.Token != tok.Token {
		t.Errorf("second GetToken = %v (same token %v), want the cached token", err, again.Token == tok.Token)
	}

	//nolint:staticcheck // see above
	bad, err := azidentity.NewUsernamePasswordCredential(tenant, cliClientID, AdminName, "wrong", &azidentity.UsernamePasswordCredentialOptions{
		ClientOptions:            sdkClientOptions(srv),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatalf("NewUsernamePasswordCredential: %v", err)
	}
	if _, err := bad.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{managementScope}}); err == nil {
		t.Error("GetToken with a wrong password succeeded")
	}
}
