package arm

// Template deployments (Microsoft.Resources/deployments at resource-group
// scope). The routes, below …/resourceGroups/{rg}/providers/Microsoft.Resources:
//
//	GET                 deployments                               list
//	PUT|GET|HEAD|DELETE deployments/{name}                        PUT is long-running
//	POST                deployments/{name}/validate               evaluate, apply nothing
//	POST                deployments/{name}/whatIf                 the changes it would make (whatif.go)
//	POST                deployments/{name}/cancel                 stop a running deployment
//	POST                deployments/{name}/exportTemplate         the template as sent
//	GET                 deployments/{name}/operations[/{id}]      one per resource applied
//	GET                 deployments/{name}/operationStatuses/{id} the PUT's Azure-AsyncOperation
//	GET                 deployments/{name}/operationResults/{id}  the PUT's Location (202 until done)
//
// Decisions:
//
//   - The template is evaluated by package armtemplate when the PUT arrives,
//     so a template or parameter error is a synchronous 400 InvalidTemplate
//     and nothing is applied. The PUT then answers 201 (200 when it replaces
//     a finished deployment) with provisioningState Accepted, an
//     Azure-AsyncOperation URL and a Location URL; the work runs in the
//     background.
//   - The deployment record (template, parameters, state, operations,
//     outputs) is a meta.Resource, so every replica answers GET and polls.
//     The work runs under the lease "deployment:{lower-cased id}"
//     (replica.RunExclusive) so one replica at a time runs a deployment; a
//     replica that finds a deployment still Accepted or Running when asked
//     about it starts a runner too, which waits for the lease and so takes
//     the deployment over when the replica running it died. Taking over
//     runs the deployment again from the start (resource PUTs are
//     idempotent; Incremental mode).
//   - Each resource is applied by a PUT this handler dispatches to itself
//     (ServeHTTP) with the resource's apiVersion and the caller's context,
//     so it gets exactly the validation and authorization of a PUT the
//     caller sent; only the caller's authentication is not repeated (it
//     happened when the deployment was accepted; a resumed deployment acts
//     as the principal recorded then). A type moat does not serve fails the
//     deployment with InvalidResourceType naming it. A resource answered
//     with a long-running operation is polled the same way.
//   - Order: the evaluator's dependsOn order (explicit, child resources,
//     nested deployments). reference() is answered from what this
//     deployment applied (the resource as a GET returns it after its PUT)
//     or, for resources outside the deployment, by a GET. ARM's implicit
//     dependency of reference() is honoured dynamically: a resource whose
//     body still holds an unanswered reference() to a resource of the same
//     deployment waits until that resource was applied (it is applied
//     first, dependencies before it), then the template is evaluated again.
//     newGuid() and utcNow() keep their first values across evaluations.
//   - A failed resource fails the deployment: error DeploymentFailed with
//     the resource's ARM error in details[] (target: the resource id).
//     Resources applied before stay. Only mode Incremental is served; a
//     Complete deployment is refused with 400 InvalidDeploymentMode rather
//     than run as Incremental.
//   - Inline nested deployments are applied in place; each gets a record
//     of its own (in its resource group) with its outputs, which
//     reference('nested').outputs answers. templateLink and parametersLink
//     are refused: moat fetches nothing from the network.
//   - Secure parameter values are stored with the record (a takeover needs
//     them) and never returned.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate"
	"github.com/moat-registry/moat/internal/replica"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	deploymentsNS   = "Microsoft.Resources"
	deploymentsRT   = "deployments"
	deploymentType  = "Microsoft.Resources/deployments"
	deploymentRetry = "250"
	// deploymentTimeout bounds one run of a deployment.
	deploymentTimeout = 30 * time.Minute
	// maxDeploymentBody is ARM's request limit for a deployment (4 MiB).
	maxDeploymentBody = 4 << 20
	// maxDeploymentName is ARM's longest deployment name.
	maxDeploymentName = 64
)

// deploymentLeaseTTL is the lease of a running deployment; a dead runner's
// deployment is taken over about this long after it died. A variable so
// tests can shorten it.
var deploymentLeaseTTL = 15 * time.Second

// Provisioning states of a deployment.
const (
	stateAccepted  = "Accepted"
	stateRunning   = "Running"
	stateSucceeded = "Succeeded"
	stateFailed    = "Failed"
	stateCanceled  = "Canceled"
)

func terminal(state string) bool {
	return state == stateSucceeded || state == stateFailed || state == stateCanceled
}

// deploymentRoute is a parsed deployments path.
type deploymentRoute struct {
	sub, rg, name string
	action        string // "", validate, cancel, exportTemplate, operations, operationStatuses
	opID          string
}

func (d deploymentRoute) id() string {
	return groupID(d.sub, d.rg) + "/providers/" + deploymentsNS + "/" + deploymentsRT + "/" + d.name
}

func parseDeploymentRoute(path string) (deploymentRoute, bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	// The SDK's deployment operations use the short form
	// …/resourcegroups/{rg}/deployments/{name}/operations; accept both.
	if len(seg) >= 5 && eq(seg[4], deploymentsRT) {
		seg = append(seg[:4:4], append([]string{"providers", deploymentsNS}, seg[4:]...)...)
	}
	if len(seg) < 7 || !eq(seg[0], "subscriptions") || !eq(seg[2], "resourcegroups") || !eq(seg[4], "providers") ||
		!eq(seg[5], deploymentsNS) || !eq(seg[6], deploymentsRT) {
		return deploymentRoute{}, false
	}
	for _, s := range seg {
		if s == "" {
			return deploymentRoute{}, false
		}
	}
	d := deploymentRoute{sub: seg[1], rg: seg[3]}
	switch len(seg) {
	case 7:
		return d, true
	case 8:
		d.name = seg[7]
		return d, true
	case 9:
		d.name = seg[7]
		for _, a := range []string{"validate", "whatIf", "cancel", "exportTemplate", "operations"} {
			if eq(seg[8], a) {
				d.action = a
				return d, true
			}
		}
	case 10:
		d.name, d.opID = seg[7], seg[9]
		for _, a := range []string{"operations", "operationStatuses", "operationResults"} {
			if eq(seg[8], a) {
				d.action = a
				return d, true
			}
		}
	}
	return deploymentRoute{}, false
}

// deploymentAction gives, for a route below one deployment
// (parseDeploymentRoute accepts no other action), the method it takes and
// its handler.
func (h *handler) deploymentAction(action string) (string, func(http.ResponseWriter, *http.Request, deploymentRoute) error) {
	switch action {
	case "validate":
		return http.MethodPost, h.validateDeployment
	case "whatIf":
		return http.MethodPost, h.whatIfDeployment
	case "cancel":
		return http.MethodPost, h.cancelDeployment
	case "exportTemplate":
		return http.MethodPost, h.exportDeploymentTemplate
	case "operations":
		return http.MethodGet, h.deploymentOperations
	case "operationResults":
		return http.MethodGet, h.deploymentResult
	case "operationStatuses":
		return http.MethodGet, h.deploymentStatus
	}
	return "", nil
}

// serveDeployments answers the routes of template deployments (Microsoft.Resources/deployments); false for any other path.
func (h *handler) serveDeployments(w http.ResponseWriter, r *http.Request) bool {
	d, ok := parseDeploymentRoute(r.URL.Path)
	if !ok {
		return false
	}
	if err := deploymentAPIVersion(r); err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxDeploymentBody)
	}
	var err error
	switch {
	case d.name == "":
		h.only(w, r, http.MethodGet, func() error { return h.listDeployments(w, r, d) })
		return true
	case d.action == "":
		switch r.Method {
		case http.MethodPut:
			err = h.putDeployment(w, r, d)
		case http.MethodGet:
			err = h.getDeployment(w, r, d)
		case http.MethodHead:
			// checkExistence: 204 or 404, no body.
			if err = h.require(r, "Microsoft.Resources/deployments/read", d.id()); err == nil {
				if _, _, err = h.loadDeployment(r.Context(), d); err == nil {
					w.WriteHeader(http.StatusNoContent)
					return true
				}
				var ae *apiError
				if errors.As(err, &ae) && ae.status == http.StatusNotFound {
					w.WriteHeader(http.StatusNotFound)
					return true
				}
			}
		case http.MethodDelete:
			err = h.deleteDeployment(w, r, d)
		default:
			h.methodNotAllowed(w, r, http.MethodPut, http.MethodGet, http.MethodHead, http.MethodDelete)
			return true
		}
	default:
		if method, serve := h.deploymentAction(d.action); serve != nil {
			h.only(w, r, method, func() error { return serve(w, r, d) })
		}
		return true
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	return true
}

func deploymentAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return newError(http.StatusBadRequest, "MissingApiVersionParameter",
			"the api-version query parameter (?api-version=) is required for all requests")
	}
	if !slices.Contains(resourceGroupAPIVersions, v) {
		return newError(http.StatusBadRequest, "InvalidApiVersionParameter",
			"the api-version %q is invalid for %s; supported versions are %s", v, deploymentType, strings.Join(resourceGroupAPIVersions, ", "))
	}
	return nil
}

// validDeploymentName is ARM's rule: 1 to 64 letters, digits, '-', '_',
// '.', '(' or ')'.
func validDeploymentName(n string) bool {
	if n == "" || len(n) > maxDeploymentName {
		return false
	}
	for _, c := range n {
		switch {
		case c == '-', c == '_', c == '.', c == '(', c == ')':
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		default:
			return false
		}
	}
	return true
}

// deploymentRecord is what the store keeps of a deployment (as the
// meta.Resource's Properties).
type deploymentRecord struct {
	Mode              string            `json:"mode"`
	Template          json.RawMessage   `json:"template"`
	Parameters        map[string]any    `json:"parameters"` // name → value as supplied
	ProvisioningState string            `json:"provisioningState"`
	RunID             string            `json:"runId"`
	CorrelationID     string            `json:"correlationId"`
	Caller            Caller            `json:"caller"`  // whose rights each resource is applied with
	BaseURL           string            `json:"baseUrl"` // scheme://host the PUT came to
	RemoteAddr        string            `json:"remoteAddr,omitempty"`
	Effective         map[string]any    `json:"effectiveParameters,omitempty"` // every parameter's value after defaults
	Header            http.Header       `json:"header,omitempty"`
	Started           time.Time         `json:"started"`
	Timestamp         time.Time         `json:"timestamp"`
	Outputs           map[string]any    `json:"outputs,omitempty"`
	OutputResources   []string          `json:"outputResources,omitempty"`
	Validated         []string          `json:"validated,omitempty"`
	Error             *deployError      `json:"error,omitempty"`
	Nested            bool              `json:"nested,omitempty"`
	Tags              map[string]string `json:"tags,omitempty"`
}

// deployError is an ARM error with details.
type deployError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Target  string         `json:"target,omitempty"`
	Details []*deployError `json:"details,omitempty"`
}

func (e *deployError) Error() string { return e.Code + ": " + e.Message }

type deployOperation struct {
	ID           string       `json:"id"`
	Seq          int          `json:"seq"` // order of start within the run
	State        string       `json:"provisioningState"`
	Operation    string       `json:"provisioningOperation"`
	Timestamp    time.Time    `json:"timestamp"`
	Started      time.Time    `json:"started"`
	StatusCode   string       `json:"statusCode,omitempty"`
	Error        *deployError `json:"error,omitempty"`
	ResourceID   string       `json:"resourceId"`
	ResourceType string       `json:"resourceType"`
	ResourceName string       `json:"resourceName"`
	APIVersion   string       `json:"apiVersion,omitempty"`
}

// deploymentRequest is a decoded PUT or validate body.
type deploymentRequest struct {
	mode       string
	template   map[string]any
	rawTpl     json.RawMessage
	parameters map[string]any // name → value
	tags       map[string]string
}

// decodeDeploymentRequest reads {"properties":{mode, template, parameters}}
// with ARM's lenience: comments and trailing commas, keys in any case.
func decodeDeploymentRequest(body []byte) (*deploymentRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is empty")
	}
	root, _, err := armtemplate.ReadJSONC(body)
	if err != nil {
		return nil, newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is not valid JSON: %v", err)
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, newError(http.StatusBadRequest, "InvalidRequestContent", "the request body must be a JSON object")
	}
	pv, _ := lookupKey(top, "properties")
	props, ok := pv.(map[string]any)
	if !ok {
		return nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "properties",
			message: "properties is required and must be an object with mode and template"}
	}
	if v, ok := lookupKey(props, "templateLink"); ok && v != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "TemplateLinkNotSupported", target: "properties.templateLink",
			message: "templateLink is not supported: moat fetches nothing from the network; send the template inline in properties.template"}
	}
	if v, ok := lookupKey(props, "parametersLink"); ok && v != nil {
		return nil, &apiError{status: http.StatusBadRequest, code: "TemplateLinkNotSupported", target: "properties.parametersLink",
			message: "parametersLink is not supported: moat fetches nothing from the network; send the parameters inline in properties.parameters"}
	}
	req := &deploymentRequest{parameters: map[string]any{}}
	mv, _ := lookupKey(props, "mode")
	mode, _ := mv.(string)
	switch {
	case strings.EqualFold(mode, "Incremental"):
		req.mode = "Incremental"
	case strings.EqualFold(mode, "Complete"):
		return nil, &apiError{status: http.StatusBadRequest, code: "InvalidDeploymentMode", target: "properties.mode",
			message: "mode Complete is not supported by moat (it would delete the resource group's resources the template does not name); use Incremental"}
	default:
		return nil, &apiError{status: http.StatusBadRequest, code: "InvalidDeploymentMode", target: "properties.mode",
			message: fmt.Sprintf("properties.mode %v is invalid: want Incremental or Complete", jsonText(mv))}
	}
	tv, _ := lookupKey(props, "template")
	tpl, ok := tv.(map[string]any)
	if !ok {
		return nil, &apiError{status: http.StatusBadRequest, code: "InvalidTemplate", target: "properties.template",
			message: "properties.template is required and must be a JSON object (the template itself)"}
	}
	req.template = tpl
	if req.rawTpl, err = json.Marshal(tpl); err != nil {
		return nil, fmt.Errorf("encoding the template: %w", err)
	}
	if pv, ok := lookupKey(props, "parameters"); ok && pv != nil {
		pm, ok := pv.(map[string]any)
		if !ok {
			return nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "properties.parameters",
				message: "properties.parameters must be an object of {\"name\": {\"value\": ...}}"}
		}
		for name, e := range pm {
			em, _ := e.(map[string]any)
			if _, ok := lookupKey(em, "reference"); ok {
				return nil, &apiError{status: http.StatusBadRequest, code: "InvalidParameter", target: "properties.parameters." + name,
					message: fmt.Sprintf("parameter %q is a Key Vault reference, which moat cannot resolve", name)}
			}
			v, ok := lookupKey(em, "value")
			if !ok {
				return nil, &apiError{status: http.StatusBadRequest, code: "InvalidParameter", target: "properties.parameters." + name,
					message: fmt.Sprintf("parameter %q must be an object with a value: {\"value\": ...}", name)}
			}
			req.parameters[name] = v
		}
	}
	if tv, ok := lookupKey(top, "tags"); ok && tv != nil {
		tm, ok := tv.(map[string]any)
		if !ok {
			return nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "tags", message: "tags must be an object of strings"}
		}
		req.tags = map[string]string{}
		for k, v := range tm {
			s, ok := v.(string)
			if !ok {
				return nil, &apiError{status: http.StatusBadRequest, code: "InvalidRequestContent", target: "tags." + k, message: fmt.Sprintf("tag %q must be a string", k)}
			}
			req.tags[k] = s
		}
	}
	return req, nil
}

// lookupKey finds a key case-insensitively; the last of duplicates in
// other spellings does not matter here (ReadJSONC already kept the last of
// exact duplicates).
func lookupKey(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil || v == nil {
		return "(missing)"
	}
	return string(b)
}

// deployContext is what the evaluator needs to know about where a
// deployment runs.
func (h *handler) deployContext(ctx context.Context, d deploymentRoute) (armtemplate.Options, error) {
	g, err := h.o.Meta.GetResource(ctx, groupID(d.sub, d.rg))
	if errors.Is(err, meta.ErrNotFound) {
		return armtemplate.Options{}, groupNotFound(d.rg)
	}
	if err != nil {
		return armtemplate.Options{}, err
	}
	tags := map[string]string{}
	if len(g.Tags) > 0 {
		if err := json.Unmarshal(g.Tags, &tags); err != nil {
			return armtemplate.Options{}, fmt.Errorf("stored tags of %s: %w", g.ID, err)
		}
	}
	return armtemplate.Options{
		Mode:              armtemplate.ModeDeploy,
		SubscriptionID:    d.sub,
		SubscriptionName:  "moat",
		ResourceGroup:     g.Name,
		Location:          g.Location,
		ResourceGroupTags: tags,
		DeploymentName:    d.name,
	}, nil
}

// templateError maps an evaluation error to ARM's InvalidTemplate, naming
// the path and expression.
func templateError(err error) *apiError {
	ae := &apiError{status: http.StatusBadRequest, code: "InvalidTemplate"}
	if te, ok := armtemplate.AsError(err); ok {
		ae.target = te.Path
		switch {
		case errors.Is(err, armtemplate.ErrMissingParameter), errors.Is(err, armtemplate.ErrParameterType),
			errors.Is(err, armtemplate.ErrParameterValue), errors.Is(err, armtemplate.ErrUnknownParameter):
			ae.code = "InvalidTemplateParameter"
		}
	}
	ae.message = "deployment template validation failed: " + err.Error()
	return ae
}

// evaluateOnce checks a request's template and parameters; reference()
// stays Unknown.
func evaluateOnce(req *deploymentRequest, opts armtemplate.Options) (*armtemplate.Template, *armtemplate.Result, error) {
	tpl, err := armtemplate.NewTemplate(req.template)
	if err != nil {
		return nil, nil, templateError(err)
	}
	opts.Parameters = req.parameters
	opts.Now = time.Now().UTC()
	opts.NewGUID = func() string { return armtemplate.GUID(opts.DeploymentName, opts.Now.String()) }
	res, err := armtemplate.Evaluate(tpl, opts)
	if err != nil {
		return nil, nil, templateError(err)
	}
	var bad error
	res.Walk(func(rs *armtemplate.Resource) {
		if bad == nil && rs.Deployed() && strings.EqualFold(rs.Type, deploymentType) && rs.Deployment == nil {
			bad = &apiError{status: http.StatusBadRequest, code: "TemplateLinkNotSupported", target: rs.Path,
				message: fmt.Sprintf("nested deployment %q has no inline template: templateLink is not supported, moat fetches nothing from the network", rs.Name)}
		}
	})
	if bad != nil {
		return nil, nil, bad
	}
	return tpl, res, nil
}

func (h *handler) loadDeployment(ctx context.Context, d deploymentRoute) (meta.Resource, *deploymentRecord, error) {
	res, err := h.o.Meta.GetResource(ctx, d.id())
	if errors.Is(err, meta.ErrNotFound) {
		return meta.Resource{}, nil, newError(http.StatusNotFound, "DeploymentNotFound", "deployment '%s' could not be found in resource group '%s'", d.name, d.rg)
	}
	if err != nil {
		return meta.Resource{}, nil, err
	}
	var rec deploymentRecord
	if err := json.Unmarshal(res.Properties, &rec); err != nil {
		return meta.Resource{}, nil, fmt.Errorf("stored deployment %s: %w", res.ID, err)
	}
	return res, &rec, nil
}

// updateDeployment changes the stored record with fn, retrying on
// concurrent changes so a cancel is never overwritten. fn returning false
// leaves the record as it is.
func (h *handler) updateDeployment(ctx context.Context, d deploymentRoute, fn func(*deploymentRecord) bool) (*deploymentRecord, error) {
	for range 20 {
		res, rec, err := h.loadDeployment(ctx, d)
		if err != nil {
			return nil, err
		}
		if !fn(rec) {
			return rec, nil
		}
		if res.Properties, err = json.Marshal(rec); err != nil {
			return nil, fmt.Errorf("encoding deployment %s: %w", d.id(), err)
		}
		_, err = h.o.Meta.PutResource(ctx, res)
		if errors.Is(err, meta.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return rec, nil
	}
	return nil, newError(http.StatusConflict, "Conflict", "deployment '%s' kept changing while it was being updated; retry", d.name)
}

func (h *handler) putDeployment(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/write", d.id()); err != nil {
		return err
	}
	if !validDeploymentName(d.name) {
		return &apiError{status: http.StatusBadRequest, code: "InvalidDeploymentName", target: "name",
			message: fmt.Sprintf("deployment name %q is invalid: 1 to %d letters, digits, '-', '_', '.', '(' or ')'", d.name, maxDeploymentName)}
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeDeploymentRequest(body)
	if err != nil {
		return err
	}
	opts, err := h.deployContext(ctx, d)
	if err != nil {
		return err
	}
	if _, _, err := evaluateOnce(req, opts); err != nil {
		return err
	}
	runID, err := newOpID()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	rec := &deploymentRecord{
		Mode: req.mode, Template: req.rawTpl, Parameters: req.parameters, ProvisioningState: stateAccepted,
		RunID: runID, CorrelationID: correlationID(r), Caller: principalOf(ctx), BaseURL: baseURL(r), RemoteAddr: r.RemoteAddr,
		Header: forwardHeaders(r.Header), Started: now, Timestamp: now, Tags: req.tags,
	}
	props, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding deployment: %w", err)
	}
	status := http.StatusCreated
	old, err := h.o.Meta.GetResource(ctx, d.id())
	switch {
	case err == nil:
		var prev deploymentRecord
		if err := json.Unmarshal(old.Properties, &prev); err != nil {
			return fmt.Errorf("stored deployment %s: %w", old.ID, err)
		}
		if !terminal(prev.ProvisioningState) {
			return newError(http.StatusConflict, "DeploymentActive",
				"deployment '%s' is still %s; wait for it to finish or cancel it before deploying again under its name", d.name, prev.ProvisioningState)
		}
		status = http.StatusOK
	case !errors.Is(err, meta.ErrNotFound):
		return err
	}
	stored, err := h.o.Meta.PutResource(ctx, meta.Resource{ID: d.id(), Type: deploymentType, Name: d.name, Properties: props, Version: old.Version})
	if errors.Is(err, meta.ErrConflict) || (err == nil && old.Version == 0 && stored.Version != 1) {
		return newError(http.StatusConflict, "DeploymentActive", "deployment '%s' was started by another request at the same time", d.name)
	}
	if err != nil {
		return err
	}
	h.startDeployment(ctx, d, runID)
	q := "?api-version=" + url.QueryEscape(r.URL.Query().Get("api-version"))
	w.Header().Set("Azure-AsyncOperation", rec.BaseURL+d.statusPath(runID)+q)
	w.Header().Set("Location", rec.BaseURL+d.resultPath(runID)+q)
	w.Header().Set("retry-after-ms", deploymentRetry)
	writeJSON(w, status, h.deploymentShape(stored, rec))
	return nil
}

func (d deploymentRoute) statusPath(runID string) string {
	return (&url.URL{Path: d.id() + "/operationStatuses/" + runID}).EscapedPath()
}

func (d deploymentRoute) resultPath(runID string) string {
	return (&url.URL{Path: d.id() + "/operationResults/" + runID}).EscapedPath()
}

// deploymentResult answers the PUT's Location with ARM's Location
// semantics: 202 while the deployment runs, 200 and the deployment when it
// succeeded, and its error as a 4xx when it failed or was canceled (a
// client keeps polling on 5xx and takes any other 2xx for success).
func (h *handler) deploymentResult(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	if err := h.require(r, "Microsoft.Resources/deployments/operationstatuses/read", d.id()); err != nil {
		return err
	}
	res, rec, err := h.loadDeployment(r.Context(), d)
	if err != nil {
		return err
	}
	if rec.RunID != d.opID {
		return newError(http.StatusNotFound, "OperationNotFound", "no operation %q on deployment '%s' (only the latest run's result is kept)", d.opID, d.name)
	}
	switch rec.ProvisioningState {
	case stateSucceeded:
		writeJSON(w, http.StatusOK, h.deploymentShape(res, rec))
		return nil
	case stateFailed, stateCanceled:
		e := rec.Error
		if e == nil {
			e = &deployError{Code: "DeploymentFailed", Message: fmt.Sprintf("deployment '%s' ended %s", d.name, rec.ProvisioningState)}
		}
		w.Header().Set("x-ms-error-code", e.Code)
		writeJSON(w, http.StatusConflict, map[string]any{"error": e})
		return nil
	}
	h.resumeDeployment(d, rec)
	w.Header().Set("Location", baseURL(r)+r.URL.RequestURI())
	w.Header().Set("retry-after-ms", deploymentRetry)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// correlationID is the client's x-ms-correlation-request-id, or a new id.
func correlationID(r *http.Request) string {
	if c := r.Header.Get("x-ms-correlation-request-id"); c != "" && len(c) <= 128 {
		return c
	}
	id, err := newOpID()
	if err != nil {
		return ""
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

// forwardHeaders are the caller's headers the dispatched resource requests
// carry (identity headers stay with the request they authenticated).
func forwardHeaders(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{"X-Forwarded-For", "User-Agent", "X-Ms-Correlation-Request-Id"} {
		if v := h.Values(k); len(v) > 0 {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

// running is this process's deployments being run or waited for, by
// lower-cased id; the value cancels the local run.
var running = struct {
	sync.Mutex
	m map[string]context.CancelFunc
}{m: map[string]context.CancelFunc{}}

// runKey names a deployment in running: handlers of one process (tests)
// may serve different stores.
func runKey(h *handler, d deploymentRoute) string {
	return fmt.Sprintf("%p %s", h, strings.ToLower(d.id()))
}

// startDeployment runs the deployment in the background under its lease,
// unless this process already runs it.
func (h *handler) startDeployment(ctx context.Context, d deploymentRoute, runID string) {
	key := runKey(h, d)
	running.Lock()
	if _, ok := running.m[key]; ok {
		running.Unlock()
		return
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), deploymentTimeout)
	running.m[key] = cancel
	running.Unlock()
	go func() {
		defer func() {
			running.Lock()
			delete(running.m, key)
			running.Unlock()
			cancel()
			// A PUT of the same name that came while this runner was
			// finishing found it still registered and started nothing.
			if _, rec, err := h.loadDeployment(context.WithoutCancel(ctx), d); err == nil && !terminal(rec.ProvisioningState) && rec.RunID != runID {
				h.startDeployment(ctx, d, rec.RunID)
			}
		}()
		work := func(ctx context.Context) { h.runDeployment(ctx, d) }
		l, ok := h.o.Meta.(meta.Leaser)
		if !ok {
			work(bg)
			return
		}
		if err := replica.RunExclusive(bg, l, "deployment:"+strings.ToLower(d.id()), deploymentLeaseTTL, work, replica.WithLogger(h.log)); err != nil {
			h.log.ErrorContext(bg, "deployment not run", "deployment", d.id(), "run", runID, "err", err)
		}
	}()
}

// resumeDeployment starts a runner for a deployment found unfinished; it
// runs only if nobody else holds the deployment's lease.
func (h *handler) resumeDeployment(d deploymentRoute, rec *deploymentRecord) {
	if terminal(rec.ProvisioningState) || rec.Nested {
		return
	}
	ctx := withCaller(context.Background(), rec.Caller)
	h.startDeployment(ctx, d, rec.RunID)
}

// runDeployment runs a stored deployment to its end, unless it already
// ended (another replica ran it while this one waited for the lease).
func (h *handler) runDeployment(ctx context.Context, d deploymentRoute) {
	_, rec, err := h.loadDeployment(ctx, d)
	if err != nil {
		h.log.ErrorContext(ctx, "deployment not readable", "deployment", d.id(), "err", err)
		return
	}
	if terminal(rec.ProvisioningState) {
		return
	}
	if principalOf(ctx).ID == "" {
		ctx = withCaller(ctx, rec.Caller)
	}
	if _, err := h.updateDeployment(ctx, d, func(r *deploymentRecord) bool {
		if r.RunID != rec.RunID || terminal(r.ProvisioningState) {
			return false
		}
		r.ProvisioningState, r.Timestamp, r.Error = stateRunning, time.Now().UTC(), nil
		return true
	}); err != nil {
		h.log.ErrorContext(ctx, "deployment not started", "deployment", d.id(), "err", err)
		return
	}
	// The operations of an earlier run (or of a run taken over) go.
	if err := h.dropOperations(ctx, d); err != nil {
		h.log.ErrorContext(ctx, "deployment not started", "deployment", d.id(), "err", err)
		return
	}
	run := &deployRun{h: h, route: d, rec: rec, ctx: ctx, now: time.Now().UTC()}
	outcome := run.execute()
	if _, err := h.updateDeployment(context.WithoutCancel(ctx), d, func(r *deploymentRecord) bool {
		if r.RunID != rec.RunID || terminal(r.ProvisioningState) {
			return false // canceled meanwhile
		}
		r.Timestamp = time.Now().UTC()
		if outcome.err != nil {
			r.ProvisioningState, r.Error = stateFailed, outcome.err
		} else {
			r.ProvisioningState, r.Outputs = stateSucceeded, outcome.outputs
		}
		r.OutputResources, r.Effective = outcome.resources, outcome.parameters
		return true
	}); err != nil {
		h.log.ErrorContext(ctx, "deployment result not stored", "deployment", d.id(), "err", err)
		return
	}
	if outcome.err != nil {
		h.log.InfoContext(ctx, "deployment failed", "deployment", d.id(), "code", outcome.err.Code, "resources", len(outcome.resources))
	} else {
		h.log.InfoContext(ctx, "deployment succeeded", "deployment", d.id(), "resources", len(outcome.resources))
	}
}

func (h *handler) getDeployment(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	if err := h.require(r, "Microsoft.Resources/deployments/read", d.id()); err != nil {
		return err
	}
	res, rec, err := h.loadDeployment(r.Context(), d)
	if err != nil {
		return err
	}
	h.resumeDeployment(d, rec)
	writeJSON(w, http.StatusOK, h.deploymentShape(res, rec))
	return nil
}

func (h *handler) listDeployments(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/read", groupID(d.sub, d.rg)); err != nil {
		return err
	}
	if _, err := h.o.Meta.GetResource(ctx, groupID(d.sub, d.rg)); errors.Is(err, meta.ErrNotFound) {
		return groupNotFound(d.rg)
	} else if err != nil {
		return err
	}
	all, err := h.o.Meta.ListResources(ctx, groupID(d.sub, d.rg)+"/providers/"+deploymentsNS+"/"+deploymentsRT+"/", deploymentType)
	if err != nil {
		return err
	}
	items := make([]any, 0, len(all))
	for _, res := range all {
		var rec deploymentRecord
		if err := json.Unmarshal(res.Properties, &rec); err != nil {
			return fmt.Errorf("stored deployment %s: %w", res.ID, err)
		}
		items = append(items, h.deploymentShape(res, &rec))
	}
	h.writePage(w, r, items)
	return nil
}

func (h *handler) deleteDeployment(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/delete", d.id()); err != nil {
		return err
	}
	_, rec, err := h.loadDeployment(ctx, d)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if !terminal(rec.ProvisioningState) {
		return newError(http.StatusConflict, "DeploymentActive", "deployment '%s' is still %s; cancel it before deleting it", d.name, rec.ProvisioningState)
	}
	// Deleting a deployment deletes its record, never the resources it made.
	// 204, not 200: the SDK accepts only 202 or 204 here.
	if err := h.o.Meta.DeleteResource(ctx, d.id()); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) cancelDeployment(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/cancel/action", d.id()); err != nil {
		return err
	}
	var was string
	rec, err := h.updateDeployment(ctx, d, func(rec *deploymentRecord) bool {
		was = rec.ProvisioningState
		if terminal(rec.ProvisioningState) {
			return false
		}
		rec.ProvisioningState, rec.Timestamp = stateCanceled, time.Now().UTC()
		rec.Error = &deployError{Code: "DeploymentCanceled", Message: fmt.Sprintf("deployment '%s' was canceled", d.name)}
		return true
	})
	if err != nil {
		return err
	}
	if terminal(was) {
		return newError(http.StatusConflict, "DeploymentCannotBeCancelled", "deployment '%s' has already finished (%s)", d.name, rec.ProvisioningState)
	}
	// The runner sees the record between resources; stop a local one now.
	running.Lock()
	cancel := running.m[runKey(h, d)]
	running.Unlock()
	if cancel != nil {
		cancel()
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) exportDeploymentTemplate(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	if err := h.require(r, "Microsoft.Resources/deployments/exportTemplate/action", d.id()); err != nil {
		return err
	}
	_, rec, err := h.loadDeployment(r.Context(), d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"template": rec.Template})
	return nil
}

func (h *handler) validateDeployment(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/validate/action", d.id()); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodeDeploymentRequest(body)
	if err != nil {
		return err
	}
	opts, err := h.deployContext(ctx, d)
	if err != nil {
		return err
	}
	_, res, err := evaluateOnce(req, opts)
	if err != nil {
		return err
	}
	validated := []any{}
	res.Walk(func(rs *armtemplate.Resource) {
		if rs.Deployed() && rs.ID != "" {
			validated = append(validated, map[string]any{"id": rs.ID})
		}
	})
	rec := &deploymentRecord{Mode: req.mode, Parameters: req.parameters, ProvisioningState: stateSucceeded, CorrelationID: correlationID(r),
		Timestamp: time.Now().UTC(), Started: time.Now().UTC(), Template: req.rawTpl}
	shape := h.deploymentShape(meta.Resource{ID: d.id(), Name: d.name}, rec)
	shape["properties"].(map[string]any)["validatedResources"] = validated
	writeJSON(w, http.StatusOK, shape)
	return nil
}

func (h *handler) deploymentStatus(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	if err := h.require(r, "Microsoft.Resources/deployments/operationstatuses/read", d.id()); err != nil {
		return err
	}
	_, rec, err := h.loadDeployment(r.Context(), d)
	if err != nil {
		return err
	}
	if rec.RunID != d.opID {
		return newError(http.StatusNotFound, "OperationNotFound", "no operation %q on deployment '%s' (only the latest run's status is kept)", d.opID, d.name)
	}
	h.resumeDeployment(d, rec)
	out := map[string]any{"status": rec.ProvisioningState}
	if rec.Error != nil && terminal(rec.ProvisioningState) {
		out["error"] = rec.Error
	}
	if !terminal(rec.ProvisioningState) {
		w.Header().Set("retry-after-ms", deploymentRetry)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) deploymentOperations(w http.ResponseWriter, r *http.Request, d deploymentRoute) error {
	ctx := r.Context()
	if err := h.require(r, "Microsoft.Resources/deployments/operations/read", d.id()); err != nil {
		return err
	}
	if _, _, err := h.loadDeployment(ctx, d); err != nil {
		return err
	}
	ops, err := h.listOperations(ctx, d)
	if err != nil {
		return err
	}
	if d.opID != "" {
		for _, op := range ops {
			if strings.EqualFold(op.ID, d.opID) {
				writeJSON(w, http.StatusOK, operationShape(d, op))
				return nil
			}
		}
		return newError(http.StatusNotFound, "DeploymentOperationNotFound", "deployment '%s' has no operation %q", d.name, d.opID)
	}
	items := make([]any, 0, len(ops))
	for _, op := range ops {
		items = append(items, operationShape(d, op))
	}
	h.writePage(w, r, items)
	return nil
}

// Operations are stored each as a resource below their deployment, so a
// step writes one small record (not the deployment with its template) and
// deleting the deployment deletes them.
const deploymentOpType = "Microsoft.Resources/deployments/operations"

func (d deploymentRoute) opPrefix() string { return d.id() + "/operations/" }

// listOperations returns the deployment's operations in the order they
// started.
func (h *handler) listOperations(ctx context.Context, d deploymentRoute) ([]deployOperation, error) {
	stored, err := h.o.Meta.ListResources(ctx, d.opPrefix(), deploymentOpType)
	if err != nil {
		return nil, err
	}
	ops := make([]deployOperation, 0, len(stored))
	for _, res := range stored {
		var op deployOperation
		if err := json.Unmarshal(res.Properties, &op); err != nil {
			return nil, fmt.Errorf("stored deployment operation %s: %w", res.ID, err)
		}
		ops = append(ops, op)
	}
	sortedOps(ops)
	return ops, nil
}

func (h *handler) putOperation(ctx context.Context, d deploymentRoute, op deployOperation) error {
	props, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("encoding deployment operation: %w", err)
	}
	_, err = h.o.Meta.PutResource(ctx, meta.Resource{ID: d.opPrefix() + op.ID, Type: deploymentOpType, Name: op.ID, Properties: props})
	return err
}

func (h *handler) dropOperations(ctx context.Context, d deploymentRoute) error {
	stored, err := h.o.Meta.ListResources(ctx, d.opPrefix(), deploymentOpType)
	if err != nil {
		return err
	}
	for _, res := range stored {
		if err := h.o.Meta.DeleteResource(ctx, res.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
	}
	return nil
}

func operationShape(d deploymentRoute, op deployOperation) map[string]any {
	props := map[string]any{
		"provisioningOperation": op.Operation,
		"provisioningState":     op.State,
		"timestamp":             op.Timestamp.Format(time.RFC3339Nano),
		"duration":              isoDuration(op.Timestamp.Sub(op.Started)),
		"targetResource": map[string]any{
			"id": op.ResourceID, "resourceType": op.ResourceType, "resourceName": op.ResourceName, "apiVersion": op.APIVersion,
		},
	}
	if op.StatusCode != "" {
		props["statusCode"] = op.StatusCode
	}
	if op.Error != nil {
		props["statusMessage"] = map[string]any{"status": "Failed", "error": op.Error}
	}
	return map[string]any{"id": d.id() + "/operations/" + op.ID, "operationId": op.ID, "properties": props}
}

// isoDuration writes d as ISO 8601, e.g. PT1.25S.
func isoDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("PT%gS", d.Round(time.Millisecond).Seconds())
}

// deploymentShape is the ARM body of a deployment.
func (h *handler) deploymentShape(res meta.Resource, rec *deploymentRecord) map[string]any {
	params := map[string]any{}
	types := parameterTypes(rec.Template)
	values := rec.Parameters
	if rec.Effective != nil {
		values = rec.Effective
	}
	for name, v := range values {
		t := types[strings.ToLower(name)]
		if t == "" {
			t = valueType(v)
		}
		if strings.HasPrefix(strings.ToLower(t), "secure") {
			params[name] = map[string]any{"type": capitalize(t)}
			continue
		}
		params[name] = map[string]any{"type": capitalize(t), "value": v}
	}
	end := rec.Timestamp
	if !terminal(rec.ProvisioningState) {
		end = time.Now().UTC()
	}
	props := map[string]any{
		"mode":              rec.Mode,
		"provisioningState": rec.ProvisioningState,
		"timestamp":         rec.Timestamp.Format(time.RFC3339Nano),
		"duration":          isoDuration(end.Sub(rec.Started)),
		"correlationId":     rec.CorrelationID,
		"parameters":        params,
		"providers":         []any{},
		"dependencies":      []any{},
		"templateHash":      armtemplate.UniqueString(string(rec.Template)),
	}
	if rec.Outputs != nil {
		props["outputs"] = rec.Outputs
	}
	outRes := make([]any, 0, len(rec.OutputResources))
	for _, id := range rec.OutputResources {
		outRes = append(outRes, map[string]any{"id": id})
	}
	props["outputResources"] = outRes
	if rec.Error != nil {
		props["error"] = rec.Error
	}
	out := map[string]any{"id": res.ID, "name": res.Name, "type": deploymentType, "properties": props}
	if rec.Tags != nil {
		out["tags"] = rec.Tags
	}
	return out
}

func parameterTypes(raw json.RawMessage) map[string]string {
	var t struct {
		Parameters map[string]struct {
			Type string `json:"type"`
		} `json:"parameters"`
	}
	out := map[string]string{}
	if json.Unmarshal(raw, &t) != nil {
		return out
	}
	for k, p := range t.Parameters {
		out[strings.ToLower(k)] = p.Type
	}
	return out
}

func valueType(v any) string {
	switch v.(type) {
	case bool:
		return "Bool"
	case int64, float64, json.Number:
		return "Int"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	}
	return "String"
}

// capitalize writes a template type as ARM returns it: String, SecureString.
func capitalize(t string) string {
	switch strings.ToLower(t) {
	case "securestring":
		return "SecureString"
	case "secureobject":
		return "SecureObject"
	case "":
		return ""
	}
	return strings.ToUpper(t[:1]) + strings.ToLower(t[1:])
}

// dispatchKey marks a request a deployment sends to this handler for one of
// its resources: its context already carries the caller, authorized when
// the deployment was accepted. A context value cannot come from the wire.
type dispatchKey struct{}

// isDispatch reports whether ctx is a deployment's own resource request.
func isDispatch(ctx context.Context) bool {
	v, _ := ctx.Value(dispatchKey{}).(bool)
	return v
}

// recorder is a minimal ResponseWriter for dispatched requests.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

// dispatch sends method path?api-version=v to this handler as the
// deployment's caller and returns the answer.
func (h *handler) dispatch(ctx context.Context, rec *deploymentRecord, method, path, apiVersion string, body []byte) (*recorder, error) {
	u, err := url.Parse(rec.BaseURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("deployment base URL %q: %w", rec.BaseURL, err)
	}
	target := rec.BaseURL + (&url.URL{Path: path}).EscapedPath()
	if apiVersion != "" {
		target += "?api-version=" + url.QueryEscape(apiVersion)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, dispatchKey{}, true), method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	for k, v := range rec.Header {
		req.Header[k] = slices.Clone(v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Host = u.Host
	req.RemoteAddr = rec.RemoteAddr
	if u.Scheme == "https" {
		req.TLS = &tls.ConnectionState{}
	}
	out := &recorder{header: http.Header{}}
	h.ServeHTTP(out, req)
	if out.status == 0 {
		out.status = http.StatusOK
	}
	return out, nil
}

// dispatchURL dispatches a GET to an absolute URL this handler handed out
// (an async-operation or Location header).
func (h *handler) dispatchURL(ctx context.Context, rec *deploymentRecord, raw string) (*recorder, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("polling URL %q: %w", raw, err)
	}
	return h.dispatch(ctx, rec, http.MethodGet, u.Path, u.Query().Get("api-version"), nil)
}

// responseError is the ARM error of a dispatched answer.
func responseError(out *recorder, fallback string) *deployError {
	var body struct {
		Error *deployError `json:"error"`
	}
	if json.Unmarshal(out.body.Bytes(), &body) == nil && body.Error != nil && body.Error.Code != "" {
		return body.Error
	}
	return &deployError{Code: http.StatusText(out.status), Message: fallback}
}

// sortedOps orders operations as they started.
func sortedOps(ops []deployOperation) {
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Seq < ops[j].Seq })
}
