package arm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Routes of Moat.Identity, moat's stand-in for the Graph calls behind
// `az ad sp` and `az ad user` (moat has no Graph API). Root scope only:
//
//	POST       /providers/Moat.Identity/servicePrincipals                       create; answers the password once
//	GET        /providers/Moat.Identity/servicePrincipals[/{appId}]
//	DELETE     /providers/Moat.Identity/servicePrincipals/{appId}
//	POST       /providers/Moat.Identity/servicePrincipals/{appId}/resetCredentials
//	POST       /providers/Moat.Identity/users                                   create ({userPrincipalName})
//	PUT        /providers/Moat.Identity/users/{name}                            create
//	GET        /providers/Moat.Identity/users[/{name}]
//	DELETE     /providers/Moat.Identity/users/{name}
//	POST       /providers/Moat.Identity/users/{name}/resetPassword
//
// Writes need Microsoft.Authorization/principals/write at "/" (Owner and
// User Access Administrator have it; Contributor's notActions exclude it),
// reads Microsoft.Authorization/principals/read (every built-in role).
// Secrets and passwords appear only in the answer that set them. Deleting a
// principal also deletes its role assignments (ARM would leave them behind
// as "Unknown" principals; moat removes them so nothing dangles). The
// deployment admin cannot be deleted. Any api-version is accepted: these
// routes are moat's own.

const (
	principalsNS = "/providers/moat.identity/"
	// ActionPrincipalsWrite and ActionPrincipalsRead are the actions the
	// Moat.Identity routes require at "/".
	ActionPrincipalsWrite = "Microsoft.Authorization/principals/write"
	ActionPrincipalsRead  = "Microsoft.Authorization/principals/read"
)

// PrincipalAdmin is what the Moat.Identity routes need of the identity
// service; they are served when Options.ManagedIdentities also implements
// it (as *identity.Service does).
type PrincipalAdmin interface {
	CreateServicePrincipal(ctx context.Context, displayName string) (identity.ServicePrincipal, string, error)
	GetServicePrincipal(ctx context.Context, appID string) (identity.ServicePrincipal, error)
	ListServicePrincipals(ctx context.Context) ([]identity.ServicePrincipal, error)
	DeleteServicePrincipal(ctx context.Context, appID string) error
	ResetServicePrincipalSecret(ctx context.Context, appID string) (identity.ServicePrincipal, string, error)
	CreateUser(ctx context.Context, name, password, displayName string) (identity.User, string, error)
	GetUser(ctx context.Context, name string) (identity.User, error)
	ListUsers(ctx context.Context) ([]identity.User, error)
	DeleteUser(ctx context.Context, name string) (identity.User, error)
	SetUserPassword(ctx context.Context, name, password string) (string, error)
	TenantID(ctx context.Context) (string, error)
}

var _ PrincipalAdmin = (*identity.Service)(nil)

// principalRoute is a parsed Moat.Identity path.
type principalRoute struct {
	users  bool   // users rather than servicePrincipals
	name   string // "" for the collection
	action string // "resetCredentials" or "resetPassword", else ""
}

// parsePrincipalRoute recognises /providers/Moat.Identity/...; ok is false
// for other paths. A path under the namespace that names nothing moat
// serves is ok with a nil error result from the caller's view: it answers
// 404 there.
func parsePrincipalRoute(path string) (principalRoute, bool, error) {
	if !strings.HasPrefix(strings.ToLower(path), principalsNS) {
		return principalRoute{}, false, nil
	}
	rest := strings.Split(strings.TrimSuffix(path[len(principalsNS):], "/"), "/")
	var pr principalRoute
	switch {
	case eq(rest[0], "servicePrincipals"):
	case eq(rest[0], "users"):
		pr.users = true
	default:
		return principalRoute{}, true, newError(http.StatusNotFound, "InvalidResourceType", "Moat.Identity serves servicePrincipals and users, not %q", rest[0])
	}
	if len(rest) > 3 || (len(rest) >= 2 && rest[1] == "") {
		return principalRoute{}, true, newError(http.StatusNotFound, "NotFound", "no management API at %q", path)
	}
	if len(rest) >= 2 {
		pr.name = rest[1]
	}
	if len(rest) == 3 {
		want := "resetCredentials"
		if pr.users {
			want = "resetPassword"
		}
		if !eq(rest[2], want) {
			return principalRoute{}, true, newError(http.StatusNotFound, "NotFound", "no action %q; use POST .../%s", rest[2], want)
		}
		pr.action = want
	}
	return pr, true, nil
}

// servePrincipalAdmin answers the Moat.Identity routes.
func (h *handler) servePrincipalAdmin(w http.ResponseWriter, r *http.Request) bool {
	pr, ok, err := parsePrincipalRoute(r.URL.Path)
	if !ok {
		return false
	}
	if err == nil {
		err = h.principalRoute(w, r, pr)
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	return true
}

func (h *handler) principalRoute(w http.ResponseWriter, r *http.Request, pr principalRoute) error {
	admin, ok := h.o.ManagedIdentities.(PrincipalAdmin)
	if !ok {
		return newError(http.StatusNotImplemented, "NotSupported", "this moat serves no user and service principal administration")
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	var allowed []string
	switch {
	case pr.action != "":
		allowed = []string{http.MethodPost}
	case pr.name == "":
		allowed = []string{http.MethodGet, http.MethodPost}
	case pr.users:
		allowed = []string{http.MethodGet, http.MethodPut, http.MethodDelete}
	default:
		allowed = []string{http.MethodGet, http.MethodDelete}
	}
	if !slices.Contains(allowed, r.Method) {
		h.methodNotAllowed(w, r, allowed...)
		return nil
	}
	action := ActionPrincipalsWrite
	if r.Method == http.MethodGet {
		action = ActionPrincipalsRead
	}
	if err := h.require(r, action, "/"); err != nil {
		return err
	}
	ctx := r.Context()
	if pr.users {
		return h.userRoute(w, r, admin, pr)
	}
	switch {
	case r.Method == http.MethodGet && pr.name == "":
		sps, err := admin.ListServicePrincipals(ctx)
		if err != nil {
			return err
		}
		tenant, err := admin.TenantID(ctx)
		if err != nil {
			return err
		}
		items := make([]any, 0, len(sps))
		for _, sp := range sps {
			items = append(items, spShape(sp, tenant, ""))
		}
		h.writePage(w, r, items)
	case r.Method == http.MethodGet:
		sp, err := admin.GetServicePrincipal(ctx, pr.name)
		if err != nil {
			return principalErr(err)
		}
		return h.writeSP(w, r, admin, http.StatusOK, sp, "")
	case r.Method == http.MethodPost && pr.name == "":
		var body struct {
			DisplayName string `json:"displayName"`
		}
		if err := decodePrincipalBody(r, &body); err != nil {
			return err
		}
		if body.DisplayName == "" {
			return newError(http.StatusBadRequest, "InvalidRequestContent", "displayName is required")
		}
		sp, pw, err := admin.CreateServicePrincipal(ctx, body.DisplayName)
		if err != nil {
			return principalErr(err)
		}
		h.log.InfoContext(ctx, "created service principal", "app_id", sp.AppID, "by", principalOf(ctx).ID)
		return h.writeSP(w, r, admin, http.StatusCreated, sp, pw)
	case r.Method == http.MethodPost:
		sp, pw, err := admin.ResetServicePrincipalSecret(ctx, pr.name)
		if err != nil {
			return principalErr(err)
		}
		h.log.InfoContext(ctx, "reset service principal credentials", "app_id", sp.AppID, "by", principalOf(ctx).ID)
		return h.writeSP(w, r, admin, http.StatusOK, sp, pw)
	case r.Method == http.MethodDelete:
		sp, err := admin.GetServicePrincipal(ctx, pr.name)
		if err != nil {
			return principalErr(err)
		}
		// Assignments first: should the principal's deletion then fail, it
		// is left with fewer rights, never its assignments with no owner.
		if err := h.deleteAssignmentsOf(r, sp.ObjectID); err != nil {
			return err
		}
		if err := admin.DeleteServicePrincipal(ctx, sp.AppID); err != nil {
			return principalErr(err)
		}
		h.log.InfoContext(ctx, "deleted service principal", "app_id", sp.AppID, "by", principalOf(ctx).ID)
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

func (h *handler) userRoute(w http.ResponseWriter, r *http.Request, admin PrincipalAdmin, pr principalRoute) error {
	ctx := r.Context()
	switch {
	case r.Method == http.MethodGet && pr.name == "":
		users, err := admin.ListUsers(ctx)
		if err != nil {
			return err
		}
		items := make([]any, 0, len(users))
		for _, u := range users {
			items = append(items, userShape(u, ""))
		}
		h.writePage(w, r, items)
	case r.Method == http.MethodGet:
		u, err := admin.GetUser(ctx, pr.name)
		if err != nil {
			return principalErr(err)
		}
		writeJSON(w, http.StatusOK, userShape(u, ""))
	case r.Method == http.MethodPost && pr.name == "", r.Method == http.MethodPut:
		var body struct {
			UserPrincipalName string `json:"userPrincipalName"`
			Password          string `json:"password"`
			DisplayName       string `json:"displayName"`
		}
		if err := decodePrincipalBody(r, &body); err != nil {
			return err
		}
		name := body.UserPrincipalName
		if pr.name != "" {
			if name != "" && name != pr.name {
				return newError(http.StatusBadRequest, "InvalidRequestContent", "userPrincipalName %q differs from the name in the path %q", name, pr.name)
			}
			name = pr.name
		}
		if name == "" {
			return newError(http.StatusBadRequest, "InvalidRequestContent", "userPrincipalName is required")
		}
		u, pw, err := admin.CreateUser(ctx, name, body.Password, body.DisplayName)
		if err != nil {
			return principalErr(err)
		}
		h.log.InfoContext(ctx, "created user", "user", u.UserPrincipalName, "by", principalOf(ctx).ID)
		shown := ""
		if body.Password == "" {
			shown = pw // generated: this is the only time it can be seen
			w.Header().Set("Cache-Control", "no-store")
		}
		writeJSON(w, http.StatusCreated, userShape(u, shown))
	case r.Method == http.MethodPost:
		var body struct {
			Password string `json:"password"`
		}
		if err := decodePrincipalBody(r, &body); err != nil {
			return err
		}
		u, err := admin.GetUser(ctx, pr.name)
		if err != nil {
			return principalErr(err)
		}
		pw, err := admin.SetUserPassword(ctx, pr.name, body.Password)
		if err != nil {
			return principalErr(err)
		}
		h.log.InfoContext(ctx, "reset user password", "user", u.UserPrincipalName, "by", principalOf(ctx).ID)
		shown := ""
		if body.Password == "" {
			shown = pw
			w.Header().Set("Cache-Control", "no-store")
		}
		writeJSON(w, http.StatusOK, userShape(u, shown))
	case r.Method == http.MethodDelete:
		u, err := admin.GetUser(ctx, pr.name)
		if err != nil {
			return principalErr(err)
		}
		if u.UserPrincipalName == identity.AdminName {
			return principalErr(identity.ErrProtectedPrincipal)
		}
		if err := h.deleteAssignmentsOf(r, u.ObjectID); err != nil {
			return err
		}
		if _, err := admin.DeleteUser(ctx, u.UserPrincipalName); err != nil {
			return principalErr(err)
		}
		h.log.InfoContext(ctx, "deleted user", "user", u.UserPrincipalName, "by", principalOf(ctx).ID)
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// deleteAssignmentsOf removes every role assignment of a deleted principal.
func (h *handler) deleteAssignmentsOf(r *http.Request, principalID string) error {
	all, err := rbac.Load(r.Context(), h.o.Meta)
	if err != nil {
		return err
	}
	n := 0
	for _, a := range all {
		if !strings.EqualFold(a.PrincipalID, principalID) {
			continue
		}
		if err := h.o.Meta.DeleteResource(r.Context(), a.ID()); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		n++
	}
	if n > 0 {
		h.roleAssignmentsChanged(r)
	}
	return nil
}

// decodePrincipalBody decodes an optional JSON object body.
func decodePrincipalBody(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is not the expected JSON object: %v", err)
	}
	return nil
}

// principalErr maps identity errors to ARM errors; others stay 500s.
func principalErr(err error) error {
	switch {
	case errors.Is(err, identity.ErrServicePrincipalNotFound):
		return newError(http.StatusNotFound, "PrincipalNotFound", "%v", err)
	case errors.Is(err, identity.ErrUserNotFound):
		return newError(http.StatusNotFound, "PrincipalNotFound", "%v", err)
	case errors.Is(err, identity.ErrUserExists):
		return newError(http.StatusConflict, "PrincipalAlreadyExists", "%v", err)
	case errors.Is(err, identity.ErrWeakPassword):
		return newError(http.StatusBadRequest, "PasswordPolicyViolation", "%v", err)
	case errors.Is(err, identity.ErrProtectedPrincipal):
		return newError(http.StatusConflict, "PrincipalProtected", "%v", err)
	case errors.Is(err, identity.ErrInvalidArgument):
		return newError(http.StatusBadRequest, "InvalidRequestContent", "%v", err)
	}
	return err
}

type passwordCredentialJSON struct {
	KeyID         string    `json:"keyId"`
	Hint          string    `json:"hint"`
	StartDateTime time.Time `json:"startDateTime"`
	EndDateTime   time.Time `json:"endDateTime"`
}

type servicePrincipalJSON struct {
	AppID               string                   `json:"appId"`
	ObjectID            string                   `json:"objectId"`
	ID                  string                   `json:"id"`
	DisplayName         string                   `json:"displayName"`
	Tenant              string                   `json:"tenant"`
	CreatedDateTime     time.Time                `json:"createdDateTime"`
	PasswordCredentials []passwordCredentialJSON `json:"passwordCredentials"`
	Password            string                   `json:"password,omitempty"`
}

func spShape(sp identity.ServicePrincipal, tenant, password string) servicePrincipalJSON {
	out := servicePrincipalJSON{
		AppID: sp.AppID, ObjectID: sp.ObjectID, ID: sp.ObjectID, DisplayName: sp.DisplayName, Tenant: tenant,
		CreatedDateTime: sp.CreatedAt, PasswordCredentials: []passwordCredentialJSON{}, Password: password,
	}
	for _, s := range sp.Secrets {
		out.PasswordCredentials = append(out.PasswordCredentials, passwordCredentialJSON{KeyID: s.KeyID, Hint: s.Hint, StartDateTime: s.CreatedAt, EndDateTime: s.ExpiresAt})
	}
	return out
}

func (h *handler) writeSP(w http.ResponseWriter, r *http.Request, admin PrincipalAdmin, status int, sp identity.ServicePrincipal, password string) error {
	tenant, err := admin.TenantID(r.Context())
	if err != nil {
		return err
	}
	if password != "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	writeJSON(w, status, spShape(sp, tenant, password))
	return nil
}

type userJSON struct {
	ID                string    `json:"id"`
	ObjectID          string    `json:"objectId"`
	UserPrincipalName string    `json:"userPrincipalName"`
	DisplayName       string    `json:"displayName"`
	CreatedDateTime   time.Time `json:"createdDateTime"`
	Password          string    `json:"password,omitempty"`
}

func userShape(u identity.User, password string) userJSON {
	return userJSON{ID: u.ObjectID, ObjectID: u.ObjectID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName, CreatedDateTime: u.CreatedAt, Password: password}
}
