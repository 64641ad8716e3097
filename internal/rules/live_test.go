package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

// TestLiveMatchesTemplate deploys (stores) the configuration each template
// describes and checks that every rule gives the same outcome live.
func TestLiveMatchesTemplate(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	seed := model.Defaults()
	seed.SKU = model.SKUPremium
	seed.Properties.NetworkRuleSet = model.NetworkRuleSet{DefaultAction: model.ActionDeny, IPRules: []model.IPRule{{Action: model.ActionAllow, Value: "_PublicIPv4Address_"}}}
	open := model.Defaults()
	open.SKU = model.SKUPremium
	open.Properties.AdminUserEnabled = true
	loops := make([]model.Registry, 3)
	for i := range loops {
		loops[i] = model.Defaults()
		loops[i].SKU = model.SKUPremium
		if i != 1 {
			loops[i].Properties.PublicNetworkAccess = model.Disabled
			loops[i].Properties.NetworkRuleSet.DefaultAction = model.ActionDeny
		}
	}
	deployed := map[string]model.Registry{
		"seedregistry003": seed, "openregistry": open,
		"loopregistry0": loops[0], "loopregistry1": loops[1], "loopregistry2": loops[2],
	}
	for name, reg := range deployed {
		props, err := reg.MarshalProperties()
		if err != nil {
			t.Fatal(err)
		}
		id := "/subscriptions/ffffffff-ffff-ffff-ffff-ffffffffffff/resourceGroups/ps-rule-test-rg/providers/Microsoft.ContainerRegistry/registries/" + name
		if _, err := store.CreateRegistry(ctx, meta.Registry{Name: name, ResourceID: id, Location: "westeurope", SKU: reg.SKU, Properties: props}); err != nil {
			t.Fatal(err)
		}
	}

	live, err := LoadLive(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(live.Errors) > 0 || len(live.Targets) != len(deployed) {
		t.Fatalf("live: %v, %d targets", live.Errors, len(live.Targets))
	}
	files := Load([]string{"testdata/seed003.parameters.json", "testdata/open.json", "testdata/loop.json"}, LoadOptions{})
	if len(files.Errors) > 0 {
		t.Fatal(files.Errors)
	}
	want := outcomes(t, files, nil)
	got := outcomes(t, live, nil)
	if len(want) != len(got) {
		t.Fatalf("template gives %d results, live %d", len(want), len(got))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g.Outcome != w.Outcome {
			t.Errorf("%s: template %s (%s), live %s (%s)", k, w.Outcome, w.Message(), g.Outcome, g.Message())
		}
	}

	one, err := LoadLive(ctx, store, []string{"OpenRegistry"})
	if err != nil || len(one.Targets) != 1 || one.Targets[0].Name != "openregistry" {
		t.Fatalf("by name: %v %v", err, one)
	}
	if _, err := LoadLive(ctx, store, []string{"missing00"}); err == nil {
		t.Error("a missing registry is not an error")
	}
}

// TestLiveSoftDeleteDefault: a registry created without retentionDays shows
// ACR's default of 7 on GET, yet the template that created it fails
// Azure.ACR.SoftDelete; checked live, it must fail too. The registries are
// decoded from the template's bodies as the management API decodes a PUT.
func TestLiveSoftDeleteDefault(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	v, ok := model.ParseAPIVersion("2023-11-01-preview")
	if !ok {
		t.Fatal("api-version")
	}
	bodies := map[string]string{
		"softnodays": `{"location":"westeurope","sku":{"name":"Standard"},"properties":{"policies":{"softDeletePolicy":{"status":"enabled"}}}}`,
		"softdays":   `{"location":"westeurope","sku":{"name":"Standard"},"properties":{"policies":{"softDeletePolicy":{"status":"enabled","retentionDays":14}}}}`,
	}
	for name, body := range bodies {
		reg, err := model.Decode([]byte(body), v, model.Defaults())
		if err != nil {
			t.Fatal(err)
		}
		props, err := reg.MarshalProperties()
		if err != nil {
			t.Fatal(err)
		}
		id := "/subscriptions/ffffffff-ffff-ffff-ffff-ffffffffffff/resourceGroups/ps-rule-test-rg/providers/Microsoft.ContainerRegistry/registries/" + name
		if _, err := store.CreateRegistry(ctx, meta.Registry{Name: name, ResourceID: id, Location: "westeurope", SKU: reg.SKU, Properties: props}); err != nil {
			t.Fatal(err)
		}
	}
	live, err := LoadLive(ctx, store, nil)
	if err != nil || len(live.Errors) > 0 {
		t.Fatal(err, live.Errors)
	}
	files := Load([]string{"testdata/softdelete.json"}, LoadOptions{})
	if len(files.Errors) > 0 {
		t.Fatal(files.Errors)
	}
	want, got := outcomes(t, files, nil), outcomes(t, live, nil)
	checked := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g.Outcome != w.Outcome {
			t.Errorf("%s: template %s, live %s (%s) %v", k, w.Outcome, g.Outcome, g.Message(), g.Target.Body["properties"])
		}
		if w.Rule.Name == "Azure.ACR.SoftDelete" {
			checked++
			if strings.HasPrefix(k, "softnodays") != (w.Outcome == Fail) {
				t.Errorf("%s: template outcome %s", k, w.Outcome)
			}
		}
	}
	if checked != 2 {
		t.Fatalf("Azure.ACR.SoftDelete judged %d registries, want 2", checked)
	}
}

// TestLivePendingConnections: connections stored by the management API
// (privatelink's form) are judged live as the template's child resources.
func TestLivePendingConnections(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	const rg = "/subscriptions/ffffffff-ffff-ffff-ffff-ffffffffffff/resourceGroups/ps-rule-test-rg"
	conns := map[string][]string{"pendingreg01": {"Pending", "Approved"}, "approvedreg01": {"Approved"}, "nopereg01": nil}
	for name, states := range conns {
		reg := model.Defaults()
		reg.SKU = model.SKUPremium
		props, err := reg.MarshalProperties()
		if err != nil {
			t.Fatal(err)
		}
		id := rg + "/providers/Microsoft.ContainerRegistry/registries/" + name
		if _, err := store.CreateRegistry(ctx, meta.Registry{Name: name, ResourceID: id, Location: "westeurope", SKU: reg.SKU, Properties: props}); err != nil {
			t.Fatal(err)
		}
		for i, st := range states {
			cname := fmt.Sprintf("pe%d", i)
			body, _ := json.Marshal(privatelink.Connection{PrivateEndpointID: rg + "/providers/Microsoft.Network/privateEndpoints/" + cname, Status: st, PrivateIPAddress: "127.0.0.9"})
			if _, err := store.PutResource(ctx, meta.Resource{ID: id + "/privateEndpointConnections/" + cname, Type: privatelink.ConnectionType, Name: cname, Properties: body}); err != nil {
				t.Fatal(err)
			}
		}
	}
	live, err := LoadLive(ctx, store, nil)
	if err != nil || len(live.Errors) > 0 {
		t.Fatal(err, live.Errors)
	}
	got := outcomes(t, live, nil)
	files := Load([]string{"testdata/pending.json"}, LoadOptions{})
	want := outcomes(t, files, nil)
	for name := range conns {
		k := name + " Moat.ACR.PendingPrivateEndpoint"
		if got[k].Outcome != want[k].Outcome {
			t.Errorf("%s: live %s, template %s", name, got[k].Outcome, want[k].Outcome)
		}
	}
	if got["pendingreg01 Moat.ACR.PendingPrivateEndpoint"].Outcome != Fail {
		t.Errorf("a stored Pending connection passed live")
	}
}
