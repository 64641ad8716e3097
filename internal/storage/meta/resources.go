package meta

import (
	"context"
	"time"
)

// Resource is a generic ARM resource kept by the management plane: a
// resource group now; private endpoints, managed identities and role
// assignments later. Registries are not Resources: they live in the
// registries table, which the data plane reads.
//
// ARM ids are case-insensitive: the store looks resources up by the
// lower-cased id and returns ID as it was given when the resource was first
// created (a replace keeps the original spelling, as ARM does).
type Resource struct {
	// ID is the ARM resource id, e.g. /subscriptions/{sub}/resourceGroups/{rg}.
	ID string
	// Type is the ARM type, e.g. Microsoft.Resources/resourceGroups; matched
	// case-insensitively by ListResources.
	Type string
	// Name is the resource's last id segment as given.
	Name string
	// Location is the ARM location, or "".
	Location string
	// Properties, Tags, SKU and Identity are JSON owned by the management
	// plane, kept verbatim; nil and empty are the same.
	Properties []byte
	Tags       []byte
	SKU        []byte
	Identity   []byte
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version starts at 1 and increments on every PutResource.
	Version int64
}

// ResourceStore keeps generic ARM resources. See Resource for how ids compare.
type ResourceStore interface {
	// PutResource creates or replaces the resource with r.ID and returns the
	// stored record. With r.Version zero it writes unconditionally (create or
	// replace); with r.Version non-zero it replaces only a stored resource of
	// that Version: ErrNotFound if there is none, ErrConflict if its Version
	// differs. A replace keeps CreatedAt and the stored spelling of ID.
	PutResource(ctx context.Context, r Resource) (Resource, error)
	// GetResource returns the resource with that id, in any case.
	GetResource(ctx context.Context, id string) (Resource, error)
	// ListResources returns the resources whose id lies below parentPrefix
	// (at any depth; "" for all) and whose type is typ (any case; "" for
	// every type), ordered by lower-cased id in byte order.
	ListResources(ctx context.Context, parentPrefix, typ string) ([]Resource, error)
	// DeleteResource removes the resource with that id and every resource
	// below it, so deleting a resource group deletes the resources stored in
	// it (registries are not among them: the caller deletes those).
	// ErrNotFound if the resource itself does not exist.
	DeleteResource(ctx context.Context, id string) error
}
