package dataplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/transfer"
)

// TestExportPolicyRefusesImporters: with exports disabled, a request marked
// as an importer's (header or User-Agent) is refused with the export
// policy's sentence and detail, on every route, before the network
// decision; unmarked pulls keep working; with exports enabled importers
// pull like anyone.
func TestExportPolicyRefusesImporters(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("app", "x")
	e.putManifest("app", "v1", img.manifest, manifest.MediaTypeOCIManifest).wantStatus(t, http.StatusCreated)

	marked := []struct {
		name string
		opt  reqOpt
	}{
		{"header", header(transfer.ImportHeader, transfer.ImportHeaderValue)},
		{"user agent", header("User-Agent", "go-containerregistry/v0.22.1 moat-import/1")},
	}
	paths := []string{"/v2/", "/v2/app/manifests/v1", "/v2/app/blobs/" + img.layer.String(), "/v2/app/tags/list",
		"/oauth2/token?service=x&scope=repository:app:pull"}

	// Exports enabled: the importer is an ordinary client.
	e.setNetwork(testDefault, `{"policies":{"exportPolicy":{"status":"enabled"}}}`)
	for _, m := range marked {
		e.do(http.MethodGet, "/v2/app/manifests/v1", m.opt, header("Accept", manifest.MediaTypeOCIManifest)).wantStatus(t, http.StatusOK)
	}

	// Disabled (and, as the management plane requires, public access off:
	// the importer hears about the policy, not the network).
	e.setNetwork(testDefault, `{"publicNetworkAccess":"Disabled","policies":{"exportPolicy":{"status":"disabled"}}}`)
	for _, m := range marked {
		for _, p := range paths {
			r := e.do(http.MethodGet, p, m.opt).wantError(t, http.StatusForbidden, "DENIED")
			for _, want := range []string{"exports are disabled on registry '" + testDefault + "'", "policies.exportPolicy.status: disabled", `"policy":"exportPolicy"`} {
				if !strings.Contains(string(r.body), want) {
					t.Errorf("%s %s: body %s lacks %q", m.name, p, r.body, want)
				}
			}
		}
	}
	// Stored with public access on (only the store allows it): an unmarked
	// pull is a pull.
	e.setNetwork(testDefault, `{"policies":{"exportPolicy":{"status":"disabled"}}}`)
	e.do(http.MethodGet, "/v2/app/manifests/v1", header("Accept", manifest.MediaTypeOCIManifest)).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/app/blobs/"+img.layer.String()).wantStatus(t, http.StatusOK)
	e.do(http.MethodGet, "/v2/app/manifests/v1", marked[0].opt).wantError(t, http.StatusForbidden, "DENIED")
	// Another registry of the deployment keeps its own policy.
	e.do(http.MethodGet, "/v2/", host(testOther+"."+testDomain), marked[0].opt).wantStatus(t, http.StatusOK)
}
