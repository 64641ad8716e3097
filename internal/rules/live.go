package rules

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/privatelink"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// LiveTarget renders a stored registry as ARM returns it from a GET (the
// newest api-version) so the rules read exactly what they would read from a
// template that deployed the same configuration.
func LiveTarget(r meta.Registry) (*Target, error) {
	reg, err := model.UnmarshalStored(r.Location, r.SKU, r.Properties, r.Tags)
	if err != nil {
		return nil, fmt.Errorf("registry %s: stored properties: %w", r.Name, err)
	}
	body, err := plainJSON(reg.Shape(r.ResourceID, r.Name, model.LatestPreview()))
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", r.Name, err)
	}
	if reg.Properties.Policies.SoftDeletePolicy.RetentionDaysDefaulted {
		// GET shows ACR's default of 7, but no request set it: judge what
		// was deployed, as the template check does.
		dropPath(body, "properties", "policies", "softDeletePolicy", "retentionDays")
	}
	src := r.ResourceID
	if src == "" {
		src = "registries/" + r.Name
	}
	return &Target{Type: model.RegistryType, Name: r.Name, ID: r.ResourceID, Body: body, Source: Source{File: src}}, nil
}

// dropPath deletes the member at keys from a JSON object tree, if present.
func dropPath(m map[string]any, keys ...string) {
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, keys[len(keys)-1])
}

// plainJSON turns typed Go values into the generic JSON tree the rules
// read (map[string]any, []any, string, float64, bool).
func plainJSON(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// LiveStore is what live checking reads: the registries and the generic
// resources (diagnostic settings) of a moat deployment.
type LiveStore interface {
	ListRegistries(ctx context.Context) ([]meta.Registry, error)
	GetRegistry(ctx context.Context, name string) (meta.Registry, error)
	ListResources(ctx context.Context, parentPrefix, typ string) ([]meta.Resource, error)
}

// LoadLive reads the named registries (all when names is empty) and the
// diagnostic settings stored under each.
func LoadLive(ctx context.Context, store LiveStore, names []string) (*Input, error) {
	var regs []meta.Registry
	if len(names) == 0 {
		all, err := store.ListRegistries(ctx)
		if err != nil {
			return nil, fmt.Errorf("list registries: %w", err)
		}
		regs = all
	}
	for _, n := range names {
		r, err := store.GetRegistry(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", n, err)
		}
		regs = append(regs, r)
	}
	in := &Input{}
	for _, r := range regs {
		t, err := LiveTarget(r)
		if err != nil {
			in.Errors = append(in.Errors, &InputError{File: "registries/" + r.Name, Err: err})
			continue
		}
		in.Files++
		if r.ResourceID != "" {
			settings, err := store.ListResources(ctx, r.ResourceID+"/providers/", diagnosticSettingsType)
			if err != nil {
				return nil, fmt.Errorf("registry %s: diagnostic settings: %w", r.Name, err)
			}
			for _, s := range settings {
				ds, err := storedResourceTarget(s)
				if err != nil {
					in.Errors = append(in.Errors, &InputError{File: s.ID, Err: err})
					continue
				}
				t.Extensions = append(t.Extensions, ds)
			}
			if err := addConnections(ctx, store, r, t); err != nil {
				return nil, err
			}
		}
		in.Targets = append(in.Targets, t)
	}
	return in, nil
}

// addConnections puts the registry's private endpoint connections into
// properties.privateEndpointConnections in the shape a registry GET shows.
func addConnections(ctx context.Context, store LiveStore, r meta.Registry, t *Target) error {
	stored, err := store.ListResources(ctx, r.ResourceID+"/"+privatelink.ConnectionsSegment+"/", privatelink.ConnectionType)
	if err != nil {
		return fmt.Errorf("registry %s: private endpoint connections: %w", r.Name, err)
	}
	list := []any{}
	for _, res := range stored {
		c, err := privatelink.Decode(res)
		if err != nil {
			return fmt.Errorf("registry %s: %w", r.Name, err)
		}
		list = append(list, map[string]any{
			"id": res.ID, "name": res.Name, "type": privatelink.ConnectionType,
			"properties": map[string]any{
				"privateEndpoint": map[string]any{"id": c.PrivateEndpointID},
				"privateLinkServiceConnectionState": map[string]any{
					"status": c.Status, "description": c.Description, "actionsRequired": c.ActionsRequired,
				},
			},
		})
	}
	if props, ok := t.Body["properties"].(map[string]any); ok {
		props["privateEndpointConnections"] = list
	}
	return nil
}

func storedResourceTarget(r meta.Resource) (*Target, error) {
	body := map[string]any{"id": r.ID, "name": r.Name, "type": r.Type}
	if len(r.Properties) > 0 {
		var p any
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			return nil, fmt.Errorf("stored properties: %w", err)
		}
		body["properties"] = p
	}
	return &Target{Type: r.Type, Name: r.Name, ID: r.ID, Body: body, Source: Source{File: r.ID}}, nil
}
