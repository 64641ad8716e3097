package arm

// The registry admin user's credentials:
//
//	POST …/registries/{name}/listCredentials?api-version=…
//	POST …/registries/{name}/regenerateCredential?api-version=…  {"name":"password"|"password2"}
//
// Both answer {"username", "passwords":[{"name","value"},…]} with the
// plaintext passwords, as ACR does; identity/adminuser.go keeps them (and
// says why they are stored readable). While the registry's adminUserEnabled
// is false both answer 400 UnAuthorizedForCredentialOperations, ACR's code.

import (
	"errors"
	"net/http"

	"github.com/moat-registry/moat/internal/identity"
)

const (
	extListCredentials      = "listCredentials"
	extRegenerateCredential = "regenerateCredential"

	actionListCredentials      = "Microsoft.ContainerRegistry/registries/listCredentials/action"
	actionRegenerateCredential = "Microsoft.ContainerRegistry/registries/regenerateCredential/action"
)

// parseCredentialsRoute recognises the two routes; action is "" for any
// other path.
func parseCredentialsRoute(path string) (rt route, action string) {
	rt, rest, ok := registrySubpath(path, 1)
	if !ok {
		return route{}, ""
	}
	switch {
	case eq(rest[0], extListCredentials):
		return rt, extListCredentials
	case eq(rest[0], extRegenerateCredential):
		return rt, extRegenerateCredential
	}
	return route{}, ""
}

// serveRegistryCredentials answers the routes of the registry admin user's
// listCredentials and regenerateCredential; false for any other path.
func (h *handler) serveRegistryCredentials(w http.ResponseWriter, r *http.Request) bool {
	rt, action := parseCredentialsRoute(r.URL.Path)
	if action == "" {
		return false
	}
	if _, err := h.apiVersion(r, false); err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	switch action {
	case extListCredentials:
		h.only(w, r, http.MethodPost, func() error { return h.listCredentials(w, r, rt) })
	case extRegenerateCredential:
		h.only(w, r, http.MethodPost, func() error { return h.regenerateCredential(w, r, rt) })
	}
	return true
}

// credentialsJSON is ACR's RegistryListCredentialsResult.
type credentialsJSON struct {
	Username  string         `json:"username"`
	Passwords []passwordJSON `json:"passwords"`
}

type passwordJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func credentialsShape(c identity.AdminCredentials) credentialsJSON {
	out := credentialsJSON{Username: c.Username, Passwords: []passwordJSON{}}
	for _, p := range c.Passwords {
		out.Passwords = append(out.Passwords, passwordJSON(p))
	}
	return out
}

// credentialError maps the identity package's refusals.
func credentialError(err error, id string) error {
	switch {
	case errors.Is(err, identity.ErrAdminUserDisabled):
		return newError(http.StatusBadRequest, "UnAuthorizedForCredentialOperations",
			"Cannot perform credential operations for %s as admin user is disabled. Enable the admin user (properties.adminUserEnabled) and try again.", id)
	case errors.Is(err, identity.ErrInvalidPasswordName):
		return newError(http.StatusBadRequest, "InvalidRequestContent", `name must be "password" or "password2"`)
	}
	return err
}

func (h *handler) listCredentials(w http.ResponseWriter, r *http.Request, rt route) error {
	id := registryID(rt.sub, rt.rg, rt.name)
	if err := h.require(r, actionListCredentials, id); err != nil {
		return err
	}
	stored, _, err := h.load(r.Context(), rt)
	if err != nil {
		return err
	}
	creds, err := identity.ListAdminCredentials(r.Context(), h.o.Meta, stored)
	if err != nil {
		return credentialError(err, stored.ResourceID)
	}
	writeJSON(w, http.StatusOK, credentialsShape(creds))
	return nil
}

func (h *handler) regenerateCredential(w http.ResponseWriter, r *http.Request, rt route) error {
	id := registryID(rt.sub, rt.rg, rt.name)
	if err := h.require(r, actionRegenerateCredential, id); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Name *string `json:"name"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return newError(http.StatusBadRequest, "InvalidRequestContent",
			`the request body must be {"name":"password"} or {"name":"password2"}`)
	}
	stored, _, err := h.load(r.Context(), rt)
	if err != nil {
		return err
	}
	creds, err := identity.RegenerateAdminPassword(r.Context(), h.o.Meta, stored, *in.Name)
	if err != nil {
		return credentialError(err, stored.ResourceID)
	}
	h.log.InfoContext(r.Context(), "regenerated registry admin password", "registry", stored.Name, "password", *in.Name, "caller", callerOf(r.Context()))
	writeJSON(w, http.StatusOK, credentialsShape(creds))
	return nil
}
