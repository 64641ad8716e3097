package arm

import (
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/privatelink"
)

const (
	peAPI  = "2024-05-01"
	pePath = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Network/privateEndpoints/"
)

func peBody(registry, ip string, manual bool) string {
	list := "privateLinkServiceConnections"
	if manual {
		list = "manualPrivateLinkServiceConnections"
	}
	return `{"location":"westeurope","properties":{"subnet":{"id":"/subscriptions/` + sub + `/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v/subnets/s"},
	  "` + list + `":[{"name":"link1","properties":{"privateLinkServiceId":"/subscriptions/` + sub + `/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/` + registry + `",
	    "groupIds":["registry"],"requestMessage":"please"}}],
	  "ipConfigurations":[{"name":"ip1","properties":{"groupId":"registry","memberName":"registry","privateIPAddress":"` + ip + `"}}]}}`
}

func TestPrivateEndpoint_LifeCycle(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("premreg1", "Premium")

	r := e.do("PUT", pePath+"pe1", peAPI, peBody("premreg1", "127.0.0.77", false))
	e.want(r, 201, "", "")
	if get(r.body, "type") != privatelink.EndpointType || get(r.body, "properties.provisioningState") != "Succeeded" {
		t.Fatalf("PUT = %s", r.raw)
	}
	links, _ := get(r.body, "properties.privateLinkServiceConnections").([]any)
	if len(links) != 1 || get(links[0].(map[string]any), "properties.privateLinkServiceConnectionState.status") != "Approved" {
		t.Fatalf("link = %s", r.raw)
	}
	dns, _ := get(r.body, "properties.customDnsConfigs").([]any)
	if len(dns) != 1 || dns[0].(map[string]any)["fqdn"] != "premreg1.moat.test" {
		t.Fatalf("customDnsConfigs = %v", dns)
	}
	if e.changes[len(e.changes)-1] != "premreg1" {
		t.Fatalf("changes %v", e.changes)
	}
	// checkNetworkAccess knows the stored endpoint.
	chk := e.do("POST", regPath+"premreg1/checkNetworkAccess", newest, `{"clientIp":"127.0.0.77","privateEndpoint":"`+strings.TrimSuffix(pePath, "/")+`/PE1"}`)
	if chk.body["allowed"] != true || chk.body["step"] != "private-endpoint" {
		t.Fatalf("checkNetworkAccess through the endpoint: %s", chk.raw)
	}

	// The registry side.
	conns := e.do("GET", regPath+"premreg1/privateEndpointConnections", newest, "")
	e.want(conns, 200, "", "")
	v, _ := conns.body["value"].([]any)
	if len(v) != 1 {
		t.Fatalf("connections %s", conns.raw)
	}
	c := v[0].(map[string]any)
	name, _ := c["name"].(string)
	if !strings.HasPrefix(name, "pe1.") || get(c, "properties.privateEndpoint.id") != strings.TrimSuffix(pePath, "/")+"/pe1" ||
		get(c, "properties.privateLinkServiceConnectionState.status") != "Approved" || c["type"] != privatelink.ConnectionType {
		t.Fatalf("connection %v", c)
	}
	reg := e.do("GET", regPath+"premreg1", newest, "")
	if pecs, _ := get(reg.body, "properties.privateEndpointConnections").([]any); len(pecs) != 1 {
		t.Fatalf("registry GET shows %v", get(reg.body, "properties.privateEndpointConnections"))
	}
	list := e.do("GET", regPath, newest, "")
	if regs, _ := list.body["value"].([]any); len(regs) != 1 || len(get(regs[0].(map[string]any), "properties.privateEndpointConnections").([]any)) != 1 {
		t.Fatalf("registry list %s", list.raw)
	}

	// Reject: the endpoint shows it; a re-PUT of the endpoint keeps it.
	r = e.do("PUT", regPath+"premreg1/privateEndpointConnections/"+name, newest,
		`{"properties":{"privateLinkServiceConnectionState":{"status":"rejected","description":"no"}}}`)
	e.want(r, 200, "", "")
	if get(r.body, "properties.privateLinkServiceConnectionState.status") != "Rejected" {
		t.Fatalf("reject = %s", r.raw)
	}
	e.want(e.do("PUT", pePath+"pe1", peAPI, peBody("premreg1", "127.0.0.77", false)), 200, "", "")
	r = e.do("GET", pePath+"PE1", peAPI, "")
	if get(r.body["properties"].(map[string]any)["privateLinkServiceConnections"].([]any)[0].(map[string]any),
		"properties.privateLinkServiceConnectionState.status") != "Rejected" {
		t.Fatalf("after re-PUT: %s", r.raw)
	}
	eps, err := privatelink.List(t.Context(), e.store)
	if err != nil || len(eps) != 1 || eps[0].Status != "Rejected" || eps[0].Addr.String() != "127.0.0.77" || eps[0].Registry != "premreg1" {
		t.Fatalf("privatelink.List = %+v, %v", eps, err)
	}
	pol, err := privatelink.ForRegistry(t.Context(), e.store, "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/premreg1")
	if err != nil || len(pol) != 1 || pol[0].ConnectionState != "Rejected" {
		t.Fatalf("ForRegistry = %+v, %v", pol, err)
	}

	// Listed in the group and the subscription.
	for _, p := range []string{strings.TrimSuffix(pePath, "/"), "/subscriptions/" + sub + "/providers/Microsoft.Network/privateEndpoints"} {
		r = e.do("GET", p, peAPI, "")
		if v, _ := r.body["value"].([]any); len(v) != 1 {
			t.Fatalf("list %s = %s", p, r.raw)
		}
	}

	// Delete the connection: the endpoint stays, Disconnected, with no listener.
	e.want(e.do("DELETE", regPath+"premreg1/privateEndpointConnections/"+name, newest, ""), 200, "", "")
	e.want(e.do("DELETE", regPath+"premreg1/privateEndpointConnections/"+name, newest, ""), 204, "", "")
	r = e.do("GET", pePath+"pe1", peAPI, "")
	if !strings.Contains(r.raw, `"status":"Disconnected"`) {
		t.Fatalf("after the connection's delete: %s", r.raw)
	}
	if eps, _ := privatelink.List(t.Context(), e.store); len(eps) != 0 {
		t.Fatalf("listeners for %+v", eps)
	}
	// PUT again reconnects (Approved: the creator may approve); delete ends all.
	e.want(e.do("PUT", pePath+"pe1", peAPI, peBody("premreg1", "127.0.0.77", false)), 200, "", "")
	if eps, _ := privatelink.List(t.Context(), e.store); len(eps) != 1 || eps[0].Status != "Approved" {
		t.Fatalf("after reconnecting: %+v", eps)
	}
	e.want(e.do("DELETE", pePath+"pe1", peAPI, ""), 200, "", "")
	e.want(e.do("GET", pePath+"pe1", peAPI, ""), 404, "ResourceNotFound", "pe1")
	e.want(e.do("DELETE", pePath+"pe1", peAPI, ""), 204, "", "")
	if eps, _ := privatelink.List(t.Context(), e.store); len(eps) != 0 {
		t.Fatalf("after delete: %+v", eps)
	}
}

func TestPrivateEndpoint_ManualIsPending(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("premreg1", "Premium")
	r := e.do("PUT", pePath+"pe2", peAPI, peBody("premreg1", "127.0.0.78", true))
	e.want(r, 201, "", "")
	manual, _ := get(r.body, "properties.manualPrivateLinkServiceConnections").([]any)
	if len(manual) != 1 || get(manual[0].(map[string]any), "properties.privateLinkServiceConnectionState.status") != "Pending" ||
		get(manual[0].(map[string]any), "properties.privateLinkServiceConnectionState.description") != "please" {
		t.Fatalf("manual = %s", r.raw)
	}
	conns := e.do("GET", regPath+"premreg1/privateEndpointConnections", newest, "")
	name := conns.body["value"].([]any)[0].(map[string]any)["name"].(string)
	// Pending cannot be written to an approved connection; approve works.
	e.want(e.do("PUT", regPath+"premreg1/privateEndpointConnections/"+name, newest,
		`{"properties":{"privateLinkServiceConnectionState":{"status":"Approved"}}}`), 200, "", "")
	e.want(e.do("PUT", regPath+"premreg1/privateEndpointConnections/"+name, newest,
		`{"properties":{"privateLinkServiceConnectionState":{"status":"Pending"}}}`), 400, "InvalidRequestContent", "cannot go back to Pending")
	e.want(e.do("PUT", regPath+"premreg1/privateEndpointConnections/"+name, newest,
		`{"properties":{"privateLinkServiceConnectionState":{"status":"Disconnected"}}}`), 400, "InvalidRequestContent", `"Disconnected"`)
	e.want(e.do("PUT", regPath+"premreg1/privateEndpointConnections/"+name, newest,
		`{"properties":{"privateEndpoint":{"id":"/x"},"privateLinkServiceConnectionState":{"status":"Approved"}}}`), 400, "InvalidRequestContent", "cannot change")
	e.want(e.do("PUT", regPath+"premreg1/privateEndpointConnections/"+name, newest, `{"properties":{}}`), 400, "InvalidRequestContent", "required")
	e.want(e.do("PUT", regPath+"premreg1/privateEndpointConnections/nosuch", newest,
		`{"properties":{"privateLinkServiceConnectionState":{"status":"Approved"}}}`), 404, "PrivateEndpointConnectionNotFound", "nosuch")
	e.want(e.do("GET", regPath+"premreg1/privateEndpointConnections/nosuch", newest, ""), 404, "PrivateEndpointConnectionNotFound", "nosuch")
	e.want(e.do("GET", regPath+"nosuchreg/privateEndpointConnections", newest, ""), 404, "ResourceNotFound", "nosuchreg")
	// The SKU stays Premium while connections exist.
	e.want(e.do("PATCH", regPath+"premreg1", newest, `{"sku":{"name":"Standard"}}`), 400, "PrivateEndpointsRequirePremiumSku", "1 private endpoint connection")
	// Deleting the registry deletes its connections.
	e.want(e.do("DELETE", regPath+"premreg1", newest, ""), 200, "", "")
	if eps, _ := privatelink.List(t.Context(), e.store); len(eps) != 0 {
		t.Fatalf("after the registry's delete: %+v", eps)
	}
}

func TestInitialState(t *testing.T) {
	for _, c := range []struct {
		manual, may bool
		status      string
	}{
		{false, true, netrule.Approved},
		{false, false, netrule.Pending},
		{true, true, netrule.Pending},
		{true, false, netrule.Pending},
	} {
		if s, d := initialState(c.manual, c.may, "msg"); s != c.status || (s == netrule.Pending) != (d == "msg") {
			t.Errorf("initialState(manual %v, may approve %v) = %s %q, want %s", c.manual, c.may, s, d, c.status)
		}
	}
}

func TestPrivateEndpoint_Validation(t *testing.T) {
	e := newEnv(t)
	e.group()
	e.registry("premreg1", "Premium")
	e.registry("basicreg1", "Basic")
	e.want(e.do("PUT", pePath+"pe1", peAPI, peBody("premreg1", "127.0.0.77", false)), 201, "", "")
	before := len(e.changes)

	swap := func(old, repl string) string {
		return strings.Replace(peBody("premreg1", "127.0.0.80", false), old, repl, 1)
	}
	for _, c := range []struct {
		name, body, api string
		status          int
		code, msg       string
	}{
		{"no api-version", peBody("premreg1", "127.0.0.80", false), "", 400, "MissingApiVersionParameter", ""},
		{"old api-version", peBody("premreg1", "127.0.0.80", false), "2018-01-01", 400, "InvalidApiVersionParameter", "2018-01-01"},
		{"basic", peBody("basicreg1", "127.0.0.80", false), peAPI, 400, "PrivateEndpointNotSupportedForSku", "Premium"},
		{"missing registry", peBody("nosuchreg", "127.0.0.80", false), peAPI, 400, "PrivateLinkServiceNotFound", "nosuchreg"},
		{"not a registry id", swap("Microsoft.ContainerRegistry/registries/premreg1", "Microsoft.Storage/storageAccounts/premreg1"), peAPI, 400, "LinkedInvalidPropertyId", "storageAccounts"},
		{"group ids", swap(`"groupIds":["registry"]`, `"groupIds":["registry","blob"]`), peAPI, 400, "InvalidGroupIds", "blob"},
		{"no group ids", swap(`"groupIds":["registry"]`, `"groupIds":[]`), peAPI, 400, "InvalidGroupIds", "[\"registry\"]"},
		{"bad ip", peBody("premreg1", "127.0.0.300", false), peAPI, 400, "InvalidPrivateIPAddress", "127.0.0.300"},
		{"ip in use", peBody("premreg1", "127.0.0.77", false), peAPI, 409, "PrivateIPAddressInUse", "127.0.0.77"},
		{"no ip", swap(`"memberName":"registry"`, `"memberName":"registry_data_westeurope"`), peAPI, 400, "PrivateIPAddressRequired", "privateIPAddress"},
		{"two links", swap(`"ipConfigurations"`, `"manualPrivateLinkServiceConnections":[{"name":"x","properties":{"groupIds":["registry"],"privateLinkServiceId":"/x"}}],"ipConfigurations"`), peAPI, 400, "InvalidPrivateEndpoint", "exactly one"},
		{"no location", strings.Replace(peBody("premreg1", "127.0.0.80", false), `"location":"westeurope",`, "", 1), peAPI, 400, "LocationRequired", ""},
		{"malformed", `{"location":`, peAPI, 400, "InvalidRequestContent", ""},
		{"wrong type", `{"location":"w","properties":{"privateLinkServiceConnections":"x"}}`, peAPI, 400, "InvalidRequestContent", "privateLinkServiceConnections"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.want(e.do("PUT", pePath+"pe9", c.api, c.body), c.status, c.code, c.msg)
		})
	}
	e.t = t
	e.want(e.do("GET", pePath+"pe9", peAPI, ""), 404, "ResourceNotFound", "")
	if len(e.changes) != before {
		t.Fatalf("refused PUTs announced changes: %v", e.changes[before:])
	}
	e.want(e.do("GET", regPath+"premreg1/privateLinkResources/blob", newest, ""), 404, "PrivateLinkResourceNotFound", "blob")
	e.want(e.do("POST", pePath+"pe1", peAPI, "{}"), 405, "HttpMethodNotSupported", "")
}

func TestPrivateLinkRoutes(t *testing.T) {
	for path, want := range map[string]peRouteKind{
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/p":                                    peEndpoint,
		"/SUBSCRIPTIONS/s/RESOURCEGROUPS/g/PROVIDERS/microsoft.network/PRIVATEENDPOINTS":                                      peListGroup,
		"/subscriptions/s/providers/Microsoft.Network/privateEndpoints":                                                       peListSub,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateEndpointConnections":     peConnections,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateEndpointConnections/c":   peConnection,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateLinkResources":           peLinkResources,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateLinkResources/registry":  peLinkResource,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r":                                peNone,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateEndpointConnections/c/x": peNone,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v":                                     peNone,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/p/x":                                  peNone,
		"/subscriptions/s/resourceGroups//providers/Microsoft.Network/privateEndpoints/p":                                     peNone,
		"/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/privateEndpointConnections//c":  peNone,
	} {
		if got := parsePrivateLinkRoute(path).kind; got != want {
			t.Errorf("parsePrivateLinkRoute(%q) = %d, want %d", path, got, want)
		}
	}
}
