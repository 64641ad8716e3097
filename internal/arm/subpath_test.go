package arm

import (
	"slices"
	"testing"
)

func TestResourceSubpath(t *testing.T) {
	const reg = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r"
	cases := []struct {
		path    string
		maxRest int
		ok      bool
		rest    []string
	}{
		{reg + "/listCredentials", 1, true, []string{"listCredentials"}},
		{reg + "/scopeMaps/m", 2, true, []string{"scopeMaps", "m"}},
		{"/SUBSCRIPTIONS/s/RESOURCEGROUPS/g/PROVIDERS/microsoft.containerregistry/REGISTRIES/r/tokens/", 2, true, []string{"tokens"}},
		{reg, 2, false, nil},                   // nothing below the registry
		{reg + "/scopeMaps/m", 1, false, nil},  // more than maxRest
		{reg + "/scopeMaps//m", 3, false, nil}, // an empty segment
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/r/secrets", 2, false, nil},
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/webhooks/r/x", 2, false, nil},
	}
	for _, c := range cases {
		rt, rest, ok := registrySubpath(c.path, c.maxRest)
		if ok != c.ok || !slices.Equal(rest, c.rest) {
			t.Errorf("registrySubpath(%q, %d) = %v, %v; want %v, %v", c.path, c.maxRest, rest, ok, c.rest, c.ok)
			continue
		}
		if ok && (rt != route{sub: "s", rg: "g", name: "r", kind: routeRegistry}) {
			t.Errorf("registrySubpath(%q): route %+v", c.path, rt)
		}
	}
	vault, rest, ok := resourceSubpath("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/secrets/x", keyVaultNS, "vaults", 2)
	if !ok || vault.name != "v" || vault.kind != routeNone || !slices.Equal(rest, []string{"secrets", "x"}) {
		t.Errorf("a vault's subpath: %+v %v %v", vault, rest, ok)
	}
}
