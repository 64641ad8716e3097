package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// fakeConnections serves one registry's private endpoint connections the
// way ARM shapes them.
type fakeConnections struct {
	mu    sync.Mutex
	conns map[string]map[string]any
}

func (f *fakeConnections) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	const reg = "/subscriptions/" + defaultSubscriptionID + "/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg/privateEndpointConnections"
	w.Header().Set("Content-Type", "application/json")
	name, isOne := strings.CutPrefix(r.URL.Path, reg+"/")
	switch {
	case r.URL.Path == reg && r.Method == http.MethodGet:
		var items []any
		for _, c := range f.conns {
			items = append(items, c)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"value": items})
	case isOne && f.conns[name] != nil && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(f.conns[name])
	case isOne && f.conns[name] != nil && r.Method == http.MethodPut:
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.conns[name]["properties"] = body["properties"]
		_ = json.NewEncoder(w).Encode(f.conns[name])
	case isOne && f.conns[name] != nil && r.Method == http.MethodDelete:
		delete(f.conns, name)
	default:
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "PrivateEndpointConnectionNotFound", "message": "no such connection"}})
	}
}

func TestPrivateEndpointConnectionCommands(t *testing.T) {
	fake := &fakeConnections{conns: map[string]map[string]any{
		"pe1": {"name": "pe1", "properties": map[string]any{
			"privateEndpoint":                   map[string]any{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe1"},
			"privateLinkServiceConnectionState": map[string]any{"status": "Pending", "description": "", "actionsRequired": "None"},
			"provisioningState":                 "Succeeded",
		}},
	}}
	useFakeServer(t, fake)

	out, err := runCLI(t, "acr", "private-endpoint-connection", "list", "-r", "reg", "-g", "rg", "-o", "table")
	if err != nil || !strings.Contains(out, "pe1   Pending") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, "acr", "private-endpoint-connection", "approve", "-r", "reg", "-g", "rg", "-n", "pe1", "--description", "ok by ops",
		"--query", "properties.privateLinkServiceConnectionState.[status, description]", "-o", "tsv")
	if err != nil || out != "Approved\nok by ops\n" {
		t.Fatalf("approve: %v %q", err, out)
	}
	// The rest of the connection was written back unchanged.
	if got := dig(fake.conns["pe1"], "properties", "privateEndpoint", "id"); got == nil {
		t.Fatalf("approve lost the private endpoint: %v", fake.conns["pe1"])
	}
	out, err = runCLI(t, "acr", "private-endpoint-connection", "reject", "-r", "reg", "-g", "rg", "-n", "pe1", "--query", "properties.privateLinkServiceConnectionState.status", "-o", "tsv")
	if err != nil || out != "Rejected\n" {
		t.Fatalf("reject: %v %q", err, out)
	}
	if _, err := runCLI(t, "acr", "private-endpoint-connection", "show", "-r", "reg", "-g", "rg", "-n", "nosuch"); err == nil ||
		!strings.HasPrefix(err.Error(), "PrivateEndpointConnectionNotFound: ") {
		t.Fatalf("show of a missing connection: %v", err)
	}
	if _, err := runCLI(t, "acr", "private-endpoint-connection", "delete", "-r", "reg", "-g", "rg", "-n", "pe1"); exitCode(err) != 2 {
		t.Fatalf("delete without --yes: %v", err)
	}
	if _, err := runCLI(t, "acr", "private-endpoint-connection", "delete", "-r", "reg", "-g", "rg", "-n", "pe1", "--yes"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if len(fake.conns) != 0 {
		t.Fatal("the connection was not deleted")
	}
	if _, err := runCLI(t, "acr", "private-endpoint-connection", "show", "-r", "reg", "-g", "rg"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("show without -n: %v", err)
	}
}
