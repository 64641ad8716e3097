package arm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

// Options configure the management handler.
type Options struct {
	// Meta is the metadata store; required.
	Meta meta.Store
	// Logger receives server-side failures; nil means slog.Default().
	Logger *slog.Logger
	// Authorize authenticates a request and returns its caller, whose role
	// assignments then decide every route (require). An error refuses the
	// request: 403 when it wraps ErrForbidden, 401 otherwise. A nil
	// Authorize refuses everything.
	Authorize func(ctx context.Context, r *http.Request) (Caller, error)
	// PrincipalType, when set, resolves a principal id for role
	// assignments: its ARM principalType ("User", "ServicePrincipal") and
	// whether it exists. Without it any principal id is accepted.
	PrincipalType func(ctx context.Context, principalID string) (principalType string, found bool, err error)
	// ResolvePrincipal, when set, finds a principal by object id,
	// application (client) id or user name, for GET
	// /providers/Microsoft.Authorization/principals/{ref} (how the CLI's
	// --assignee finds an object id; moat has no Graph API).
	ResolvePrincipal func(ctx context.Context, ref string) (p ResolvedPrincipal, found bool, err error)
	// OnRoleAssignmentChange, when set, is called after a role assignment
	// was created or deleted, so caches of assignments can be dropped.
	OnRoleAssignmentChange func(ctx context.Context)
	// OnRegistryChange, when set, is called with the registry's name after
	// a registry was created, updated or deleted.
	OnRegistryChange func(ctx context.Context, name string)
	// Domain makes a registry's login server: name.Domain (lower-case).
	Domain string
	// IPRuleQuota is the most IP rules a registry may have; 0 means
	// model.DefaultIPRuleQuota.
	IPRuleQuota int
	// BcryptCost is the cost of repository-token password hashes; 0 means
	// scopemap.DefaultBcryptCost. Tests use bcrypt.MinCost.
	BcryptCost int
	// ManagedIdentities creates and removes the managed identities of
	// service instances (identities.go); nil refuses those routes.
	ManagedIdentities ManagedIdentityService
	// Import reaches registries outside the deployment for importImage; nil
	// refuses such sources (ImportSourceNotSupported).
	Import *transfer.Remote
	// Pipelines executes transfer pipeline runs (pipelines.go); nil
	// refuses runs.
	Pipelines *transfer.Pipelines
	// ImportLease is the lease of a running importImage operation: a poll
	// finding it unrenewed for this long fails it (import.go); 0 means 30s.
	ImportLease time.Duration
}

// maxBody bounds request bodies; registry bodies are a few KiB, 200 IP
// rules about 10 KiB.
const maxBody = 1 << 20

// defaultPageSize is how many items a list answers before a nextLink.
const defaultPageSize = 100

type handler struct {
	o        Options
	log      *slog.Logger
	pageSize int
}

// New returns the management plane handler for /subscriptions/… and
// /providers/Microsoft.ContainerRegistry/operations.
func New(o Options) http.Handler {
	return newHandler(o)
}

func newHandler(o Options) *handler {
	h := &handler{o: o, log: o.Logger, pageSize: defaultPageSize}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h
}

var _ http.Handler = (*handler)(nil)

// route is a parsed request path.
type route struct {
	sub, rg, name string // as sent
	kind          routeKind
}

type routeKind int

const (
	routeNone routeKind = iota
	routeOperations
	routeGroupList
	routeGroup
	routeRegistryListSub
	routeRegistryListGroup
	routeRegistry
	routeUsages
	routeCheckName
	routeUnknownType
)

func eq(a, b string) bool { return strings.EqualFold(a, b) }

const (
	providerNS   = "Microsoft.ContainerRegistry"
	registriesRT = "registries"
)

// resourceSubpath splits a path below one resource,
// /subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{rtype}/{name}/{rest...},
// matching the fixed segments case-insensitively. It returns the resource's
// route (kind routeRegistry when ns/rtype are the registry's) and the 1 to
// maxRest segments after its name; ok is false for any other shape or an
// empty segment. The child-resource and action routes all start so.
func resourceSubpath(path, ns, rtype string, maxRest int) (rt route, rest []string, ok bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) < 9 || len(seg) > 8+maxRest || !eq(seg[0], "subscriptions") || !eq(seg[2], "resourcegroups") ||
		!eq(seg[4], "providers") || !eq(seg[5], ns) || !eq(seg[6], rtype) {
		return route{}, nil, false
	}
	for _, s := range seg {
		if s == "" {
			return route{}, nil, false
		}
	}
	rt = route{sub: seg[1], rg: seg[3], name: seg[7]}
	if eq(ns, providerNS) && eq(rtype, registriesRT) {
		rt.kind = routeRegistry
	}
	return rt, seg[8:], true
}

// registrySubpath is resourceSubpath for a registry.
func registrySubpath(path string, maxRest int) (route, []string, bool) {
	return resourceSubpath(path, providerNS, registriesRT, maxRest)
}

func parseRoute(path string) route {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	for _, s := range seg {
		if s == "" {
			return route{}
		}
	}
	n := len(seg)
	if n == 3 && eq(seg[0], "providers") && eq(seg[1], providerNS) && eq(seg[2], "operations") {
		return route{kind: routeOperations}
	}
	if n < 2 || !eq(seg[0], "subscriptions") {
		return route{}
	}
	rt := route{sub: seg[1]}
	rest := seg[2:]
	switch {
	case len(rest) == 1 && eq(rest[0], "resourcegroups"):
		rt.kind = routeGroupList
		return rt
	case len(rest) >= 2 && eq(rest[0], "resourcegroups"):
		rt.rg = rest[1]
		rest = rest[2:]
		if len(rest) == 0 {
			rt.kind = routeGroup
			return rt
		}
	case len(rest) >= 2 && eq(rest[0], "providers"):
	default:
		return route{}
	}
	// rest starts with providers/{namespace}
	if len(rest) < 2 || !eq(rest[0], "providers") {
		return route{}
	}
	if !eq(rest[1], providerNS) {
		rt.kind = routeUnknownType
		return rt
	}
	rest = rest[2:]
	switch {
	case rt.rg == "" && len(rest) == 1 && eq(rest[0], "checkNameAvailability"):
		rt.kind = routeCheckName
	case len(rest) == 1 && eq(rest[0], registriesRT):
		rt.kind = routeRegistryListSub
		if rt.rg != "" {
			rt.kind = routeRegistryListGroup
		}
	case rt.rg != "" && len(rest) == 2 && eq(rest[0], registriesRT):
		rt.name, rt.kind = rest[1], routeRegistry
	case rt.rg != "" && len(rest) == 3 && eq(rest[0], registriesRT) && eq(rest[2], "listUsages"):
		rt.name, rt.kind = rest[1], routeUsages
	default:
		rt.kind = routeUnknownType
	}
	return rt
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, err := h.authorize(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// Routes served outside parseRoute, each in its own file. Each answers
	// and returns true for the paths it owns, false for any other.
	for _, serve := range []func(http.ResponseWriter, *http.Request) bool{
		h.serveImport,              // import.go: importImage and its operations
		h.serveNetworkExtension,    // network.go: auditRecords, checkNetworkAccess
		h.serveRoleAssignments,     // roles.go: Microsoft.Authorization
		h.serveRegistryCredentials, // credentials.go: listCredentials, regenerateCredential
		h.serveScopeMaps,           // scopemaps.go: scopeMaps, tokens
		h.serveManagedIdentities,   // identities.go: service instances, userAssignedIdentities
		h.servePrivateEndpoints,    // privateendpoints.go: Microsoft.Network, connections
		h.serveDeployments,         // deployments.go: Microsoft.Resources/deployments
		h.servePipelines,           // pipelines.go: export/import pipelines, runs, Key Vault secrets
		h.servePrincipalAdmin,      // principals.go: Moat.Identity users and service principals
	} {
		if serve(w, r) {
			return
		}
	}
	rt := parseRoute(r.URL.Path)
	switch rt.kind {
	case routeNone:
		h.writeError(w, r, newError(http.StatusNotFound, "NotFound", "no management API at %q", r.URL.Path))
		return
	case routeUnknownType:
		h.writeError(w, r, newError(http.StatusBadRequest, "InvalidResourceType",
			"the resource type of %q is not served by moat (it serves %s/registries and Microsoft.Resources/resourceGroups)", r.URL.Path, providerNS))
		return
	}
	if err := h.requireRoute(r, rt); err != nil {
		h.writeError(w, r, err)
		return
	}
	group := rt.kind == routeGroup || rt.kind == routeGroupList
	v, err := h.apiVersion(r, group)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	switch rt.kind {
	case routeOperations:
		h.only(w, r, http.MethodGet, func() error { return h.operations(w, r) })
	case routeGroupList:
		h.only(w, r, http.MethodGet, func() error { return h.listGroups(w, r, rt) })
	case routeGroup:
		h.group(w, r, rt)
	case routeRegistryListSub, routeRegistryListGroup:
		h.only(w, r, http.MethodGet, func() error { return h.listRegistries(w, r, rt, v) })
	case routeRegistry:
		h.registry(w, r, rt, v)
	case routeUsages:
		h.only(w, r, http.MethodGet, func() error { return h.usages(w, r, rt) })
	case routeCheckName:
		h.only(w, r, http.MethodPost, func() error { return h.checkName(w, r) })
	}
}

func (h *handler) only(w http.ResponseWriter, r *http.Request, method string, fn func() error) {
	if r.Method != method {
		h.methodNotAllowed(w, r, method)
		return
	}
	if err := fn(); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	h.writeError(w, r, newError(http.StatusMethodNotAllowed, "HttpMethodNotSupported",
		"%s is not supported on %q; use %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
}

// authorize fails closed: no hook, no access. It returns r with the caller
// in its context (callerOf).
func (h *handler) authorize(r *http.Request) (*http.Request, error) {
	if isDispatch(r.Context()) && h.o.Authorize != nil {
		// A template deployment's own resource request (deployments.go):
		// its context carries the caller authenticated when the deployment
		// was accepted; each route still checks its permission, with the
		// role assignments read afresh for this resource.
		return r.WithContext(withCaller(r.Context(), principalOf(r.Context()))), nil
	}
	if h.o.Authorize == nil {
		return r, newError(http.StatusUnauthorized, "AuthenticationFailed", "management requests are refused: no authorization is configured")
	}
	caller, err := h.o.Authorize(r.Context(), r)
	if err != nil {
		if errors.Is(err, ErrForbidden) {
			return r, newError(http.StatusForbidden, "AuthorizationFailed",
				"the client '%s' with object id '%s' does not have authorization to perform %s over scope '%s': %v", caller.Name, caller.ID, r.Method, r.URL.Path, err)
		}
		return r, newError(http.StatusUnauthorized, "AuthenticationFailed", "authentication failed: %v", err)
	}
	return r.WithContext(withCaller(r.Context(), caller)), nil
}

// resourceGroupAPIVersions are the Microsoft.Resources api-versions
// accepted for resource groups.
var resourceGroupAPIVersions = []string{
	"2015-11-01", "2016-02-01", "2016-06-01", "2016-07-01", "2016-09-01", "2017-05-10", "2018-02-01",
	"2018-05-01", "2019-03-01", "2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01",
	"2020-06-01", "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01",
	"2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01",
}

func (h *handler) apiVersion(r *http.Request, group bool) (model.APIVersion, error) {
	q := r.URL.Query()
	vs, ok := q["api-version"]
	if !ok || len(vs) == 0 || vs[0] == "" {
		return model.APIVersion{}, newError(http.StatusBadRequest, "MissingApiVersionParameter",
			"the api-version query parameter (?api-version=) is required for all requests")
	}
	v := vs[0]
	if group {
		if slices.Contains(resourceGroupAPIVersions, v) {
			return model.APIVersion{}, nil
		}
		return model.APIVersion{}, newError(http.StatusBadRequest, "InvalidApiVersionParameter",
			"the api-version %q is invalid for resource groups; supported versions are %s", v, strings.Join(resourceGroupAPIVersions, ", "))
	}
	pv, ok := model.ParseAPIVersion(v)
	if !ok {
		return model.APIVersion{}, newError(http.StatusBadRequest, "InvalidApiVersionParameter",
			"the api-version %q is invalid; the supported versions of %s are %s", v, providerNS, strings.Join(model.APIVersions, ", "))
	}
	return pv, nil
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "the request body is larger than %d bytes", mbe.Limit)
		}
		return nil, newError(http.StatusBadRequest, "InvalidRequestContent", "the request body could not be read: %v", err)
	}
	return b, nil
}

// baseURL is the scheme and host clients used, for absolute nextLinks.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *handler) changed(ctx context.Context, name string) {
	if h.o.OnRegistryChange != nil {
		h.o.OnRegistryChange(ctx, name)
	}
}
