package arm

// Private endpoints, their connections and the registry's private link
// resources:
//
//	PUT|GET|DELETE …/resourceGroups/{rg}/providers/Microsoft.Network/privateEndpoints/{name}
//	GET            …/resourceGroups/{rg}/providers/Microsoft.Network/privateEndpoints
//	GET            /subscriptions/{sub}/providers/Microsoft.Network/privateEndpoints
//	GET            …/registries/{name}/privateEndpointConnections
//	GET|PUT|DELETE …/registries/{name}/privateEndpointConnections/{connection}
//	GET            …/registries/{name}/privateLinkResources[/{groupName}]
//
// Decisions (the package privatelink says how connections are stored):
//
//   - An endpoint connects to exactly one registry through exactly one
//     privateLinkServiceConnections or manualPrivateLinkServiceConnections
//     entry whose groupIds is ["registry"]; the registry must exist and be
//     Premium, as ACR requires for private link.
//   - moat has no virtual networks to allocate from: the endpoint's address
//     is properties.ipConfigurations[].properties.privateIPAddress (the
//     entry with memberName "registry", or the only one) and is required.
//     subnet is kept as given. Two endpoints may not share an address.
//   - The connection is Approved at once when the creator may approve
//     connections on the registry (the privateEndpointConnectionsApproval
//     action), Pending otherwise; a manual connection is always Pending.
//   - PUT of an endpoint that already exists keeps its connection's state
//     as long as it names the same registry and link, so redeploying a
//     template does not undo an approval; naming another registry replaces
//     the connection.
//   - On a connection only privateLinkServiceConnectionState may be written,
//     and its status only to Approved, Rejected or (unchanged) Pending.
//     Deleting a connection leaves the endpoint, which then shows the
//     status Disconnected; deleting the endpoint deletes its connection.
//   - Every change calls OnRegistryChange for the registry, so its network
//     policy and the private endpoint listeners follow at once.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	networkNS               = "Microsoft.Network"
	privateEndpointsRT      = "privateEndpoints"
	privateLinkResourcesRT  = "privateLinkResources"
	privateLinkResourceType = providerNS + "/registries/privateLinkResources"
	linkConnectionType      = privatelink.EndpointType + "/privateLinkServiceConnections"

	actionPEWrite      = "Microsoft.Network/privateEndpoints/write"
	actionPERead       = "Microsoft.Network/privateEndpoints/read"
	actionPEDelete     = "Microsoft.Network/privateEndpoints/delete"
	actionPECRead      = "Microsoft.ContainerRegistry/registries/privateEndpointConnections/read"
	actionPECWrite     = "Microsoft.ContainerRegistry/registries/privateEndpointConnections/write"
	actionPECDelete    = "Microsoft.ContainerRegistry/registries/privateEndpointConnections/delete"
	actionPECApprove   = "Microsoft.ContainerRegistry/registries/privateEndpointConnectionsApproval/action"
	actionPLRRead      = "Microsoft.ContainerRegistry/registries/privateLinkResources/read"
	descAutoApproved   = "Auto-Approved"
	actionsRequiredNil = "None"
)

// peRouteKind says which private link route a path is.
type peRouteKind int

const (
	peNone          peRouteKind = iota
	peEndpoint                  // one private endpoint
	peListGroup                 // endpoints of a resource group
	peListSub                   // endpoints of a subscription
	peConnection                // one connection of a registry
	peConnections               // a registry's connections
	peLinkResource              // one private link resource
	peLinkResources             // a registry's private link resources
)

type peRoute struct {
	kind          peRouteKind
	sub, rg, name string // name: the endpoint's or the registry's
	child         string // the connection's or link resource's name
}

// parsePrivateLinkRoute recognises the routes of this file.
func parsePrivateLinkRoute(path string) peRoute {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	for _, s := range seg {
		if s == "" {
			return peRoute{}
		}
	}
	n := len(seg)
	if n < 4 || !eq(seg[0], "subscriptions") {
		return peRoute{}
	}
	sub := seg[1]
	if n == 5 && eq(seg[2], "providers") && eq(seg[3], networkNS) && eq(seg[4], privateEndpointsRT) {
		return peRoute{kind: peListSub, sub: sub}
	}
	if n < 7 || !eq(seg[2], "resourceGroups") || !eq(seg[4], "providers") {
		return peRoute{}
	}
	rg := seg[3]
	switch {
	case eq(seg[5], networkNS) && eq(seg[6], privateEndpointsRT) && n == 7:
		return peRoute{kind: peListGroup, sub: sub, rg: rg}
	case eq(seg[5], networkNS) && eq(seg[6], privateEndpointsRT) && n == 8:
		return peRoute{kind: peEndpoint, sub: sub, rg: rg, name: seg[7]}
	case eq(seg[5], providerNS) && eq(seg[6], registriesRT) && n >= 9:
		rt := peRoute{sub: sub, rg: rg, name: seg[7]}
		switch {
		case eq(seg[8], privatelink.ConnectionsSegment) && n == 9:
			rt.kind = peConnections
		case eq(seg[8], privatelink.ConnectionsSegment) && n == 10:
			rt.kind, rt.child = peConnection, seg[9]
		case eq(seg[8], privateLinkResourcesRT) && n == 9:
			rt.kind = peLinkResources
		case eq(seg[8], privateLinkResourcesRT) && n == 10:
			rt.kind, rt.child = peLinkResource, seg[9]
		default:
			return peRoute{}
		}
		return rt
	}
	return peRoute{}
}

// servePrivateEndpoints answers the routes of private endpoints, private endpoint connections and privateLinkResources; false for any other path.
func (h *handler) servePrivateEndpoints(w http.ResponseWriter, r *http.Request) bool {
	rt := parsePrivateLinkRoute(r.URL.Path)
	if rt.kind == peNone {
		return false
	}
	network := rt.kind == peEndpoint || rt.kind == peListGroup || rt.kind == peListSub
	var err error
	if network {
		err = networkAPIVersion(r)
	} else {
		_, err = h.apiVersion(r, false)
	}
	if err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	switch rt.kind {
	case peEndpoint:
		switch r.Method {
		case http.MethodPut:
			err = h.putEndpoint(w, r, rt)
		case http.MethodGet:
			err = h.getEndpoint(w, r, rt)
		case http.MethodDelete:
			err = h.deleteEndpoint(w, r, rt)
		default:
			h.methodNotAllowed(w, r, http.MethodPut, http.MethodGet, http.MethodDelete)
			return true
		}
	case peListGroup, peListSub:
		h.only(w, r, http.MethodGet, func() error { return h.listEndpoints(w, r, rt) })
		return true
	case peConnections:
		h.only(w, r, http.MethodGet, func() error { return h.listConnections(w, r, rt) })
		return true
	case peConnection:
		switch r.Method {
		case http.MethodGet:
			err = h.getConnection(w, r, rt)
		case http.MethodPut:
			err = h.putConnection(w, r, rt)
		case http.MethodDelete:
			err = h.deleteConnection(w, r, rt)
		default:
			h.methodNotAllowed(w, r, http.MethodGet, http.MethodPut, http.MethodDelete)
			return true
		}
	case peLinkResources, peLinkResource:
		h.only(w, r, http.MethodGet, func() error { return h.linkResources(w, r, rt) })
		return true
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	return true
}

// networkVersionRE is the shape of a Microsoft.Network api-version; moat
// serves privateEndpoints in every version since they appeared (2019-04-01).
var networkVersionRE = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(-preview)?$`)

func networkAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return newError(http.StatusBadRequest, "MissingApiVersionParameter",
			"the api-version query parameter (?api-version=) is required for all requests")
	}
	m := networkVersionRE.FindStringSubmatch(v)
	if m == nil || m[1] < "2019-04-01" {
		return newError(http.StatusBadRequest, "InvalidApiVersionParameter",
			"the api-version %q is invalid for %s/%s; use a version from 2019-04-01 on, such as 2024-05-01", v, networkNS, privateEndpointsRT)
	}
	return nil
}

func endpointID(sub, rg, name string) string {
	return groupID(sub, rg) + "/providers/" + networkNS + "/" + privateEndpointsRT + "/" + name
}

// connectionName is the registry-side name of the connection an endpoint
// makes: the endpoint's name and a hash of its id, stable across PUTs.
func connectionName(peName, peID string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(peID)))
	return peName + "." + hex.EncodeToString(sum[:8])
}

// storedEndpoint is what moat keeps of a private endpoint (meta.Resource.Properties).
type storedEndpoint struct {
	Subnet         json.RawMessage `json:"subnet,omitempty"`
	LinkName       string          `json:"linkName"`
	LinkServiceID  string          `json:"privateLinkServiceId"`
	RequestMessage string          `json:"requestMessage,omitempty"`
	Manual         bool            `json:"manual,omitempty"`
	IPConfigName   string          `json:"ipConfigurationName,omitempty"`
	MemberName     string          `json:"memberName,omitempty"`
	PrivateIP      string          `json:"privateIPAddress"`
	ConnectionID   string          `json:"connectionId"`
	Registry       string          `json:"registry"` // lower-case name
}

// endpointBody is the part of a private endpoint PUT body moat reads.
type endpointBody struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		Subnet                              json.RawMessage `json:"subnet"`
		PrivateLinkServiceConnections       []linkBody      `json:"privateLinkServiceConnections"`
		ManualPrivateLinkServiceConnections []linkBody      `json:"manualPrivateLinkServiceConnections"`
		IPConfigurations                    []struct {
			Name       string `json:"name"`
			Properties struct {
				GroupID          string `json:"groupId"`
				MemberName       string `json:"memberName"`
				PrivateIPAddress string `json:"privateIPAddress"`
			} `json:"properties"`
		} `json:"ipConfigurations"`
	} `json:"properties"`
}

type linkBody struct {
	Name       string `json:"name"`
	Properties struct {
		PrivateLinkServiceID string   `json:"privateLinkServiceId"`
		GroupIDs             []string `json:"groupIds"`
		RequestMessage       string   `json:"requestMessage"`
	} `json:"properties"`
}

func badEndpoint(target, format string, args ...any) error {
	e := newError(http.StatusBadRequest, "InvalidPrivateEndpoint", format, args...)
	e.target = target
	return e
}

// parseEndpointBody checks a PUT body in full and returns what moat stores,
// without the registry checks that need the store.
func parseEndpointBody(body []byte) (endpointBody, storedEndpoint, error) {
	var in endpointBody
	if err := decodeStrict(body, &in); err != nil {
		return endpointBody{}, storedEndpoint{}, err
	}
	if strings.TrimSpace(in.Location) == "" {
		return endpointBody{}, storedEndpoint{}, &apiError{status: http.StatusBadRequest, code: "LocationRequired", target: "location", message: "location is required"}
	}
	if in.Properties == nil {
		return endpointBody{}, storedEndpoint{}, badEndpoint("properties", "properties is required, with one privateLinkServiceConnections entry and ipConfigurations naming the private IP address")
	}
	p := in.Properties
	var st storedEndpoint
	links, field := p.PrivateLinkServiceConnections, "properties.privateLinkServiceConnections"
	if len(p.ManualPrivateLinkServiceConnections) > 0 {
		links, field, st.Manual = p.ManualPrivateLinkServiceConnections, "properties.manualPrivateLinkServiceConnections", true
	}
	if n := len(p.PrivateLinkServiceConnections) + len(p.ManualPrivateLinkServiceConnections); n != 1 {
		return endpointBody{}, storedEndpoint{}, badEndpoint("properties.privateLinkServiceConnections",
			"a private endpoint has exactly one entry in privateLinkServiceConnections or manualPrivateLinkServiceConnections, not %d", n)
	}
	l := links[0]
	if strings.TrimSpace(l.Name) == "" {
		return endpointBody{}, storedEndpoint{}, badEndpoint(field+"[0].name", "%s[0].name is required", field)
	}
	if len(l.Properties.GroupIDs) != 1 || !strings.EqualFold(l.Properties.GroupIDs[0], privatelink.GroupID) {
		return endpointBody{}, storedEndpoint{}, &apiError{status: http.StatusBadRequest, code: "InvalidGroupIds", target: field + "[0].properties.groupIds",
			message: fmt.Sprintf("%s[0].properties.groupIds is %q; a registry's only private link group is [\"registry\"]", field, l.Properties.GroupIDs)}
	}
	if strings.TrimSpace(l.Properties.PrivateLinkServiceID) == "" {
		return endpointBody{}, storedEndpoint{}, badEndpoint(field+"[0].properties.privateLinkServiceId",
			"%s[0].properties.privateLinkServiceId is required: the id of the registry to connect", field)
	}
	st.LinkName, st.LinkServiceID, st.RequestMessage = l.Name, l.Properties.PrivateLinkServiceID, l.Properties.RequestMessage
	if len(p.Subnet) > 0 && string(p.Subnet) != "null" {
		st.Subnet = p.Subnet
	}

	// The address: the ipConfiguration of member "registry", or the only one.
	idx := -1
	for i, c := range p.IPConfigurations {
		if g := c.Properties.GroupID; g != "" && !strings.EqualFold(g, privatelink.GroupID) {
			return endpointBody{}, storedEndpoint{}, &apiError{status: http.StatusBadRequest, code: "InvalidGroupIds",
				target:  fmt.Sprintf("properties.ipConfigurations[%d].properties.groupId", i),
				message: fmt.Sprintf("properties.ipConfigurations[%d].properties.groupId %q is not \"registry\"", i, g)}
		}
		if m := c.Properties.MemberName; m == "" || strings.EqualFold(m, privatelink.GroupID) {
			if idx >= 0 {
				return endpointBody{}, storedEndpoint{}, badEndpoint(fmt.Sprintf("properties.ipConfigurations[%d]", i),
					"properties.ipConfigurations[%d] and [%d] both give the address of member \"registry\"", idx, i)
			}
			idx = i
		}
	}
	if idx < 0 {
		return endpointBody{}, storedEndpoint{}, &apiError{status: http.StatusBadRequest, code: "PrivateIPAddressRequired", target: "properties.ipConfigurations",
			message: "moat allocates no addresses: give the endpoint's address in properties.ipConfigurations[].properties.privateIPAddress (memberName \"registry\")"}
	}
	c := p.IPConfigurations[idx]
	target := fmt.Sprintf("properties.ipConfigurations[%d].properties.privateIPAddress", idx)
	ip, err := netip.ParseAddr(strings.TrimSpace(c.Properties.PrivateIPAddress))
	if err != nil || ip.Zone() != "" || ip.IsUnspecified() || ip.IsMulticast() {
		return endpointBody{}, storedEndpoint{}, &apiError{status: http.StatusBadRequest, code: "InvalidPrivateIPAddress", target: target,
			message: fmt.Sprintf("%s %q is not a unicast IPv4 or IPv6 address", target, c.Properties.PrivateIPAddress)}
	}
	st.IPConfigName, st.MemberName, st.PrivateIP = c.Name, c.Properties.MemberName, ip.Unmap().String()
	return in, st, nil
}

func (h *handler) putEndpoint(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	ctx := r.Context()
	id := endpointID(rt.sub, rt.rg, rt.name)
	if err := h.require(r, actionPEWrite, id); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, st, err := parseEndpointBody(body)
	if err != nil {
		return err
	}
	if _, err := h.o.Meta.GetResource(ctx, groupID(rt.sub, rt.rg)); errors.Is(err, meta.ErrNotFound) {
		return groupNotFound(rt.rg)
	} else if err != nil {
		return err
	}
	reg, err := h.linkTarget(ctx, st.LinkServiceID)
	if err != nil {
		return err
	}
	st.Registry = reg.Name
	old, oldSt, exists, err := h.loadEndpoint(ctx, id)
	if err != nil {
		return err
	}
	if exists {
		id = old.ID // ARM keeps the spelling of the first PUT
	}
	if err := h.addressFree(ctx, id, st.PrivateIP); err != nil {
		return err
	}
	st.ConnectionID = reg.ResourceID + "/" + privatelink.ConnectionsSegment + "/" + connectionName(rt.name, id)

	conn := privatelink.Connection{PrivateEndpointID: id, PrivateIPAddress: st.PrivateIP, LinkName: st.LinkName, Manual: st.Manual,
		ActionsRequired: actionsRequiredNil}
	keep := false
	if exists && strings.EqualFold(oldSt.ConnectionID, st.ConnectionID) && oldSt.LinkName == st.LinkName && oldSt.Manual == st.Manual {
		// Same registry and link: keep the state the registry owner set.
		if res, err := h.o.Meta.GetResource(ctx, st.ConnectionID); err == nil {
			prev, err := privatelink.Decode(res)
			if err != nil {
				return err
			}
			conn.Status, conn.Description, conn.ActionsRequired, keep = prev.Status, prev.Description, prev.ActionsRequired, true
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	if !keep {
		mayApprove := !st.Manual && h.require(r, actionPECApprove, reg.ResourceID) == nil
		conn.Status, conn.Description = initialState(st.Manual, mayApprove, st.RequestMessage)
	}

	props, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding private endpoint %s: %w", id, err)
	}
	var tags []byte
	if in.Tags != nil {
		if tags, err = json.Marshal(in.Tags); err != nil {
			return fmt.Errorf("encoding tags: %w", err)
		}
	}
	saved, err := h.o.Meta.PutResource(ctx, meta.Resource{ID: id, Type: privatelink.EndpointType, Name: lastSegment(id), Location: in.Location, Tags: tags, Properties: props})
	if err != nil {
		return err
	}
	if exists && !strings.EqualFold(oldSt.ConnectionID, st.ConnectionID) {
		// The endpoint moved to another registry: its old connection goes.
		if err := h.dropConnection(ctx, oldSt.ConnectionID, oldSt.Registry); err != nil {
			return err
		}
	}
	cprops, err := json.Marshal(conn)
	if err != nil {
		return fmt.Errorf("encoding connection %s: %w", st.ConnectionID, err)
	}
	if _, err := h.o.Meta.PutResource(ctx, meta.Resource{ID: st.ConnectionID, Type: privatelink.ConnectionType,
		Name: lastSegment(st.ConnectionID), Properties: cprops}); err != nil {
		return err
	}
	h.changed(ctx, reg.Name)
	status := http.StatusCreated
	if exists {
		status = http.StatusOK
	}
	out, err := h.endpointShape(ctx, saved)
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

// initialState is a new connection's status and description: Approved when
// its creator may approve connections on the registry, Pending otherwise,
// and always Pending for a manual connection (which asks for a review by
// definition), with the creator's request message.
func initialState(manual, mayApprove bool, requestMessage string) (status, description string) {
	if !manual && mayApprove {
		return netrule.Approved, descAutoApproved
	}
	return netrule.Pending, requestMessage
}

func lastSegment(id string) string { return id[strings.LastIndexByte(id, '/')+1:] }

// linkTarget returns the registry a privateLinkServiceId names, which must
// exist and be Premium.
func (h *handler) linkTarget(ctx context.Context, linkID string) (meta.Registry, error) {
	const target = "properties.privateLinkServiceConnections[0].properties.privateLinkServiceId"
	seg := strings.Split(strings.Trim(linkID, "/"), "/")
	if len(seg) != 8 || !eq(seg[0], "subscriptions") || !eq(seg[2], "resourceGroups") || !eq(seg[4], "providers") ||
		!eq(seg[5], providerNS) || !eq(seg[6], registriesRT) || !strings.HasPrefix(linkID, "/") {
		return meta.Registry{}, &apiError{status: http.StatusBadRequest, code: "LinkedInvalidPropertyId", target: target,
			message: fmt.Sprintf("privateLinkServiceId %q is not the id of a registry (/subscriptions/{sub}/resourceGroups/{rg}/providers/%s/registries/{name})", linkID, providerNS)}
	}
	reg, err := h.o.Meta.GetRegistry(ctx, seg[7])
	if errors.Is(err, meta.ErrNotFound) || err == nil && !registryIn(reg, linkID) {
		return meta.Registry{}, &apiError{status: http.StatusBadRequest, code: "PrivateLinkServiceNotFound", target: target,
			message: fmt.Sprintf("the registry %q named by privateLinkServiceId does not exist", linkID)}
	}
	if err != nil {
		return meta.Registry{}, err
	}
	if !strings.EqualFold(reg.SKU, "Premium") {
		return meta.Registry{}, &apiError{status: http.StatusBadRequest, code: "PrivateEndpointNotSupportedForSku", target: target,
			message: fmt.Sprintf("registry '%s' is %s: private endpoints need the Premium SKU", reg.Name, reg.SKU)}
	}
	return reg, nil
}

// addressFree refuses an address another endpoint already has.
func (h *handler) addressFree(ctx context.Context, id, ip string) error {
	all, err := h.o.Meta.ListResources(ctx, "", privatelink.EndpointType)
	if err != nil {
		return err
	}
	for _, res := range all {
		if strings.EqualFold(res.ID, id) {
			continue
		}
		var st storedEndpoint
		if err := json.Unmarshal(res.Properties, &st); err != nil {
			return fmt.Errorf("stored private endpoint %s: %w", res.ID, err)
		}
		if st.PrivateIP == ip {
			return &apiError{status: http.StatusConflict, code: "PrivateIPAddressInUse", target: "properties.ipConfigurations",
				message: fmt.Sprintf("the private IP address %s is already used by private endpoint %s", ip, res.ID)}
		}
	}
	return nil
}

func (h *handler) loadEndpoint(ctx context.Context, id string) (meta.Resource, storedEndpoint, bool, error) {
	res, err := h.o.Meta.GetResource(ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Resource{}, storedEndpoint{}, false, nil
	}
	if err != nil {
		return meta.Resource{}, storedEndpoint{}, false, err
	}
	if !strings.EqualFold(res.Type, privatelink.EndpointType) {
		return meta.Resource{}, storedEndpoint{}, false, fmt.Errorf("resource %s is a %s, not a private endpoint", id, res.Type)
	}
	var st storedEndpoint
	if err := json.Unmarshal(res.Properties, &st); err != nil {
		return meta.Resource{}, storedEndpoint{}, false, fmt.Errorf("stored private endpoint %s: %w", id, err)
	}
	return res, st, true, nil
}

// dropConnection deletes a connection, if it is there, and announces the
// registry's change.
func (h *handler) dropConnection(ctx context.Context, connID, registry string) error {
	if err := h.o.Meta.DeleteResource(ctx, connID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	h.changed(ctx, registry)
	return nil
}

func endpointNotFound(name, rg string) error {
	return newError(http.StatusNotFound, "ResourceNotFound",
		"the resource '%s/%s/%s' under resource group '%s' was not found", networkNS, privateEndpointsRT, name, rg)
}

func (h *handler) getEndpoint(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	id := endpointID(rt.sub, rt.rg, rt.name)
	if err := h.require(r, actionPERead, id); err != nil {
		return err
	}
	res, _, ok, err := h.loadEndpoint(r.Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return endpointNotFound(rt.name, rt.rg)
	}
	out, err := h.endpointShape(r.Context(), res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) listEndpoints(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	scope := "/subscriptions/" + rt.sub
	if rt.kind == peListGroup {
		scope = groupID(rt.sub, rt.rg)
	}
	if err := h.require(r, actionPERead, scope); err != nil {
		return err
	}
	all, err := h.o.Meta.ListResources(r.Context(), scope, privatelink.EndpointType)
	if err != nil {
		return err
	}
	items := make([]any, 0, len(all))
	for _, res := range all {
		out, err := h.endpointShape(r.Context(), res)
		if err != nil {
			return err
		}
		items = append(items, out)
	}
	h.writePage(w, r, items)
	return nil
}

func (h *handler) deleteEndpoint(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	ctx := r.Context()
	id := endpointID(rt.sub, rt.rg, rt.name)
	if err := h.require(r, actionPEDelete, id); err != nil {
		return err
	}
	res, st, ok, err := h.loadEndpoint(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	// The connection first: once it is gone the listener closes, and an
	// endpoint left behind by a failure in between is harmless.
	if conn, err := h.o.Meta.GetResource(ctx, st.ConnectionID); err == nil {
		c, err := privatelink.Decode(conn)
		if err != nil {
			return err
		}
		if strings.EqualFold(c.PrivateEndpointID, res.ID) {
			if err := h.dropConnection(ctx, st.ConnectionID, st.Registry); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	if err := h.o.Meta.DeleteResource(ctx, res.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	h.changed(ctx, st.Registry)
	w.WriteHeader(http.StatusOK)
	return nil
}

// endpointShape is a private endpoint as Microsoft.Network shows it, with
// its connection's state read from the registry side (Disconnected when
// the registry owner deleted the connection).
func (h *handler) endpointShape(ctx context.Context, res meta.Resource) (map[string]any, error) {
	var st storedEndpoint
	if err := json.Unmarshal(res.Properties, &st); err != nil {
		return nil, fmt.Errorf("stored private endpoint %s: %w", res.ID, err)
	}
	state := map[string]any{"status": netrule.Disconnected, "description": "the registry's connection was deleted", "actionsRequired": actionsRequiredNil}
	if conn, err := h.o.Meta.GetResource(ctx, st.ConnectionID); err == nil {
		c, err := privatelink.Decode(conn)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(c.PrivateEndpointID, res.ID) {
			state = map[string]any{"status": c.Status, "description": c.Description, "actionsRequired": c.ActionsRequired}
		}
	} else if !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	link := map[string]any{
		"id":   res.ID + "/" + privateLinkServiceConnectionsSegment(st.Manual) + "/" + st.LinkName,
		"name": st.LinkName,
		"type": linkConnectionType,
		"properties": map[string]any{
			"provisioningState":                 "Succeeded",
			"privateLinkServiceId":              st.LinkServiceID,
			"groupIds":                          []string{privatelink.GroupID},
			"requestMessage":                    st.RequestMessage,
			"privateLinkServiceConnectionState": state,
		},
	}
	auto, manual := []any{}, []any{}
	if st.Manual {
		manual = append(manual, link)
	} else {
		auto = append(auto, link)
	}
	member := st.MemberName
	if member == "" {
		member = privatelink.GroupID
	}
	ipName := st.IPConfigName
	if ipName == "" {
		ipName = "ipconfig-" + privatelink.GroupID
	}
	props := map[string]any{
		"provisioningState":                   "Succeeded",
		"privateLinkServiceConnections":       auto,
		"manualPrivateLinkServiceConnections": manual,
		"ipConfigurations": []any{map[string]any{
			"name": ipName,
			"properties": map[string]any{
				"groupId": privatelink.GroupID, "memberName": member, "privateIPAddress": st.PrivateIP,
			},
		}},
		"customDnsConfigs": []any{map[string]any{
			"fqdn": h.loginServer(st.Registry), "ipAddresses": []string{st.PrivateIP},
		}},
		"networkInterfaces": []any{},
	}
	if len(st.Subnet) > 0 {
		props["subnet"] = st.Subnet
	}
	tags := map[string]string{}
	if len(res.Tags) > 0 {
		if err := json.Unmarshal(res.Tags, &tags); err != nil {
			return nil, fmt.Errorf("stored tags of %s: %w", res.ID, err)
		}
	}
	return map[string]any{
		"id": res.ID, "name": res.Name, "type": privatelink.EndpointType, "location": res.Location, "tags": tags,
		"properties": props,
	}, nil
}

func privateLinkServiceConnectionsSegment(manual bool) string {
	if manual {
		return "manualPrivateLinkServiceConnections"
	}
	return "privateLinkServiceConnections"
}

// connectionShape is a connection as ACR shows it.
func connectionShape(res meta.Resource) (map[string]any, error) {
	c, err := privatelink.Decode(res)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"id": res.ID, "name": res.Name, "type": privatelink.ConnectionType,
		"properties": map[string]any{
			"privateEndpoint": map[string]any{"id": c.PrivateEndpointID},
			"privateLinkServiceConnectionState": map[string]any{
				"status": c.Status, "description": c.Description, "actionsRequired": c.ActionsRequired,
			},
			"provisioningState": "Succeeded",
		},
	}, nil
}

// connectionsOf returns the shapes of a registry's connections, for the
// registry's properties.privateEndpointConnections and the list route.
func (h *handler) connectionsOf(ctx context.Context, registryID string) ([]any, error) {
	rs, err := h.o.Meta.ListResources(ctx, registryID, privatelink.ConnectionType)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(rs))
	for _, res := range rs {
		s, err := connectionShape(res)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// shapeWithConnections is h.shape with properties.privateEndpointConnections
// filled, in the api-versions that have it.
func (h *handler) shapeWithConnections(ctx context.Context, stored meta.Registry, reg model.Registry, v model.APIVersion) (map[string]any, error) {
	out := h.shape(stored, reg, v)
	props, _ := out["properties"].(map[string]any)
	if _, ok := props["privateEndpointConnections"]; !ok {
		return out, nil
	}
	conns, err := h.connectionsOf(ctx, stored.ResourceID)
	if err != nil {
		return nil, err
	}
	props["privateEndpointConnections"] = conns
	return out, nil
}

// registryOf loads the registry of a connection or link resource route.
func (h *handler) registryOf(ctx context.Context, rt peRoute) (meta.Registry, error) {
	stored, _, err := h.load(ctx, route{sub: rt.sub, rg: rt.rg, name: rt.name, kind: routeRegistry})
	return stored, err
}

func connectionNotFound(name, registry string) error {
	return newError(http.StatusNotFound, "PrivateEndpointConnectionNotFound",
		"private endpoint connection '%s' of registry '%s' was not found", name, registry)
}

func (h *handler) listConnections(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	stored, err := h.registryOf(r.Context(), rt)
	if err != nil {
		return err
	}
	if err := h.require(r, actionPECRead, stored.ResourceID); err != nil {
		return err
	}
	items, err := h.connectionsOf(r.Context(), stored.ResourceID)
	if err != nil {
		return err
	}
	h.writePage(w, r, items)
	return nil
}

// connection loads one connection of the route's registry.
func (h *handler) connection(ctx context.Context, rt peRoute) (meta.Registry, meta.Resource, error) {
	stored, err := h.registryOf(ctx, rt)
	if err != nil {
		return meta.Registry{}, meta.Resource{}, err
	}
	res, err := h.o.Meta.GetResource(ctx, stored.ResourceID+"/"+privatelink.ConnectionsSegment+"/"+rt.child)
	if errors.Is(err, meta.ErrNotFound) || err == nil && !strings.EqualFold(res.Type, privatelink.ConnectionType) {
		return meta.Registry{}, meta.Resource{}, connectionNotFound(rt.child, stored.Name)
	}
	return stored, res, err
}

func (h *handler) getConnection(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	_, res, err := h.connection(r.Context(), rt)
	if err != nil {
		return err
	}
	if err := h.require(r, actionPECRead, res.ID); err != nil {
		return err
	}
	out, err := connectionShape(res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// connectionBody is what a connection PUT may say.
type connectionBody struct {
	Properties *struct {
		PrivateEndpoint *struct {
			ID string `json:"id"`
		} `json:"privateEndpoint"`
		State *struct {
			Status          string `json:"status"`
			Description     string `json:"description"`
			ActionsRequired string `json:"actionsRequired"`
		} `json:"privateLinkServiceConnectionState"`
	} `json:"properties"`
}

// nextConnection applies a PUT body to a stored connection: the pure part
// of an approval or rejection.
func nextConnection(prev privatelink.Connection, body []byte) (privatelink.Connection, error) {
	var in connectionBody
	if err := decodeStrict(body, &in); err != nil {
		return privatelink.Connection{}, err
	}
	if in.Properties == nil || in.Properties.State == nil {
		return privatelink.Connection{}, badContent("properties.privateLinkServiceConnectionState",
			"properties.privateLinkServiceConnectionState is required: its status (Approved or Rejected) is what a PUT changes")
	}
	if pe := in.Properties.PrivateEndpoint; pe != nil && pe.ID != "" && !strings.EqualFold(pe.ID, prev.PrivateEndpointID) {
		return privatelink.Connection{}, badContent("properties.privateEndpoint.id",
			"properties.privateEndpoint.id %q is not this connection's endpoint %q; it cannot change", pe.ID, prev.PrivateEndpointID)
	}
	s := in.Properties.State
	var status string
	for _, v := range []string{netrule.Approved, netrule.Rejected, netrule.Pending} {
		if strings.EqualFold(s.Status, v) {
			status = v
		}
	}
	switch {
	case status == "":
		return privatelink.Connection{}, badContent("properties.privateLinkServiceConnectionState.status",
			"status %q is not Approved or Rejected", s.Status)
	case status == netrule.Pending && prev.Status != netrule.Pending:
		return privatelink.Connection{}, badContent("properties.privateLinkServiceConnectionState.status",
			"a %s connection cannot go back to Pending; approve or reject it", prev.Status)
	}
	next := prev
	next.Status, next.Description, next.ActionsRequired = status, s.Description, s.ActionsRequired
	if next.ActionsRequired == "" {
		next.ActionsRequired = actionsRequiredNil
	}
	return next, nil
}

func (h *handler) putConnection(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		return err
	}
	stored, res, err := h.connection(ctx, rt)
	if err != nil {
		return err
	}
	if err := h.require(r, actionPECWrite, res.ID); err != nil {
		return err
	}
	if err := h.require(r, actionPECApprove, stored.ResourceID); err != nil {
		return err
	}
	prev, err := privatelink.Decode(res)
	if err != nil {
		return err
	}
	next, err := nextConnection(prev, body)
	if err != nil {
		return err
	}
	props, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encoding connection %s: %w", res.ID, err)
	}
	res.Properties = props
	saved, err := h.o.Meta.PutResource(ctx, res)
	if errors.Is(err, meta.ErrConflict) {
		return newError(http.StatusConflict, "Conflict", "connection '%s' changed while it was being updated; retry", rt.child)
	}
	if err != nil {
		return err
	}
	h.changed(ctx, stored.Name)
	out, err := connectionShape(saved)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) deleteConnection(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	ctx := r.Context()
	_, res, err := h.connection(ctx, rt)
	var ae *apiError
	if errors.As(err, &ae) && ae.code == "PrivateEndpointConnectionNotFound" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.require(r, actionPECDelete, res.ID); err != nil {
		return err
	}
	_, reg, _ := privatelink.RegistryOf(res.ID)
	if err := h.dropConnection(ctx, res.ID, reg); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// linkResourceShape is the registry's one private link resource.
func (h *handler) linkResourceShape(stored meta.Registry) map[string]any {
	zone := "privatelink." + strings.TrimPrefix(strings.ToLower(h.o.Domain), ".")
	if h.o.Domain == "" {
		zone = "privatelink"
	}
	return map[string]any{
		"id":   stored.ResourceID + "/" + privateLinkResourcesRT + "/" + privatelink.GroupID,
		"name": privatelink.GroupID,
		"type": privateLinkResourceType,
		"properties": map[string]any{
			"groupId":           privatelink.GroupID,
			"requiredMembers":   []string{privatelink.GroupID},
			"requiredZoneNames": []string{zone},
		},
	}
}

func (h *handler) linkResources(w http.ResponseWriter, r *http.Request, rt peRoute) error {
	stored, err := h.registryOf(r.Context(), rt)
	if err != nil {
		return err
	}
	if err := h.require(r, actionPLRRead, stored.ResourceID); err != nil {
		return err
	}
	if rt.kind == peLinkResources {
		h.writePage(w, r, []any{h.linkResourceShape(stored)})
		return nil
	}
	if !strings.EqualFold(rt.child, privatelink.GroupID) {
		return newError(http.StatusNotFound, "PrivateLinkResourceNotFound",
			"registry '%s' has no private link resource '%s'; its only group is 'registry'", stored.Name, rt.child)
	}
	writeJSON(w, http.StatusOK, h.linkResourceShape(stored))
	return nil
}

// writeShape answers a registry with its connections.
func (h *handler) writeShape(w http.ResponseWriter, r *http.Request, status int, stored meta.Registry, reg model.Registry, v model.APIVersion) error {
	out, err := h.shapeWithConnections(r.Context(), stored, reg, v)
	if err != nil {
		return err
	}
	writeJSON(w, status, out)
	return nil
}

// keepsPrivateLink refuses to move a registry with private endpoint
// connections off Premium: private link needs Premium, and the endpoints
// would otherwise keep serving a registry that may not have them.
func (h *handler) keepsPrivateLink(ctx context.Context, stored meta.Registry, next model.Registry) error {
	if strings.EqualFold(next.SKU, "Premium") {
		return nil
	}
	conns, err := h.o.Meta.ListResources(ctx, stored.ResourceID, privatelink.ConnectionType)
	if err != nil {
		return err
	}
	if len(conns) > 0 {
		return &apiError{status: http.StatusBadRequest, code: "PrivateEndpointsRequirePremiumSku", target: "sku.name",
			message: fmt.Sprintf("registry '%s' has %d private endpoint connection(s); delete them before changing the SKU to %s", stored.Name, len(conns), next.SKU)}
	}
	return nil
}
