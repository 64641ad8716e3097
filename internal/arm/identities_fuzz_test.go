package arm

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzCarrierRoute: parseCarrierRoute never panics, and a route it accepts
// with a name round-trips through its id.
func FuzzCarrierRoute(f *testing.F) {
	for _, s := range []string{
		aciPath + "puller",
		aciPath + "puller/rotateIdentitySecret",
		uaiPath + "shared-id",
		uaiPath + "shared-id/rotateIdentitySecret",
		regPath + "reg01/tasks/build",
		regPath + "reg01/tasks",
		"/subscriptions/s/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites",
		"/subscriptions//resourceGroups/rg/providers/Microsoft.Web/sites/x",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/x/slots/y",
		"", "/", "//",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parseCarrierRoute(path)
		if !ok || rt.name == "" {
			return
		}
		again, ok := parseCarrierRoute(rt.id())
		if !ok || again.t != rt.t || again.name != rt.name || again.sub != rt.sub || again.rg != rt.rg || again.registry != rt.registry {
			t.Fatalf("%q parsed to %+v whose id %q parses to %+v (%v)", path, rt, rt.id(), again, ok)
		}
		if rt.rotate && rt.t.userAssigned {
			t.Fatalf("%q: rotate on a user-assigned identity", path)
		}
	})
}

// FuzzCarrierBody: parseCarrierBody never panics; an accepted body has a
// location, no read-only property survives, and what it keeps re-encodes.
func FuzzCarrierBody(f *testing.F) {
	for _, s := range []string{
		`{"location":"x","identity":{"type":"SystemAssigned"},"properties":{"a":1,"provisioningState":"x"}}`,
		`{"location":"x","identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"` + uaiPath + `u1":{}}}}`,
		`{"location":"x","identity":{"type":"UserAssigned","userAssignedIdentities":{"/x":{}}}}`,
		`{"location":"x","identity":null,"properties":null,"kind":"app","zones":["1"]}`,
		`{"location":"x","identity":{"type":"None"}}`,
		`{"location":1}`, `[]`, `null`, `{`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, typ := range []carrierType{typeContainerGroups, typeUserAssigned} {
			in, err := parseCarrierBody([]byte(body), typ)
			if err != nil {
				continue
			}
			if in.location == "" {
				t.Fatalf("%q accepted without a location", body)
			}
			if _, err := json.Marshal(in.rest); err != nil {
				t.Fatalf("%q: kept body does not encode: %v", body, err)
			}
			if props, ok := in.rest["properties"]; ok {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(props, &m); err != nil {
					t.Fatalf("%q: properties %s", body, props)
				}
				for k := range m {
					for _, ro := range readOnlyProps {
						if strings.EqualFold(k, ro) {
							t.Fatalf("%q: read-only property %q kept", body, k)
						}
					}
				}
			}
			if typ.userAssigned && (in.identity.System || len(in.identity.UserAssigned) > 0) {
				t.Fatalf("%q: a user-assigned identity got an identity", body)
			}
		}
	})
}
