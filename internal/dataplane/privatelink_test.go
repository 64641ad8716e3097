package dataplane

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	testOtherID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/other"
	testPEID    = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/pe1"
)

// setConnection stores registry other's connection to testPEID in state
// status, as the management plane does, and invalidates the cache.
func (e *env) setConnection(status string) {
	e.t.Helper()
	props, err := json.Marshal(privatelink.Connection{PrivateEndpointID: testPEID, Status: status, PrivateIPAddress: "127.0.0.77"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.meta.PutResource(context.Background(), meta.Resource{ID: testOtherID + "/privateEndpointConnections/pe1.x",
		Type: privatelink.ConnectionType, Name: "pe1.x", Properties: props}); err != nil {
		e.t.Fatal(err)
	}
	e.h.Invalidate(testOther)
}

// TestPrivateEndpointArrival: a request that arrived on registry other's
// private endpoint is judged by that endpoint's connection state, not by
// publicNetworkAccess; it serves other whatever Host says, except a Host
// naming another registry's login server; its denials are audited with the
// endpoint's id.
func TestPrivateEndpointArrival(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	reg, err := e.meta.GetRegistry(ctx, testOther)
	if err != nil {
		t.Fatal(err)
	}
	reg.ResourceID = testOtherID
	if _, err := e.meta.UpdateRegistry(ctx, reg); err != nil {
		t.Fatal(err)
	}
	e.setNetwork(testOther, `{"publicNetworkAccess":"Disabled","networkRuleSet":{"defaultAction":"Deny"}}`)
	e.pushImage("app", "x") // into the default registry, whose public access is on
	arrivalOf := func(id string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.h.ServeHTTP(w, r.WithContext(privatelink.WithArrival(r.Context(), privatelink.Arrival{EndpointID: id, Registry: testOther})))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	pe := arrivalOf(testPEID)

	e.setConnection("Approved")
	e.do(http.MethodGet, "/v2/", host(hostOther)).wantError(t, http.StatusForbidden, "DENIED") // public: disabled
	e.doURL(pe, http.MethodGet, "/v2/").wantStatus(t, http.StatusOK)                           // any Host: the endpoint's registry
	e.doURL(pe, http.MethodGet, "/v2/", host(hostOther)).wantStatus(t, http.StatusOK)
	e.doURL(pe, http.MethodGet, "/v2/", host("other.privatelink.localhost")).wantStatus(t, http.StatusOK)
	// The default registry's image is not reachable through other's endpoint.
	e.doURL(pe, http.MethodGet, "/v2/app/tags/list", host(hostDefault)).wantError(t, http.StatusNotFound, "NAME_UNKNOWN")
	e.doURL(pe, http.MethodGet, "/v2/app/tags/list").wantError(t, http.StatusNotFound, "NAME_UNKNOWN") // other has no app
	// An endpoint the registry does not know is refused.
	e.doURL(arrivalOf(testPEID+"x"), http.MethodGet, "/v2/").wantError(t, http.StatusForbidden, "DENIED")

	for _, state := range []string{"Rejected", "Pending", "Disconnected"} {
		e.setConnection(state)
		e.doURL(pe, http.MethodGet, "/v2/").wantError(t, http.StatusForbidden, "DENIED")
		e.doURL(pe, http.MethodGet, "/oauth2/token?service=other.localhost&scope=repository:app:pull").wantError(t, http.StatusForbidden, "DENIED")
	}
	e.setConnection("Approved")
	e.doURL(pe, http.MethodGet, "/v2/").wantStatus(t, http.StatusOK)

	if err := e.h.Close(); err != nil { // flushes the audit queue
		t.Fatal(err)
	}
	rs, err := e.meta.ListAuditRecords(ctx, testOther, meta.AuditFilter{DeniedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	byEndpoint := map[string]int{}
	for _, r := range rs {
		byEndpoint[r.Endpoint]++
	}
	if byEndpoint[testPEID] != 6 || byEndpoint[meta.EndpointPublic] != 1 || byEndpoint[testPEID+"x"] != 1 {
		t.Fatalf("denials by endpoint %v", byEndpoint)
	}
}
