// Package privatelink owns what the management plane, the data plane and the
// edge share about private endpoints: how a registry's private endpoint
// connections are stored (meta.Resources of ConnectionType below the
// registry's id), how they are read back as the endpoints to listen on and
// to judge, and the request context that says a request arrived on one.
//
// Invariants:
//
//   - A connection is stored under {registry id}/privateEndpointConnections/{name};
//     the registry it connects is the one named in that id, never anything
//     the client sends with a request.
//   - A connection carries the private IP address moat listens on for it
//     (taken from the endpoint when it was created), so the edge needs no
//     other resource to open its listener.
//   - A request carries an Arrival only when the edge accepted it on a
//     private endpoint's listener; the data plane then serves that
//     registry and no other, whatever the Host header says.
package privatelink

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// ARM names.
const (
	// EndpointType is the type of a private endpoint resource, stored in its
	// resource group.
	EndpointType = "Microsoft.Network/privateEndpoints"
	// ConnectionType is the type of a registry's private endpoint connection.
	ConnectionType = "Microsoft.ContainerRegistry/registries/privateEndpointConnections"
	// ConnectionsSegment is the id segment between a registry's id and a
	// connection's name.
	ConnectionsSegment = "privateEndpointConnections"
	// GroupID is the only private link group (sub-resource) a registry has.
	GroupID = "registry"
)

// Connection is the stored form of a private endpoint connection
// (meta.Resource.Properties of a ConnectionType resource).
type Connection struct {
	// PrivateEndpointID is the ARM id of the endpoint that made it.
	PrivateEndpointID string `json:"privateEndpointId"`
	// Status is Approved, Pending, Rejected or Disconnected.
	Status          string `json:"status"`
	Description     string `json:"description"`
	ActionsRequired string `json:"actionsRequired"`
	// PrivateIPAddress is the endpoint's address, where moat listens.
	PrivateIPAddress string `json:"privateIpAddress"`
	// LinkName is the name of the endpoint's privateLinkServiceConnection
	// that made this connection; Manual says it was a manual one.
	LinkName string `json:"linkName"`
	Manual   bool   `json:"manual,omitempty"`
}

// Decode reads a stored connection.
func Decode(r meta.Resource) (Connection, error) {
	var c Connection
	if err := json.Unmarshal(r.Properties, &c); err != nil {
		return Connection{}, fmt.Errorf("stored private endpoint connection %s: %w", r.ID, err)
	}
	return c, nil
}

// RegistryOf returns the id and lower-case name of the registry a
// connection id lies under, or ok false when id is not a connection id.
func RegistryOf(connectionID string) (registryID, registry string, ok bool) {
	// ASCII case folding keeps byte offsets: strings.ToLower would turn an
	// invalid byte into a three-byte U+FFFD and shift the index.
	i := strings.LastIndex(asciiLower(connectionID), "/"+asciiLower(ConnectionsSegment)+"/")
	if i <= 0 {
		return "", "", false
	}
	registryID = connectionID[:i]
	j := strings.LastIndexByte(registryID, '/')
	if j < 0 || j == len(registryID)-1 {
		return "", "", false
	}
	return registryID, strings.ToLower(registryID[j+1:]), true
}

// asciiLower lower-cases A–Z only, byte for byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Endpoint is one private endpoint connection as the edge sees it.
type Endpoint struct {
	// ID is the private endpoint's ARM id.
	ID string
	// Registry is the lower-case name of the registry it connects.
	Registry string
	// Addr is the address moat listens on for it.
	Addr netip.Addr
	// Status is the connection's state.
	Status string
}

// List returns every stored connection's endpoint, ordered by connection
// id, leaving out connections whose endpoint no longer exists (deleting a
// resource group deletes its endpoints, not the connections they made to
// registries in other groups). A connection whose record cannot be read
// fails the whole list: the caller keeps what it had rather than acting on
// part of the truth.
func List(ctx context.Context, store meta.ResourceStore) ([]Endpoint, error) {
	rs, err := store.ListResources(ctx, "", ConnectionType)
	if err != nil {
		return nil, fmt.Errorf("listing private endpoint connections: %w", err)
	}
	pes, err := store.ListResources(ctx, "", EndpointType)
	if err != nil {
		return nil, fmt.Errorf("listing private endpoints: %w", err)
	}
	exists := make(map[string]bool, len(pes))
	for _, pe := range pes {
		exists[strings.ToLower(pe.ID)] = true
	}
	out := make([]Endpoint, 0, len(rs))
	for _, r := range rs {
		c, err := Decode(r)
		if err != nil {
			return nil, err
		}
		if !exists[strings.ToLower(c.PrivateEndpointID)] {
			continue
		}
		_, reg, ok := RegistryOf(r.ID)
		if !ok {
			return nil, fmt.Errorf("stored private endpoint connection %s: not below a registry", r.ID)
		}
		a, err := netip.ParseAddr(c.PrivateIPAddress)
		if err != nil {
			return nil, fmt.Errorf("stored private endpoint connection %s: address %q: %w", r.ID, c.PrivateIPAddress, err)
		}
		out = append(out, Endpoint{ID: c.PrivateEndpointID, Registry: reg, Addr: a.Unmap(), Status: c.Status})
	}
	return out, nil
}

// ForRegistry returns the endpoints connected to the registry with that
// ARM id, for netrule.Compile.
func ForRegistry(ctx context.Context, store meta.ResourceStore, registryID string) ([]netrule.PrivateEndpoint, error) {
	if registryID == "" {
		return nil, nil
	}
	rs, err := store.ListResources(ctx, registryID, ConnectionType)
	if err != nil {
		return nil, fmt.Errorf("listing the private endpoint connections of %s: %w", registryID, err)
	}
	out := make([]netrule.PrivateEndpoint, 0, len(rs))
	for _, r := range rs {
		c, err := Decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, netrule.PrivateEndpoint{ID: c.PrivateEndpointID, ConnectionState: c.Status})
	}
	return out, nil
}

// Arrival says which private endpoint a request arrived on.
type Arrival struct {
	// EndpointID is the private endpoint's ARM id.
	EndpointID string
	// Registry is the lower-case name of the only registry served there.
	Registry string
}

type arrivalKey struct{}

// WithArrival marks ctx as a request that arrived on a private endpoint's
// listener.
func WithArrival(ctx context.Context, a Arrival) context.Context {
	return context.WithValue(ctx, arrivalKey{}, a)
}

// ArrivalFrom returns the Arrival stored by WithArrival; ok is false for a
// request that arrived on the public listener.
func ArrivalFrom(ctx context.Context) (Arrival, bool) {
	a, ok := ctx.Value(arrivalKey{}).(Arrival)
	return a, ok
}
