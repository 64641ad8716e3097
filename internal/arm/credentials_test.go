package arm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"

	"github.com/moat-registry/moat/internal/identity"
)

func passwordsOf(t *testing.T, body map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	list, _ := body["passwords"].([]any)
	for _, p := range list {
		m, _ := p.(map[string]any)
		name, _ := m["name"].(string)
		value, _ := m["value"].(string)
		out[name] = value
	}
	if len(out) != 2 || out["password"] == "" || out["password2"] == "" {
		t.Fatalf("passwords in %v", body)
	}
	return out
}

func TestCredentials_HTTP(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("CredReg", "Standard")
	list := regPath + "CredReg/listCredentials"
	regen := regPath + "CredReg/regenerateCredential"

	// Disabled (the default): ACR's refusal.
	e.want(e.do("POST", list, newest, ""), 400, "UnAuthorizedForCredentialOperations", "admin user is disabled")
	e.want(e.do("POST", regen, newest, `{"name":"password"}`), 400, "UnAuthorizedForCredentialOperations", "admin user is disabled")

	e.want(e.do("PATCH", regPath+"CredReg", newest, `{"properties":{"adminUserEnabled":true}}`), 200, "", "")
	r := e.do("POST", list, newest, "")
	e.want(r, 200, "", "")
	if r.body["username"] != "CredReg" {
		t.Errorf("username = %v, want the registry's name as created", r.body["username"])
	}
	first := passwordsOf(t, r.body)

	// The data plane's check accepts them.
	id, err := identity.New(context.Background(), e.store, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.AuthenticateRegistry(context.Background(), "credreg", "CredReg", first["password2"]); err != nil {
		t.Errorf("listed password2 does not authenticate: %v", err)
	}

	r = e.do("POST", regen, newest, `{"name":"password2"}`)
	e.want(r, 200, "", "")
	second := passwordsOf(t, r.body)
	if second["password"] != first["password"] || second["password2"] == first["password2"] {
		t.Errorf("regenerating password2: %v → %v", first, second)
	}
	if _, err := id.AuthenticateRegistry(context.Background(), "credreg", "CredReg", first["password2"]); !errors.Is(err, identity.ErrUnauthenticated) {
		t.Errorf("old password2 still authenticates: %v", err)
	}

	// Bad bodies and routes.
	e.want(e.do("POST", regen, newest, `{"name":"password3"}`), 400, "InvalidRequestContent", "password2")
	e.want(e.do("POST", regen, newest, `{}`), 400, "InvalidRequestContent", "name")
	e.want(e.do("POST", regen, newest, ``), 400, "InvalidRequestContent", "empty")
	e.want(e.do("POST", regen, newest, `{"name":`), 400, "InvalidRequestContent", "malformed")
	e.want(e.do("POST", regen, newest, `{"name":3}`), 400, "InvalidRequestContent", "")
	e.want(e.do("GET", list, newest, ""), 405, "HttpMethodNotSupported", "POST")
	e.want(e.do("POST", list, "", ""), 400, "MissingApiVersionParameter", "")
	e.want(e.do("POST", regPath+"nosuch/listCredentials", newest, ""), 404, "ResourceNotFound", "nosuch")
	e.want(e.do("POST", "/subscriptions/"+sub+"/resourceGroups/other/providers/Microsoft.ContainerRegistry/registries/CredReg/listCredentials", newest, ""),
		404, "ResourceNotFound", "")
}

func TestParseCredentialsRoute(t *testing.T) {
	for path, want := range map[string]string{
		regPath + "r/listCredentials":       extListCredentials,
		regPath + "r/LISTCREDENTIALS":       extListCredentials,
		regPath + "r/regenerateCredential":  extRegenerateCredential,
		regPath + "r/regenerateCredentials": "",
		regPath + "r/listCredentials/x":     "",
		regPath + "/listCredentials":        "",
		regPath + "r":                       "",
		"/subscriptions/s/resourceGroups/rg/providers/Other.NS/registries/r/listCredentials": "",
	} {
		if _, got := parseCredentialsRoute(path); got != want {
			t.Errorf("parseCredentialsRoute(%q) = %q, want %q", path, got, want)
		}
	}
}

func FuzzParseCredentialsRoute(f *testing.F) {
	for _, s := range []string{regPath + "r/listCredentials", regPath + "r/regenerateCredential", "/", "//", regPath} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, action := parseCredentialsRoute(path)
		if action != "" && (rt.name == "" || rt.sub == "" || rt.rg == "") {
			t.Fatalf("%q: action %q with an empty part in %+v", path, action, rt)
		}
	})
}

// TestCredentials_SDK drives listCredentials and regenerateCredential with
// armcontainerregistry.
func TestCredentials_SDK(t *testing.T) {
	e := newEnv(t)
	e.group()
	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close)
	client, err := armcontainerregistry.NewRegistriesClient(sub, fakeCredential{}, &azarm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport: srv.Client(),
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.invalid/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"},
				},
			},
		},
		DisableRPRegistration: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	poller, err := client.BeginCreate(ctx, "rg1", "sdkcred", armcontainerregistry.Registry{
		Location:   to.Ptr("westeurope"),
		SKU:        &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNameStandard)},
		Properties: &armcontainerregistry.RegistryProperties{AdminUserEnabled: to.Ptr(true)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	creds, err := client.ListCredentials(ctx, "rg1", "sdkcred", nil)
	if err != nil {
		t.Fatalf("ListCredentials: %v", err)
	}
	if *creds.Username != "sdkcred" || len(creds.Passwords) != 2 || *creds.Passwords[0].Name != armcontainerregistry.PasswordNamePassword {
		t.Fatalf("credentials %+v", creds)
	}
	regen, err := client.RegenerateCredential(ctx, "rg1", "sdkcred", armcontainerregistry.RegenerateCredentialParameters{
		Name: to.Ptr(armcontainerregistry.PasswordNamePassword),
	}, nil)
	if err != nil {
		t.Fatalf("RegenerateCredential: %v", err)
	}
	if *regen.Passwords[0].Value == *creds.Passwords[0].Value || *regen.Passwords[1].Value != *creds.Passwords[1].Value {
		t.Errorf("regenerate password: %+v", regen)
	}

	// Disabled: the SDK surfaces ACR's error code.
	up, err := client.BeginUpdate(ctx, "rg1", "sdkcred", armcontainerregistry.RegistryUpdateParameters{
		Properties: &armcontainerregistry.RegistryPropertiesUpdateParameters{AdminUserEnabled: to.Ptr(false)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	_, err = client.ListCredentials(ctx, "rg1", "sdkcred", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "UnAuthorizedForCredentialOperations" {
		t.Fatalf("ListCredentials while disabled: %v", err)
	}
}
