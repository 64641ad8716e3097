package netrule

import (
	"strings"
	"testing"
)

func TestClassifyResource(t *testing.T) {
	const rg = "/subscriptions/0000-1111/resourceGroups/rg1/providers/"
	tests := []struct {
		id   string
		want TrustedService
	}{
		{rg + "Microsoft.ContainerInstance/containerGroups/web", ContainerInstances},
		{strings.ToLower(rg + "Microsoft.ContainerInstance/containerGroups/web"), ContainerInstances},
		{strings.ToUpper(rg + "Microsoft.ContainerInstance/containerGroups/web"), ContainerInstances},
		{rg + "Microsoft.MachineLearningServices/workspaces/ws", MachineLearning},
		{rg + "Microsoft.MachineLearningServices/workspaces/ws/computes/cluster", MachineLearning},
		{rg + "Microsoft.ContainerRegistry/registries/reg1/tasks/build", RegistryTasks},
		{rg + "Microsoft.Web/sites/app", AppService},
		{rg + "Microsoft.Web/sites/app/slots/staging", AppService},

		{rg + "Microsoft.ContainerRegistry/registries/reg1", None},
		{rg + "Microsoft.ContainerRegistry/registries/reg1/tasks", None},
		{rg + "Microsoft.ContainerRegistry/registries/reg1/tasks/t/runs/r", None},
		{rg + "Microsoft.ContainerRegistry/registries/reg1/scopeMaps/t", None},
		{rg + "Microsoft.ManagedIdentity/userAssignedIdentities/id1", None},
		{rg + "Microsoft.ContainerInstance/containerGroups", None},
		{rg + "Microsoft.ContainerInstance/containerGroups/", None},
		{rg + "Microsoft.ContainerInstance/containerGroups/web/", None},
		{rg + "Microsoft.ContainerInstance/containerGroups/web/containers/c", None},
		{rg + "Microsoft.MachineLearningServices/workspaces/ws/datastores/d", None},
		{rg + "Microsoft.Web/sites/app/providers/Microsoft.ContainerInstance/containerGroups/x", None},
		{rg + "Microsoft.Compute/virtualMachines/vm", None},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/x/../../../Microsoft.Web/sites/y", None},
		{"/subscriptions//resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web", None},
		{"subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web", None},
		{"/subscriptions/s/resourcegroup/rg/providers/Microsoft.ContainerInstance/containerGroups/web", None},
		{"/subscriptions/s/resourceGroups/rg/provider/Microsoft.ContainerInstance/containerGroups/web", None},
		{"/tenants/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web", None},
		{"", None},
		{"/", None},
	}
	for _, tc := range tests {
		if got := ClassifyResource(tc.id); got != tc.want {
			t.Errorf("ClassifyResource(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// The catalogue is what DESIGN.md §3 lists; App Service is in it only to be
// refused.
func TestTrustedServicesCatalogue(t *testing.T) {
	want := []struct {
		s       TrustedService
		typ     string
		trusted bool
		rbac    bool
	}{
		{ContainerInstances, "Microsoft.ContainerInstance/containerGroups", true, true},
		{DefenderForCloud, "", true, false},
		{RegistryTasks, "Microsoft.ContainerRegistry/registries/tasks", true, true},
		{MachineLearning, "Microsoft.MachineLearningServices/workspaces", true, true},
		{RegistryImport, "", true, true},
		{AppService, "Microsoft.Web/sites", false, true},
	}
	if len(TrustedServices) != len(want) {
		t.Fatalf("catalogue has %d rows, want %d", len(TrustedServices), len(want))
	}
	for i, w := range want {
		got := TrustedServices[i]
		if got.Service != w.s || got.ResourceType != w.typ || got.Trusted != w.trusted || got.RBACRequired != w.rbac || got.Name == "" || got.RBAC == "" {
			t.Errorf("row %d = %+v, want %+v", i, got, w)
		}
		if info, ok := Info(w.s); !ok || info.Service != w.s {
			t.Errorf("Info(%v) = %+v, %v", w.s, info, ok)
		}
	}
	if _, ok := Info(None); ok {
		t.Error("Info(None) found a row")
	}
	if None.String() != "none" || TrustedService(77).String() != "unknown" || AppService.String() != "App Service" {
		t.Errorf("String: %q %q %q", None, TrustedService(77), AppService)
	}
}

// Every trusted row of the catalogue bypasses a closed registry and every
// untrusted one does not: the catalogue and Decide cannot drift apart.
func TestCatalogueMatchesDecide(t *testing.T) {
	p := mustCompile(t, cfg{public: "Disabled", tasks: true})
	for _, si := range TrustedServices {
		if d := p.Decide(Request{TrustedService: si.Service}); d.Allowed != si.Trusted {
			t.Errorf("%s: Decide = %+v, catalogue says trusted=%v", si.Name, d, si.Trusted)
		}
	}
}
