package arm

// Service instances that carry managed identities, and user-assigned
// managed identities.
//
// moat does not run containers, web apps, ML workspaces or tasks: it keeps
// these resources only as carriers of managed identities, so that the
// identities exist, can be given roles, obtain tokens and be recognised by
// the trusted-services check. Served types (PUT/PATCH/GET/DELETE, and GET
// of the collection in a resource group; userAssignedIdentities also per
// subscription; and, for an instance with a system-assigned identity,
// GET {id}/providers/Microsoft.ManagedIdentity/identities/default):
//
//	Microsoft.ContainerInstance/containerGroups/{name}
//	Microsoft.MachineLearningServices/workspaces/{name}
//	Microsoft.Web/sites/{name}
//	Microsoft.ContainerRegistry/registries/{registry}/tasks/{name}
//	Microsoft.ManagedIdentity/userAssignedIdentities/{name}
//
// Decisions:
//   - Everything in the body except id, name, type, location, tags and
//     identity (properties, sku, kind, zones, …) is stored and returned
//     verbatim, unvalidated; read-only fields moat sets are overwritten.
//   - api-version is required and must look like an ARM version
//     (YYYY-MM-DD with an optional -suffix); the types' own version lists
//     are not enforced because moat serves no version-specific shape.
//   - "identity": {"type": SystemAssigned | UserAssigned |
//     "SystemAssigned, UserAssigned" | None, "userAssignedIdentities":
//     {"<identity resource id>": {}}}. A system-assigned identity is created
//     with the resource (or when SystemAssigned is added) and deleted with
//     it (or when removed); the answer carries principalId and tenantId, and
//     principalId/clientId per user-assigned identity, as ARM does.
//   - moat extension: the answer of the PUT that first gives an instance an
//     identity carries properties.moatIdentity = {identityEndpoint,
//     identityHeader}: the IDENTITY_ENDPOINT and IDENTITY_HEADER values a
//     workload of that instance uses to get tokens
//     (azidentity.ManagedIdentityCredential). The header is a secret shown
//     only then; GET shows identityEndpoint alone.
//     POST {instance id}/rotateIdentitySecret?api-version=… replaces it and
//     answers the new pair; the old header stops working at once.
//   - userAssignedIdentities answer properties.principalId, clientId and
//     tenantId. Deleting one deletes its principal; instances that still
//     list it can no longer get tokens for it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// ManagedIdentityService is what the management plane needs of the
// identity service for managed identities; *identity.Service implements it.
type ManagedIdentityService interface {
	EnsureManagedIdentity(ctx context.Context, resourceID string, userAssigned bool) (identity.ManagedIdentity, error)
	GetManagedIdentity(ctx context.Context, resourceID string) (identity.ManagedIdentity, error)
	DeleteManagedIdentity(ctx context.Context, resourceID string) error
	SetIdentityHost(ctx context.Context, instanceID, systemAssigned string, userAssigned []string) (string, error)
	GetIdentityHost(ctx context.Context, instanceID string) (identity.IdentityHost, error)
	RotateIdentityHostSecret(ctx context.Context, instanceID string) (string, error)
	TenantID(ctx context.Context) (string, error)
}

var _ ManagedIdentityService = (*identity.Service)(nil)

// carrierType is one served resource type.
type carrierType struct {
	ns, typ string // canonical spelling; for tasks typ is "registries/tasks"
	// userAssigned marks Microsoft.ManagedIdentity/userAssignedIdentities.
	userAssigned bool
	name         *regexp.Regexp
	nameRule     string
}

func (c carrierType) fullType() string { return c.ns + "/" + c.typ }

var (
	typeContainerGroups = carrierType{ns: "Microsoft.ContainerInstance", typ: "containerGroups",
		name: regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`), nameRule: "1 to 63 lower-case letters, digits or '-', not starting or ending with '-'"}
	typeWorkspaces = carrierType{ns: "Microsoft.MachineLearningServices", typ: "workspaces",
		name: regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$`), nameRule: "3 to 33 letters, digits, '-' or '_', starting with a letter or digit"}
	typeSites = carrierType{ns: "Microsoft.Web", typ: "sites",
		name: regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,58}[a-zA-Z0-9])?$`), nameRule: "1 to 60 letters, digits or '-', not starting or ending with '-'"}
	typeTasks = carrierType{ns: providerNS, typ: "registries/tasks",
		name: regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{4,49}$`), nameRule: "5 to 50 letters, digits, '-' or '_', starting with a letter or digit"}
	typeUserAssigned = carrierType{ns: "Microsoft.ManagedIdentity", typ: "userAssignedIdentities", userAssigned: true,
		name: regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$`), nameRule: "3 to 128 letters, digits, '-' or '_', starting with a letter or digit"}

	// carrierTypes are the types with a resource-group-level collection
	// (tasks live below a registry).
	carrierTypes = []carrierType{typeContainerGroups, typeWorkspaces, typeSites, typeUserAssigned}
)

// carrierRoute is a parsed path of this file's routes.
type carrierRoute struct {
	t              carrierType
	sub, rg        string
	registry, name string // registry only for tasks
	rotate         bool   // …/rotateIdentitySecret
	subscriptionLv bool   // a collection across the subscription
	systemIdentity bool   // …/providers/Microsoft.ManagedIdentity/identities/default
}

// collection is the id of the collection (the list's scope and prefix).
func (c carrierRoute) parentID() string {
	if c.subscriptionLv {
		return "/subscriptions/" + c.sub
	}
	if c.t == typeTasks {
		return registryID(c.sub, c.rg, c.registry)
	}
	return groupID(c.sub, c.rg)
}

func (c carrierRoute) id() string {
	if c.t == typeTasks {
		return registryID(c.sub, c.rg, c.registry) + "/tasks/" + c.name
	}
	return groupID(c.sub, c.rg) + "/providers/" + c.t.ns + "/" + c.t.typ + "/" + c.name
}

// systemIdentitySuffix is the path, below an instance, of its
// system-assigned identity (Microsoft.ManagedIdentity/identities/default).
var systemIdentitySuffix = []string{"providers", "Microsoft.ManagedIdentity", "identities", "default"}

// parseCarrierRoute recognises this file's paths; ok is false for others.
func parseCarrierRoute(path string) (carrierRoute, bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if n := len(seg) - len(systemIdentitySuffix); n > 0 && slices.EqualFunc(seg[n:], systemIdentitySuffix, strings.EqualFold) {
		rt, ok := parseCarrierRoute(strings.Join(seg[:n], "/"))
		if !ok || rt.name == "" || rt.rotate || rt.t.userAssigned {
			return carrierRoute{}, false
		}
		rt.systemIdentity = true
		return rt, true
	}
	if slices.Contains(seg, "") || len(seg) < 5 || !eq(seg[0], "subscriptions") {
		return carrierRoute{}, false
	}
	rt := carrierRoute{sub: seg[1]}
	rest := seg[2:]
	if eq(rest[0], "providers") {
		// /subscriptions/{s}/providers/Microsoft.ManagedIdentity/userAssignedIdentities
		if len(rest) == 3 && eq(rest[1], typeUserAssigned.ns) && eq(rest[2], typeUserAssigned.typ) {
			rt.t, rt.subscriptionLv = typeUserAssigned, true
			return rt, true
		}
		return carrierRoute{}, false
	}
	if !eq(rest[0], "resourceGroups") || len(rest) < 5 || !eq(rest[2], "providers") {
		return carrierRoute{}, false
	}
	rt.rg = rest[1]
	rest = rest[3:] // {ns}/{type}[/…]
	if eq(rest[0], providerNS) {
		// registries/{r}/tasks[/{t}[/rotateIdentitySecret]]
		if len(rest) < 4 || !eq(rest[1], registriesRT) || !eq(rest[3], "tasks") {
			return carrierRoute{}, false
		}
		rt.t, rt.registry = typeTasks, rest[2]
		rest = rest[4:]
	} else {
		found := false
		for _, t := range carrierTypes {
			if eq(rest[0], t.ns) && eq(rest[1], t.typ) {
				rt.t, found = t, true
				break
			}
		}
		if !found {
			return carrierRoute{}, false
		}
		rest = rest[2:]
	}
	switch {
	case len(rest) == 0:
	case len(rest) == 1:
		rt.name = rest[0]
	case len(rest) == 2 && eq(rest[1], "rotateIdentitySecret") && !rt.t.userAssigned:
		rt.name, rt.rotate = rest[0], true
	default:
		return carrierRoute{}, false
	}
	return rt, true
}

var armVersionRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-[a-zA-Z0-9]+)?$`)

// serveManagedIdentities answers the routes of service-instance resources and user-assigned managed identities; false for any other path.
func (h *handler) serveManagedIdentities(w http.ResponseWriter, r *http.Request) bool {
	rt, ok := parseCarrierRoute(r.URL.Path)
	if !ok {
		return false
	}
	if err := h.serveCarrier(w, r, rt); err != nil {
		h.writeError(w, r, err)
	}
	return true
}

func (h *handler) serveCarrier(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return newError(http.StatusBadRequest, "MissingApiVersionParameter", "the api-version query parameter (?api-version=) is required for all requests")
	}
	if !armVersionRE.MatchString(v) {
		return newError(http.StatusBadRequest, "InvalidApiVersionParameter", "the api-version %q is not an ARM api-version (YYYY-MM-DD[-preview])", v)
	}
	if h.o.ManagedIdentities == nil {
		return newError(http.StatusNotImplemented, "NotImplemented", "managed identities are not configured on this management plane")
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	typ := rt.t.fullType()
	switch {
	case rt.name == "":
		if r.Method != http.MethodGet {
			h.methodNotAllowed(w, r, http.MethodGet)
			return nil
		}
		if err := h.require(r, typ+"/read", rt.parentID()); err != nil {
			return err
		}
		return h.listCarriers(w, r, rt)
	case rt.systemIdentity:
		if r.Method != http.MethodGet {
			h.methodNotAllowed(w, r, http.MethodGet)
			return nil
		}
		if err := h.require(r, typ+"/read", rt.id()); err != nil {
			return err
		}
		return h.getSystemIdentity(w, r, rt)
	case rt.rotate:
		if r.Method != http.MethodPost {
			h.methodNotAllowed(w, r, http.MethodPost)
			return nil
		}
		if err := h.require(r, typ+"/rotateIdentitySecret/action", rt.id()); err != nil {
			return err
		}
		return h.rotateCarrierSecret(w, r, rt)
	}
	switch r.Method {
	case http.MethodPut:
		if err := h.require(r, typ+"/write", rt.id()); err != nil {
			return err
		}
		return h.putCarrier(w, r, rt)
	case http.MethodGet:
		if err := h.require(r, typ+"/read", rt.id()); err != nil {
			return err
		}
		return h.getCarrier(w, r, rt)
	case http.MethodPatch:
		if err := h.require(r, typ+"/write", rt.id()); err != nil {
			return err
		}
		return h.patchCarrier(w, r, rt)
	case http.MethodDelete:
		if err := h.require(r, typ+"/delete", rt.id()); err != nil {
			return err
		}
		return h.deleteCarrier(w, r, rt)
	}
	h.methodNotAllowed(w, r, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodDelete)
	return nil
}

// identityJSON is the ARM "identity" block.
type identityJSON struct {
	Type                   string                      `json:"type"`
	PrincipalID            string                      `json:"principalId,omitempty"`
	TenantID               string                      `json:"tenantId,omitempty"`
	UserAssignedIdentities map[string]*userIdentityRef `json:"userAssignedIdentities,omitempty"`
}

type userIdentityRef struct {
	PrincipalID string `json:"principalId,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// storedIdentity is what the resource keeps of its identity block.
type storedIdentity struct {
	System       bool     `json:"system,omitempty"`
	UserAssigned []string `json:"userAssigned,omitempty"`
}

// parseIdentityBlock validates an input "identity".
func parseIdentityBlock(raw json.RawMessage) (storedIdentity, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return storedIdentity{}, nil
	}
	var in identityJSON
	if err := decodeStrict(raw, &in); err != nil {
		return storedIdentity{}, err
	}
	var out storedIdentity
	hasUser := false
	for part := range strings.SplitSeq(in.Type, ",") {
		switch p := strings.TrimSpace(part); {
		case eq(p, "SystemAssigned"):
			out.System = true
		case eq(p, "UserAssigned"):
			hasUser = true
		case eq(p, "None") && !strings.Contains(in.Type, ","):
		default:
			return storedIdentity{}, &apiError{status: http.StatusBadRequest, code: "InvalidIdentityType", target: "identity.type",
				message: fmt.Sprintf("identity.type %q is not SystemAssigned, UserAssigned, 'SystemAssigned, UserAssigned' or None", in.Type)}
		}
	}
	switch {
	case hasUser && len(in.UserAssignedIdentities) == 0:
		return storedIdentity{}, &apiError{status: http.StatusBadRequest, code: "BadRequest", target: "identity.userAssignedIdentities",
			message: "identity.type names UserAssigned but identity.userAssignedIdentities is empty"}
	case !hasUser && len(in.UserAssignedIdentities) > 0:
		return storedIdentity{}, &apiError{status: http.StatusBadRequest, code: "BadRequest", target: "identity.userAssignedIdentities",
			message: fmt.Sprintf("identity.userAssignedIdentities is only allowed when identity.type names UserAssigned (it is %q)", in.Type)}
	}
	for id := range in.UserAssignedIdentities {
		rt, ok := parseCarrierRoute(id)
		if !ok || rt.t != typeUserAssigned || rt.name == "" || !strings.EqualFold(rt.id(), id) {
			return storedIdentity{}, &apiError{status: http.StatusBadRequest, code: "InvalidIdentityResourceId", target: "identity.userAssignedIdentities",
				message: fmt.Sprintf("%q is not the resource id of a Microsoft.ManagedIdentity/userAssignedIdentities resource", id)}
		}
		out.UserAssigned = append(out.UserAssigned, id)
	}
	slices.SortFunc(out.UserAssigned, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	out.UserAssigned = slices.CompactFunc(out.UserAssigned, strings.EqualFold)
	return out, nil
}

// carrierBody is an input body: the fields moat reads; the rest of the
// top-level object is kept verbatim in rest.
type carrierBody struct {
	location string
	tags     json.RawMessage
	identity storedIdentity
	rest     map[string]json.RawMessage
}

// readOnlyProps are properties moat sets in its answers; input values are
// dropped.
var readOnlyProps = []string{"provisioningState", "moatIdentity", "principalId", "clientId", "tenantId"}

func parseCarrierBody(body []byte, t carrierType) (carrierBody, error) {
	var top map[string]json.RawMessage
	if err := decodeStrict(body, &top); err != nil {
		return carrierBody{}, err
	}
	if top == nil {
		return carrierBody{}, newError(http.StatusBadRequest, "InvalidRequestContent", "the request body must be a JSON object")
	}
	out := carrierBody{rest: map[string]json.RawMessage{}}
	for k, v := range top {
		switch strings.ToLower(k) {
		case "id", "name", "type", "systemdata", "etag":
			// read-only in ARM; ignored on PUT
		case "location":
			if err := json.Unmarshal(v, &out.location); err != nil {
				return carrierBody{}, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "location", message: "location must be a string"}
			}
		case "tags":
			var tags map[string]string
			if err := json.Unmarshal(v, &tags); err != nil {
				return carrierBody{}, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "tags", message: "tags must be an object of strings"}
			}
			out.tags = v
		case "identity":
			if t.userAssigned {
				return carrierBody{}, &apiError{status: http.StatusBadRequest, code: "BadRequest", target: "identity",
					message: "a user-assigned identity cannot itself have an identity block"}
			}
			id, err := parseIdentityBlock(v)
			if err != nil {
				return carrierBody{}, err
			}
			out.identity = id
		case "properties":
			var props map[string]json.RawMessage
			if string(v) != "null" {
				if err := json.Unmarshal(v, &props); err != nil {
					return carrierBody{}, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "properties", message: "properties must be a JSON object"}
				}
			}
			for name := range props {
				if slices.ContainsFunc(readOnlyProps, func(ro string) bool { return strings.EqualFold(ro, name) }) {
					delete(props, name)
				}
			}
			if props == nil {
				props = map[string]json.RawMessage{}
			}
			b, err := json.Marshal(props)
			if err != nil {
				return carrierBody{}, fmt.Errorf("encoding properties: %w", err)
			}
			out.rest["properties"] = b
		default:
			out.rest[k] = v
		}
	}
	if out.location == "" {
		return carrierBody{}, &apiError{status: http.StatusBadRequest, code: "LocationRequired", target: "location", message: "location is required"}
	}
	return out, nil
}

// putCarrier creates or replaces a carrier. meta.Resource.Properties keeps
// the verbatim rest of the body; Identity the storedIdentity.
func (h *handler) putCarrier(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	ctx := r.Context()
	if !rt.t.name.MatchString(rt.name) {
		return &apiError{status: http.StatusBadRequest, code: "InvalidResourceName", target: "name",
			message: fmt.Sprintf("%s name %q is invalid: %s", rt.t.fullType(), rt.name, rt.t.nameRule)}
	}
	if err := h.carrierParentExists(ctx, rt); err != nil {
		return err
	}
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	return h.putCarrierBody(w, r, rt, raw)
}

// putCarrierBody is PUT with the body raw (PATCH sends the merged one).
func (h *handler) putCarrierBody(w http.ResponseWriter, r *http.Request, rt carrierRoute, raw []byte) error {
	ctx := r.Context()
	in, err := parseCarrierBody(raw, rt.t)
	if err != nil {
		return err
	}
	id := rt.id()
	old, err := h.o.Meta.GetResource(ctx, id)
	exists := err == nil
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	if exists {
		id = old.ID // keep the first spelling
		if !strings.EqualFold(old.Location, in.location) {
			return &apiError{status: http.StatusConflict, code: "InvalidResourceLocation", target: "location",
				message: fmt.Sprintf("%s exists in location '%s'; it cannot move to '%s'", id, old.Location, in.location)}
		}
	}
	mis := h.o.ManagedIdentities
	if !exists {
		// Identities left by a resource deleted with its resource group (or
		// registry), which know nothing of identities: a new resource gets
		// a new principal and a new secret, never the old one's, as in Azure.
		if err := h.dropStaleIdentities(ctx, rt.t, id); err != nil {
			return err
		}
	}
	var secret string
	if rt.t.userAssigned {
		if _, err := mis.EnsureManagedIdentity(ctx, id, true); err != nil {
			return fmt.Errorf("creating the identity of %s: %w", id, err)
		}
	} else {
		secret, err = h.applyIdentity(ctx, id, in.identity, exists)
		if err != nil {
			return err
		}
	}
	restRaw, err := json.Marshal(in.rest)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", id, err)
	}
	idRaw, err := json.Marshal(in.identity)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", id, err)
	}
	name := rt.name
	if exists {
		name = old.Name
	}
	res, err := h.o.Meta.PutResource(ctx, meta.Resource{ID: id, Type: rt.t.fullType(), Name: name, Location: in.location,
		Tags: in.tags, Properties: restRaw, Identity: idRaw})
	if err != nil {
		if !exists { // do not leave identities behind a resource that was never stored
			h.cleanupCarrier(ctx, rt.t, id)
		}
		return fmt.Errorf("storing %s: %w", id, err)
	}
	doc, err := h.carrierShape(r, rt.t, res, secret)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !exists {
		status = http.StatusCreated
	}
	writeJSON(w, status, doc)
	return nil
}

// carrierParentExists checks the resource group, and for tasks the
// registry.
func (h *handler) carrierParentExists(ctx context.Context, rt carrierRoute) error {
	if _, err := h.o.Meta.GetResource(ctx, groupID(rt.sub, rt.rg)); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return groupNotFound(rt.rg)
		}
		return err
	}
	if rt.t != typeTasks {
		return nil
	}
	reg, err := h.o.Meta.GetRegistry(ctx, rt.registry)
	if errors.Is(err, meta.ErrNotFound) || (err == nil && !registryIn(reg, registryID(rt.sub, rt.rg, rt.registry))) {
		return newError(http.StatusNotFound, "ResourceNotFound", "the registry '%s' was not found in resource group '%s'", rt.registry, rt.rg)
	}
	return err
}

// applyIdentity makes the instance's identities match want: creates or
// deletes the system-assigned one, checks the user-assigned ones exist, and
// records them on the identity host. It returns the IDENTITY_HEADER secret
// when the instance got its first identity.
func (h *handler) applyIdentity(ctx context.Context, id string, want storedIdentity, exists bool) (string, error) {
	mis := h.o.ManagedIdentities
	for _, ua := range want.UserAssigned {
		if _, err := h.o.Meta.GetResource(ctx, ua); err != nil {
			if errors.Is(err, meta.ErrNotFound) {
				return "", &apiError{status: http.StatusBadRequest, code: "FailedIdentityOperation", target: "identity.userAssignedIdentities",
					message: fmt.Sprintf("the user-assigned identity %q was not found", ua)}
			}
			return "", err
		}
		if _, err := mis.GetManagedIdentity(ctx, ua); err != nil {
			return "", fmt.Errorf("reading user-assigned identity %s: %w", ua, err)
		}
	}
	system := ""
	if want.System {
		mi, err := mis.EnsureManagedIdentity(ctx, id, false)
		if err != nil {
			return "", fmt.Errorf("creating the system-assigned identity of %s: %w", id, err)
		}
		system = mi.PrincipalID
	}
	secret, err := mis.SetIdentityHost(ctx, id, system, want.UserAssigned)
	if err != nil {
		return "", fmt.Errorf("recording the identities of %s: %w", id, err)
	}
	if !want.System && exists {
		if err := mis.DeleteManagedIdentity(ctx, id); err != nil {
			return "", fmt.Errorf("removing the system-assigned identity of %s: %w", id, err)
		}
	}
	return secret, nil
}

// dropStaleIdentities removes the identity host and managed identity
// stored for id.
func (h *handler) dropStaleIdentities(ctx context.Context, t carrierType, id string) error {
	mis := h.o.ManagedIdentities
	if !t.userAssigned {
		if _, err := mis.SetIdentityHost(ctx, id, "", nil); err != nil {
			return fmt.Errorf("removing stale identities of %s: %w", id, err)
		}
	}
	if err := mis.DeleteManagedIdentity(ctx, id); err != nil {
		return fmt.Errorf("removing stale identities of %s: %w", id, err)
	}
	return nil
}

// cleanupCarrier removes the identities of id, logging failures (it runs
// on paths that already fail).
func (h *handler) cleanupCarrier(ctx context.Context, t carrierType, id string) {
	mis := h.o.ManagedIdentities
	if !t.userAssigned {
		if _, err := mis.SetIdentityHost(ctx, id, "", nil); err != nil {
			h.log.ErrorContext(ctx, "removing identity host", "resource", id, "err", err)
		}
	}
	if err := mis.DeleteManagedIdentity(ctx, id); err != nil {
		h.log.ErrorContext(ctx, "removing managed identity", "resource", id, "err", err)
	}
}

// loadCarrier reads the instance rt names; ok is false when there is none,
// or when the id names a resource of another type.
func (h *handler) loadCarrier(ctx context.Context, rt carrierRoute) (res meta.Resource, ok bool, err error) {
	res, err = h.o.Meta.GetResource(ctx, rt.id())
	if errors.Is(err, meta.ErrNotFound) || (err == nil && !strings.EqualFold(res.Type, rt.t.fullType())) {
		return meta.Resource{}, false, nil
	}
	if err != nil {
		return meta.Resource{}, false, err
	}
	return res, true, nil
}

func (h *handler) getCarrier(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	res, ok, err := h.loadCarrier(r.Context(), rt)
	if err != nil {
		return err
	}
	if !ok {
		return carrierNotFound(rt)
	}
	doc, err := h.carrierShape(r, rt.t, res, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func carrierNotFound(rt carrierRoute) error {
	return newError(http.StatusNotFound, "ResourceNotFound", "the resource '%s/%s' under resource group '%s' was not found", rt.t.fullType(), rt.name, rt.rg)
}

func (h *handler) deleteCarrier(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	ctx := r.Context()
	res, ok, err := h.loadCarrier(ctx, rt)
	if err != nil {
		return err
	}
	if !ok {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	// The resource goes first: without it, its host and principal are
	// refused (identity checks the resource), so a failure below leaves
	// nothing usable behind.
	if err := h.o.Meta.DeleteResource(ctx, res.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("deleting %s: %w", res.ID, err)
	}
	mis := h.o.ManagedIdentities
	if !rt.t.userAssigned {
		if _, err := mis.SetIdentityHost(ctx, res.ID, "", nil); err != nil {
			return err
		}
	}
	if err := mis.DeleteManagedIdentity(ctx, res.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *handler) listCarriers(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	ctx := r.Context()
	if !rt.subscriptionLv {
		if err := h.carrierParentExists(ctx, rt); err != nil {
			return err
		}
	}
	list, err := h.o.Meta.ListResources(ctx, rt.parentID(), rt.t.fullType())
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for _, res := range list {
		doc, err := h.carrierShape(r, rt.t, res, "")
		if err != nil {
			return err
		}
		out = append(out, doc)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

func (h *handler) rotateCarrierSecret(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	ctx := r.Context()
	res, ok, err := h.loadCarrier(ctx, rt)
	if err != nil {
		return err
	}
	if !ok {
		return carrierNotFound(rt)
	}
	secret, err := h.o.ManagedIdentities.RotateIdentityHostSecret(ctx, res.ID)
	if errors.Is(err, identity.ErrIdentityHostNotFound) {
		return newError(http.StatusBadRequest, "NoManagedIdentity", "%s has no managed identity, so it has no identity secret to rotate", res.ID)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, moatIdentityJSON{IdentityEndpoint: baseURL(r) + identity.MSIPath, IdentityHeader: secret})
	return nil
}

type moatIdentityJSON struct {
	IdentityEndpoint string `json:"identityEndpoint"`
	IdentityHeader   string `json:"identityHeader,omitempty"`
}

// carrierShape is the ARM answer for a stored resource; secret, when set,
// is shown in properties.moatIdentity.
func (h *handler) carrierShape(r *http.Request, t carrierType, res meta.Resource, secret string) (map[string]any, error) {
	ctx := r.Context()
	doc := map[string]any{}
	if len(res.Properties) > 0 {
		var rest map[string]json.RawMessage
		if err := json.Unmarshal(res.Properties, &rest); err != nil {
			return nil, fmt.Errorf("stored body of %s: %w", res.ID, err)
		}
		for k, v := range rest {
			doc[k] = v
		}
	}
	props := map[string]any{}
	if raw, ok := doc["properties"].(json.RawMessage); ok {
		if err := json.Unmarshal(raw, &props); err != nil || props == nil {
			props = map[string]any{}
		}
	}
	props["provisioningState"] = "Succeeded"
	doc["id"], doc["name"], doc["type"], doc["location"] = res.ID, res.Name, t.fullType(), res.Location
	tags := map[string]string{}
	if len(res.Tags) > 0 {
		if err := json.Unmarshal(res.Tags, &tags); err != nil {
			return nil, fmt.Errorf("stored tags of %s: %w", res.ID, err)
		}
	}
	doc["tags"] = tags
	mis := h.o.ManagedIdentities
	tenant, err := mis.TenantID(ctx)
	if err != nil {
		return nil, err
	}
	if t.userAssigned {
		mi, err := mis.GetManagedIdentity(ctx, res.ID)
		if err != nil {
			return nil, fmt.Errorf("reading the identity of %s: %w", res.ID, err)
		}
		props["principalId"], props["clientId"], props["tenantId"] = mi.PrincipalID, mi.ClientID, tenant
		doc["properties"] = props
		return doc, nil
	}
	var si storedIdentity
	if len(res.Identity) > 0 {
		if err := json.Unmarshal(res.Identity, &si); err != nil {
			return nil, fmt.Errorf("stored identity of %s: %w", res.ID, err)
		}
	}
	idDoc := identityJSON{Type: si.input().Type}
	if si.System {
		mi, err := mis.GetManagedIdentity(ctx, res.ID)
		if err != nil {
			return nil, fmt.Errorf("reading the system-assigned identity of %s: %w", res.ID, err)
		}
		idDoc.PrincipalID, idDoc.TenantID = mi.PrincipalID, tenant
	}
	if len(si.UserAssigned) > 0 {
		idDoc.UserAssignedIdentities = map[string]*userIdentityRef{}
		for _, ua := range si.UserAssigned {
			ref := &userIdentityRef{}
			if mi, err := mis.GetManagedIdentity(ctx, ua); err == nil {
				ref.PrincipalID, ref.ClientID = mi.PrincipalID, mi.ClientID
			} else if !errors.Is(err, identity.ErrManagedIdentityNotFound) {
				return nil, err
			}
			idDoc.UserAssignedIdentities[ua] = ref
		}
	}
	doc["identity"] = idDoc
	if si.System || len(si.UserAssigned) > 0 {
		props["moatIdentity"] = moatIdentityJSON{IdentityEndpoint: baseURL(r) + identity.MSIPath, IdentityHeader: secret}
	}
	doc["properties"] = props
	return doc, nil
}

// patchCarrier merges the body into the stored resource and stores the
// result as PUT would: tags and identity, when sent, replace; properties
// merge key by key (a null value removes the key); other top-level fields
// replace; location, when sent, must be the stored one.
func (h *handler) patchCarrier(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	ctx := r.Context()
	res, ok, err := h.loadCarrier(ctx, rt)
	if err != nil {
		return err
	}
	if !ok {
		return carrierNotFound(rt)
	}
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	var patch map[string]json.RawMessage
	if err := decodeStrict(raw, &patch); err != nil {
		return err
	}
	if patch == nil {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body must be a JSON object")
	}
	merged := map[string]json.RawMessage{}
	if len(res.Properties) > 0 {
		if err := json.Unmarshal(res.Properties, &merged); err != nil {
			return fmt.Errorf("stored body of %s: %w", res.ID, err)
		}
	}
	loc, err := json.Marshal(res.Location)
	if err != nil {
		return err
	}
	merged["location"] = loc
	if len(res.Tags) > 0 {
		merged["tags"] = res.Tags
	}
	if !rt.t.userAssigned {
		var si storedIdentity
		if len(res.Identity) > 0 {
			if err := json.Unmarshal(res.Identity, &si); err != nil {
				return fmt.Errorf("stored identity of %s: %w", res.ID, err)
			}
		}
		if b, err := json.Marshal(si.input()); err == nil {
			merged["identity"] = b
		}
	}
	for k, v := range patch {
		if !strings.EqualFold(k, "properties") {
			merged[k] = v
			continue
		}
		props := map[string]json.RawMessage{}
		if old, ok := merged["properties"]; ok {
			_ = json.Unmarshal(old, &props) // stored by us: an object
		}
		var in map[string]json.RawMessage
		if err := json.Unmarshal(v, &in); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "properties", message: "properties must be a JSON object"}
		}
		for pk, pv := range in {
			if string(pv) == "null" {
				delete(props, pk)
			} else {
				props[pk] = pv
			}
		}
		b, err := json.Marshal(props)
		if err != nil {
			return err
		}
		merged["properties"] = b
	}
	body, err := json.Marshal(merged)
	if err != nil {
		return fmt.Errorf("encoding the merged %s: %w", res.ID, err)
	}
	return h.putCarrierBody(w, r, rt, body)
}

// input is s as an input "identity" block.
func (s storedIdentity) input() identityJSON {
	out := identityJSON{Type: "None"}
	switch {
	case s.System && len(s.UserAssigned) > 0:
		out.Type = "SystemAssigned, UserAssigned"
	case s.System:
		out.Type = "SystemAssigned"
	case len(s.UserAssigned) > 0:
		out.Type = "UserAssigned"
	}
	if len(s.UserAssigned) > 0 {
		out.UserAssignedIdentities = map[string]*userIdentityRef{}
		for _, id := range s.UserAssigned {
			out.UserAssignedIdentities[id] = &userIdentityRef{}
		}
	}
	return out
}

// getSystemIdentity answers GET {instance}/providers/Microsoft.ManagedIdentity/identities/default.
func (h *handler) getSystemIdentity(w http.ResponseWriter, r *http.Request, rt carrierRoute) error {
	ctx := r.Context()
	res, ok, err := h.loadCarrier(ctx, rt)
	if err != nil {
		return err
	}
	if !ok {
		return carrierNotFound(rt)
	}
	mi, err := h.o.ManagedIdentities.GetManagedIdentity(ctx, res.ID)
	if errors.Is(err, identity.ErrManagedIdentityNotFound) {
		return newError(http.StatusNotFound, "ResourceNotFound", "%s has no system-assigned identity", res.ID)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": res.ID + "/providers/Microsoft.ManagedIdentity/identities/default", "name": "default",
		"type": "Microsoft.ManagedIdentity/identities", "location": res.Location,
		"properties": map[string]string{"tenantId": mi.TenantID, "principalId": mi.PrincipalID, "clientId": mi.ClientID},
	})
	return nil
}
