package arm

import "net/http"

// serveDeployments answers the routes of template deployments (Microsoft.Resources/deployments); false for any other path.
func (h *handler) serveDeployments(w http.ResponseWriter, r *http.Request) bool {
	_, _ = w, r
	return false
}
