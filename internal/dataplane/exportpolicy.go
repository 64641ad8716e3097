package dataplane

import (
	"github.com/moat-registry/moat/internal/transfer"
)

// checkExportPolicy refuses a request from an importer that marked itself
// (another moat deployment's importer always does, see transfer's marker)
// when the registry's exports are disabled, with the same sentence the
// in-deployment import path uses. It runs before the network decision: an
// importer is refused either way, and this way the error names the policy.
// Unmarked requests are ordinary pulls and pass: the export policy does not
// stop authorised pulls (ACR documents the same), and a client that does not
// mark itself cannot be told apart from one.
func (h *Handler) checkExportPolicy(q *request, e registryEntry) bool {
	if !transfer.IsImporterRequest(q.r) {
		return true
	}
	disabled, err := transfer.ExportsDisabled(e.reg)
	if !disabled {
		return true
	}
	q.decision = decisionDenied
	q.netReason = "export policy disabled: importer refused"
	h.auditDenial(q, q.ip, "export-policy", q.netReason, "")
	q.fail(&apiError{Code: codeDenied, Message: transfer.ExportDisabledMessage(q.registry),
		Detail: transfer.NewExportPolicyDetail(q.registry), Cause: err})
	return false
}
