package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestValidationTableThroughAzureSDK drives every row of DESIGN.md §2's
// validation table that a registry alone can hit (the two export-pipeline
// rows need transfer pipelines, which moat does not serve yet) through
// armcontainerregistry v1.2.0 against a real `moat serve`, over TLS with an
// azidentity token from moat's own issuer. Each refusal must reach the SDK
// as a ResponseError with ARM's status and code and a message naming the
// field; the registry must read back unchanged afterwards.
func TestValidationTableThroughAzureSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	m := startManagedMoat(t, "sdk-table-secret-1")
	ctx := context.Background()
	m.putGroup(t, "table")
	m.putGroup(t, "other")
	client, err := armcontainerregistry.NewRegistriesClient(defaultSubscriptionID, m.cred,
		&azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond}
	create := func(name string, sku armcontainerregistry.SKUName) {
		t.Helper()
		p, err := client.BeginCreate(ctx, "table", name, armcontainerregistry.Registry{
			Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(sku)}}, nil)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	update := func(name string, p armcontainerregistry.RegistryPropertiesUpdateParameters) error {
		poller, err := client.BeginUpdate(ctx, "table", name, armcontainerregistry.RegistryUpdateParameters{Properties: &p}, nil)
		if err != nil {
			return err
		}
		_, err = poller.PollUntilDone(ctx, poll)
		return err
	}
	snapshot := func(name string) string {
		t.Helper()
		got, err := client.Get(ctx, "table", name, nil)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		b, _ := json.Marshal(got.Registry)
		return string(b)
	}
	wantARMError := func(t *testing.T, err error, status int, code string, mentions ...string) {
		t.Helper()
		var re *azcore.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v, want an ARM error %d %s", err, status, code)
		}
		if re.StatusCode != status || re.ErrorCode != code {
			t.Fatalf("got %d %s, want %d %s: %v", re.StatusCode, re.ErrorCode, status, code, err)
		}
		for _, s := range mentions {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("the error does not mention %q: %v", s, err)
			}
		}
	}
	create("basic01", armcontainerregistry.SKUNameBasic)
	create("standard01", armcontainerregistry.SKUNameStandard)
	create("premium01", armcontainerregistry.SKUNamePremium)
	create("private01", armcontainerregistry.SKUNamePremium)
	if err := update("private01", armcontainerregistry.RegistryPropertiesUpdateParameters{
		PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled),
		Policies: &armcontainerregistry.Policies{ExportPolicy: &armcontainerregistry.ExportPolicy{
			Status: to.Ptr(armcontainerregistry.ExportPolicyStatusDisabled)}},
	}); err != nil {
		t.Fatalf("disabling public access and exports together: %v", err)
	}
	rules := func(n int) []*armcontainerregistry.IPRule {
		out := make([]*armcontainerregistry.IPRule, n)
		for i := range out {
			out[i] = &armcontainerregistry.IPRule{Action: to.Ptr(armcontainerregistry.ActionAllow),
				IPAddressOrRange: to.Ptr(fmt.Sprintf("10.2.%d.%d", i/256, i%256))}
		}
		return out
	}

	t.Run("name", func(t *testing.T) {
		for _, bad := range []string{"abcd", "has-dash1", strings.Repeat("a", 51)} {
			_, err := client.BeginCreate(ctx, "table", bad, armcontainerregistry.Registry{
				Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)}}, nil)
			wantARMError(t, err, http.StatusBadRequest, "InvalidRegistryName", bad, "5 to 50 letters and digits")
		}
		// Names are unique across the deployment, not per group.
		_, err := client.BeginCreate(ctx, "other", "PREMIUM01", armcontainerregistry.Registry{
			Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)}}, nil)
		wantARMError(t, err, http.StatusConflict, "AlreadyInUse", "PREMIUM01", "already in use")
		avail, err := client.CheckNameAvailability(ctx, armcontainerregistry.RegistryNameCheckRequest{
			Name: to.Ptr("premium01"), Type: to.Ptr("Microsoft.ContainerRegistry/registries")}, nil)
		if err != nil || *avail.NameAvailable || *avail.Reason != "AlreadyExists" {
			t.Fatalf("CheckNameAvailability: %+v %v", avail, err)
		}
	})

	rows := []struct {
		name, registry string
		change         armcontainerregistry.RegistryPropertiesUpdateParameters
		status         int
		code           string
		mentions       []string
	}{
		{"public access disabled on Basic", "basic01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled)},
			400, "DisablingPublicNetworkAccessNotSupported", []string{"publicNetworkAccess", "Basic"}},
		{"public access disabled on Standard", "standard01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessDisabled)},
			400, "DisablingPublicNetworkAccessNotSupported", []string{"publicNetworkAccess", "Standard"}},
		{"default action Deny on Standard", "standard01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny)}},
			400, "NetworkRuleSetNotSupported", []string{"networkRuleSet.defaultAction", "Premium"}},
		{"ip rules on Basic", "basic01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionAllow), IPRules: rules(1)}},
			400, "NetworkRuleSetNotSupported", []string{"networkRuleSet.ipRules", "Premium"}},
		{"201 ip rules", "premium01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny), IPRules: rules(201)}},
			400, "IpRuleQuotaExceeded", []string{"networkRuleSet.ipRules", "201", "quota of 200"}},
		{"ip rule 10.0.0.0/33", "premium01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny),
				IPRules: append(rules(2), &armcontainerregistry.IPRule{Action: to.Ptr(armcontainerregistry.ActionAllow),
					IPAddressOrRange: to.Ptr("10.0.0.0/33")})}},
			400, "InvalidIpRule", []string{"networkRuleSet.ipRules[2].value", "10.0.0.0/33"}},
		{"ip rule not an address", "premium01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				IPRules: []*armcontainerregistry.IPRule{{IPAddressOrRange: to.Ptr("my-laptop")}}}},
			400, "InvalidIpRule", []string{"networkRuleSet.ipRules[0].value", "my-laptop"}},
		{"exports disabled on Standard", "standard01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{Policies: &armcontainerregistry.Policies{
				ExportPolicy: &armcontainerregistry.ExportPolicy{Status: to.Ptr(armcontainerregistry.ExportPolicyStatusDisabled)}}},
			400, "ExportPolicyNotSupported", []string{"exportPolicy.status", "Premium"}},
		{"exports disabled while public access stays enabled", "premium01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{Policies: &armcontainerregistry.Policies{
				ExportPolicy: &armcontainerregistry.ExportPolicy{Status: to.Ptr(armcontainerregistry.ExportPolicyStatusDisabled)}}},
			400, "ExportPolicyRequiresPublicNetworkAccessDisabled", []string{"exportPolicy.status", "publicNetworkAccess"}},
		{"public access enabled while exports are disabled", "private01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{PublicNetworkAccess: to.Ptr(armcontainerregistry.PublicNetworkAccessEnabled)},
			400, "BadRequest", []string{"publicNetworkAccess", "not supported while exports are disabled"}},
		{"retention 366 days", "premium01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{Policies: &armcontainerregistry.Policies{
				RetentionPolicy: &armcontainerregistry.RetentionPolicy{Days: to.Ptr[int32](366), Status: to.Ptr(armcontainerregistry.PolicyStatusEnabled)}}},
			400, "InvalidRetentionDays", []string{"retentionPolicy.days", "366"}},
		{"retention -1 days", "premium01",
			armcontainerregistry.RegistryPropertiesUpdateParameters{Policies: &armcontainerregistry.Policies{
				RetentionPolicy: &armcontainerregistry.RetentionPolicy{Days: to.Ptr[int32](-1)}}},
			400, "InvalidRetentionDays", []string{"retentionPolicy.days", "-1"}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			before := snapshot(row.registry)
			wantARMError(t, update(row.registry, row.change), row.status, row.code, row.mentions...)
			if after := snapshot(row.registry); after != before {
				t.Fatalf("a refused PATCH changed the registry:\n%s\n%s", before, after)
			}
		})
	}

	// The same rules on create: nothing is created.
	t.Run("create refused", func(t *testing.T) {
		_, err := client.BeginCreate(ctx, "table", "basicdeny01", armcontainerregistry.Registry{
			Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNameBasic)},
			Properties: &armcontainerregistry.RegistryProperties{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
				DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny)}},
		}, nil)
		wantARMError(t, err, http.StatusBadRequest, "NetworkRuleSetNotSupported", "defaultAction")
		var re *azcore.ResponseError
		if _, err := client.Get(ctx, "table", "basicdeny01", nil); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
			t.Fatalf("a refused create left a registry: %v", err)
		}
	})

	// The limits themselves are accepted: 200 rules, 0 and 365 days.
	t.Run("at the limits", func(t *testing.T) {
		if err := update("premium01", armcontainerregistry.RegistryPropertiesUpdateParameters{NetworkRuleSet: &armcontainerregistry.NetworkRuleSet{
			DefaultAction: to.Ptr(armcontainerregistry.DefaultActionDeny), IPRules: rules(200)}}); err != nil {
			t.Fatalf("200 rules: %v", err)
		}
		for _, d := range []int32{0, 365} {
			if err := update("premium01", armcontainerregistry.RegistryPropertiesUpdateParameters{Policies: &armcontainerregistry.Policies{
				RetentionPolicy: &armcontainerregistry.RetentionPolicy{Days: to.Ptr(d), Status: to.Ptr(armcontainerregistry.PolicyStatusEnabled)}}}); err != nil {
				t.Fatalf("retention %d days: %v", d, err)
			}
		}
		got, err := client.Get(ctx, "table", "premium01", nil)
		if err != nil || len(got.Properties.NetworkRuleSet.IPRules) != 200 || *got.Properties.Policies.RetentionPolicy.Days != 365 {
			t.Fatalf("after the limits: %v", err)
		}
	})
}

// TestLROAnswersThroughAzureSDK checks the first answers of registry create,
// update and delete carry what ARM's LRO contract needs for the SDK's
// pollers to finish without a status URL (201/200 with
// properties.provisioningState Succeeded; DELETE 200 or 204), that
// BeginCreate/BeginUpdate/BeginDelete complete against them, and that
// importImage's 202 + Location (the one long registry operation) is
// polled to the end by BeginImportImage.
func TestLROAnswersThroughAzureSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const password = "sdk-lro-secret-1"
	m := startManagedMoat(t, password)
	m.putGroup(t, "lro")
	ctx := context.Background()
	base := m.url + "/subscriptions/" + defaultSubscriptionID + "/resourceGroups/lro/providers/Microsoft.ContainerRegistry/registries/"
	call := func(method, path, body string) (*http.Response, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, path, rd)
		req.Header.Set("Authorization", "Bearer "+m.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := m.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	resp, out := call(http.MethodPut, base+"lroraw01?api-version=2023-07-01", `{"location":"local","sku":{"name":"Premium"}}`)
	if resp.StatusCode != http.StatusCreated || cliDig(out, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("PUT: %d %v", resp.StatusCode, out)
	}
	resp, out = call(http.MethodPatch, base+"lroraw01?api-version=2023-07-01", `{"properties":{"adminUserEnabled":true}}`)
	if resp.StatusCode != http.StatusOK || cliDig(out, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("PATCH: %d %v", resp.StatusCode, out)
	}
	resp, out = call(http.MethodPut, base+"lroraw01?api-version=2023-07-01", `{"location":"local","sku":{"name":"Premium"}}`)
	if resp.StatusCode != http.StatusOK || cliDig(out, "properties.provisioningState") != "Succeeded" || cliDig(out, "properties.adminUserEnabled") != false {
		t.Fatalf("PUT over an existing registry: %d %v", resp.StatusCode, out)
	}
	if resp, _ := call(http.MethodDelete, base+"lroraw01?api-version=2023-07-01", ""); resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	// A second DELETE of what is gone is 204, which the SDK also accepts.
	if resp, _ := call(http.MethodDelete, base+"lroraw01?api-version=2023-07-01", ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE again: %d", resp.StatusCode)
	}

	client, err := armcontainerregistry.NewRegistriesClient(defaultSubscriptionID, m.cred,
		&azarm.ClientOptions{ClientOptions: m.opts, DisableRPRegistration: true})
	if err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond}
	for _, name := range []string{"lrosrc01", "lrodst01"} {
		p, err := client.BeginCreate(ctx, "lro", name, armcontainerregistry.Registry{
			Location: to.Ptr("local"), SKU: &armcontainerregistry.SKU{Name: to.Ptr(armcontainerregistry.SKUNamePremium)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Done() {
			t.Fatalf("BeginCreate %s: the poller is not done after a Succeeded 201", name)
		}
		if _, err := p.PollUntilDone(ctx, poll); err != nil {
			t.Fatal(err)
		}
	}
	up, err := client.BeginUpdate(ctx, "lro", "lrosrc01", armcontainerregistry.RegistryUpdateParameters{
		Tags: map[string]*string{"stage": to.Ptr("lro")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	updated, err := up.PollUntilDone(ctx, poll)
	if err != nil || *updated.Tags["stage"] != "lro" {
		t.Fatalf("BeginUpdate: %v", err)
	}
	// importImage answers 202 + Location; the SDK polls it to the end.
	admin := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: password}), remote.WithTransport(m.http.Transport)}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, "lrosrc01.localhost:"+m.port+"/app:v1"), img, admin...); err != nil {
		t.Fatalf("push: %v", err)
	}
	imp, err := client.BeginImportImage(ctx, "lro", "lrodst01", armcontainerregistry.ImportImageParameters{
		Source:     &armcontainerregistry.ImportSource{ResourceID: updated.ID, SourceImage: to.Ptr("app:v1")},
		TargetTags: []*string{to.Ptr("copied:v1")},
	}, nil)
	if err != nil {
		t.Fatalf("BeginImportImage: %v", err)
	}
	if _, err := imp.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("import poll: %v", err)
	}
	if _, err := remote.Head(mustRef(t, "lrodst01.localhost:"+m.port+"/copied:v1"), admin...); err != nil {
		t.Fatalf("the imported image: %v", err)
	}
	del, err := client.BeginDelete(ctx, "lro", "lrodst01", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := del.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
}
