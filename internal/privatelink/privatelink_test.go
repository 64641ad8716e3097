package privatelink

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/storage/meta/sqlite"
)

func TestRegistryOf(t *testing.T) {
	const reg = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/MyReg"
	for _, c := range []struct {
		id, regID, name string
		ok              bool
	}{
		{reg + "/privateEndpointConnections/pe.1", reg, "myreg", true},
		{reg + "/PRIVATEENDPOINTCONNECTIONS/pe.1", reg, "myreg", true},
		{"/privateEndpointConnections/x", "", "", false},
		{reg, "", "", false},
		{"/a//privateEndpointConnections/x", "", "", false},
		{"", "", "", false},
	} {
		id, name, ok := RegistryOf(c.id)
		if id != c.regID || name != c.name || ok != c.ok {
			t.Errorf("RegistryOf(%q) = %q %q %v, want %q %q %v", c.id, id, name, ok, c.regID, c.name, c.ok)
		}
	}
}

func FuzzRegistryOf(f *testing.F) {
	for _, s := range []string{"/s/registries/r/privateEndpointConnections/c", "/privateEndpointConnections/", "x/privateendpointconnections/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		regID, name, ok := RegistryOf(id)
		if !ok {
			return
		}
		if !strings.HasPrefix(id, regID+"/") || name == "" || name != strings.ToLower(name) || strings.Contains(name, "/") ||
			!strings.HasSuffix(strings.ToLower(regID), "/"+name) {
			t.Fatalf("RegistryOf(%q) = %q %q", id, regID, name)
		}
	})
}

// TestList: connections are read with their registry and address; one
// whose endpoint is gone is left out; an unreadable one fails the list.
func TestList(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const reg = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r1"
	put := func(id, typ string, v any) {
		t.Helper()
		b, ok := v.([]byte)
		if !ok {
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PutResource(ctx, meta.Resource{ID: id, Type: typ, Name: id[strings.LastIndexByte(id, '/')+1:], Properties: b}); err != nil {
			t.Fatal(err)
		}
	}
	put("/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/privateEndpoints/pe1", EndpointType, map[string]any{})
	put(reg+"/privateEndpointConnections/a", ConnectionType, Connection{PrivateEndpointID: "/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/privateEndpoints/PE1",
		Status: "Pending", PrivateIPAddress: "::ffff:127.0.0.77"})
	put(reg+"/privateEndpointConnections/b", ConnectionType, Connection{PrivateEndpointID: "/gone", Status: "Approved", PrivateIPAddress: "127.0.0.78"})
	eps, err := List(ctx, s)
	if err != nil || len(eps) != 1 || eps[0].Registry != "r1" || eps[0].Addr.String() != "127.0.0.77" || eps[0].Status != "Pending" {
		t.Fatalf("List = %+v, %v", eps, err)
	}
	pol, err := ForRegistry(ctx, s, reg)
	if err != nil || len(pol) != 2 {
		t.Fatalf("ForRegistry = %+v, %v", pol, err)
	}
	put(reg+"/privateEndpointConnections/c", ConnectionType, []byte(`{"privateEndpointId":`))
	if _, err := List(ctx, s); err == nil {
		t.Fatal("List read an unreadable connection")
	}
	if _, err := ForRegistry(ctx, s, reg); err == nil {
		t.Fatal("ForRegistry read an unreadable connection")
	}
}
