package transfer

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// moat's importer identifies itself on every request it sends to a source
// registry, so that a moat deployment serving as the source can apply its
// export policy to it. The rule is documented (README, "Import"): moat's
// importer always sends both markers; it is not configurable.
const (
	// ImportHeader is the header moat's importer sets on every request; its
	// value is ImportHeaderValue. Any value marks the request.
	ImportHeader = "X-Moat-Import"
	// ImportHeaderValue is the value moat's importer sends.
	ImportHeaderValue = "1"
	// ImportProduct is the User-Agent product token of moat's importer
	// ("moat-import/1"); a User-Agent that contains it marks the request too.
	ImportProduct = "moat-import"
)

// importUserAgent is the product moat's importer appends to its User-Agent.
const importUserAgent = ImportProduct + "/1"

// IsImporterRequest reports whether r comes from an importer that marked
// itself (moat's importer always does). A client that does not mark itself
// is an ordinary client: its pulls are pulls.
func IsImporterRequest(r *http.Request) bool {
	if _, ok := r.Header[http.CanonicalHeaderKey(ImportHeader)]; ok {
		return true
	}
	for _, ua := range r.Header.Values("User-Agent") {
		for _, tok := range strings.Fields(strings.ToLower(ua)) {
			if tok == ImportProduct || strings.HasPrefix(tok, ImportProduct+"/") {
				return true
			}
		}
	}
	return false
}

// ExportDisabledMessage is the refusal of an import from registry name whose
// exports are disabled; every path out uses it, so users see one sentence.
func ExportDisabledMessage(name string) string {
	return fmt.Sprintf("exports are disabled on registry '%s' (policies.exportPolicy.status: disabled); its artifacts cannot be imported into another registry", name)
}

// ExportPolicyDetail is the detail of the data plane's DENIED error when it
// refuses an importer; moat's importer recognises it to report
// ExportPolicyDisabled rather than a generic refusal.
type ExportPolicyDetail struct {
	Policy   string `json:"policy"`
	Registry string `json:"registry"`
}

// exportPolicyName is ExportPolicyDetail.Policy.
const exportPolicyName = "exportPolicy"

// NewExportPolicyDetail is the detail naming registry name's export policy.
func NewExportPolicyDetail(name string) ExportPolicyDetail {
	return ExportPolicyDetail{Policy: exportPolicyName, Registry: name}
}

// ExportsDisabled reports whether reg's export policy is disabled. A policy
// that cannot be read counts as disabled (fail closed), with the error.
func ExportsDisabled(reg meta.Registry) (bool, error) {
	m, err := model.UnmarshalStored(reg.Location, reg.SKU, reg.Properties, reg.Tags)
	if err != nil {
		return true, fmt.Errorf("reading the export policy of registry %q: %w", reg.Name, err)
	}
	return strings.EqualFold(m.Properties.Policies.ExportPolicy.Status, model.StatusDisabled), nil
}
