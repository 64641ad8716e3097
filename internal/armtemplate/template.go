package armtemplate

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate/expr"
)

// Template is a parsed ARM template: the raw JSON tree and where each value
// came from.
type Template struct {
	Root            map[string]any
	Positions       *Positions // JSON path → source position; nil for templates built in memory
	Schema          string
	ContentVersion  string
	LanguageVersion string // "" or "2.0" (symbolic resource names)
}

// ParseTemplate reads a template from JSON or JSONC text.
func ParseTemplate(data []byte) (*Template, error) {
	v, pos, err := ReadJSONC(data)
	if err != nil {
		return nil, err
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Pos: pos.Of(""), Err: fmt.Errorf("%w: a template is a JSON object, got %s", ErrInvalidTemplate, typeName(v))}
	}
	return newTemplate(root, pos)
}

// NewTemplate wraps an already decoded template (for example the inline
// template of a deployment request). Values are normalised with Normalize.
func NewTemplate(root map[string]any) (*Template, error) {
	n, err := Normalize(root)
	if err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %w", ErrInvalidTemplate, err)}
	}
	return newTemplate(n.(map[string]any), nil)
}

func newTemplate(root map[string]any, pos *Positions) (*Template, error) {
	t := &Template{Root: root, Positions: pos}
	str := func(key string) (string, error) {
		v, k, ok := field(root, key)
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", &Error{Path: k, Pos: pos.Of(k), Err: fmt.Errorf("%w: %s must be a string, got %s", ErrInvalidTemplate, k, typeName(v))}
		}
		return s, nil
	}
	var err error
	if t.Schema, err = str("$schema"); err != nil {
		return nil, err
	}
	if t.ContentVersion, err = str("contentVersion"); err != nil {
		return nil, err
	}
	if t.LanguageVersion, err = str("languageVersion"); err != nil {
		return nil, err
	}
	return t, nil
}

// Pos returns where the value at a JSON path starts, if known.
func (t *Template) Pos(path string) (Pos, bool) {
	return t.Positions.Lookup(path)
}

// field looks a property up case-insensitively and also returns the key as
// written, for paths.
func field(m map[string]any, name string) (any, string, bool) {
	if v, ok := m[name]; ok {
		return v, name, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, k, true
		}
	}
	return nil, "", false
}

// Mode selects how strictly a template is evaluated.
type Mode int

const (
	// ModeDeploy is for deployments: every parameter must have a value.
	ModeDeploy Mode = iota
	// ModeCheck is for offline analysis: missing parameters become Unknown,
	// as do copy counts that depend on them, and unresolvable dependsOn
	// entries are warnings.
	ModeCheck
)

// Options is the deployment context and limits. Zero values take the
// defaults noted on each field.
type Options struct {
	Mode       Mode
	Parameters map[string]any // parameter values by name (case-insensitive), see Normalize

	SubscriptionID    string // default ffffffff-ffff-ffff-ffff-ffffffffffff
	SubscriptionName  string // default "PSRule Test Subscription"
	TenantID          string // default ffffffff-ffff-ffff-ffff-ffffffffffff
	ResourceGroup     string // default "ps-rule-test-rg"
	Location          string // resource group location, default "eastus"
	ResourceGroupTags map[string]string
	DeploymentName    string // default "ps-rule-test-deployment"

	// Now is utcNow(); zero makes utcNow() Unknown. NewGUID is newGuid();
	// nil makes it Unknown. Both are inputs so evaluation stays pure.
	Now     time.Time
	NewGUID func() string
	// Reference answers reference(target, apiVersion, 'Full') for a
	// deployer that has the target's state: target is the argument as
	// written (a resource id, a resource name or a symbolic name). ok=false,
	// or a nil Reference, makes the value Unknown.
	Reference func(target, apiVersion string, full bool) (value any, ok bool)

	MaxCopyCount    int // per loop; default 800 (ARM's limit)
	MaxResources    int // resources after expanding loops; default 800 (ARM's limit)
	MaxExprDepth    int // nesting of one expression; default 128
	MaxStringLength int // longest string a function may build; default 4 MiB
	MaxArrayLength  int // longest array a function may build; default 100000
	// MaxWork bounds the evaluation steps of one Evaluate call (expression
	// nodes evaluated, values compared, copied, serialised or checked);
	// default 50,000,000, about a second of work.
	MaxWork int64
}

func (o *Options) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.SubscriptionID, "ffffffff-ffff-ffff-ffff-ffffffffffff")
	def(&o.SubscriptionName, "PSRule Test Subscription")
	def(&o.TenantID, "ffffffff-ffff-ffff-ffff-ffffffffffff")
	def(&o.ResourceGroup, "ps-rule-test-rg")
	def(&o.Location, "eastus")
	def(&o.DeploymentName, "ps-rule-test-deployment")
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	defInt(&o.MaxCopyCount, 800)
	defInt(&o.MaxResources, 800)
	defInt(&o.MaxExprDepth, expr.DefaultMaxDepth)
	defInt(&o.MaxStringLength, 4<<20)
	defInt(&o.MaxArrayLength, 100000)
	if o.MaxWork <= 0 {
		o.MaxWork = 50_000_000
	}
}

// Resource is one evaluated resource instance (copy loops are expanded).
type Resource struct {
	Symbolic   string // languageVersion 2.0 symbolic name
	Type       string // full type, e.g. Microsoft.ContainerRegistry/registries/replications
	APIVersion string
	Name       string // full name, e.g. myregistry/westus; "" when NameUnknown
	ID         string // full resource id, as resourceId() computes it; "" when NameUnknown

	NameUnknown *Unknown // set when the name depends on something Unknown

	Location   any // string, nil or *Unknown
	Kind       any
	SKU        any // usually map[string]any
	Properties any
	Identity   any
	Tags       any
	// Body is the whole evaluated resource object (every property but copy,
	// condition, dependsOn and resources), with type, name, apiVersion and id
	// in canonical form. Nil when Condition is false.
	Body map[string]any

	// Condition is false when the condition evaluated to false (the
	// resource is not deployed); ConditionUnknown is set when it could not
	// be determined (then Condition is true).
	Condition        bool
	ConditionUnknown *Unknown
	Existing         bool // languageVersion 2.0 "existing": referenced, not deployed

	CopyName  string // the resource's copy loop, if any
	CopyIndex int    // index in that loop; -1 outside loops or when unknown

	Parent    int   // index in Result.Resources of the enclosing resource, or -1
	DependsOn []int // indexes in Result.Resources, resolved from dependsOn and nesting

	Path string // JSON path of the resource declaration, e.g. resources[2]
	Pos  Pos

	// Deployment is the evaluated inline template of a deployed
	// Microsoft.Resources/deployments resource (nested deployment); nil for
	// other resources and for linked templates.
	Deployment *Result

	dependsRaw []depRef
	idx        int
}

type depRef struct {
	value string
	path  string
}

// Deployed reports whether the resource is part of the deployment: its
// condition is not false and it is not an existing-resource reference.
func (r *Resource) Deployed() bool { return r.Condition && !r.Existing }

// Walk calls fn for every resource of the result and, depth first, of its
// nested deployments.
func (r *Result) Walk(fn func(*Resource)) {
	for _, res := range r.Resources {
		fn(res)
		if res.Deployment != nil {
			res.Deployment.Walk(fn)
		}
	}
}

// Output is one evaluated template output.
type Output struct {
	Type      string
	Value     any // nil when Condition is false
	Condition bool
	Path      string
	Pos       Pos
}

// Result is an evaluated template.
type Result struct {
	Parameters map[string]any // by declared name
	Variables  map[string]any
	Resources  []*Resource // in template order, loops expanded, children after parents
	Order      []int       // deployment order: indexes of Deployed resources, dependencies first
	Outputs    map[string]*Output
	Warnings   []*Error // check mode only: problems that would fail a deployment
}

type paramDecl struct {
	name string
	path string
	raw  map[string]any
}

type varDecl struct {
	name    string
	path    string
	raw     any
	isCopy  bool
	copyRaw map[string]any
}

const (
	stateNone = iota
	stateBusy
	stateDone
)

type evaluator struct {
	tpl    *Template
	opts   Options
	parsed map[string]expr.Node
	root   string // JSON path of the template root: "" or a nested deployment's properties.template
	nest   int    // nested deployment depth
	total  *int   // resources so far, shared with nested deployments
	work   *work  // evaluation budget, shared with nested deployments

	params     map[string]*paramDecl
	paramState map[string]int
	paramVal   map[string]any
	supplied   map[string]any

	vars     map[string]*varDecl
	varState map[string]int
	varVal   map[string]any
	varStack []string

	resources []*Resource
	warnings  []*Error
}

// Evaluate evaluates a template: parameters, variables, resources (with
// conditions, copy loops and child resources), the deployment order and
// outputs. Errors are *Error values naming the JSON path, the expression
// and the source position.
func Evaluate(tpl *Template, opts Options) (*Result, error) {
	if tpl == nil || tpl.Root == nil {
		return nil, &Error{Err: fmt.Errorf("%w: no template", ErrInvalidTemplate)}
	}
	opts.defaults()
	ev := newEvaluator(tpl, opts, "")
	if err := ev.declare(); err != nil {
		return nil, err
	}
	return ev.run()
}

func newEvaluator(tpl *Template, opts Options, root string) *evaluator {
	return &evaluator{
		tpl: tpl, opts: opts, parsed: map[string]expr.Node{}, root: root, total: new(int), work: &work{left: opts.MaxWork},
		params: map[string]*paramDecl{}, paramState: map[string]int{}, paramVal: map[string]any{},
		supplied: map[string]any{},
		vars:     map[string]*varDecl{}, varState: map[string]int{}, varVal: map[string]any{},
	}
}

// run evaluates a declared template.
func (ev *evaluator) run() (*Result, error) {
	res := &Result{Parameters: map[string]any{}, Variables: map[string]any{}, Outputs: map[string]*Output{}}
	for _, k := range sortedKeys(ev.params) {
		v, err := ev.parameter(ev.params[k].name)
		if err != nil {
			return nil, err
		}
		res.Parameters[ev.params[k].name] = v
	}
	for _, k := range sortedKeys(ev.vars) {
		v, err := ev.variable(ev.vars[k].name)
		if err != nil {
			return nil, err
		}
		res.Variables[ev.vars[k].name] = v
	}
	if err := ev.allResources(); err != nil {
		return nil, err
	}
	order, err := ev.order()
	if err != nil {
		return nil, err
	}
	res.Resources, res.Order = ev.resources, order
	if err := ev.outputs(res); err != nil {
		return nil, err
	}
	res.Warnings = ev.warnings
	return res, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (ev *evaluator) fail(path string, err error) error {
	return &Error{Path: path, Pos: ev.pos(path), Err: err}
}

// declare indexes parameters and variables and checks supplied parameters.
func (ev *evaluator) declare() error {
	root := ev.tpl.Root
	if pv, pk, ok := field(root, "parameters"); ok && pv != nil {
		pk = JoinKey(ev.root, pk)
		pm, ok := pv.(map[string]any)
		if !ok {
			return ev.fail(pk, fmt.Errorf("%w: parameters must be an object", ErrInvalidTemplate))
		}
		for name, d := range pm {
			path := JoinKey(pk, name)
			dm, ok := d.(map[string]any)
			if !ok {
				return ev.fail(path, fmt.Errorf("%w: parameter %q must be declared with an object", ErrInvalidTemplate, name))
			}
			l := strings.ToLower(name)
			if _, dup := ev.params[l]; dup {
				return ev.fail(path, fmt.Errorf("%w: parameter %q declared twice", ErrInvalidTemplate, name))
			}
			ev.params[l] = &paramDecl{name: name, path: path, raw: dm}
		}
	}
	for name, v := range ev.opts.Parameters {
		n, err := Normalize(v)
		if err != nil {
			return ev.fail(JoinKey(ev.root, "parameters"), fmt.Errorf("%w: parameter %q: %w", ErrParameterType, name, err))
		}
		l := strings.ToLower(name)
		if _, ok := ev.params[l]; !ok {
			if ev.opts.Mode == ModeDeploy {
				return ev.fail(JoinKey(ev.root, "parameters"), fmt.Errorf("%w: %q was supplied but the template does not declare it", ErrUnknownParameter, name))
			}
			continue
		}
		ev.supplied[l] = n
	}
	if vv, vk, ok := field(root, "variables"); ok && vv != nil {
		vk = JoinKey(ev.root, vk)
		vm, ok := vv.(map[string]any)
		if !ok {
			return ev.fail(vk, fmt.Errorf("%w: variables must be an object", ErrInvalidTemplate))
		}
		for name, raw := range vm {
			path := JoinKey(vk, name)
			if strings.EqualFold(name, "copy") {
				loops, ok := raw.([]any)
				if !ok {
					return ev.fail(path, fmt.Errorf("%w: variables.copy must be an array", ErrInvalidTemplate))
				}
				for i, l := range loops {
					lp := JoinIndex(path, i)
					lm, ok := l.(map[string]any)
					if !ok {
						return ev.fail(lp, fmt.Errorf("%w: a variable copy loop must be an object", ErrInvalidTemplate))
					}
					nv, _, _ := field(lm, "name")
					vname, ok := nv.(string)
					if !ok || vname == "" {
						return ev.fail(lp, fmt.Errorf("%w: a variable copy loop needs a name", ErrInvalidTemplate))
					}
					if err := ev.addVar(&varDecl{name: vname, path: lp, isCopy: true, copyRaw: lm}); err != nil {
						return err
					}
				}
				continue
			}
			if err := ev.addVar(&varDecl{name: name, path: path, raw: raw}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ev *evaluator) addVar(d *varDecl) error {
	l := strings.ToLower(d.name)
	if _, dup := ev.vars[l]; dup {
		return ev.fail(d.path, fmt.Errorf("%w: variable %q declared twice", ErrInvalidTemplate, d.name))
	}
	ev.vars[l] = d
	return nil
}

// parameter resolves a parameter on first use: the supplied value or the
// default, then its type and constraints.
func (ev *evaluator) parameter(name string) (any, error) {
	l := strings.ToLower(name)
	d, ok := ev.params[l]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownParameter, name)
	}
	switch ev.paramState[l] {
	case stateDone:
		return ev.paramVal[l], nil
	case stateBusy:
		return nil, ev.fail(d.path, fmt.Errorf("%w: the default value of parameter %q depends on itself", ErrCycle, d.name))
	}
	ev.paramState[l] = stateBusy
	v, err := ev.resolveParam(d)
	if err != nil {
		return nil, err
	}
	ev.paramState[l] = stateDone
	ev.paramVal[l] = v
	return v, nil
}

func (ev *evaluator) resolveParam(d *paramDecl) (any, error) {
	tv, tk, _ := field(d.raw, "type")
	ts, ok := tv.(string)
	typ := strings.ToLower(ts)
	if !ok {
		// languageVersion 2.0 may type a parameter by reference to a
		// user-defined type; its shape is not checked here.
		if _, _, hasRef := field(d.raw, "$ref"); !hasRef {
			return nil, ev.fail(JoinKey(d.path, "type"), fmt.Errorf("%w: parameter %q has no type", ErrInvalidTemplate, d.name))
		}
		typ = ""
	}
	switch typ {
	case "", "string", "securestring", "int", "bool", "object", "secureobject", "array":
	default:
		return nil, ev.fail(JoinKey(d.path, tk), fmt.Errorf("%w: parameter %q has unknown type %q", ErrInvalidTemplate, d.name, ts))
	}
	nullable := false
	if nv, _, ok := field(d.raw, "nullable"); ok {
		nullable, _ = nv.(bool)
	}
	var v any
	if s, ok := ev.supplied[strings.ToLower(d.name)]; ok {
		v = s
	} else if dv, dk, ok := field(d.raw, "defaultValue"); ok {
		var err error
		if v, err = ev.evalValue(dv, JoinKey(d.path, dk), emptyScope); err != nil {
			return nil, err
		}
	} else if nullable {
		return nil, nil
	} else if ev.opts.Mode == ModeCheck {
		return &Unknown{Expr: "parameters('" + d.name + "')", Path: d.path, Pos: ev.pos(d.path), Reason: "the parameter has no value and no default"}, nil
	} else {
		return nil, ev.fail(d.path, fmt.Errorf("%w: %q has no value and no default", ErrMissingParameter, d.name))
	}
	if _, ok := v.(*Unknown); ok || (v == nil && nullable) {
		return v, nil
	}
	if err := checkParamType(d.name, typ, v); err != nil {
		return nil, ev.fail(d.path, err)
	}
	if err := ev.checkConstraints(d, v); err != nil {
		return nil, err
	}
	return v, nil
}

func checkParamType(name, typ string, v any) error {
	ok := false
	switch typ {
	case "":
		ok = true
	case "string", "securestring":
		_, ok = v.(string)
	case "int":
		_, ok = v.(int64)
	case "bool":
		_, ok = v.(bool)
	case "object", "secureobject":
		_, ok = v.(map[string]any)
	case "array":
		_, ok = v.([]any)
	}
	if !ok {
		return fmt.Errorf("%w: parameter %q is declared %s but the value is %s", ErrParameterType, name, typ, typeName(v))
	}
	return nil
}

func (ev *evaluator) checkConstraints(d *paramDecl, v any) error {
	if av, ak, ok := field(d.raw, "allowedValues"); ok {
		allowed, ok := av.([]any)
		if !ok {
			return ev.fail(JoinKey(d.path, ak), fmt.Errorf("%w: allowedValues must be an array", ErrInvalidTemplate))
		}
		check := func(x any) error {
			if containsValue(allowed, x, ev.work) {
				return nil
			}
			xs, _ := toJSONText(x)
			as, _ := toJSONText(allowed)
			return ev.fail(d.path, fmt.Errorf("%w: parameter %q: %s is not one of the allowed values %s", ErrParameterValue, d.name, xs, as))
		}
		if arr, isArr := v.([]any); isArr && !containsValue(allowed, v, ev.work) {
			for _, e := range arr {
				if err := check(e); err != nil {
					return err
				}
			}
		} else if err := check(v); err != nil {
			return err
		}
	}
	bound := func(key string) (int64, bool, error) {
		bv, bk, ok := field(d.raw, key)
		if !ok {
			return 0, false, nil
		}
		b, ok := bv.(int64)
		if !ok {
			return 0, false, ev.fail(JoinKey(d.path, bk), fmt.Errorf("%w: %s must be an integer", ErrInvalidTemplate, bk))
		}
		return b, true, nil
	}
	if i, isInt := v.(int64); isInt {
		if lo, ok, err := bound("minValue"); err != nil {
			return err
		} else if ok && i < lo {
			return ev.fail(d.path, fmt.Errorf("%w: parameter %q is %d, less than minValue %d", ErrParameterValue, d.name, i, lo))
		}
		if hi, ok, err := bound("maxValue"); err != nil {
			return err
		} else if ok && i > hi {
			return ev.fail(d.path, fmt.Errorf("%w: parameter %q is %d, more than maxValue %d", ErrParameterValue, d.name, i, hi))
		}
	}
	var n int64 = -1
	switch t := v.(type) {
	case string:
		n = int64(len(utf16Units(t)))
	case []any:
		n = int64(len(t))
	}
	if n >= 0 {
		if lo, ok, err := bound("minLength"); err != nil {
			return err
		} else if ok && n < lo {
			return ev.fail(d.path, fmt.Errorf("%w: parameter %q has length %d, less than minLength %d", ErrParameterValue, d.name, n, lo))
		}
		if hi, ok, err := bound("maxLength"); err != nil {
			return err
		} else if ok && n > hi {
			return ev.fail(d.path, fmt.Errorf("%w: parameter %q has length %d, more than maxLength %d", ErrParameterValue, d.name, n, hi))
		}
	}
	return nil
}

// variable evaluates a variable on first use; a variable that is being
// evaluated and is asked for again is a cycle, reported with its chain.
func (ev *evaluator) variable(name string) (any, error) {
	l := strings.ToLower(name)
	d, ok := ev.vars[l]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownVariable, name)
	}
	switch ev.varState[l] {
	case stateDone:
		return ev.varVal[l], nil
	case stateBusy:
		start := 0
		for i, s := range ev.varStack {
			if strings.EqualFold(s, d.name) {
				start = i
				break
			}
		}
		chain := append(append([]string{}, ev.varStack[start:]...), d.name)
		return nil, ev.fail(d.path, fmt.Errorf("%w: variables %s", ErrCycle, strings.Join(chain, " → ")))
	}
	ev.varState[l] = stateBusy
	ev.varStack = append(ev.varStack, d.name)
	defer func() { ev.varStack = ev.varStack[:len(ev.varStack)-1] }()
	var v any
	var err error
	if d.isCopy {
		v, err = ev.copyArray(d.copyRaw, d.path, d.name, emptyScope, true)
	} else {
		v, err = ev.evalValue(d.raw, d.path, emptyScope)
	}
	if err != nil {
		return nil, err
	}
	if !sizeWithin(v, ev.work) {
		return nil, ev.fail(d.path, errWork)
	}
	ev.varState[l] = stateDone
	ev.varVal[l] = v
	return v, nil
}

// copyCount evaluates a loop's count: an integer within limits, or -1 when
// it is Unknown in check mode.
func (ev *evaluator) copyCount(loop map[string]any, path string, sc *scope) (int, *Unknown, error) {
	cv, ck, ok := field(loop, "count")
	if !ok {
		return 0, nil, ev.fail(path, fmt.Errorf("%w: copy loop has no count", ErrInvalidTemplate))
	}
	cpath := JoinKey(path, ck)
	v, err := ev.evalValue(cv, cpath, sc)
	if err != nil {
		return 0, nil, err
	}
	switch c := v.(type) {
	case *Unknown:
		if ev.opts.Mode == ModeDeploy {
			return 0, nil, ev.fail(cpath, fmt.Errorf("%w: the copy count cannot be determined: %s", ErrInvalidTemplate, c.Expr))
		}
		return -1, c, nil
	case int64:
		if c < 0 {
			return 0, nil, ev.fail(cpath, fmt.Errorf("%w: copy count %d is negative", ErrInvalidArgument, c))
		}
		if c > int64(ev.opts.MaxCopyCount) {
			return 0, nil, ev.fail(cpath, fmt.Errorf("%w: copy count %d is more than %d", ErrLimit, c, ev.opts.MaxCopyCount))
		}
		return int(c), nil, nil
	}
	return 0, nil, ev.fail(cpath, fmt.Errorf("%w: copy count must be an integer, got %s", ErrType, typeName(v)))
}

// copyArray evaluates a {name, count, input} loop into an array.
func (ev *evaluator) copyArray(loop map[string]any, path, name string, sc *scope, asDefault bool) (any, error) {
	n, unk, err := ev.copyCount(loop, path, sc)
	if err != nil {
		return nil, err
	}
	if unk != nil {
		return unk, nil
	}
	in, ik, ok := field(loop, "input")
	if !ok {
		return nil, ev.fail(path, fmt.Errorf("%w: copy loop %q has no input", ErrInvalidTemplate, name))
	}
	out := make([]any, 0, n)
	for i := 0; i < n; i++ {
		v, err := ev.evalValue(in, JoinKey(path, ik), sc.with(name, i, asDefault))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// isCopyBlock reports whether v has the shape of a property copy: an array
// of {name, count, input} objects.
func isCopyBlock(v any) bool {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return false
	}
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		_, _, hasName := field(m, "name")
		_, _, hasCount := field(m, "count")
		_, _, hasInput := field(m, "input")
		if !hasName || !hasCount || !hasInput {
			return false
		}
	}
	return true
}

// evalValue evaluates every template string inside a JSON value, expands
// property copy loops and evaluates expression keys.
func (ev *evaluator) evalValue(v any, path string, sc *scope) (any, error) {
	switch t := v.(type) {
	case string:
		return ev.evalString(t, path, sc)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			x, err := ev.evalValue(e, JoinIndex(path, i), sc)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			kp := JoinKey(path, k)
			if strings.EqualFold(k, "copy") && isCopyBlock(e) {
				for i, l := range e.([]any) {
					lm := l.(map[string]any)
					lp := JoinIndex(kp, i)
					nv, nk, _ := field(lm, "name")
					name, ok := nv.(string)
					if !ok || name == "" {
						return nil, ev.fail(JoinKey(lp, nk), fmt.Errorf("%w: a property copy loop needs a literal name", ErrInvalidTemplate))
					}
					arr, err := ev.copyArray(lm, lp, name, sc, false)
					if err != nil {
						return nil, err
					}
					out[name] = arr
				}
				continue
			}
			var key string
			if text, isExpr := expr.Classify(k); isExpr {
				kv, err := ev.evalString(k, kp, sc)
				if err != nil {
					return nil, err
				}
				s, ok := kv.(string)
				if !ok {
					return nil, ev.fail(kp, fmt.Errorf("%w: property name expression %q gave %s, not a string", ErrType, text, typeName(kv)))
				}
				key = s
			} else {
				key = text
			}
			x, err := ev.evalValue(e, kp, sc)
			if err != nil {
				return nil, err
			}
			out[key] = x
		}
		return out, nil
	default:
		return v, nil
	}
}

func (ev *evaluator) rgID() string {
	return "/subscriptions/" + ev.opts.SubscriptionID + "/resourceGroups/" + ev.opts.ResourceGroup
}

func (ev *evaluator) outputs(res *Result) error {
	ov, ok2key, ok := field(ev.tpl.Root, "outputs")
	if !ok || ov == nil {
		return nil
	}
	ok2key = JoinKey(ev.root, ok2key)
	om, isMap := ov.(map[string]any)
	if !isMap {
		return ev.fail(ok2key, fmt.Errorf("%w: outputs must be an object", ErrInvalidTemplate))
	}
	for _, name := range sortedKeys(om) {
		path := JoinKey(ok2key, name)
		d, isMap := om[name].(map[string]any)
		if !isMap {
			return ev.fail(path, fmt.Errorf("%w: output %q must be an object", ErrInvalidTemplate, name))
		}
		out := &Output{Condition: true, Path: path, Pos: ev.pos(path)}
		if tv, _, ok := field(d, "type"); ok {
			out.Type, _ = tv.(string)
		}
		if cv, ck, ok := field(d, "condition"); ok {
			c, err := ev.evalValue(cv, JoinKey(path, ck), emptyScope)
			if err != nil {
				return err
			}
			switch b := c.(type) {
			case bool:
				out.Condition = b
			case *Unknown:
			default:
				return ev.fail(JoinKey(path, ck), fmt.Errorf("%w: condition must be a boolean, got %s", ErrType, typeName(c)))
			}
		}
		res.Outputs[name] = out
		if !out.Condition {
			continue
		}
		var v any
		var err error
		if cv, ck, ok := field(d, "copy"); ok {
			lm, isMap := cv.(map[string]any)
			if !isMap {
				return ev.fail(JoinKey(path, ck), fmt.Errorf("%w: output copy must be an object", ErrInvalidTemplate))
			}
			v, err = ev.copyArray(lm, JoinKey(path, ck), "", emptyScope, true)
		} else if vv, vk, ok := field(d, "value"); ok {
			v, err = ev.evalValue(vv, JoinKey(path, vk), emptyScope)
		} else {
			return ev.fail(path, fmt.Errorf("%w: output %q has neither value nor copy", ErrInvalidTemplate, name))
		}
		if err != nil {
			return err
		}
		if !sizeWithin(v, ev.work) {
			return ev.fail(path, errWork)
		}
		if _, unk := v.(*Unknown); !unk && out.Type != "" {
			if err := checkParamType(name, strings.ToLower(out.Type), v); err != nil {
				return ev.fail(path, fmt.Errorf("%w: output %q is declared %s but the value is %s", ErrType, name, out.Type, typeName(v)))
			}
		}
		out.Value = v
	}
	return nil
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// EvaluateString evaluates one template string (an expression when it is
// bracketed) against tpl's parameters and variables, outside any copy loop.
// tpl may be nil for expressions that use neither.
func EvaluateString(tpl *Template, s string, opts Options) (any, error) {
	if tpl == nil {
		tpl = &Template{Root: map[string]any{}}
	}
	opts.defaults()
	ev := newEvaluator(tpl, opts, "")
	if err := ev.declare(); err != nil {
		return nil, err
	}
	return ev.evalString(s, "", emptyScope)
}
