package armtemplate

import (
	"fmt"
	"strings"
)

// allResources expands the template's resources: an array (classic) or an
// object keyed by symbolic name (languageVersion 2.0).
func (ev *evaluator) allResources() error {
	rv, rk, ok := field(ev.tpl.Root, "resources")
	if !ok || rv == nil {
		return nil
	}
	rk = JoinKey(ev.root, rk)
	switch t := rv.(type) {
	case []any:
		return ev.resourceList(t, rk, nil, emptyScope)
	case map[string]any:
		for _, name := range sortedKeys(t) {
			path := JoinKey(rk, name)
			m, ok := t[name].(map[string]any)
			if !ok {
				return ev.fail(path, fmt.Errorf("%w: resource %q must be an object", ErrInvalidTemplate, name))
			}
			if err := ev.resource(m, path, name, nil, emptyScope); err != nil {
				return err
			}
		}
		return nil
	default:
		return ev.fail(rk, fmt.Errorf("%w: resources must be an array or (languageVersion 2.0) an object", ErrInvalidTemplate))
	}
}

func (ev *evaluator) resourceList(list []any, base string, parent *Resource, sc *scope) error {
	for i, raw := range list {
		path := JoinIndex(base, i)
		m, ok := raw.(map[string]any)
		if !ok {
			return ev.fail(path, fmt.Errorf("%w: a resource must be an object, got %s", ErrInvalidTemplate, typeName(raw)))
		}
		if err := ev.resource(m, path, "", parent, sc); err != nil {
			return err
		}
	}
	return nil
}

// skipBody are the resource properties that steer evaluation instead of
// describing the resource.
var skipBody = map[string]bool{"copy": true, "condition": true, "dependson": true, "resources": true}

// resource expands one resource declaration into its instances.
func (ev *evaluator) resource(m map[string]any, path, symbolic string, parent *Resource, sc *scope) error {
	copyName, count, mode, batch := "", 1, "parallel", 0
	counted := false
	if cv, ck, ok := field(m, "copy"); ok {
		cpath := JoinKey(path, ck)
		loop, ok := cv.(map[string]any)
		if !ok {
			return ev.fail(cpath, fmt.Errorf("%w: a resource copy must be an object", ErrInvalidTemplate))
		}
		nv, _, _ := field(loop, "name")
		copyName, _ = nv.(string)
		if copyName == "" {
			return ev.fail(cpath, fmt.Errorf("%w: a resource copy loop needs a name", ErrInvalidTemplate))
		}
		n, _, err := ev.copyCount(loop, cpath, sc)
		if err != nil {
			return err
		}
		count, counted = n, true
		if mv, _, ok := field(loop, "mode"); ok {
			s, _ := mv.(string)
			mode = strings.ToLower(s)
			if mode != "serial" && mode != "parallel" {
				return ev.fail(cpath, fmt.Errorf("%w: copy mode %q is neither serial nor parallel", ErrInvalidTemplate, s))
			}
		}
		if bv, bk, ok := field(loop, "batchSize"); ok {
			b, err := ev.evalValue(bv, JoinKey(cpath, bk), sc)
			if err != nil {
				return err
			}
			bi, ok := b.(int64)
			if !ok || bi < 1 || bi > int64(ev.opts.MaxCopyCount) {
				return ev.fail(JoinKey(cpath, bk), fmt.Errorf("%w: batchSize must be an integer from 1 to %d", ErrInvalidArgument, ev.opts.MaxCopyCount))
			}
			batch = int(bi)
		}
	}
	var instances []int
	if counted && count < 0 {
		instances = []int{-1} // check mode: one instance standing for all
	} else {
		instances = make([]int, count)
		for i := range instances {
			instances[i] = i
		}
	}
	var made []*Resource
	for _, idx := range instances {
		isc := sc
		if copyName != "" {
			isc = sc.with(copyName, idx, true)
		}
		r, err := ev.instance(m, path, symbolic, parent, isc)
		if err != nil {
			return err
		}
		r.CopyName, r.CopyIndex = copyName, -1
		if copyName != "" {
			r.CopyIndex = idx
		}
		made = append(made, r)
		if nv, nk, ok := field(m, "resources"); ok && nv != nil {
			children, ok := nv.([]any)
			if !ok {
				return ev.fail(JoinKey(path, nk), fmt.Errorf("%w: nested resources must be an array", ErrInvalidTemplate))
			}
			if err := ev.resourceList(children, JoinKey(path, nk), r, isc); err != nil {
				return err
			}
		}
	}
	if mode == "serial" {
		if batch == 0 {
			batch = 1
		}
		for i, r := range made {
			prev := i/batch - 1
			for j := prev * batch; prev >= 0 && j < (prev+1)*batch; j++ {
				r.DependsOn = append(r.DependsOn, made[j].idx)
			}
		}
	}
	return nil
}

// instance evaluates one resource instance in its loop scope.
func (ev *evaluator) instance(m map[string]any, path, symbolic string, parent *Resource, sc *scope) (*Resource, error) {
	if *ev.total >= ev.opts.MaxResources {
		return nil, ev.fail(path, fmt.Errorf("%w: more than %d resources (nested deployments included)", ErrLimit, ev.opts.MaxResources))
	}
	*ev.total++
	r := &Resource{Symbolic: symbolic, Condition: true, Parent: -1, Path: path, Pos: ev.pos(path)}
	if cv, ck, ok := field(m, "condition"); ok {
		c, err := ev.evalValue(cv, JoinKey(path, ck), sc)
		if err != nil {
			return nil, err
		}
		switch b := c.(type) {
		case bool:
			r.Condition = b
		case *Unknown:
			r.ConditionUnknown = b
		default:
			return nil, ev.fail(JoinKey(path, ck), fmt.Errorf("%w: condition must be a boolean, got %s", ErrType, typeName(c)))
		}
	}
	if parent != nil {
		if !parent.Condition {
			r.Condition = false
		} else if parent.ConditionUnknown != nil && r.ConditionUnknown == nil {
			r.ConditionUnknown = parent.ConditionUnknown
		}
	}
	if xv, xk, ok := field(m, "existing"); ok {
		b, isBool := xv.(bool)
		if !isBool {
			return nil, ev.fail(JoinKey(path, xk), fmt.Errorf("%w: existing must be true or false", ErrInvalidTemplate))
		}
		r.Existing = b
	}
	str := func(key string, required bool) (string, *Unknown, error) {
		v, k, ok := field(m, key)
		if !ok {
			if required {
				return "", nil, ev.fail(path, fmt.Errorf("%w: the resource has no %s", ErrInvalidTemplate, key))
			}
			return "", nil, nil
		}
		x, err := ev.evalValue(v, JoinKey(path, k), sc)
		if err != nil {
			return "", nil, err
		}
		switch s := x.(type) {
		case string:
			return s, nil, nil
		case *Unknown:
			return "", s, nil
		}
		return "", nil, ev.fail(JoinKey(path, k), fmt.Errorf("%w: %s must be a string, got %s", ErrType, key, typeName(x)))
	}
	typ, tu, err := str("type", true)
	if err != nil {
		return nil, err
	}
	if tu != nil {
		return nil, ev.fail(path, fmt.Errorf("%w: the resource type cannot be determined: %s", ErrInvalidTemplate, tu.Expr))
	}
	if r.APIVersion, _, err = str("apiVersion", false); err != nil {
		return nil, err
	}
	name, nu, err := str("name", true)
	if err != nil {
		return nil, err
	}
	if parent != nil && !strings.Contains(typ, "/") {
		typ = parent.Type + "/" + typ
		if parent.NameUnknown != nil {
			nu = parent.NameUnknown
		}
		name = parent.Name + "/" + name
	}
	r.Type = typ
	if nu != nil {
		r.NameUnknown = nu
	} else {
		r.Name = name
		id, err := ev.resourceIDOf(m, path, typ, name, sc)
		if err != nil {
			return nil, err
		}
		r.ID = id
	}
	if parent != nil {
		r.Parent = parent.idx
		r.DependsOn = append(r.DependsOn, r.Parent)
	}
	if dv, dk, ok := field(m, "dependsOn"); ok && dv != nil {
		dpath := JoinKey(path, dk)
		list, ok := dv.([]any)
		if !ok {
			return nil, ev.fail(dpath, fmt.Errorf("%w: dependsOn must be an array", ErrInvalidTemplate))
		}
		for i, d := range list {
			ipath := JoinIndex(dpath, i)
			x, err := ev.evalValue(d, ipath, sc)
			if err != nil {
				return nil, err
			}
			switch s := x.(type) {
			case string:
				r.dependsRaw = append(r.dependsRaw, depRef{value: s, path: ipath})
			case *Unknown:
				ev.warn(ipath, fmt.Errorf("%w: dependsOn entry cannot be determined: %s", ErrUnresolvedDepends, s.Expr))
			default:
				return nil, ev.fail(ipath, fmt.Errorf("%w: dependsOn entries must be strings, got %s", ErrType, typeName(x)))
			}
		}
	}
	if r.Condition {
		if err := ev.body(r, m, path, sc); err != nil {
			return nil, err
		}
	}
	r.idx = len(ev.resources)
	ev.resources = append(ev.resources, r)
	return r, nil
}

// resourceIDOf computes the resource id: from "scope" for extension
// resources, else in the deployment's resource group.
func (ev *evaluator) resourceIDOf(m map[string]any, path, typ, name string, sc *scope) (string, error) {
	base := ev.rgID()
	if sv, sk, ok := field(m, "scope"); ok && sv != nil {
		x, err := ev.evalValue(sv, JoinKey(path, sk), sc)
		if err != nil {
			return "", err
		}
		s, ok := x.(string)
		if !ok {
			return "", nil // an Unknown or symbolic scope: the id stays unknown
		}
		if strings.HasPrefix(s, "/") {
			base = strings.TrimSuffix(s, "/")
		} else {
			// Relative form "Namespace/type/name": a resource in this group.
			parts := strings.Split(s, "/")
			if len(parts) >= 3 && len(parts)%2 == 1 {
				t := parts[0]
				var names []string
				for i := 1; i < len(parts); i += 2 {
					t += "/" + parts[i]
					names = append(names, parts[i+1])
				}
				id, err := typedID(base, t, names)
				if err != nil {
					return "", ev.fail(JoinKey(path, sk), err)
				}
				base = id
			} else {
				return "", nil
			}
		}
	}
	id, err := typedID(base, typ, strings.Split(name, "/"))
	if err != nil {
		return "", ev.fail(path, err)
	}
	return id, nil
}

// body evaluates everything else the resource declares.
func (ev *evaluator) body(r *Resource, m map[string]any, path string, sc *scope) error {
	isDeployment := strings.EqualFold(r.Type, "Microsoft.Resources/deployments")
	b := make(map[string]any, len(m))
	for k, v := range m {
		lk := strings.ToLower(k)
		if skipBody[lk] {
			continue
		}
		kp := JoinKey(path, k)
		if isDeployment && lk == "properties" {
			// A nested deployment's inner template is evaluated in its own
			// scope by whoever deploys it; evaluate only the envelope.
			x, err := ev.deploymentProperties(v, kp, sc)
			if err != nil {
				return err
			}
			b[k] = x
			continue
		}
		x, err := ev.evalValue(v, kp, sc)
		if err != nil {
			return err
		}
		b[k] = x
	}
	set := func(canon string, v any) {
		for k := range b {
			if strings.EqualFold(k, canon) && k != canon {
				delete(b, k)
			}
		}
		b[canon] = v
	}
	set("type", r.Type)
	if r.NameUnknown != nil {
		set("name", r.NameUnknown)
	} else {
		set("name", r.Name)
		set("id", r.ID)
	}
	if r.APIVersion != "" {
		set("apiVersion", r.APIVersion)
	}
	if !sizeWithin(b, ev.work) {
		return ev.fail(path, errWork)
	}
	r.Body = b
	if isDeployment {
		d, err := ev.nested(r, b, path)
		if err != nil {
			return err
		}
		r.Deployment = d
	}
	r.Location, _ = lookupKey(b, "location")
	r.Kind, _ = lookupKey(b, "kind")
	r.SKU, _ = lookupKey(b, "sku")
	r.Properties, _ = lookupKey(b, "properties")
	r.Identity, _ = lookupKey(b, "identity")
	r.Tags, _ = lookupKey(b, "tags")
	return nil
}

func (ev *evaluator) deploymentProperties(v any, path string, sc *scope) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return ev.evalValue(v, path, sc)
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		if strings.EqualFold(k, "template") {
			out[k] = e
			continue
		}
		x, err := ev.evalValue(e, JoinKey(path, k), sc)
		if err != nil {
			return nil, err
		}
		out[k] = x
	}
	return out, nil
}

func (ev *evaluator) warn(path string, err error) {
	ev.warnings = append(ev.warnings, &Error{Path: path, Pos: ev.pos(path), Err: err})
}

// order resolves dependsOn and sorts the deployed resources so every
// resource comes after what it depends on; ties keep template order.
func (ev *evaluator) order() ([]int, error) {
	byID := map[string][]int{}
	byName := map[string][]int{}
	byTypeName := map[string][]int{}
	byLoop := map[string][]int{}
	bySym := map[string][]int{}
	for i, r := range ev.resources {
		if r.ID != "" {
			byID[strings.ToLower(r.ID)] = append(byID[strings.ToLower(r.ID)], i)
		}
		if r.NameUnknown == nil {
			byName[strings.ToLower(r.Name)] = append(byName[strings.ToLower(r.Name)], i)
			tn := strings.ToLower(r.Type + "/" + r.Name)
			byTypeName[tn] = append(byTypeName[tn], i)
		}
		if r.CopyName != "" {
			byLoop[strings.ToLower(r.CopyName)] = append(byLoop[strings.ToLower(r.CopyName)], i)
		}
		if r.Symbolic != "" {
			bySym[strings.ToLower(r.Symbolic)] = append(bySym[strings.ToLower(r.Symbolic)], i)
		}
	}
	for i, r := range ev.resources {
		for _, d := range r.dependsRaw {
			l := strings.ToLower(d.value)
			var hits []int
			switch {
			case strings.HasPrefix(l, "/"):
				hits = byID[l]
			case len(bySym[l]) > 0:
				hits = bySym[l]
			case len(byLoop[l]) > 0:
				hits = byLoop[l]
			case len(byTypeName[l]) > 0:
				hits = byTypeName[l]
			default:
				hits = byName[l]
			}
			if len(hits) == 0 {
				err := fmt.Errorf("%w: %q", ErrUnresolvedDepends, d.value)
				if ev.opts.Mode == ModeDeploy {
					return nil, ev.fail(d.path, err)
				}
				ev.warn(d.path, err)
				continue
			}
			for _, h := range hits {
				if h != i {
					r.DependsOn = append(r.DependsOn, h)
				}
			}
		}
		r.DependsOn = dedupe(r.DependsOn)
	}
	// Kahn's algorithm over deployed resources, lowest index first.
	n := len(ev.resources)
	indeg := make([]int, n)
	users := make([][]int, n)
	active := make([]bool, n)
	for i, r := range ev.resources {
		active[i] = r.Deployed()
	}
	for i, r := range ev.resources {
		if !active[i] {
			continue
		}
		for _, d := range r.DependsOn {
			if d >= 0 && active[d] {
				indeg[i]++
				users[d] = append(users[d], i)
			}
		}
	}
	var order []int
	ready := []int{}
	for i := 0; i < n; i++ {
		if active[i] && indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		// Keep the smallest index next: ready is kept sorted.
		i := ready[0]
		ready = ready[1:]
		order = append(order, i)
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				ready = insertSorted(ready, u)
			}
		}
	}
	total := 0
	for i := range active {
		if active[i] {
			total++
		}
	}
	if len(order) != total {
		return nil, ev.cycleError(active, indeg)
	}
	return order, nil
}

func insertSorted(s []int, v int) []int {
	i := len(s)
	for i > 0 && s[i-1] > v {
		i--
	}
	s = append(s, 0)
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func dedupe(s []int) []int {
	seen := make(map[int]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// cycleError finds one dependency cycle among the resources left unsorted
// and names it.
func (ev *evaluator) cycleError(active []bool, indeg []int) error {
	left := func(i int) bool { return i >= 0 && i < len(active) && active[i] && indeg[i] > 0 }
	start := -1
	for i := range ev.resources {
		if left(i) {
			start = i
			break
		}
	}
	// Walk dependencies that are also unsorted; a walk in a finite graph
	// where every node has such a dependency must revisit a node.
	seen := map[int]int{}
	var walk []int
	cur := start
	for cur >= 0 {
		if at, ok := seen[cur]; ok {
			walk = walk[at:]
			break
		}
		seen[cur] = len(walk)
		walk = append(walk, cur)
		next := -1
		for _, d := range ev.resources[cur].DependsOn {
			if left(d) {
				next = d
				break
			}
		}
		cur = next
	}
	names := make([]string, 0, len(walk)+1)
	for _, i := range append(walk, walk[0]) {
		names = append(names, ev.resources[i].label())
	}
	r := ev.resources[walk[0]]
	return &Error{Path: r.Path, Pos: r.Pos, Err: fmt.Errorf("%w: dependsOn %s", ErrCycle, strings.Join(names, " → "))}
}

func (r *Resource) label() string {
	n := r.Name
	if r.NameUnknown != nil {
		n = "[" + r.NameUnknown.Expr + "]"
	}
	if r.Symbolic != "" {
		return r.Symbolic
	}
	return fmt.Sprintf("%s %q", r.Path, n)
}

// maxNesting bounds nested deployments inside nested deployments.
const maxNesting = 8

// nested evaluates the inline template of a nested deployment. With
// expressionEvaluationOptions.scope "inner" it is a template of its own,
// given the deployment's parameters; otherwise (ARM's default, "outer") its
// expressions see the enclosing template's parameters and variables.
func (ev *evaluator) nested(r *Resource, body map[string]any, path string) (*Result, error) {
	pv, pk, _ := field(body, "properties")
	props, ok := pv.(map[string]any)
	if !ok {
		return nil, nil
	}
	tv, tk, ok := field(props, "template")
	inner, isMap := tv.(map[string]any)
	if !ok || !isMap {
		return nil, nil // a templateLink: not available offline
	}
	if ev.nest >= maxNesting {
		return nil, ev.fail(path, fmt.Errorf("%w: nested deployments deeper than %d", ErrLimit, maxNesting))
	}
	root := JoinKey(JoinKey(path, pk), tk)
	opts := ev.opts
	if rg, _, ok := field(props, "resourceGroup"); ok {
		if s, ok := rg.(string); ok && s != "" {
			opts.ResourceGroup = s
		}
	}
	if sub, _, ok := field(props, "subscriptionId"); ok {
		if s, ok := sub.(string); ok && s != "" {
			opts.SubscriptionID = s
		}
	}
	if r.NameUnknown == nil {
		opts.DeploymentName = r.Name
	}
	innerScope := false
	if eo, _, ok := field(props, "expressionEvaluationOptions"); ok {
		if em, ok := eo.(map[string]any); ok {
			if s, _, ok := field(em, "scope"); ok {
				str, _ := s.(string)
				innerScope = strings.EqualFold(str, "inner")
			}
		}
	}
	tpl := &Template{Root: inner, Positions: ev.tpl.Positions}
	var child *evaluator
	if innerScope {
		// Parameters arrive as {"name": {"value": v}}; they were evaluated
		// in the outer scope with the rest of the properties.
		params := map[string]any{}
		if ppv, _, ok := field(props, "parameters"); ok {
			if pm, ok := ppv.(map[string]any); ok {
				for name, e := range pm {
					em, _ := e.(map[string]any)
					if v, _, ok := field(em, "value"); ok {
						params[name] = v
					} else if _, _, ok := field(em, "reference"); ok {
						params[name] = &Unknown{Expr: "Key Vault reference for parameter " + name, Path: path, Pos: ev.pos(path), Reason: "Key Vault references are resolved at deployment"}
					}
				}
			}
		}
		opts.Parameters = params
		child = newEvaluator(tpl, opts, root)
		if err := child.declare(); err != nil {
			return nil, err
		}
	} else {
		// Outer scope: share the enclosing template's parameters and
		// variables; the inner template's own declarations are ignored, as
		// in ARM.
		child = newEvaluator(tpl, opts, root)
		child.params, child.paramState, child.paramVal, child.supplied = ev.params, ev.paramState, ev.paramVal, ev.supplied
		child.vars, child.varState, child.varVal = ev.vars, ev.varState, ev.varVal
		child.tpl = &Template{Root: withoutDecls(inner), Positions: ev.tpl.Positions}
	}
	child.nest = ev.nest + 1
	child.total = ev.total
	child.work = ev.work
	res, err := child.run()
	if err != nil {
		return nil, err
	}
	ev.warnings = append(ev.warnings, res.Warnings...)
	return res, nil
}

// withoutDecls returns the template without parameters and variables, for
// outer-scope nested templates whose names resolve in the parent.
func withoutDecls(t map[string]any) map[string]any {
	out := make(map[string]any, len(t))
	for k, v := range t {
		if strings.EqualFold(k, "parameters") || strings.EqualFold(k, "variables") {
			continue
		}
		out[k] = v
	}
	return out
}
