package arm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/privatelink"
)

// FuzzPrivateEndpointBody: any body is either refused with an ARM error or
// yields one link to one registry with a parseable address.
func FuzzPrivateEndpointBody(f *testing.F) {
	f.Add([]byte(peBody("r", "127.0.0.77", false)))
	f.Add([]byte(peBody("r", "::1", true)))
	f.Add([]byte(`{"location":"x","properties":{"privateLinkServiceConnections":[{"name":"n","properties":{"privateLinkServiceId":"/a","groupIds":["REGISTRY"]}}],"ipConfigurations":[{"properties":{"privateIPAddress":"127.0.0.1%lo"}}]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, st, err := parseEndpointBody(body)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("not an ARM error: %T %v", err, err)
			}
			return
		}
		a, perr := netip.ParseAddr(st.PrivateIP)
		if perr != nil || a.Zone() != "" || a.String() != st.PrivateIP || st.LinkName == "" || st.LinkServiceID == "" {
			t.Fatalf("accepted %q as %+v", body, st)
		}
	})
}

// FuzzConnectionBody: an accepted PUT never changes the endpoint or the
// address, and leaves a status netrule knows.
func FuzzConnectionBody(f *testing.F) {
	f.Add([]byte(`{"properties":{"privateLinkServiceConnectionState":{"status":"Approved"}}}`), "Pending")
	f.Add([]byte(`{"properties":{"privateEndpoint":{"id":"/PE"},"privateLinkServiceConnectionState":{"status":"rejected","description":"d"}}}`), "Approved")
	f.Fuzz(func(t *testing.T, body []byte, prevStatus string) {
		prev := privatelink.Connection{PrivateEndpointID: "/pe", Status: prevStatus, PrivateIPAddress: "127.0.0.77", LinkName: "l"}
		next, err := nextConnection(prev, body)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("not an ARM error: %T %v", err, err)
			}
			return
		}
		if next.PrivateEndpointID != prev.PrivateEndpointID || next.PrivateIPAddress != prev.PrivateIPAddress || next.LinkName != prev.LinkName {
			t.Fatalf("PUT %q changed %+v into %+v", body, prev, next)
		}
		if _, err := netrule.Compile(minimalRegistry(), []netrule.PrivateEndpoint{{ID: next.PrivateEndpointID, ConnectionState: next.Status}}); err != nil {
			t.Fatalf("PUT %q left a state netrule refuses: %v", body, err)
		}
		if next.Status == netrule.Pending && prevStatus != netrule.Pending {
			t.Fatalf("PUT %q moved %s back to Pending", body, prevStatus)
		}
	})
}

func FuzzPrivateLinkRoute(f *testing.F) {
	f.Add("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/p")
	f.Add("/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateEndpointConnections/c")
	f.Add("/subscriptions/s/providers/Microsoft.Network/privateEndpoints")
	f.Fuzz(func(t *testing.T, path string) {
		rt := parsePrivateLinkRoute(path)
		if rt.kind == peNone {
			return
		}
		for _, s := range []string{rt.sub, rt.rg, rt.name, rt.child} {
			if strings.Contains(s, "/") {
				t.Fatalf("parsePrivateLinkRoute(%q) = %+v: a segment holds a slash", path, rt)
			}
		}
		if rt.sub == "" || (rt.kind != peListSub && rt.rg == "") {
			t.Fatalf("parsePrivateLinkRoute(%q) = %+v", path, rt)
		}
	})
}

func minimalRegistry() model.Registry { return model.Defaults() }
