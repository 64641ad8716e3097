package arm

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-registry/moat/internal/scopemap"
)

func newTokenEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.h.o.BcryptCost = bcrypt.MinCost
	e.group()
	e.registry("tkreg1", "Basic")
	return e
}

func TestScopeMaps_Lifecycle(t *testing.T) {
	e := newTokenEnv(t)
	sm := regPath + "tkreg1/scopeMaps/"

	// Built-ins exist in every registry (a Basic one too).
	r := e.do("GET", regPath+"tkreg1/scopeMaps", newest, "")
	e.want(r, 200, "", "")
	if v, _ := r.body["value"].([]any); len(v) != 5 || get(v[0].(map[string]any), "properties.type") != "SystemDefined" {
		t.Fatalf("built-ins: %s", r.raw)
	}
	r = e.do("GET", sm+"_REPOSITORIES_PULL", newest, "")
	e.want(r, 200, "", "")
	if r.body["name"] != "_repositories_pull" || len(get(r.body, "properties.actions").([]any)) != 1 {
		t.Fatalf("built-in pull: %s", r.raw)
	}

	r = e.do("PUT", sm+"MyScopeMap", newest, `{"properties":{"description":"d","actions":["repositories/samples/hello/content/read","repositories/samples/*/content/write","repositories/samples/hello/content/read"]}}`)
	e.want(r, 201, "", "")
	if get(r.body, "properties.type") != "UserDefined" || len(get(r.body, "properties.actions").([]any)) != 2 ||
		r.body["type"] != "Microsoft.ContainerRegistry/registries/scopeMaps" || get(r.body, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("created: %s", r.raw)
	}
	created := get(r.body, "properties.creationDate")
	e.mu.Lock()
	if len(e.changes) == 0 || e.changes[len(e.changes)-1] != "tkreg1" {
		t.Errorf("no change announced: %v", e.changes)
	}
	e.mu.Unlock()

	// PATCH keeps what it does not name.
	r = e.do("PATCH", sm+"myscopemap", newest, `{"properties":{"actions":["repositories/other/content/read"]}}`)
	e.want(r, 200, "", "")
	if get(r.body, "properties.description") != "d" || get(r.body, "properties.creationDate") != created || r.body["name"] != "MyScopeMap" {
		t.Fatalf("patched: %s", r.raw)
	}
	// PUT replaces.
	r = e.do("PUT", sm+"MyScopeMap", newest, `{"properties":{"actions":["repositories/other/content/read"]}}`)
	e.want(r, 200, "", "")
	if get(r.body, "properties.description") != nil {
		t.Fatalf("PUT kept the description: %s", r.raw)
	}
	r = e.do("GET", regPath+"tkreg1/scopeMaps", newest, "")
	if v, _ := r.body["value"].([]any); len(v) != 6 {
		t.Fatalf("list: %s", r.raw)
	}

	// In use by a token: not deletable.
	e.want(e.do("PUT", regPath+"tkreg1/tokens/MyToken", newest, `{"properties":{"scopeMapId":"`+regPath+`tkreg1/scopeMaps/MyScopeMap"}}`), 201, "", "")
	e.want(e.do("DELETE", sm+"MyScopeMap", newest, ""), 409, "ScopeMapInUse", "MyToken")
	e.want(e.do("DELETE", regPath+"tkreg1/tokens/MyToken", newest, ""), 200, "", "")
	e.want(e.do("DELETE", sm+"MyScopeMap", newest, ""), 200, "", "")
	e.want(e.do("DELETE", sm+"MyScopeMap", newest, ""), 204, "", "")
	e.want(e.do("GET", sm+"MyScopeMap", newest, ""), 404, "ResourceNotFound", "MyScopeMap")
	e.want(e.do("PATCH", sm+"MyScopeMap", newest, `{"properties":{}}`), 404, "ResourceNotFound", "")

	// Deleting the registry deletes its scope maps and tokens.
	e.want(e.do("PUT", sm+"keepme", newest, `{"properties":{"actions":["repositories/a/content/read"]}}`), 201, "", "")
	e.want(e.do("PUT", regPath+"tkreg1/tokens/tok01", newest, `{"properties":{"scopeMapId":"`+regPath+`tkreg1/scopeMaps/keepme"}}`), 201, "", "")
	e.want(e.do("DELETE", regPath+"tkreg1", newest, ""), 200, "", "")
	for _, typ := range []string{"Microsoft.ContainerRegistry/registries/scopeMaps", "Microsoft.ContainerRegistry/registries/tokens"} {
		if left, err := e.store.ListResources(t.Context(), "", typ); err != nil || len(left) != 0 {
			t.Fatalf("%s left after registry delete: %v %v", typ, left, err)
		}
	}
}

func TestScopeMaps_Validation(t *testing.T) {
	e := newTokenEnv(t)
	sm := regPath + "tkreg1/scopeMaps/"
	cases := []struct {
		name, path, body string
		status           int
		code, msg        string
	}{
		{"empty body", sm + "mymap1", ``, 400, "InvalidRequestContent", "empty"},
		{"not JSON", sm + "mymap1", `{`, 400, "InvalidRequestContent", ""},
		{"actions wrong type", sm + "mymap1", `{"properties":{"actions":"repositories/a/content/read"}}`, 400, "InvalidRequestContent", ""},
		{"no actions", sm + "mymap1", `{"properties":{"actions":[]}}`, 400, "InvalidParameter", "at least one action"},
		{"missing actions", sm + "mymap1", `{"properties":{"description":"x"}}`, 400, "InvalidParameter", "at least one action"},
		{"bad permission", sm + "mymap1", `{"properties":{"actions":["repositories/a/content/execute"]}}`, 400, "InvalidParameter", "content/execute"},
		{"wildcard in the middle", sm + "mymap1", `{"properties":{"actions":["repositories/a/*/b/content/read"]}}`, 400, "InvalidParameter", "wildcard"},
		{"upper-case repository", sm + "mymap1", `{"properties":{"actions":["repositories/Hello/content/read"]}}`, 400, "InvalidParameter", "not a valid repository name"},
		{"gateway", sm + "mymap1", `{"properties":{"actions":["gateway/edge/config/read"]}}`, 400, "InvalidParameter", "connected registry"},
		{"long description", sm + "mymap1", `{"properties":{"description":"` + strings.Repeat("x", 257) + `","actions":["repositories/a/content/read"]}}`, 400, "InvalidParameter", "description"},
		{"short name", sm + "abcd", `{"properties":{"actions":["repositories/a/content/read"]}}`, 400, "InvalidParameter", "5 to 50"},
		{"bad name", sm + "ab.cde", `{"properties":{"actions":["repositories/a/content/read"]}}`, 400, "InvalidParameter", "5 to 50"},
		{"change a built-in", sm + "_repositories_pull", `{"properties":{"actions":["repositories/a/content/read"]}}`, 400, "SystemDefinedScopeMapReadOnly", "cannot be changed"},
		{"no registry", regPath + "nosuch/scopeMaps/mymap1", `{"properties":{"actions":["repositories/a/content/read"]}}`, 404, "ResourceNotFound", "nosuch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.want(e.do("PUT", c.path, newest, c.body), c.status, c.code, c.msg)
		})
	}
	e.t = t
	// Re-deploying a built-in with its own content is accepted unchanged.
	r := e.do("PUT", sm+"_repositories_pull", newest, `{"properties":{"description":"Can pull any repository of the registry","actions":["repositories/*/content/read"]}}`)
	e.want(r, 200, "", "")
	e.want(e.do("DELETE", sm+"_repositories_admin", newest, ""), 400, "SystemDefinedScopeMapReadOnly", "cannot be deleted")
	e.want(e.do("POST", sm+"mymap1", newest, ""), 405, "HttpMethodNotSupported", "")
	e.want(e.do("GET", sm+"mymap1", "", ""), 400, "MissingApiVersionParameter", "")
}

func TestTokens_Validation(t *testing.T) {
	e := newTokenEnv(t)
	e.registry("tkreg2", "Basic")
	e.want(e.do("PUT", regPath+"tkreg2/scopeMaps/othermap", newest, `{"properties":{"actions":["repositories/a/content/read"]}}`), 201, "", "")
	tok := regPath + "tkreg1/tokens/"
	pull := regPath + "tkreg1/scopeMaps/_repositories_pull"
	cases := []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"no properties", "PUT", tok + "token1", `{}`, 400, "InvalidParameter", "properties"},
		{"no scope map", "PUT", tok + "token1", `{"properties":{}}`, 400, "InvalidParameter", "scopeMapId"},
		{"scope map of another registry", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + regPath + `tkreg2/scopeMaps/othermap"}}`, 400, "InvalidParameter", "not a scope map of registry 'tkreg1'"},
		{"scope map missing", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + regPath + `tkreg1/scopeMaps/nosuchmap"}}`, 400, "InvalidParameter", "does not exist"},
		{"scope map id garbage", "PUT", tok + "token1", `{"properties":{"scopeMapId":"nope"}}`, 400, "InvalidParameter", "not a scope map"},
		{"bad status", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + pull + `","status":"paused"}}`, 400, "InvalidParameter", "enabled or disabled"},
		{"password value", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + pull + `","credentials":{"passwords":[{"name":"password1","value":"mine"}]}}}`, 400, "InvalidParameter", "cannot be set"},
		{"password name", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + pull + `","credentials":{"passwords":[{"name":"password3"}]}}}`, 400, "InvalidParameter", "password1 or password2"},
		{"password twice", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + pull + `","credentials":{"passwords":[{"name":"password1"},{"name":"password1"}]}}}`, 400, "InvalidParameter", "twice"},
		{"past expiry", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + pull + `","credentials":{"passwords":[{"name":"password1","expiry":"2020-01-01T00:00:00Z"}]}}}`, 400, "InvalidParameter", "not in the future"},
		{"certificates", "PUT", tok + "token1", `{"properties":{"scopeMapId":"` + pull + `","credentials":{"certificates":[{"name":"certificate1"}]}}}`, 400, "InvalidParameter", "certificate"},
		{"bad name", "PUT", tok + "to", `{"properties":{"scopeMapId":"` + pull + `"}}`, 400, "InvalidParameter", "5 to 50"},
		{"patch missing", "PATCH", tok + "token1", `{"properties":{"status":"disabled"}}`, 404, "ResourceNotFound", "token1"},
		{"generate without token", "POST", regPath + "tkreg1/generateCredentials", `{}`, 400, "InvalidParameter", "tokenId is required"},
		{"generate other registry's token", "POST", regPath + "tkreg1/generateCredentials", `{"tokenId":"` + regPath + `tkreg2/tokens/token1"}`, 400, "InvalidParameter", "not a token of registry 'tkreg1'"},
		{"generate missing token", "POST", regPath + "tkreg1/generateCredentials", `{"tokenId":"` + tok + `token1"}`, 404, "ResourceNotFound", "token1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.want(e.do(c.method, c.path, newest, c.body), c.status, c.code, c.msg)
		})
	}
	e.t = t
	if left, err := e.store.ListResources(t.Context(), regPath+"tkreg1", scopemap.TokenResourceType); err != nil || len(left) != 0 {
		t.Fatalf("a refused write stored something: %v %v", left, err)
	}
	e.want(e.do("PUT", tok+"token1", newest, `{"properties":{"scopeMapId":"`+pull+`"}}`), 201, "", "")
	e.want(e.do("POST", regPath+"tkreg1/generateCredentials", newest, `{"tokenId":"`+tok+`token1","name":"password9"}`), 400, "InvalidParameter", "password1 or password2")
	e.want(e.do("POST", regPath+"tkreg1/generateCredentials", newest, `{"tokenId":"`+tok+`token1","expiry":"2001-01-01T00:00:00Z"}`), 400, "InvalidParameter", "not in the future")
}

func TestTokens_PasswordsShownOnce(t *testing.T) {
	e := newTokenEnv(t)
	tok := regPath + "tkreg1/tokens/token1"
	pull := regPath + "tkreg1/scopeMaps/_repositories_pull"
	r := e.do("PUT", tok, newest, `{"properties":{"scopeMapId":"`+strings.ToUpper(pull)+`","credentials":{"passwords":[{"name":"password1"},{"name":"password2","expiry":"2999-01-01T00:00:00Z"}]}}}`)
	e.want(r, 201, "", "")
	pws, _ := get(r.body, "properties.credentials.passwords").([]any)
	if len(pws) != 2 || get(r.body, "properties.status") != "enabled" || get(r.body, "properties.scopeMapId") != pull {
		t.Fatalf("created: %s", r.raw)
	}
	v1, _ := pws[0].(map[string]any)["value"].(string)
	if len(v1) < 40 || pws[1].(map[string]any)["expiry"] != "2999-01-01T00:00:00Z" {
		t.Fatalf("passwords: %s", r.raw)
	}
	// Stored only as a hash; GET shows no value.
	res, err := e.store.GetResource(t.Context(), tok)
	if err != nil || strings.Contains(string(res.Properties), v1) {
		t.Fatalf("stored: %s %v", res.Properties, err)
	}
	r = e.do("GET", tok, newest, "")
	if strings.Contains(r.raw, v1) || strings.Contains(r.raw, `"value"`) || strings.Contains(r.raw, "hash") {
		t.Fatalf("GET reveals a password: %s", r.raw)
	}
	// PATCH without credentials keeps both passwords; with a list, exactly those.
	r = e.do("PATCH", tok, newest, `{"properties":{"status":"disabled"}}`)
	e.want(r, 200, "", "")
	if len(get(r.body, "properties.credentials.passwords").([]any)) != 2 || get(r.body, "properties.status") != "disabled" {
		t.Fatalf("patched: %s", r.raw)
	}
	r = e.do("PATCH", tok, newest, `{"properties":{"credentials":{"passwords":[{"name":"password1"}]}}}`)
	if pws := get(r.body, "properties.credentials.passwords").([]any); len(pws) != 1 || pws[0].(map[string]any)["value"] != nil {
		t.Fatalf("kept password1 only, without value: %s", r.raw)
	}
	// PUT without status enables again.
	r = e.do("PUT", tok, newest, `{"properties":{"scopeMapId":"`+pull+`"}}`)
	if get(r.body, "properties.status") != "enabled" {
		t.Fatalf("PUT: %s", r.raw)
	}
}

// TestTokens_SDK drives scope maps, tokens and generateCredentials with
// armcontainerregistry (whose operations are long-running) over TLS.
func TestTokens_SDK(t *testing.T) {
	e := newTokenEnv(t)
	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close)
	opts := &azarm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport: srv.Client(),
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.invalid/",
				Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: {Endpoint: srv.URL, Audience: "https://management.azure.com"}},
			},
		},
		DisableRPRegistration: true,
	}
	factory, err := armcontainerregistry.NewClientFactory(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	done := &runtime.PollUntilDoneOptions{Frequency: 10 * time.Millisecond}

	smp, err := factory.NewScopeMapsClient().BeginCreate(ctx, "rg1", "tkreg1", "sdkmap1", armcontainerregistry.ScopeMap{
		Properties: &armcontainerregistry.ScopeMapProperties{Actions: []*string{to.Ptr("repositories/samples/*/content/read")}, Description: to.Ptr("sdk")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	smap, err := smp.PollUntilDone(ctx, done)
	if err != nil || *smap.Properties.Type != "UserDefined" {
		t.Fatalf("scope map: %+v %v", smap, err)
	}
	tp, err := factory.NewTokensClient().BeginCreate(ctx, "rg1", "tkreg1", "sdktoken1", armcontainerregistry.Token{
		Properties: &armcontainerregistry.TokenProperties{ScopeMapID: smap.ID, Status: to.Ptr(armcontainerregistry.TokenStatusEnabled)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tp.PollUntilDone(ctx, done)
	if err != nil || *tok.Properties.Status != armcontainerregistry.TokenStatusEnabled {
		t.Fatalf("token: %+v %v", tok, err)
	}
	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	gp, err := factory.NewRegistriesClient().BeginGenerateCredentials(ctx, "rg1", "tkreg1", armcontainerregistry.GenerateCredentialsParameters{
		TokenID: tok.ID, Expiry: &exp, Name: to.Ptr(armcontainerregistry.TokenPasswordNamePassword2),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := gp.PollUntilDone(ctx, done)
	if err != nil || *creds.Username != "sdktoken1" || len(creds.Passwords) != 1 || *creds.Passwords[0].Name != "password2" ||
		creds.Passwords[0].Value == nil || !creds.Passwords[0].Expiry.Equal(exp) {
		t.Fatalf("generateCredentials: %+v %v", creds, err)
	}
	got, err := factory.NewTokensClient().Get(ctx, "rg1", "tkreg1", "sdktoken1", nil)
	if err != nil || len(got.Properties.Credentials.Passwords) != 1 || got.Properties.Credentials.Passwords[0].Value != nil {
		t.Fatalf("get: %+v %v", got, err)
	}
	up, err := factory.NewTokensClient().BeginUpdate(ctx, "rg1", "tkreg1", "sdktoken1", armcontainerregistry.TokenUpdateParameters{
		Properties: &armcontainerregistry.TokenUpdateProperties{Status: to.Ptr(armcontainerregistry.TokenStatusDisabled)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := up.PollUntilDone(ctx, done); err != nil || *u.Properties.Status != armcontainerregistry.TokenStatusDisabled {
		t.Fatalf("update: %+v %v", u, err)
	}
	n := 0
	for pager := factory.NewScopeMapsClient().NewListPager("rg1", "tkreg1", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 6 {
		t.Fatalf("listed %d scope maps", n)
	}
	dp, err := factory.NewTokensClient().BeginDelete(ctx, "rg1", "tkreg1", "sdktoken1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, done); err != nil {
		t.Fatal(err)
	}
	sp, err := factory.NewScopeMapsClient().BeginDelete(ctx, "rg1", "tkreg1", "sdkmap1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.PollUntilDone(ctx, done); err != nil {
		t.Fatal(err)
	}
}
