package arm

// The run of one deployment: evaluate, apply each resource by a dispatched
// PUT in dependency order, evaluate again when a reference() can now be
// answered, and collect the outputs. See deployments.go for the decisions.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// defaultAPIVersions are used for reference() of a resource outside the
// deployment when the template names no api-version.
var defaultAPIVersions = map[string]string{
	"microsoft.containerregistry": "2023-07-01",
	"microsoft.resources":         "2021-04-01",
}

// bodyDrop are the evaluated resource fields that address or steer the
// resource instead of being part of its PUT body.
var bodyDrop = map[string]bool{
	"id": true, "name": true, "type": true, "apiversion": true, "comments": true, "scope": true,
	"existing": true, "condition": true, "copy": true, "dependson": true, "resources": true,
}

type deployOutcome struct {
	outputs    map[string]any
	parameters map[string]any
	resources  []string
	err        *deployError
}

// planEntry is one step: apply a resource, or finish a nested deployment
// (after its resources).
type planEntry struct {
	key    string // index path in the results, e.g. "2" or "2/0"
	r      *armtemplate.Resource
	nested bool
	deps   []string
	guard  *armtemplate.Unknown // an enclosing nested deployment's unknown condition or name
	pos    int
}

type deployRun struct {
	h     *handler
	route deploymentRoute
	rec   *deploymentRecord
	ctx   context.Context
	now   time.Time

	tpl   *armtemplate.Template
	opts  armtemplate.Options
	guids []string
	gi    int

	done      map[string]bool
	state     map[string]map[string]any // plan key → the resource as GET answered after its PUT
	nestedOut map[string]map[string]any // plan key → outputs of a finished nested deployment
	index     []*planEntry              // every resource of the last evaluation, deployed or not
	misses    map[string]bool           // reference() targets left unanswered by the last evaluation
	external  map[string]map[string]any // reference() answers for resources outside the deployment
	refErrs   map[string]*deployError
	applied   []string
	seq       int
}

func (d *deployRun) execute() deployOutcome {
	d.done, d.state, d.nestedOut = map[string]bool{}, map[string]map[string]any{}, map[string]map[string]any{}
	d.external, d.refErrs = map[string]map[string]any{}, map[string]*deployError{}
	var raw map[string]any
	if err := json.Unmarshal(d.rec.Template, &raw); err != nil {
		return deployOutcome{err: &deployError{Code: "InvalidTemplate", Message: fmt.Sprintf("the stored template cannot be read: %v", err)}}
	}
	tpl, err := armtemplate.NewTemplate(raw)
	if err != nil {
		return d.fail(&deployError{Code: "InvalidTemplate", Message: err.Error()})
	}
	d.tpl = tpl
	opts, err := d.h.deployContext(d.ctx, d.route)
	if err != nil {
		return d.fail(asDeployError(err))
	}
	opts.Parameters, opts.Now = d.rec.Parameters, d.now
	opts.NewGUID = d.newGUID
	opts.Reference = d.reference
	d.opts = opts

	// The first evaluation only learns the resources, so reference() can
	// tell the deployment's own resources from others.
	res, derr := d.evaluate(false)
	if derr != nil {
		return d.fail(derr)
	}
	d.index = indexOf(res, "", nil)
	if res, derr = d.evaluate(true); derr != nil {
		return d.fail(derr)
	}
	dirty := false
	for range 4 * (len(d.index) + 2) {
		if err := d.ctx.Err(); err != nil {
			return d.fail(&deployError{Code: "DeploymentCanceled", Message: "the deployment was stopped: " + err.Error()})
		}
		plan := flatten(res, "", nil, nil)
		byKey := map[string]*planEntry{}
		var next *planEntry
		for _, e := range plan {
			byKey[e.key] = e
			if next == nil && !d.done[e.key] {
				next = e
			}
		}
		if next == nil {
			if dirty {
				if res, derr = d.evaluate(true); derr != nil {
					return d.fail(derr)
				}
			}
			outs, derr := outputsOf(res.Outputs, "")
			if derr != nil {
				return d.fail(derr)
			}
			params := map[string]any{}
			for k, v := range res.Parameters {
				if armtemplate.FindUnknown(v) == nil {
					params[k] = v
				}
			}
			return deployOutcome{outputs: outs, parameters: params, resources: d.applied}
		}
		cur := next
		if u := blockedBy(cur); u != nil {
			if dirty {
				if res, derr = d.evaluate(true); derr != nil {
					return d.fail(derr)
				}
				dirty = false
				continue
			}
			// An unanswered reference() to a resource of this deployment
			// is ARM's implicit dependency: apply that resource first.
			t := d.pendingTarget(byKey, cur)
			if t == nil {
				return d.fail(d.unknownError(cur, u))
			}
			cur = d.pick(t, byKey, 0)
			if blockedBy(cur) != nil {
				return d.fail(d.unknownError(cur, blockedBy(cur)))
			}
		}
		if derr := d.step(cur, byKey); derr != nil {
			return d.fail(derr)
		}
		d.done[cur.key] = true
		dirty = true
	}
	return d.fail(&deployError{Code: "DeploymentFailed", Message: "the deployment made no progress: its reference() calls could not all be answered"})
}

func (d *deployRun) fail(e *deployError) deployOutcome {
	if e.Code != "DeploymentFailed" && e.Code != "DeploymentCanceled" && e.Code != "InvalidTemplate" {
		e = &deployError{Code: "DeploymentFailed", Message: "At least one resource deployment operation failed. Please list deployment operations for details.",
			Details: []*deployError{e}}
	}
	return deployOutcome{err: e, resources: d.applied}
}

func asDeployError(err error) *deployError {
	var ae *apiError
	if errors.As(err, &ae) {
		return &deployError{Code: ae.code, Message: ae.message, Target: ae.target}
	}
	return &deployError{Code: "InternalServerError", Message: err.Error()}
}

func (d *deployRun) newGUID() string {
	if d.gi < len(d.guids) {
		g := d.guids[d.gi]
		d.gi++
		return g
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	g := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	d.guids = append(d.guids, g)
	d.gi++
	return g
}

func (d *deployRun) evaluate(refs bool) (*armtemplate.Result, *deployError) {
	opts := d.opts
	if !refs {
		opts.Reference = nil
	}
	d.gi = 0
	d.misses = map[string]bool{}
	res, err := armtemplate.Evaluate(d.tpl, opts)
	if err != nil {
		ae := templateError(err)
		return nil, &deployError{Code: ae.code, Message: ae.message, Target: ae.target}
	}
	return res, nil
}

// indexOf lists every resource of res and its nested deployments with its
// plan key.
func indexOf(res *armtemplate.Result, prefix string, out []*planEntry) []*planEntry {
	for i, r := range res.Resources {
		key := prefix + strconv.Itoa(i)
		nested := strings.EqualFold(r.Type, deploymentType) && r.Deployment != nil
		out = append(out, &planEntry{key: key, r: r, nested: nested})
		if nested && r.Deployed() {
			out = indexOf(r.Deployment, key+"/", out)
		}
	}
	return out
}

// flatten turns the evaluated order into steps: a nested deployment's
// resources, then the nested deployment itself.
func flatten(res *armtemplate.Result, prefix string, outer []string, guard *armtemplate.Unknown) []*planEntry {
	var plan []*planEntry
	for _, i := range res.Order {
		r := res.Resources[i]
		key := prefix + strconv.Itoa(i)
		deps := append([]string(nil), outer...)
		for _, dep := range r.DependsOn {
			if dep >= 0 && dep < len(res.Resources) && res.Resources[dep].Deployed() {
				deps = append(deps, prefix+strconv.Itoa(dep))
			}
		}
		if strings.EqualFold(r.Type, deploymentType) && r.Deployment != nil {
			g := guard
			if g == nil {
				g = r.ConditionUnknown
			}
			if g == nil {
				g = r.NameUnknown
			}
			inner := flatten(r.Deployment, key+"/", deps, g)
			all := append([]string(nil), deps...)
			for _, e := range inner {
				all = append(all, e.key)
			}
			plan = append(plan, inner...)
			plan = append(plan, &planEntry{key: key, r: r, nested: true, deps: all, guard: guard})
			continue
		}
		plan = append(plan, &planEntry{key: key, r: r, deps: deps, guard: guard})
	}
	for i, e := range plan {
		e.pos = i
	}
	return plan
}

// blockedBy is the Unknown that keeps an entry from being applied now.
func blockedBy(e *planEntry) *armtemplate.Unknown {
	switch {
	case e.guard != nil:
		return e.guard
	case e.r.ConditionUnknown != nil:
		return e.r.ConditionUnknown
	case e.r.NameUnknown != nil:
		return e.r.NameUnknown
	}
	if e.nested {
		for _, o := range e.r.Deployment.Outputs {
			if u := armtemplate.FindUnknown(o.Value); u != nil {
				return u
			}
		}
		return nil
	}
	return armtemplate.FindUnknown(e.r.Body)
}

func (d *deployRun) unknownError(e *planEntry, u *armtemplate.Unknown) *deployError {
	for t, re := range d.refErrs {
		if strings.Contains(u.Expr, t) || len(d.refErrs) == 1 {
			return re
		}
	}
	return &deployError{Code: "InvalidTemplate", Target: u.Path,
		Message: fmt.Sprintf("resource '%s' (%s) cannot be deployed: %s cannot be determined (%s)", e.r.Name, e.r.Type, u.Expr, u.Reason)}
}

// pendingTarget is the earliest resource of this deployment, not yet
// applied, that the last evaluation's reference() calls asked for.
func (d *deployRun) pendingTarget(byKey map[string]*planEntry, cur *planEntry) *planEntry {
	var best *planEntry
	for t := range d.misses {
		e := d.resolve(t)
		if e == nil || d.done[e.key] {
			continue
		}
		p := byKey[e.key]
		if p == nil || p == cur {
			continue
		}
		if best == nil || p.pos < best.pos {
			best = p
		}
	}
	return best
}

// pick is e or, when one of its dependencies is not applied yet, the first
// such dependency's pick.
func (d *deployRun) pick(e *planEntry, byKey map[string]*planEntry, depth int) *planEntry {
	if depth > len(byKey) {
		return e
	}
	for _, dep := range e.deps {
		if p := byKey[dep]; p != nil && !d.done[dep] {
			return d.pick(p, byKey, depth+1)
		}
	}
	return e
}

// resolve finds a resource of the deployment by the reference() target as
// written: a resource id, a symbolic name or a name.
func (d *deployRun) resolve(target string) *planEntry {
	for _, e := range d.index {
		if e.r.ID != "" && strings.EqualFold(e.r.ID, target) {
			return e
		}
	}
	for _, e := range d.index {
		if e.r.Symbolic != "" && strings.EqualFold(e.r.Symbolic, target) {
			return e
		}
	}
	for _, e := range d.index {
		if e.r.Name != "" && strings.EqualFold(e.r.Name, target) {
			return e
		}
	}
	return nil
}

// reference answers reference() from what the deployment applied, or by a
// GET for resources outside it.
func (d *deployRun) reference(target, apiVersion string, full bool) (any, bool) {
	e := d.resolve(target)
	if e != nil && e.r.Deployed() {
		var st map[string]any
		if e.nested {
			outs, ok := d.nestedOut[e.key]
			if ok {
				st = map[string]any{"id": e.r.ID, "name": e.r.Name, "type": deploymentType,
					"properties": map[string]any{"outputs": outs, "provisioningState": stateSucceeded, "mode": "Incremental"}}
			}
		} else {
			st = d.state[e.key]
		}
		if st == nil {
			d.misses[target] = true
			return nil, false
		}
		return referenceValue(st, full), true
	}
	id := target
	if e != nil {
		id = e.r.ID
		if apiVersion == "" {
			apiVersion = e.r.APIVersion
		}
	}
	if !strings.HasPrefix(id, "/") {
		d.misses[target] = true
		d.refErrs[target] = &deployError{Code: "InvalidTemplate", Message: fmt.Sprintf("reference('%s'): no resource of this deployment is called that; name another resource by its id", target)}
		return nil, false
	}
	if st, ok := d.external[strings.ToLower(id)]; ok {
		return referenceValue(st, full), true
	}
	if apiVersion == "" {
		apiVersion = defaultAPIVersions[strings.ToLower(providerOf(id))]
	}
	out, err := d.h.dispatch(d.ctx, d.rec, http.MethodGet, id, apiVersion, nil)
	if err != nil || out.status != http.StatusOK {
		d.misses[target] = true
		if err != nil {
			d.refErrs[target] = asDeployError(err)
		} else {
			re := responseError(out, fmt.Sprintf("reference('%s') answered %d", target, out.status))
			d.refErrs[target] = &deployError{Code: re.Code, Target: id, Message: fmt.Sprintf("reference('%s'): %s", target, re.Message)}
		}
		return nil, false
	}
	st, ok := decodeObject(out.body.Bytes())
	if !ok {
		return nil, false
	}
	d.external[strings.ToLower(id)] = st
	return referenceValue(st, full), true
}

func referenceValue(st map[string]any, full bool) any {
	if full {
		return st
	}
	if p, ok := lookupKey(st, "properties"); ok && p != nil {
		return p
	}
	return map[string]any{}
}

// providerOf is the namespace after the last /providers/ of an id.
func providerOf(id string) string {
	seg := strings.Split(strings.Trim(id, "/"), "/")
	ns := ""
	for i := 0; i+1 < len(seg); i++ {
		if eq(seg[i], "providers") {
			ns = seg[i+1]
		}
	}
	return ns
}

func decodeObject(b []byte) (map[string]any, bool) {
	v, _, err := armtemplate.ReadJSONC(b)
	if err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// step applies one plan entry, recording it as a deployment operation.
func (d *deployRun) step(e *planEntry, byKey map[string]*planEntry) *deployError {
	opID, err := newOpID()
	if err != nil {
		return asDeployError(err)
	}
	d.seq++
	op := deployOperation{ID: strings.ToUpper(opID[:16]), Seq: d.seq, State: stateRunning, Operation: "Create", Started: time.Now().UTC(),
		ResourceID: e.r.ID, ResourceType: e.r.Type, ResourceName: e.r.Name, APIVersion: e.r.APIVersion}
	op.Timestamp = op.Started
	if derr := d.recordOp(op); derr != nil {
		return derr
	}
	var derr *deployError
	status := ""
	if e.nested {
		derr = d.finishNested(e, nil)
		status = "OK"
	} else {
		status, derr = d.apply(e)
	}
	op.Timestamp = time.Now().UTC()
	if derr != nil {
		op.State, op.Error, op.StatusCode = stateFailed, derr, status
		_ = d.recordOp(op)
		d.failNested(e, byKey, derr)
		return derr
	}
	op.State, op.StatusCode = stateSucceeded, status
	d.applied = append(d.applied, e.r.ID)
	return d.recordOp(op)
}

// recordOp stores an operation's state; it fails when the deployment was
// canceled (or replaced) meanwhile, which stops the run.
func (d *deployRun) recordOp(op deployOperation) *deployError {
	ctx := context.WithoutCancel(d.ctx)
	_, rec, err := d.h.loadDeployment(ctx, d.route)
	if err != nil {
		return asDeployError(err)
	}
	if rec.RunID != d.rec.RunID || terminal(rec.ProvisioningState) {
		return &deployError{Code: "DeploymentCanceled", Message: fmt.Sprintf("deployment '%s' was canceled", d.route.name)}
	}
	if err := d.h.putOperation(ctx, d.route, op); err != nil {
		return asDeployError(err)
	}
	return nil
}

// apply PUTs one resource through the handler and waits for it.
func (d *deployRun) apply(e *planEntry) (string, *deployError) {
	r := e.r
	payload := map[string]any{}
	for k, v := range r.Body {
		if !bodyDrop[strings.ToLower(k)] {
			payload[k] = v
		}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", &deployError{Code: "InvalidTemplate", Target: r.Path, Message: fmt.Sprintf("resource '%s' cannot be encoded: %v", r.Name, err)}
	}
	out, err := d.h.dispatch(d.ctx, d.rec, http.MethodPut, r.ID, r.APIVersion, body)
	if err != nil {
		return "", asDeployError(err)
	}
	status := strings.ReplaceAll(http.StatusText(out.status), " ", "")
	if out.status >= 400 {
		re := responseError(out, fmt.Sprintf("PUT %s answered %d", r.ID, out.status))
		if (out.status == http.StatusBadRequest && re.Code == "InvalidResourceType") || (out.status == http.StatusNotFound && re.Code == "NotFound") {
			re = &deployError{Code: "InvalidResourceType", Message: fmt.Sprintf("the resource type '%s' (resource '%s') is not served by moat", r.Type, r.Name)}
		}
		if re.Target == "" {
			re.Target = r.ID
		}
		return status, re
	}
	if derr := d.await(r, out); derr != nil {
		return status, derr
	}
	got, err := d.h.dispatch(d.ctx, d.rec, http.MethodGet, r.ID, r.APIVersion, nil)
	st, ok := map[string]any(nil), false
	if err == nil && got.status == http.StatusOK {
		st, ok = decodeObject(got.body.Bytes())
	}
	if !ok {
		st, _ = decodeObject(out.body.Bytes())
	}
	if st == nil {
		st = map[string]any{}
	}
	d.state[e.key] = st
	d.external = map[string]map[string]any{} // an apply may change what others answer
	return status, nil
}

// await polls a resource PUT that answered with a long-running operation.
func (d *deployRun) await(r *armtemplate.Resource, out *recorder) *deployError {
	poll := out.header.Get("Azure-AsyncOperation")
	loc := out.header.Get("Location")
	if poll == "" && (out.status != http.StatusAccepted || loc == "") {
		return nil
	}
	delay := 50 * time.Millisecond
	for {
		select {
		case <-d.ctx.Done():
			return &deployError{Code: "DeploymentCanceled", Message: "the deployment was stopped while waiting for " + r.ID}
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
		url := poll
		if url == "" {
			url = loc
		}
		got, err := d.h.dispatchURL(d.ctx, d.rec, url)
		if err != nil {
			return asDeployError(err)
		}
		if got.status >= 400 {
			re := responseError(got, fmt.Sprintf("polling %s answered %d", r.ID, got.status))
			if re.Target == "" {
				re.Target = r.ID
			}
			return re
		}
		if poll == "" {
			if got.status == http.StatusAccepted {
				continue
			}
			return nil
		}
		doc, _ := decodeObject(got.body.Bytes())
		s, _ := lookupKey(doc, "status")
		state, _ := s.(string)
		switch strings.ToLower(state) {
		case "succeeded":
			return nil
		case "failed", "canceled", "cancelled":
			var body struct {
				Error *deployError `json:"error"`
			}
			if json.Unmarshal(got.body.Bytes(), &body) == nil && body.Error != nil {
				if body.Error.Target == "" {
					body.Error.Target = r.ID
				}
				return body.Error
			}
			return &deployError{Code: "ResourceDeploymentFailure", Target: r.ID, Message: fmt.Sprintf("the operation on '%s' ended %s", r.Name, state)}
		}
	}
}

// outputsOf shapes evaluated outputs as ARM answers them.
func outputsOf(outs map[string]*armtemplate.Output, where string) (map[string]any, *deployError) {
	res := map[string]any{}
	for name, o := range outs {
		if !o.Condition {
			continue
		}
		if u := armtemplate.FindUnknown(o.Value); u != nil {
			return nil, &deployError{Code: "DeploymentOutputEvaluationFailed", Target: o.Path,
				Message: fmt.Sprintf("output '%s'%s cannot be determined: %s (%s)", name, where, u.Expr, u.Reason)}
		}
		if strings.HasPrefix(strings.ToLower(o.Type), "secure") {
			res[name] = map[string]any{"type": capitalize(o.Type)} // never returned, as ARM
			continue
		}
		res[name] = map[string]any{"type": capitalize(o.Type), "value": o.Value}
	}
	return res, nil
}

// finishNested stores the record of a nested deployment whose resources
// were applied (or failed, with failure set).
func (d *deployRun) finishNested(e *planEntry, failure *deployError) *deployError {
	r := e.r
	nr, ok := parseDeploymentRoute(r.ID)
	if !ok || nr.name == "" || nr.action != "" {
		return &deployError{Code: "InvalidTemplate", Target: r.Path, Message: fmt.Sprintf("nested deployment '%s' has no resource-group-scoped id (%s)", r.Name, r.ID)}
	}
	var outs map[string]any
	if failure == nil {
		var derr *deployError
		if outs, derr = outputsOf(r.Deployment.Outputs, " of nested deployment '"+r.Name+"'"); derr != nil {
			return derr
		}
	}
	req, err := http.NewRequestWithContext(context.WithValue(d.ctx, dispatchKey{}, true), http.MethodPut, d.rec.BaseURL+nr.id(), nil)
	if err != nil {
		return asDeployError(err)
	}
	if err := d.h.require(req, "Microsoft.Resources/deployments/write", nr.id()); err != nil {
		return asDeployError(err)
	}
	if _, err := d.h.o.Meta.GetResource(d.ctx, groupID(nr.sub, nr.rg)); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return asDeployError(groupNotFound(nr.rg))
		}
		return asDeployError(err)
	}
	if old, err := d.h.o.Meta.GetResource(d.ctx, nr.id()); err == nil {
		var prev deploymentRecord
		if json.Unmarshal(old.Properties, &prev) == nil && !terminal(prev.ProvisioningState) && prev.RunID != d.rec.RunID {
			return &deployError{Code: "DeploymentActive", Target: nr.id(),
				Message: fmt.Sprintf("nested deployment '%s' would replace deployment '%s', which is still %s", r.Name, nr.name, prev.ProvisioningState)}
		}
	}
	tplJSON, err := json.Marshal(nestedTemplate(r))
	if err != nil {
		return asDeployError(err)
	}
	now := time.Now().UTC()
	rec := &deploymentRecord{Mode: "Incremental", Template: tplJSON, Parameters: map[string]any{}, ProvisioningState: stateSucceeded,
		RunID: d.rec.RunID, CorrelationID: d.rec.CorrelationID, Caller: d.rec.Caller, BaseURL: d.rec.BaseURL,
		Started: d.now, Timestamp: now, Outputs: outs, Nested: true}
	if failure != nil {
		rec.ProvisioningState, rec.Error = stateFailed, failure
	}
	props, err := json.Marshal(rec)
	if err != nil {
		return asDeployError(err)
	}
	if _, err := d.h.o.Meta.PutResource(d.ctx, meta.Resource{ID: nr.id(), Type: deploymentType, Name: nr.name, Properties: props}); err != nil {
		return asDeployError(err)
	}
	if failure == nil {
		d.nestedOut[e.key] = outs
	}
	return nil
}

// failNested records the nested deployments enclosing a failed entry as
// failed.
func (d *deployRun) failNested(e *planEntry, byKey map[string]*planEntry, failure *deployError) {
	key := e.key
	for {
		i := strings.LastIndex(key, "/")
		if i < 0 {
			return
		}
		key = key[:i]
		if p := byKey[key]; p != nil && p.nested {
			_ = d.finishNested(p, failure)
		}
	}
}

func nestedTemplate(r *armtemplate.Resource) any {
	p, _ := lookupKey(r.Body, "properties")
	pm, _ := p.(map[string]any)
	t, _ := lookupKey(pm, "template")
	if t == nil {
		return map[string]any{}
	}
	return t
}
