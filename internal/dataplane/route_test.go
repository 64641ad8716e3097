package dataplane

import (
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	tests := []struct {
		path string
		want route
	}{
		{"/v2/", route{Kind: routeBase}},
		{"/v2", route{Kind: routeBase}},
		{"/v2/_catalog", route{Kind: routeCatalog}},
		{"/oauth2/token", route{Kind: routeToken}},
		{"/v2/alpine/manifests/latest", route{routeManifest, "alpine", "latest"}},
		{"/v2/library/alpine/manifests/" + d, route{routeManifest, "library/alpine", d}},
		{"/v2/a/b/c/blobs/" + d, route{routeBlob, "a/b/c", d}},
		{"/v2/a/blobs/uploads/", route{Kind: routeUploadStart, Name: "a"}},
		{"/v2/a/blobs/uploads", route{Kind: routeUploadStart, Name: "a"}},
		{"/v2/a/b/blobs/uploads/1234-abcd", route{routeUpload, "a/b", "1234-abcd"}},
		{"/v2/a/tags/list", route{Kind: routeTags, Name: "a"}},
		{"/v2/a/referrers/" + d, route{routeReferrers, "a", d}},
		// Names that contain the endpoint keywords: the last segments decide.
		{"/v2/manifests/manifests/latest", route{routeManifest, "manifests", "latest"}},
		{"/v2/x/blobs/manifests/v1", route{routeManifest, "x/blobs", "v1"}},
		{"/v2/x/manifests/blobs/" + d, route{routeBlob, "x/manifests", d}},
		{"/v2/x/blobs/uploads/blobs/uploads/", route{Kind: routeUploadStart, Name: "x/blobs/uploads"}},
		{"/v2/tags/tags/list", route{Kind: routeTags, Name: "tags"}},
		{"/v2/referrers/referrers/" + d, route{routeReferrers, "referrers", d}},
		{"/v2/uploads/blobs/uploads/id", route{routeUpload, "uploads", "id"}},
		// Empty or malformed names come back as parsed; the handler refuses them.
		{"/v2/manifests/latest", route{routeManifest, "", "latest"}},
		{"/v2//manifests/latest", route{routeManifest, "", "latest"}},
		{"/v2/blobs/uploads/", route{Kind: routeUploadStart, Name: ""}},
		{"/v2/../x/manifests/latest", route{routeManifest, "../x", "latest"}},
		// Unknown endpoints.
		{"/", route{}},
		{"/v1/x", route{}},
		{"/v2x", route{}},
		{"/v2/x", route{}},
		{"/v2/x/tags", route{}},
		{"/v2/x/tags/all", route{}},
		{"/v2/x/tags/list/", route{}},
		{"/v2/x/uploads/id", route{}},
		{"/v2/x/other/y", route{}},
		{"/oauth2/token/", route{}},
		{"/oauth2/exchange", route{Kind: routeExchange}},
		{"/oauth2/exchange/", route{}},
	}
	for _, tt := range tests {
		if got := parseRoute(tt.path); got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

// FuzzParseRoute checks that route parsing never panics and that what it
// extracts really is a suffix structure of the path: rebuilding the path from
// the route gives the path back.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x",
		"/v2/a/tags/list", "/v2/a/referrers/sha256:x", "/v2/manifests/manifests/manifests", "/v2//", "/v2/a/blobs/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt := parseRoute(path)
		var rebuilt []string
		switch rt.Kind {
		case routeUnknown, routeBase, routeCatalog, routeToken:
			if rt.Name != "" || rt.Ref != "" {
				t.Fatalf("parseRoute(%q) = %+v: name or ref on an endpoint without them", path, rt)
			}
			return
		}
		if rt.Name == "" {
			// "/v2/manifests/x" and the like: no repository at all, which
			// the handler refuses as NAME_INVALID.
			return
		}
		switch rt.Kind {
		case routeManifest:
			rebuilt = []string{"/v2/" + rt.Name + "/manifests/" + rt.Ref}
		case routeBlob:
			rebuilt = []string{"/v2/" + rt.Name + "/blobs/" + rt.Ref}
		case routeReferrers:
			rebuilt = []string{"/v2/" + rt.Name + "/referrers/" + rt.Ref}
		case routeTags:
			rebuilt = []string{"/v2/" + rt.Name + "/tags/list"}
		case routeUpload:
			rebuilt = []string{"/v2/" + rt.Name + "/blobs/uploads/" + rt.Ref}
		case routeUploadStart:
			rebuilt = []string{"/v2/" + rt.Name + "/blobs/uploads/", "/v2/" + rt.Name + "/blobs/uploads"}
		default:
			t.Fatalf("parseRoute(%q) = unexpected kind %d", path, rt.Kind)
		}
		for _, r := range rebuilt {
			if r == path {
				if strings.Contains(rt.Ref, "/") {
					t.Fatalf("parseRoute(%q) = %+v: ref with a slash", path, rt)
				}
				return
			}
		}
		t.Fatalf("parseRoute(%q) = %+v, which rebuilds to %q", path, rt, rebuilt)
	})
}
