package arm

import "net/http"

// serveManagedIdentities answers the routes of service-instance resources and user-assigned managed identities; false for any other path.
func (h *handler) serveManagedIdentities(w http.ResponseWriter, r *http.Request) bool {
	_, _ = w, r
	return false
}
