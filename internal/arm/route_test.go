package arm

import (
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	for path, want := range map[string]route{
		"/providers/microsoft.containerregistry/OPERATIONS":                                               {kind: routeOperations},
		"/subscriptions/S/resourcegroups":                                                                 {sub: "S", kind: routeGroupList},
		"/subscriptions/S/resourceGroups/G":                                                               {sub: "S", rg: "G", kind: routeGroup},
		"/subscriptions/S/resourceGroups/G/":                                                              {sub: "S", rg: "G", kind: routeGroup},
		"/subscriptions/S/providers/Microsoft.ContainerRegistry/registries":                               {sub: "S", kind: routeRegistryListSub},
		"/subscriptions/S/providers/Microsoft.ContainerRegistry/checkNameAvailability":                    {sub: "S", kind: routeCheckName},
		"/subscriptions/S/resourceGroups/G/providers/Microsoft.ContainerRegistry/registries":              {sub: "S", rg: "G", kind: routeRegistryListGroup},
		"/SUBSCRIPTIONS/S/RESOURCEGROUPS/G/PROVIDERS/MICROSOFT.CONTAINERREGISTRY/REGISTRIES/R":            {sub: "S", rg: "G", name: "R", kind: routeRegistry},
		"/subscriptions/S/resourceGroups/G/providers/Microsoft.ContainerRegistry/registries/R/listUsages": {sub: "S", rg: "G", name: "R", kind: routeUsages},
		"/subscriptions/S/resourceGroups/G/providers/Microsoft.ContainerRegistry/registries/R/tokens/x":   {sub: "S", rg: "G", kind: routeUnknownType},
		"/subscriptions/S/resourceGroups/G/providers/Microsoft.Network/privateEndpoints/p":                {sub: "S", rg: "G", kind: routeUnknownType},
		"/subscriptions/S/resourceGroups/G/providers/Microsoft.ContainerRegistry/checkNameAvailability":   {sub: "S", rg: "G", kind: routeUnknownType},
		"/subscriptions//resourceGroups/G":                                                                {},
		"/subscriptions/S":                                                                                {},
		"/subscriptions/S/other/x":                                                                        {},
		"/":                                                                                               {},
		"/v2/":                                                                                            {},
	} {
		if got := parseRoute(path); got != want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", path, got, want)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/subscriptions/S/resourceGroups/G/providers/Microsoft.ContainerRegistry/registries/R/listUsages",
		"/providers/Microsoft.ContainerRegistry/operations", "//", "/subscriptions/S/providers/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt := parseRoute(path)
		for _, s := range []string{rt.sub, rt.rg, rt.name} {
			if strings.Contains(s, "/") {
				t.Fatalf("parseRoute(%q) = %+v: a segment contains '/'", path, rt)
			}
		}
		if rt.kind == routeRegistry && (rt.name == "" || rt.rg == "" || rt.sub == "") {
			t.Fatalf("parseRoute(%q) = %+v: registry route without name, group or subscription", path, rt)
		}
	})
}
