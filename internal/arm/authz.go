package arm

import (
	"context"
	"net/http"
	"sync"

	"github.com/moat-registry/moat/internal/rbac"
)

// Caller is the authenticated principal of a management request, as
// Options.Authorize returns it.
type Caller struct {
	// ID is the principal's object id, the principalId of role assignments.
	ID string
	// Name is what the principal signs in with: a user name, a service
	// principal's application id.
	Name string
	// Kind is the identity package's principal kind ("user",
	// "servicePrincipal", ...).
	Kind string
}

// String is how logs and messages name the caller.
func (c Caller) String() string {
	if c.Name == "" {
		return c.ID
	}
	return c.Name + " (object id " + c.ID + ")"
}

// callerKey carries the request's callerState.
type callerKey struct{}

// callerState is the caller of one request and, loaded on first use, the
// role assignments every check of that request decides with (one read per
// request, however many checks a list makes).
type callerState struct {
	caller Caller
	once   sync.Once
	as     []rbac.Assignment
	err    error
}

// withCaller stores the principal Authorize returned in the request context.
func withCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, &callerState{caller: c})
}

// callerOf names the request's caller for messages and logs, or "".
func callerOf(ctx context.Context) string {
	if st, ok := ctx.Value(callerKey{}).(*callerState); ok {
		return st.caller.String()
	}
	return ""
}

// principalOf is the request's caller; the zero Caller when there is none.
func principalOf(ctx context.Context) Caller {
	if st, ok := ctx.Value(callerKey{}).(*callerState); ok {
		return st.caller
	}
	return Caller{}
}

// may reports whether the request's caller holds a role assignment at or
// above scope that allows action. An error means the assignments could not
// be read; a request without a caller may nothing.
func (h *handler) may(r *http.Request, action, scope string) (bool, error) {
	st, ok := r.Context().Value(callerKey{}).(*callerState)
	if !ok || st.caller.ID == "" {
		return false, nil
	}
	st.once.Do(func() { st.as, st.err = rbac.Load(r.Context(), h.o.Meta) })
	if st.err != nil {
		return false, st.err
	}
	return rbac.Allowed(st.as, st.caller.ID, action, scope), nil
}

// require checks that the request's caller may perform the ARM action (e.g.
// "Microsoft.ContainerRegistry/registries/write") at scope (an ARM resource
// id), through a role assignment at or above scope. A refusal is 403
// AuthorizationFailed in ARM's words, naming caller, action and scope.
//
// Every route calls it with the action and scope of what it does, before it
// reads or changes anything, so a refused caller learns nothing about what
// exists (ARM answers 403, not 404, for a resource one may not read).
func (h *handler) require(r *http.Request, action, scope string) error {
	ok, err := h.may(r, action, scope)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return forbidden(principalOf(r.Context()), action, scope)
}

func forbidden(c Caller, action, scope string) error {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	return newError(http.StatusForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. "+
			"If access was recently granted, please refresh your credentials.", name, c.ID, action, scope)
}

// Actions of the routes parseRoute serves.
const (
	actionGroupRead      = "Microsoft.Resources/subscriptions/resourceGroups/read"
	actionGroupWrite     = "Microsoft.Resources/subscriptions/resourceGroups/write"
	actionGroupDelete    = "Microsoft.Resources/subscriptions/resourceGroups/delete"
	actionListUsages     = "Microsoft.ContainerRegistry/registries/listUsages/read"
	actionCheckName      = "Microsoft.ContainerRegistry/checkNameAvailability/read"
	actionAuditRead      = "Microsoft.ContainerRegistry/registries/auditRecords/read"
	actionCheckAccess    = "Microsoft.ContainerRegistry/registries/checkNetworkAccess/action"
	actionImportOpStatus = rbac.ActionRegistryRead
)

// requireRoute checks the permission a parseRoute route needs. Lists are
// not checked here: they answer only the items the caller may read. The
// provider's operation list is public to every authenticated caller, as in
// ARM. A method the route does not serve needs nothing: it is refused next.
func (h *handler) requireRoute(r *http.Request, rt route) error {
	action, scope := routeAction(rt, r.Method)
	if action == "" {
		return nil
	}
	return h.require(r, action, scope)
}

// routeAction is the ARM action and scope of a request to rt; "" when the
// route needs none (lists, operations, methods it refuses).
func routeAction(rt route, method string) (action, scope string) {
	switch rt.kind {
	case routeGroup:
		scope = groupID(rt.sub, rt.rg)
		switch method {
		case http.MethodGet, http.MethodHead:
			return actionGroupRead, scope
		case http.MethodPut, http.MethodPatch:
			return actionGroupWrite, scope
		case http.MethodDelete:
			return actionGroupDelete, scope
		}
	case routeRegistry:
		scope = registryID(rt.sub, rt.rg, rt.name)
		switch method {
		case http.MethodGet:
			return rbac.ActionRegistryRead, scope
		case http.MethodPut, http.MethodPatch:
			return rbac.ActionRegistryWrite, scope
		case http.MethodDelete:
			return rbac.ActionRegistryDelete, scope
		}
	case routeUsages:
		if method == http.MethodGet {
			return actionListUsages, registryID(rt.sub, rt.rg, rt.name)
		}
	case routeCheckName:
		if method == http.MethodPost {
			return actionCheckName, "/subscriptions/" + rt.sub
		}
	}
	return "", ""
}
