package dataplane

import "strings"

// routeKind names the endpoint a request addresses. Its String is the route
// label of the metrics and the logs.
type routeKind uint8

const (
	routeUnknown routeKind = iota
	routeBase
	routeCatalog
	routeToken
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeTags
	routeReferrers
	routeExchange
	numRoutes
)

var routeNames = [numRoutes]string{
	routeUnknown:     "unknown",
	routeBase:        "base",
	routeCatalog:     "catalog",
	routeToken:       "token",
	routeManifest:    "manifest",
	routeBlob:        "blob",
	routeUploadStart: "upload_start",
	routeUpload:      "upload",
	routeTags:        "tags",
	routeReferrers:   "referrers",
	routeExchange:    "exchange",
}

func (k routeKind) String() string {
	if k >= numRoutes {
		return routeNames[routeUnknown]
	}
	return routeNames[k]
}

// route is a parsed request path. Name is the repository (not yet validated);
// Ref is the last path segment where the endpoint has one: a tag or digest
// for manifests, a digest for blobs and referrers, an upload id for uploads.
type route struct {
	Kind routeKind
	Name string
	Ref  string
}

// parseRoute maps a URL path to an endpoint.
//
// Repository names may contain slashes and even path components that look
// like the endpoint keywords ("a/manifests/b" is a valid name), so the path is
// read from the end: the last segments decide the endpoint and everything
// before them is the name. A digest never equals "uploads" or "list" and an
// upload id never contains ':', so the reading is unambiguous for every
// request a client can mean.
func parseRoute(path string) route {
	if path == "/oauth2/token" {
		return route{Kind: routeToken}
	}
	if path == "/oauth2/exchange" {
		return route{Kind: routeExchange}
	}
	if path == "/v2" || path == "/v2/" {
		return route{Kind: routeBase}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return route{}
	}
	if rest == "_catalog" {
		return route{Kind: routeCatalog}
	}
	before, last, ok := cutLast(rest)
	if !ok {
		return route{}
	}
	prefix, keyword, _ := cutLast(before)
	switch keyword {
	case "manifests":
		return route{Kind: routeManifest, Name: prefix, Ref: last}
	case "blobs":
		if last == "uploads" {
			return route{Kind: routeUploadStart, Name: prefix}
		}
		return route{Kind: routeBlob, Name: prefix, Ref: last}
	case "referrers":
		return route{Kind: routeReferrers, Name: prefix, Ref: last}
	case "tags":
		if last == "list" {
			return route{Kind: routeTags, Name: prefix}
		}
	case "uploads":
		name, blobs, _ := cutLast(prefix)
		if blobs != "blobs" {
			break
		}
		if last == "" {
			return route{Kind: routeUploadStart, Name: name}
		}
		return route{Kind: routeUpload, Name: name, Ref: last}
	}
	return route{}
}

// cutLast splits s at its last '/': "a/b/c" gives ("a/b", "c", true). Without
// a slash it gives ("", s, false).
func cutLast(s string) (before, last string, found bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}
