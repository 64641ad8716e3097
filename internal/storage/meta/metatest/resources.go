package metatest

import (
	"bytes"
	"testing"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// RunResources runs the conformance cases of meta.ResourceStore; each case
// gets a store of its own from newStore. It is separate from Run so that a
// store's test file names the contract it checks.
//
// Beyond meta's doc comments, the stores agree that ids are trimmed of a
// trailing slash before comparison and that nil and empty JSON fields are the
// same.
func RunResources(t *testing.T, newStore func(t *testing.T) meta.Store) {
	for _, c := range resourceChecks {
		t.Run(c.name, func(t *testing.T) {
			c.fn(&env{t: t, s: newStore(t), ctx: t.Context()})
		})
	}
}

const (
	rgType  = "Microsoft.Resources/resourceGroups"
	peType  = "Microsoft.Network/privateEndpoints"
	rgAlpha = "/subscriptions/sub-1/resourceGroups/Alpha"
)

func (e *env) putResource(r meta.Resource) meta.Resource {
	e.t.Helper()
	got, err := e.s.PutResource(e.ctx, r)
	if err != nil {
		e.t.Fatalf("PutResource(%s): %v", r.ID, err)
	}
	return got
}

func diffResource(e *env, what string, got, want meta.Resource) {
	e.t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Name != want.Name || got.Location != want.Location ||
		!bytes.Equal(got.Properties, want.Properties) || !bytes.Equal(got.Tags, want.Tags) ||
		!bytes.Equal(got.SKU, want.SKU) || !bytes.Equal(got.Identity, want.Identity) ||
		got.Version != want.Version || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		e.t.Fatalf("%s =\n  %+v\nwant\n  %+v", what, got, want)
	}
}

func ids(rs []meta.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func sameIDs(e *env, what string, got []meta.Resource, want ...string) {
	e.t.Helper()
	g := ids(got)
	if len(g) != len(want) {
		e.t.Fatalf("%s = %q, want %q", what, g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			e.t.Fatalf("%s = %q, want %q", what, g, want)
		}
	}
}

var resourceChecks = []check{
	{"Resources/PutGetRoundTripAnyCase", func(e *env) {
		in := meta.Resource{ID: rgAlpha, Type: rgType, Name: "Alpha", Location: "westeurope",
			Properties: bytesNumber, Tags: bytesBinary, SKU: []byte(`{"name":"x"}`), Identity: []byte(`{"type":"None"}`)}
		got := e.putResource(in)
		if got.Version != 1 || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
			e.t.Fatalf("created: Version %d CreatedAt %v UpdatedAt %v; want 1 and equal timestamps", got.Version, got.CreatedAt, got.UpdatedAt)
		}
		want := in
		want.Version, want.CreatedAt, want.UpdatedAt = 1, got.CreatedAt, got.UpdatedAt
		diffResource(e, "PutResource result", got, want)
		for _, id := range []string{rgAlpha, "/SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/ALPHA", rgAlpha + "/"} {
			read, err := e.s.GetResource(e.ctx, id)
			if err != nil {
				e.t.Fatalf("GetResource(%s): %v", id, err)
			}
			diffResource(e, "GetResource("+id+")", read, want)
		}
		_, err := e.s.GetResource(e.ctx, "/subscriptions/sub-1/resourceGroups/beta")
		e.wantErr("GetResource(missing)", err, meta.ErrNotFound)
	}},
	{"Resources/ReplaceKeepsCreatedAtAndSpelling", func(e *env) {
		first := e.putResource(meta.Resource{ID: rgAlpha, Type: rgType, Name: "Alpha", Location: "westeurope", Tags: []byte(`{"a":"1"}`)})
		second := e.putResource(meta.Resource{ID: "/subscriptions/SUB-1/resourcegroups/alpha", Type: rgType, Name: "Alpha", Location: "westeurope"})
		if second.Version != 2 || !second.CreatedAt.Equal(first.CreatedAt) || second.ID != rgAlpha || len(second.Tags) != 0 {
			e.t.Fatalf("replace = %+v; want version 2, CreatedAt %v, ID %q, no tags", second, first.CreatedAt, rgAlpha)
		}
	}},
	{"Resources/OptimisticVersion", func(e *env) {
		r := e.putResource(meta.Resource{ID: rgAlpha, Type: rgType, Name: "Alpha"})
		r.Location = "eastus"
		r2, err := e.s.PutResource(e.ctx, r)
		if err != nil || r2.Version != 2 || r2.Location != "eastus" {
			e.t.Fatalf("PutResource at current version = %+v, %v; want version 2", r2, err)
		}
		_, err = e.s.PutResource(e.ctx, r) // r.Version is 1 again: stale
		e.wantErr("PutResource at stale version", err, meta.ErrConflict)
		_, err = e.s.PutResource(e.ctx, meta.Resource{ID: rgAlpha + "x", Type: rgType, Version: 3})
		e.wantErr("PutResource with version of a missing resource", err, meta.ErrNotFound)
		if _, err := e.s.GetResource(e.ctx, rgAlpha+"x"); !isErr(err, meta.ErrNotFound) {
			e.t.Fatalf("a versioned put of a missing resource created it: %v", err)
		}
	}},
	{"Resources/ListUnderPrefixByType", func(e *env) {
		e.putResource(meta.Resource{ID: rgAlpha, Type: rgType, Name: "Alpha"})
		e.putResource(meta.Resource{ID: "/subscriptions/sub-1/resourceGroups/Alpha2", Type: rgType, Name: "Alpha2"})
		e.putResource(meta.Resource{ID: "/subscriptions/sub-2/resourceGroups/gamma", Type: rgType, Name: "gamma"})
		e.putResource(meta.Resource{ID: rgAlpha + "/providers/Microsoft.Network/privateEndpoints/pe-b", Type: peType, Name: "pe-b"})
		e.putResource(meta.Resource{ID: rgAlpha + "/providers/Microsoft.Network/privateEndpoints/PE-a", Type: peType, Name: "PE-a"})
		e.putResource(meta.Resource{ID: "/subscriptions/sub-1/resourceGroups/Alpha2/providers/Microsoft.Network/privateEndpoints/pe-c", Type: peType, Name: "pe-c"})

		got, err := e.s.ListResources(e.ctx, "/SUBSCRIPTIONS/sub-1", "microsoft.resources/RESOURCEGROUPS")
		if err != nil {
			e.t.Fatalf("ListResources: %v", err)
		}
		sameIDs(e, "resource groups of sub-1", got, rgAlpha, "/subscriptions/sub-1/resourceGroups/Alpha2")

		got, err = e.s.ListResources(e.ctx, rgAlpha, peType)
		if err != nil {
			e.t.Fatalf("ListResources: %v", err)
		}
		// Alpha2's endpoint is not under Alpha although "alpha2" starts with "alpha".
		sameIDs(e, "endpoints of Alpha", got,
			rgAlpha+"/providers/Microsoft.Network/privateEndpoints/PE-a",
			rgAlpha+"/providers/Microsoft.Network/privateEndpoints/pe-b")

		got, err = e.s.ListResources(e.ctx, "", peType)
		if err != nil || len(got) != 3 {
			e.t.Fatalf("ListResources(all endpoints) = %q, %v; want 3", ids(got), err)
		}
		got, err = e.s.ListResources(e.ctx, "/subscriptions/sub-1/resourceGroups/Alpha2/", "")
		if err != nil {
			e.t.Fatalf("ListResources: %v", err)
		}
		sameIDs(e, "everything under Alpha2", got, "/subscriptions/sub-1/resourceGroups/Alpha2/providers/Microsoft.Network/privateEndpoints/pe-c")
		got, err = e.s.ListResources(e.ctx, "/subscriptions/none", "")
		if err != nil || len(got) != 0 {
			e.t.Fatalf("ListResources(empty) = %q, %v; want empty", ids(got), err)
		}
	}},
	{"Resources/ListTreatsWildcardsLiterally", func(e *env) {
		e.putResource(meta.Resource{ID: "/subscriptions/s/resourceGroups/a_b", Type: rgType})
		e.putResource(meta.Resource{ID: "/subscriptions/s/resourceGroups/a_b/x/1", Type: peType})
		e.putResource(meta.Resource{ID: "/subscriptions/s/resourceGroups/axb/x/2", Type: peType})
		e.putResource(meta.Resource{ID: "/subscriptions/s/resourceGroups/a%/x/3", Type: peType})
		got, err := e.s.ListResources(e.ctx, "/subscriptions/s/resourceGroups/a_b", "")
		if err != nil {
			e.t.Fatalf("ListResources: %v", err)
		}
		sameIDs(e, "under a_b", got, "/subscriptions/s/resourceGroups/a_b/x/1")
	}},
	{"Resources/DeleteCascadesBelow", func(e *env) {
		e.putResource(meta.Resource{ID: rgAlpha, Type: rgType})
		e.putResource(meta.Resource{ID: rgAlpha + "/providers/Microsoft.Network/privateEndpoints/pe", Type: peType})
		e.putResource(meta.Resource{ID: "/subscriptions/sub-1/resourceGroups/Alpha2", Type: rgType})
		e.putResource(meta.Resource{ID: "/subscriptions/sub-1/resourceGroups/Alpha2/providers/Microsoft.Network/privateEndpoints/pe", Type: peType})
		if err := e.s.DeleteResource(e.ctx, "/subscriptions/SUB-1/resourcegroups/ALPHA"); err != nil {
			e.t.Fatalf("DeleteResource: %v", err)
		}
		got, err := e.s.ListResources(e.ctx, "/subscriptions/sub-1", "")
		if err != nil {
			e.t.Fatalf("ListResources: %v", err)
		}
		sameIDs(e, "after deleting Alpha", got, "/subscriptions/sub-1/resourceGroups/Alpha2",
			"/subscriptions/sub-1/resourceGroups/Alpha2/providers/Microsoft.Network/privateEndpoints/pe")
		e.wantErr("DeleteResource again", e.s.DeleteResource(e.ctx, rgAlpha), meta.ErrNotFound)
	}},
}
