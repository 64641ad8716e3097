package arm

// A registry's scope maps and tokens (repository-scoped tokens):
//
//	PUT|PATCH|GET|DELETE …/registries/{name}/scopeMaps/{scopeMap}
//	GET                  …/registries/{name}/scopeMaps
//	PUT|PATCH|GET|DELETE …/registries/{name}/tokens/{token}   (tokens.go)
//	GET                  …/registries/{name}/tokens            (tokens.go)
//	POST                 …/registries/{name}/generateCredentials (tokens.go)
//
// Decisions (ACR's behaviour where documented; see internal/scopemap):
//
//   - Available on every SKU, as ACR documents.
//   - Scope maps and tokens are meta.Resources below the registry's id, so
//     deleting the registry deletes them. Every write is validated in full
//     before anything is stored and calls OnRegistryChange, so a changed
//     scope map or token takes effect from the next data-plane request.
//   - The built-in scope maps are listed and readable in every registry but
//     not stored; writing one with other content, or deleting one, is 400
//     SystemDefinedScopeMapReadOnly. Writing one with its own content answers
//     it unchanged, so exported templates that contain them deploy.
//   - A scope map a token uses cannot be deleted (409 ScopeMapInUse naming
//     the tokens), so no token is left pointing at nothing.
//   - The SDK treats these operations as long-running; moat finishes them in
//     the request and answers 200/201 (DELETE 200, or 204 when there was
//     nothing), which every SDK poller accepts as done.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/scopemap"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	scopeMapsAction = "Microsoft.ContainerRegistry/registries/scopeMaps/"
	tokensAction    = "Microsoft.ContainerRegistry/registries/tokens/"
	generateAction  = "Microsoft.ContainerRegistry/registries/generateCredentials/action"
	generateSeg     = "generateCredentials"

	// maxScopeMapActions bounds one scope map: ACR allows 500 repositories
	// per scope map, each with at most five actions.
	maxScopeMapActions = 2500
	// maxDescription is az's limit on a scope map's description.
	maxDescription = 256
)

// childRoute is a parsed scope-map or token path: kind is "scopeMaps",
// "tokens" or "generateCredentials"; child is "" for a list.
type childRoute struct {
	reg   route
	kind  string
	child string
}

func parseChildRoute(path string) (childRoute, bool) {
	rt, rest, ok := registrySubpath(path, 2)
	if !ok {
		return childRoute{}, false
	}
	cr := childRoute{reg: rt}
	switch {
	case eq(rest[0], scopemap.ScopeMapsSegment):
		cr.kind = scopemap.ScopeMapsSegment
	case eq(rest[0], scopemap.TokensSegment):
		cr.kind = scopemap.TokensSegment
	case eq(rest[0], generateSeg) && len(rest) == 1:
		cr.kind = generateSeg
	default:
		return childRoute{}, false
	}
	if len(rest) == 2 {
		cr.child = rest[1]
	}
	return cr, true
}

// serveScopeMaps answers the routes of a registry's scopeMaps and tokens; false for any other path.
func (h *handler) serveScopeMaps(w http.ResponseWriter, r *http.Request) bool {
	cr, ok := parseChildRoute(r.URL.Path)
	if !ok {
		return false
	}
	if _, err := h.apiVersion(r, false); err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	var err error
	switch {
	case cr.kind == generateSeg:
		h.only(w, r, http.MethodPost, func() error { return h.generateCredentials(w, r, cr) })
		return true
	case cr.child == "":
		h.only(w, r, http.MethodGet, func() error {
			if cr.kind == scopemap.TokensSegment {
				return h.listTokens(w, r, cr)
			}
			return h.listScopeMaps(w, r, cr)
		})
		return true
	case cr.kind == scopemap.ScopeMapsSegment:
		switch r.Method {
		case http.MethodGet:
			err = h.getScopeMap(w, r, cr)
		case http.MethodPut, http.MethodPatch:
			err = h.writeScopeMap(w, r, cr)
		case http.MethodDelete:
			err = h.deleteScopeMap(w, r, cr)
		default:
			h.methodNotAllowed(w, r, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodDelete)
			return true
		}
	default:
		switch r.Method {
		case http.MethodGet:
			err = h.getToken(w, r, cr)
		case http.MethodPut, http.MethodPatch:
			err = h.writeToken(w, r, cr)
		case http.MethodDelete:
			err = h.deleteToken(w, r, cr)
		default:
			h.methodNotAllowed(w, r, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodDelete)
			return true
		}
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	return true
}

// scopeMapBody is a scope map PUT or PATCH body; nil fields were absent.
type scopeMapBody struct {
	Properties *struct {
		Description *string   `json:"description"`
		Actions     *[]string `json:"actions"`
	} `json:"properties"`
}

func decodeBody(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is empty")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is not valid: %v", err)
	}
	return nil
}

func invalidParam(target, format string, args ...any) *apiError {
	e := newError(http.StatusBadRequest, "InvalidParameter", format, args...)
	e.target = target
	return e
}

func childNotFound(kind, name, reg string) error {
	return newError(http.StatusNotFound, "ResourceNotFound",
		"the resource '%s/registries/%s/%s/%s' was not found", providerNS, reg, kind, name)
}

// scopeMapShape is the ARM answer for a scope map.
func scopeMapShape(id, name string, m scopemap.ScopeMap) map[string]any {
	props := map[string]any{
		"type":              m.Kind,
		"creationDate":      m.CreationDate.UTC().Format(time.RFC3339Nano),
		"provisioningState": "Succeeded",
		"actions":           nonNilStrings(m.Actions),
	}
	if m.Description != "" {
		props["description"] = m.Description
	}
	return map[string]any{"id": id, "name": name, "type": scopemap.ScopeMapResourceType, "properties": props}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// loadRegistry returns the stored registry of cr (404 when absent).
func (h *handler) loadRegistry(r *http.Request, cr childRoute) (meta.Registry, error) {
	stored, _, err := h.load(r.Context(), cr.reg)
	return stored, err
}

// findScopeMap returns the scope map called name of the registry: a
// built-in, or a stored one with its resource (Version set).
func (h *handler) findScopeMap(r *http.Request, reg meta.Registry, name string) (scopemap.ScopeMap, string, meta.Resource, error) {
	if m, canon, ok := scopemap.BuiltIn(name, reg.CreatedAt); ok {
		return m, canon, meta.Resource{ID: scopemap.ScopeMapID(reg.ResourceID, canon)}, nil
	}
	res, err := h.o.Meta.GetResource(r.Context(), scopemap.ScopeMapID(reg.ResourceID, name))
	if err != nil {
		return scopemap.ScopeMap{}, "", meta.Resource{}, err
	}
	m, err := scopemap.DecodeScopeMap(res.Properties)
	if err != nil {
		return scopemap.ScopeMap{}, "", meta.Resource{}, fmt.Errorf("%s: %w", res.ID, err)
	}
	return m, res.Name, res, nil
}

func (h *handler) listScopeMaps(w http.ResponseWriter, r *http.Request, cr childRoute) error {
	reg, err := h.loadRegistry(r, cr)
	if err != nil {
		return err
	}
	if err := h.require(r, scopeMapsAction+"read", reg.ResourceID); err != nil {
		return err
	}
	var items []any
	for _, n := range scopemap.BuiltInNames() {
		m, canon, _ := scopemap.BuiltIn(n, reg.CreatedAt)
		items = append(items, scopeMapShape(scopemap.ScopeMapID(reg.ResourceID, canon), canon, m))
	}
	stored, err := h.o.Meta.ListResources(r.Context(), reg.ResourceID, scopemap.ScopeMapResourceType)
	if err != nil {
		return err
	}
	for _, res := range stored {
		m, err := scopemap.DecodeScopeMap(res.Properties)
		if err != nil {
			return fmt.Errorf("%s: %w", res.ID, err)
		}
		items = append(items, scopeMapShape(res.ID, res.Name, m))
	}
	h.writePage(w, r, items)
	return nil
}

func (h *handler) getScopeMap(w http.ResponseWriter, r *http.Request, cr childRoute) error {
	reg, err := h.loadRegistry(r, cr)
	if err != nil {
		return err
	}
	id := scopemap.ScopeMapID(reg.ResourceID, cr.child)
	if err := h.require(r, scopeMapsAction+"read", id); err != nil {
		return err
	}
	m, name, res, err := h.findScopeMap(r, reg, cr.child)
	if errors.Is(err, meta.ErrNotFound) {
		return childNotFound(scopemap.ScopeMapsSegment, cr.child, cr.reg.name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, scopeMapShape(res.ID, name, m))
	return nil
}

// checkScopeMap validates a scope map's content and returns the actions
// without duplicates, in the order given.
func checkScopeMap(description string, actions []string) ([]string, error) {
	if len(description) > maxDescription {
		return nil, invalidParam("properties.description", "the description is %d characters long; at most %d are allowed", len(description), maxDescription)
	}
	if len(actions) == 0 {
		return nil, invalidParam("properties.actions", "a scope map needs at least one action, such as repositories/samples/hello/content/read")
	}
	if len(actions) > maxScopeMapActions {
		return nil, invalidParam("properties.actions", "a scope map may have at most %d actions; got %d", maxScopeMapActions, len(actions))
	}
	var out []string
	for i, a := range actions {
		if _, err := scopemap.ParseAction(a); err != nil {
			return nil, invalidParam(fmt.Sprintf("properties.actions[%d]", i), "%v", err)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (h *handler) writeScopeMap(w http.ResponseWriter, r *http.Request, cr childRoute) error {
	ctx := r.Context()
	reg, err := h.loadRegistry(r, cr)
	if err != nil {
		return err
	}
	id := scopemap.ScopeMapID(reg.ResourceID, cr.child)
	if err := h.require(r, scopeMapsAction+"write", id); err != nil {
		return err
	}
	var in scopeMapBody
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		in.Properties = &struct {
			Description *string   `json:"description"`
			Actions     *[]string `json:"actions"`
		}{}
	}
	for attempt := 1; ; attempt++ {
		old, name, res, err := h.findScopeMap(r, reg, cr.child)
		exists := err == nil
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if !exists && r.Method == http.MethodPatch {
			return childNotFound(scopemap.ScopeMapsSegment, cr.child, cr.reg.name)
		}
		if !exists && !scopemap.ValidName(cr.child) {
			return invalidParam("name", "the scope map name '%s' is invalid: use 5 to 50 letters, digits, '-' and '_'", cr.child)
		}
		var next scopemap.ScopeMap
		if exists && r.Method == http.MethodPatch {
			next = old
		}
		if p := in.Properties; p.Description != nil {
			next.Description = *p.Description
		}
		if p := in.Properties; p.Actions != nil {
			next.Actions = *p.Actions
		}
		if next.Actions, err = checkScopeMap(next.Description, next.Actions); err != nil {
			return err
		}
		if old.Kind == scopemap.KindSystemDefined {
			if next.Description != old.Description || !slices.Equal(next.Actions, old.Actions) {
				return newError(http.StatusBadRequest, "SystemDefinedScopeMapReadOnly",
					"the scope map '%s' is system-defined and cannot be changed; create a scope map of your own", name)
			}
			writeJSON(w, http.StatusOK, scopeMapShape(res.ID, name, old))
			return nil
		}
		next.CreationDate = old.CreationDate
		if !exists {
			next.CreationDate = time.Now().UTC()
		}
		props, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("encoding scope map: %w", err)
		}
		rec := meta.Resource{ID: id, Type: scopemap.ScopeMapResourceType, Name: cr.child, Properties: props, Version: res.Version}
		if exists {
			rec.ID, rec.Name = res.ID, res.Name
		}
		saved, err := h.o.Meta.PutResource(ctx, rec)
		if (errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotFound)) && attempt < maxAttempts {
			continue
		}
		if errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotFound) {
			return newError(http.StatusConflict, "Conflict", "scope map '%s' changed while it was being updated; retry", cr.child)
		}
		if err != nil {
			return err
		}
		h.changed(ctx, reg.Name)
		next.Kind = scopemap.KindUserDefined
		status := http.StatusOK
		if !exists {
			status = http.StatusCreated
		}
		writeJSON(w, status, scopeMapShape(saved.ID, saved.Name, next))
		return nil
	}
}

func (h *handler) deleteScopeMap(w http.ResponseWriter, r *http.Request, cr childRoute) error {
	ctx := r.Context()
	reg, err := h.loadRegistry(r, cr)
	if err != nil {
		return err
	}
	id := scopemap.ScopeMapID(reg.ResourceID, cr.child)
	if err := h.require(r, scopeMapsAction+"delete", id); err != nil {
		return err
	}
	if _, name, ok := scopemap.BuiltIn(cr.child, reg.CreatedAt); ok {
		return newError(http.StatusBadRequest, "SystemDefinedScopeMapReadOnly", "the scope map '%s' is system-defined and cannot be deleted", name)
	}
	res, err := h.o.Meta.GetResource(ctx, id)
	if errors.Is(err, meta.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	users, err := h.tokensUsing(r, reg, res.ID)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return newError(http.StatusConflict, "ScopeMapInUse",
			"the scope map '%s' is used by the token(s) %s; delete them or give them another scope map first", res.Name, strings.Join(users, ", "))
	}
	if err := h.o.Meta.DeleteResource(ctx, res.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	h.changed(ctx, reg.Name)
	w.WriteHeader(http.StatusOK)
	return nil
}

// tokensUsing names the registry's tokens whose scope map is scopeMapID.
func (h *handler) tokensUsing(r *http.Request, reg meta.Registry, scopeMapID string) ([]string, error) {
	toks, err := h.o.Meta.ListResources(r.Context(), reg.ResourceID, scopemap.TokenResourceType)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, res := range toks {
		t, err := scopemap.DecodeToken(res.Properties)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.ID, err)
		}
		if strings.EqualFold(t.ScopeMapID, scopeMapID) {
			names = append(names, res.Name)
		}
	}
	return names, nil
}
