package arm

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Routes of Microsoft.Authorization, at any scope ("" being the root "/"):
//
//	PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}
//	GET            {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]
//	GET            {scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}][?$filter=roleName eq '…']

const (
	authorizationNS     = "/providers/microsoft.authorization/"
	roleDefinitionsType = "Microsoft.Authorization/roleDefinitions"
)

// authorizationAPIVersions are the Microsoft.Authorization api-versions
// moat accepts for role assignments and definitions.
var authorizationAPIVersions = []string{
	"2015-07-01", "2017-05-01", "2018-01-01-preview", "2018-07-01", "2018-09-01-preview", "2020-03-01-preview",
	"2020-04-01-preview", "2020-08-01-preview", "2020-10-01", "2020-10-01-preview", "2021-04-01-preview",
	"2022-01-01-preview", "2022-04-01", "2022-05-01-preview",
}

// authzRoute is a parsed Microsoft.Authorization path.
type authzRoute struct {
	scope       string // "/" for the root
	definitions bool   // roleDefinitions rather than roleAssignments
	principals  bool   // moat's principal lookup (root scope only)
	name        string // "" for a list
}

// parseAuthzRoute recognises {scope}/providers/Microsoft.Authorization/
// roleAssignments|roleDefinitions[/{name}]; ok is false for other paths.
func parseAuthzRoute(path string) (authzRoute, bool) {
	// The SDK joins "/{scope}" with a scope that starts with '/'.
	for strings.HasPrefix(path, "//") {
		path = path[1:]
	}
	lower := strings.ToLower(path)
	i := strings.LastIndex(lower, authorizationNS)
	if i < 0 {
		return authzRoute{}, false
	}
	rest := strings.Split(strings.TrimSuffix(path[i+len(authorizationNS):], "/"), "/")
	var ar authzRoute
	switch {
	case eq(rest[0], "principals") && i == 0:
		ar.principals = true
	case eq(rest[0], "roleAssignments"):
	case eq(rest[0], "roleDefinitions"):
		ar.definitions = true
	default:
		return authzRoute{}, false
	}
	switch len(rest) {
	case 1:
	case 2:
		ar.name = rest[1]
	default:
		return authzRoute{}, false
	}
	ar.scope = path[:i]
	if ar.scope == "" {
		ar.scope = "/"
	}
	return ar, true
}

// serveRoleAssignments answers the routes of Microsoft.Authorization
// roleAssignments and roleDefinitions; false for any other path.
func (h *handler) serveRoleAssignments(w http.ResponseWriter, r *http.Request) bool {
	ar, ok := parseAuthzRoute(r.URL.Path)
	if !ok {
		return false
	}
	if err := h.authzAPIVersion(r); err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	var err error
	switch {
	case ar.principals:
		h.only(w, r, http.MethodGet, func() error { return h.resolvePrincipal(w, r, ar) })
		return true
	case ar.definitions && ar.name == "":
		h.only(w, r, http.MethodGet, func() error { return h.listRoleDefinitions(w, r, ar) })
		return true
	case ar.definitions:
		h.only(w, r, http.MethodGet, func() error { return h.getRoleDefinition(w, ar) })
		return true
	case ar.name == "":
		h.only(w, r, http.MethodGet, func() error { return h.listRoleAssignments(w, r, ar) })
		return true
	}
	switch r.Method {
	case http.MethodPut:
		err = h.putRoleAssignment(w, r, ar)
	case http.MethodGet:
		err = h.getRoleAssignment(w, r, ar)
	case http.MethodDelete:
		err = h.deleteRoleAssignment(w, r, ar)
	default:
		h.methodNotAllowed(w, r, http.MethodPut, http.MethodGet, http.MethodDelete)
		return true
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	return true
}

func (h *handler) authzAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return newError(http.StatusBadRequest, "MissingApiVersionParameter",
			"the api-version query parameter (?api-version=) is required for all requests")
	}
	if !slices.Contains(authorizationAPIVersions, v) {
		return newError(http.StatusBadRequest, "InvalidApiVersionParameter",
			"the api-version %q is invalid for Microsoft.Authorization; supported versions are %s", v, strings.Join(authorizationAPIVersions, ", "))
	}
	return nil
}

// validScope parses the route's scope or answers 400.
func validScope(scope string) (rbac.Scope, error) {
	sc, err := rbac.ParseScope(scope)
	if err != nil {
		return rbac.Scope{}, &apiError{status: http.StatusBadRequest, code: "InvalidScope", target: "scope",
			message: "the scope '" + scope + "' is not valid for role assignments: " + strings.TrimPrefix(err.Error(), "rbac: invalid scope: ") +
				"; use /, /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{name} or a resource id"}
	}
	return sc, nil
}

func validAssignmentName(name string) error {
	if _, err := uuid.Parse(name); err != nil || len(name) != 36 {
		return &apiError{status: http.StatusBadRequest, code: "InvalidRoleAssignmentId", target: "name",
			message: "The role assignment ID '" + name + "' is not valid. The role assignment ID must be a GUID."}
	}
	return nil
}

// roleAssignmentJSON is ARM's shape of a role assignment.
type roleAssignmentJSON struct {
	ID         string                 `json:"id"`
	Name       string                 `json:"name"`
	Type       string                 `json:"type"`
	Properties roleAssignmentPropJSON `json:"properties"`
}

type roleAssignmentPropJSON struct {
	RoleDefinitionID                   string     `json:"roleDefinitionId"`
	PrincipalID                        string     `json:"principalId"`
	PrincipalType                      string     `json:"principalType"`
	Scope                              string     `json:"scope"`
	Condition                          *string    `json:"condition"`
	ConditionVersion                   *string    `json:"conditionVersion"`
	Description                        *string    `json:"description"`
	DelegatedManagedIdentityResourceID *string    `json:"delegatedManagedIdentityResourceId"`
	CreatedOn                          *time.Time `json:"createdOn,omitempty"`
	UpdatedOn                          *time.Time `json:"updatedOn,omitempty"`
	CreatedBy                          *string    `json:"createdBy"`
	UpdatedBy                          *string    `json:"updatedBy"`
}

func assignmentShape(a rbac.Assignment) roleAssignmentJSON {
	p := roleAssignmentPropJSON{RoleDefinitionID: a.RoleDefinitionID, PrincipalID: a.PrincipalID, PrincipalType: a.PrincipalType, Scope: a.Scope}
	if a.Description != "" {
		p.Description = &a.Description
	}
	if !a.CreatedOn.IsZero() {
		p.CreatedOn, p.UpdatedOn = &a.CreatedOn, &a.UpdatedOn
	}
	if a.CreatedBy != "" {
		p.CreatedBy, p.UpdatedBy = &a.CreatedBy, &a.UpdatedBy
	}
	return roleAssignmentJSON{ID: a.ID(), Name: a.Name, Type: rbac.RoleAssignmentType, Properties: p}
}

// principalTypes are ARM's principalType values; moat's principals are
// users and service principals (managed identities among them).
var principalTypes = []string{"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}

func (h *handler) putRoleAssignment(w http.ResponseWriter, r *http.Request, ar authzRoute) error {
	ctx := r.Context()
	sc, err := validScope(ar.scope)
	if err != nil {
		return err
	}
	if err := validAssignmentName(ar.name); err != nil {
		return err
	}
	if err := h.require(r, rbac.ActionRoleAssignmentWrite, sc.ID); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in struct {
		Properties struct {
			RoleDefinitionID string  `json:"roleDefinitionId"`
			PrincipalID      string  `json:"principalId"`
			PrincipalType    string  `json:"principalType"`
			Scope            string  `json:"scope"`
			Description      string  `json:"description"`
			Condition        *string `json:"condition"`
		} `json:"properties"`
	}
	if err := decodeStrict(body, &in); err != nil {
		return err
	}
	p := in.Properties
	if p.Condition != nil && strings.TrimSpace(*p.Condition) != "" {
		// Ignoring a condition would grant more than was asked: refuse.
		return &apiError{status: http.StatusBadRequest, code: "InvalidRoleAssignmentRequest", target: "properties.condition",
			message: "moat does not evaluate role assignment conditions (ABAC); create the assignment without properties.condition"}
	}
	if p.Scope != "" && !strings.EqualFold(strings.TrimSuffix(p.Scope, "/"), strings.TrimSuffix(sc.ID, "/")) {
		return &apiError{status: http.StatusBadRequest, code: "InvalidRoleAssignmentRequest", target: "properties.scope",
			message: "properties.scope '" + p.Scope + "' differs from the scope of the request URI '" + sc.ID + "'"}
	}
	if p.RoleDefinitionID == "" {
		return &apiError{status: http.StatusBadRequest, code: "InvalidRoleAssignmentRequest", target: "properties.roleDefinitionId",
			message: "properties.roleDefinitionId is required: /subscriptions/{id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"}
	}
	role, ok := rbac.Lookup(p.RoleDefinitionID)
	if !ok || !strings.Contains(strings.ToLower(p.RoleDefinitionID), "/roledefinitions/") {
		return &apiError{status: http.StatusBadRequest, code: "RoleDefinitionDoesNotExist", target: "properties.roleDefinitionId",
			message: "The specified role definition with ID '" + p.RoleDefinitionID + "' does not exist."}
	}
	if _, err := uuid.Parse(p.PrincipalID); err != nil || len(p.PrincipalID) != 36 {
		return &apiError{status: http.StatusBadRequest, code: "InvalidPrincipalId", target: "properties.principalId",
			message: "properties.principalId '" + p.PrincipalID + "' is not a principal's object id (a GUID)"}
	}
	if p.PrincipalType != "" {
		i := slices.IndexFunc(principalTypes, func(t string) bool { return strings.EqualFold(t, p.PrincipalType) })
		if i < 0 {
			return &apiError{status: http.StatusBadRequest, code: "InvalidPrincipalType", target: "properties.principalType",
				message: "properties.principalType '" + p.PrincipalType + "' is not one of " + strings.Join(principalTypes, ", ")}
		}
		p.PrincipalType = principalTypes[i]
	}
	if h.o.PrincipalType != nil {
		typ, found, err := h.o.PrincipalType(ctx, p.PrincipalID)
		if err != nil {
			return err
		}
		if !found {
			return &apiError{status: http.StatusBadRequest, code: "PrincipalNotFound", target: "properties.principalId",
				message: "Principal " + strings.ReplaceAll(p.PrincipalID, "-", "") + " does not exist in the directory. Check that you have the correct principal ID."}
		}
		if p.PrincipalType != "" && !strings.EqualFold(p.PrincipalType, typ) {
			return &apiError{status: http.StatusBadRequest, code: "UnmatchedPrincipalType", target: "properties.principalType",
				message: "The PrincipalId '" + p.PrincipalID + "' has type '" + typ + "', which is different from specified PrincipalType '" + p.PrincipalType + "'."}
		}
		p.PrincipalType = typ
	}
	if p.PrincipalType == "" {
		p.PrincipalType = "User"
	}
	if err := h.scopeExists(r, sc); err != nil {
		return err
	}

	all, err := rbac.Load(ctx, h.o.Meta)
	if err != nil {
		return err
	}
	for _, a := range all {
		same := strings.EqualFold(a.PrincipalID, p.PrincipalID) && rbac.Covers(a.Scope, sc.ID) && rbac.Covers(sc.ID, a.Scope)
		sameRole := false
		if d, ok := a.Role(); ok && d.ID == role.ID {
			sameRole = true
		}
		switch {
		case strings.EqualFold(a.Name, ar.name) && same && sameRole:
			// Re-creating what exists is a no-op, as in ARM.
			writeJSON(w, http.StatusCreated, assignmentShape(a))
			return nil
		case strings.EqualFold(a.Name, ar.name) && same:
			return newError(http.StatusBadRequest, "RoleAssignmentUpdateNotPermitted",
				"Tenant ID, application ID, principal ID, and scope are not allowed to be updated; role assignment %s exists with another role. Delete it first.", a.Name)
		case strings.EqualFold(a.Name, ar.name):
			return newError(http.StatusConflict, "RoleAssignmentExists",
				"The role assignment already exists: the name %s is used by %s.", a.Name, a.ID())
		case same && sameRole:
			return newError(http.StatusConflict, "RoleAssignmentExists",
				"The role assignment already exists. The ID of the existing role assignment is %s.", strings.ReplaceAll(a.Name, "-", ""))
		}
	}
	now := time.Now().UTC()
	caller := principalOf(ctx)
	a := rbac.Assignment{
		Name: strings.ToLower(ar.name), Scope: sc.ID, RoleDefinitionID: p.RoleDefinitionID, PrincipalID: strings.ToLower(p.PrincipalID),
		PrincipalType: p.PrincipalType, Description: p.Description, CreatedOn: now, UpdatedOn: now, CreatedBy: caller.ID, UpdatedBy: caller.ID,
	}
	res, err := rbac.ToResource(a)
	if err != nil {
		return err
	}
	if _, err := h.o.Meta.PutResource(ctx, res); err != nil {
		return err
	}
	h.roleAssignmentsChanged(r)
	h.log.InfoContext(ctx, "created role assignment", "id", a.ID(), "role", role.Name, "principal", a.PrincipalID, "by", caller.ID)
	writeJSON(w, http.StatusCreated, assignmentShape(a))
	return nil
}

// scopeExists answers 404 for a resource group or resource that does not
// exist; subscriptions and the root always exist.
func (h *handler) scopeExists(r *http.Request, sc rbac.Scope) error {
	ctx := r.Context()
	switch sc.Kind {
	case rbac.ScopeResourceGroup:
		if _, err := h.o.Meta.GetResource(ctx, groupID(sc.Subscription, sc.ResourceGroup)); errors.Is(err, meta.ErrNotFound) {
			return groupNotFound(sc.ResourceGroup)
		} else if err != nil {
			return err
		}
	case rbac.ScopeResource:
		if eq(sc.Provider, providerNS) && eq(sc.Types[0], registriesRT) {
			stored, err := h.o.Meta.GetRegistry(ctx, sc.Names[0])
			if errors.Is(err, meta.ErrNotFound) || err == nil && !registryIn(stored, registryID(sc.Subscription, sc.ResourceGroup, sc.Names[0])) {
				return registryNotFound(sc.Names[0], sc.ResourceGroup)
			}
			if err != nil {
				return err
			}
			if len(sc.Types) == 1 {
				return nil
			}
		}
		if _, err := h.o.Meta.GetResource(ctx, sc.ID); errors.Is(err, meta.ErrNotFound) {
			return newError(http.StatusNotFound, "ResourceNotFound", "the resource '%s' was not found", sc.ID)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (h *handler) roleAssignmentsChanged(r *http.Request) {
	if h.o.OnRoleAssignmentChange != nil {
		h.o.OnRoleAssignmentChange(r.Context())
	}
}

func assignmentNotFound(name string) error {
	return newError(http.StatusNotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name)
}

// loadAssignment reads the assignment at the route, or a 404.
func (h *handler) loadAssignment(r *http.Request, ar authzRoute) (rbac.Assignment, error) {
	res, err := h.o.Meta.GetResource(r.Context(), rbac.AssignmentID(ar.scope, ar.name))
	if errors.Is(err, meta.ErrNotFound) || err == nil && !eq(res.Type, rbac.RoleAssignmentType) {
		return rbac.Assignment{}, assignmentNotFound(ar.name)
	}
	if err != nil {
		return rbac.Assignment{}, err
	}
	return rbac.FromResource(res)
}

func (h *handler) getRoleAssignment(w http.ResponseWriter, r *http.Request, ar authzRoute) error {
	sc, err := validScope(ar.scope)
	if err != nil {
		return err
	}
	if err := h.require(r, rbac.ActionRoleAssignmentRead, sc.ID); err != nil {
		return err
	}
	a, err := h.loadAssignment(r, ar)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, assignmentShape(a))
	return nil
}

// deleteRoleAssignment answers 200 with what it deleted, 204 when there was
// nothing (both are what the SDK accepts).
func (h *handler) deleteRoleAssignment(w http.ResponseWriter, r *http.Request, ar authzRoute) error {
	sc, err := validScope(ar.scope)
	if err != nil {
		return err
	}
	if err := h.require(r, rbac.ActionRoleAssignmentDelete, sc.ID); err != nil {
		return err
	}
	a, err := h.loadAssignment(r, ar)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.o.Meta.DeleteResource(r.Context(), a.ID()); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	h.roleAssignmentsChanged(r)
	h.log.InfoContext(r.Context(), "deleted role assignment", "id", a.ID(), "principal", a.PrincipalID, "by", principalOf(r.Context()).ID)
	writeJSON(w, http.StatusOK, assignmentShape(a))
	return nil
}

func (h *handler) listRoleAssignments(w http.ResponseWriter, r *http.Request, ar authzRoute) error {
	sc, err := validScope(ar.scope)
	if err != nil {
		return err
	}
	f, err := parseAssignmentFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	if err := h.require(r, rbac.ActionRoleAssignmentRead, sc.ID); err != nil {
		return err
	}
	all, err := rbac.Load(r.Context(), h.o.Meta)
	if err != nil {
		return err
	}
	items := []any{}
	for _, a := range all {
		above := rbac.Covers(a.Scope, sc.ID)
		below := rbac.Covers(sc.ID, a.Scope)
		if !above && (f.atScope || !below) {
			continue
		}
		if f.principalID != "" && !strings.EqualFold(f.principalID, a.PrincipalID) {
			continue
		}
		items = append(items, assignmentShape(a))
	}
	h.writePage(w, r, items)
	return nil
}

// roleDefinitionJSON is ARM's shape of a role definition.
type roleDefinitionJSON struct {
	ID         string                 `json:"id"`
	Name       string                 `json:"name"`
	Type       string                 `json:"type"`
	Properties roleDefinitionPropJSON `json:"properties"`
}

type roleDefinitionPropJSON struct {
	RoleName         string            `json:"roleName"`
	Type             string            `json:"type"`
	Description      string            `json:"description"`
	AssignableScopes []string          `json:"assignableScopes"`
	Permissions      []rbac.Permission `json:"permissions"`
}

func definitionShape(scope string, d rbac.RoleDefinition) roleDefinitionJSON {
	perms := make([]rbac.Permission, len(d.Permissions))
	for i, p := range d.Permissions {
		perms[i] = rbac.Permission{Actions: orEmpty(p.Actions), NotActions: orEmpty(p.NotActions),
			DataActions: orEmpty(p.DataActions), NotDataActions: orEmpty(p.NotDataActions)}
	}
	return roleDefinitionJSON{ID: rbac.DefinitionID(scope, d.ID), Name: d.ID, Type: roleDefinitionsType,
		Properties: roleDefinitionPropJSON{RoleName: d.Name, Type: "BuiltInRole", Description: d.Description,
			AssignableScopes: []string{"/"}, Permissions: perms}}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Role definitions are public facts (Azure documents them): any
// authenticated caller may read them, at any valid scope.
func (h *handler) getRoleDefinition(w http.ResponseWriter, ar authzRoute) error {
	if _, err := validScope(ar.scope); err != nil {
		return err
	}
	d, ok := rbac.Lookup(ar.name)
	if !ok || !strings.EqualFold(d.ID, ar.name) {
		return newError(http.StatusNotFound, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", ar.name)
	}
	writeJSON(w, http.StatusOK, definitionShape(ar.scope, d))
	return nil
}

func (h *handler) listRoleDefinitions(w http.ResponseWriter, r *http.Request, ar authzRoute) error {
	if _, err := validScope(ar.scope); err != nil {
		return err
	}
	name, err := parseDefinitionFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	items := []any{}
	for _, d := range rbac.BuiltIn() {
		if name == "" || strings.EqualFold(name, d.Name) {
			items = append(items, definitionShape(ar.scope, d))
		}
	}
	h.writePage(w, r, items)
	return nil
}

// ResolvedPrincipal is a principal as the principal lookup answers it.
type ResolvedPrincipal struct {
	// ID is the object id, what role assignments name.
	ID string `json:"id"`
	// PrincipalType is ARM's: User or ServicePrincipal.
	PrincipalType string `json:"principalType"`
	// Name is the sign-in name: user name or application id.
	Name string `json:"name"`
}

// resolvePrincipal answers GET /providers/Microsoft.Authorization/
// principals/{ref} (a moat extension): the principal whose object id,
// application id or user name is ref. Any authenticated caller may look
// principals up, as any Entra user may read the directory.
func (h *handler) resolvePrincipal(w http.ResponseWriter, r *http.Request, ar authzRoute) error {
	if ar.name == "" || h.o.ResolvePrincipal == nil {
		return newError(http.StatusNotFound, "PrincipalNotFound", "name a principal: /providers/Microsoft.Authorization/principals/{object id, application id or user name}")
	}
	p, found, err := h.o.ResolvePrincipal(r.Context(), ar.name)
	if err != nil {
		return err
	}
	if !found {
		return newError(http.StatusNotFound, "PrincipalNotFound", "no user or service principal has the object id, application id or name '%s'", ar.name)
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
