package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPlanesRouting(t *testing.T) {
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Plane", name) })
	}
	p := Planes{Data: named("data"), Management: named("arm"), Identity: named("entra")}
	for path, want := range map[string]string{
		"/v2/":                                "data",
		"/v2/library/alpine/manifests/latest": "data",
		"/v2/oauth2/v2.0/token":               "data", // a repository named oauth2/v2.0 is still the data plane
		"/oauth2/token":                       "data",
		"/oauth2/exchange":                    "data",
		"/acr/v1/_catalog":                    "data",
		"/unknown":                            "data",
		"/subscriptions/s/resourceGroups/rg":  "arm",
		"/SUBSCRIPTIONS/s/resourcegroups/rg":  "arm",
		"/providers/Microsoft.ContainerRegistry/operations":       "arm",
		"/0b1f6471-1bf0-4dda-aec3-cb9272f09590/oauth2/v2.0/token": "entra",
		"/organizations/v2.0/.well-known/openid-configuration":    "entra",
		"/common/discovery/v2.0/keys":                             "entra",
		"/common/UserRealm/admin@moat?api-version=1.0":            "entra",
		"/tenant/oauth2/token":                                    "data",  // v1 Entra endpoints are not served
		"/msi/token?api-version=2019-08-01":                       "entra", // the managed-identity endpoint
		"/msi/token/x":                                            "data",
	} {
		req := httptest.NewRequest(http.MethodGet, "http://x"+path, nil)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if got := rec.Header().Get("X-Plane"); got != want {
			t.Errorf("%s → %s, want %s", path, got, want)
		}
	}
	// Planes not configured fall through to the data plane.
	rec := httptest.NewRecorder()
	Planes{Data: named("data")}.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://x/subscriptions/s", nil))
	if rec.Header().Get("X-Plane") != "data" {
		t.Error("nil management plane did not fall through to data")
	}
}
