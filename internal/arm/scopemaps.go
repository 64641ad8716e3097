package arm

import "net/http"

// serveScopeMaps answers the routes of a registry's scopeMaps and tokens; false for any other path.
func (h *handler) serveScopeMaps(w http.ResponseWriter, r *http.Request) bool {
	_, _ = w, r
	return false
}
