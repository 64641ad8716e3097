package arm

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azarm "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// TestDeploymentsSDK drives template deployments with the Azure SDK for
// Go's armresources DeploymentsClient over TLS: BeginCreateOrUpdate and
// PollUntilDone, Get, the operations and deployments pagers, a failing
// deployment's error, validate and delete.
func TestDeploymentsSDK(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.settle()
	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close)
	opts := &azarm.ClientOptions{
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
	}
	factory, err := armresources.NewClientFactory(sub, fakeCredential{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	client := factory.NewDeploymentsClient()
	ctx := t.Context()
	raw, _, err := armtemplate.ReadJSONC([]byte(readTestdata(t, "seed003-firewall.json")))
	if err != nil {
		t.Fatal(err)
	}
	tpl := raw.(map[string]any)
	tpl["resources"].([]any)[0].(map[string]any)["properties"].(map[string]any)["networkRuleSet"].(map[string]any)["ipRules"] =
		[]any{map[string]any{"action": "Allow", "value": "198.51.100.0/24"}}
	tpl["outputs"] = map[string]any{"loginServer": map[string]any{"type": "string",
		"value": "[reference(parameters('registryName')).loginServer]"}}

	poller, err := client.BeginCreateOrUpdate(ctx, "rg1", "sdkdeploy", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Mode:       to.Ptr(armresources.DeploymentModeIncremental),
		Template:   tpl,
		Parameters: map[string]any{"registryName": map[string]any{"value": "sdkfw01"}},
	}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	done, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("PollUntilDone: %v", err)
	}
	if *done.Properties.ProvisioningState != armresources.ProvisioningStateSucceeded {
		t.Fatalf("state %v", *done.Properties.ProvisioningState)
	}
	out := done.Properties.Outputs.(map[string]any)["loginServer"].(map[string]any)["value"]
	if out != "sdkfw01.moat.test" || len(done.Properties.OutputResources) != 1 || done.Properties.Duration == nil || done.Properties.CorrelationID == nil {
		t.Fatalf("deployment %+v", done.Properties)
	}
	reg := e.do("GET", regPath+"sdkfw01", newest, "")
	if get(reg.body, "properties.networkRuleSet.ipRules") == nil || get(reg.body, "properties.networkRuleSet.defaultAction") != "Deny" {
		t.Fatalf("registry %s", reg.raw)
	}
	ops := factory.NewDeploymentOperationsClient().NewListPager("rg1", "sdkdeploy", nil)
	n := 0
	for ops.More() {
		page, err := ops.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range page.Value {
			n++
			if *op.Properties.ProvisioningState != "Succeeded" || !strings.EqualFold(*op.Properties.TargetResource.ID, regPath+"sdkfw01") {
				t.Fatalf("operation %+v", op.Properties)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d operations", n)
	}

	// What-if against what was just deployed: the same template changes
	// nothing, another rule modifies the registry, a new name creates one,
	// a type moat does not serve is unsupported.
	whatIf := func(tpl map[string]any, name string) []*armresources.WhatIfChange {
		t.Helper()
		var params map[string]any
		if name != "" {
			params = map[string]any{"registryName": map[string]any{"value": name}}
		}
		p, err := client.BeginWhatIf(ctx, "rg1", "sdkwhatif", armresources.DeploymentWhatIf{Properties: &armresources.DeploymentWhatIfProperties{
			Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: tpl, Parameters: params}}, nil)
		if err != nil {
			t.Fatalf("BeginWhatIf: %v", err)
		}
		res, err := p.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatalf("what-if: %v", err)
		}
		return res.Properties.Changes
	}
	if ch := whatIf(tpl, "sdkfw01"); len(ch) != 1 || *ch[0].ChangeType != armresources.ChangeTypeNoChange {
		t.Fatalf("what-if of the deployed template: %+v", ch[0])
	}
	if ch := whatIf(tpl, "sdkfw02"); *ch[0].ChangeType != armresources.ChangeTypeCreate || !strings.HasSuffix(*ch[0].ResourceID, "/sdkfw02") {
		t.Fatalf("what-if of a new registry: %+v", ch[0])
	}
	tpl["resources"].([]any)[0].(map[string]any)["properties"].(map[string]any)["networkRuleSet"].(map[string]any)["ipRules"] =
		[]any{map[string]any{"action": "Allow", "value": "192.0.2.1"}}
	ch := whatIf(tpl, "sdkfw01")
	if *ch[0].ChangeType != armresources.ChangeTypeModify || len(ch[0].Delta) != 1 || *ch[0].Delta[0].Path != "properties" ||
		*ch[0].Delta[0].Children[0].Path != "properties.networkRuleSet" {
		t.Fatalf("what-if of a changed rule: %+v", ch[0])
	}
	if e.do("GET", regPath+"sdkfw02", newest, "").status != 404 {
		t.Fatal("what-if created a registry")
	}
	storage := map[string]any{"resources": []any{map[string]any{"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "st1", "location": "westeurope"}}}
	if ch := whatIf(storage, ""); *ch[0].ChangeType != armresources.ChangeTypeUnsupported || !strings.Contains(*ch[0].UnsupportedReason, "Microsoft.Storage/storageAccounts") {
		t.Fatalf("what-if of an unserved type: %+v", ch[0])
	}

	// A failing deployment: PollUntilDone returns the ARM error.
	bad := map[string]any{"resources": []any{map[string]any{"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
		"name": "sdkbasic01", "location": "westeurope", "sku": map[string]any{"name": "Basic"},
		"properties": map[string]any{"publicNetworkAccess": "Disabled"}}}}
	poller, err = client.BeginCreateOrUpdate(ctx, "rg1", "sdkbad", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: bad}}, nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	_, err = poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != "DeploymentFailed" || !strings.Contains(err.Error(), "DisablingPublicNetworkAccessNotSupported") {
		t.Fatalf("failed deployment: %v", err)
	}
	got, err := client.Get(ctx, "rg1", "sdkbad", nil)
	if err != nil || *got.Properties.ProvisioningState != armresources.ProvisioningStateFailed ||
		*got.Properties.Error.Details[0].Code != "DisablingPublicNetworkAccessNotSupported" {
		t.Fatalf("Get failed deployment: %v %+v", err, got)
	}

	// A template error is refused by the first request.
	_, err = client.BeginCreateOrUpdate(ctx, "rg1", "sdkinvalid", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: map[string]any{"outputs": map[string]any{"x": map[string]any{"type": "string", "value": "[bogus()]"}}}}}, nil)
	if !errors.As(err, &re) || re.ErrorCode != "InvalidTemplate" {
		t.Fatalf("invalid template: %v", err)
	}

	vp, err := client.BeginValidate(ctx, "rg1", "sdkvalidate", armresources.Deployment{Properties: &armresources.DeploymentProperties{
		Mode: to.Ptr(armresources.DeploymentModeIncremental), Template: bad}}, nil)
	if err != nil {
		t.Fatalf("BeginValidate: %v", err)
	}
	if v, err := vp.PollUntilDone(ctx, nil); err != nil || v.Error != nil {
		t.Fatalf("validate: %v %+v", err, v)
	}

	pager := client.NewListByResourceGroupPager("rg1", nil)
	names := map[string]bool{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Value {
			names[*d.Name] = true
		}
	}
	if !names["sdkdeploy"] || !names["sdkbad"] || len(names) != 2 {
		t.Fatalf("listed %v", names)
	}
	dp, err := client.BeginDelete(ctx, "rg1", "sdkbad", nil)
	if err != nil {
		t.Fatalf("BeginDelete: %v", err)
	}
	if _, err := dp.PollUntilDone(ctx, nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if ex, err := client.CheckExistence(ctx, "rg1", "sdkbad", nil); err != nil || ex.Success {
		t.Fatalf("CheckExistence after delete: %v %v", ex, err)
	}
}
