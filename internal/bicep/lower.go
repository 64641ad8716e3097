package bicep

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Loader reads a local module's source. The path is the module path as
// written, joined to the directory of the file that declares it, with
// forward slashes.
type Loader func(path string) ([]byte, error)

// Option configures Compile.
type Option func(*config)

type config struct {
	loader          Loader
	allowUndeclared bool
	// modules counts local modules compiled, budget the bytes of inlined
	// resource names left: both bound a Compile call whose input repeats
	// itself through modules or names built from other names.
	modules int
	budget  int64
}

const (
	maxModules    = 800      // as ARM's resource limit
	maxNameBudget = 16 << 20 // plus 4 bytes per input byte
	// maxParentDepth bounds parent: chains; ARM types are a few levels deep.
	maxParentDepth = 16
)

// WithLoader lets Compile resolve local modules (module m './x.bicep').
// Without it a local module is an error.
func WithLoader(l Loader) Option { return func(c *config) { c.loader = l } }

// AllowUndeclared makes a name that is used but declared nowhere a string
// parameter without a default (Unknown when checking offline) instead of
// an error, for snippets such as those in rule documentation that leave
// their parameters out. The Bicep compiler rejects such files.
func AllowUndeclared() Option { return func(c *config) { c.allowUndeclared = true } }

// maxModuleDepth bounds modules inside modules, as ARM bounds nested
// deployments.
const maxModuleDepth = 8

// deploymentsAPIVersion is the API version of the nested deployments that
// modules become.
const deploymentsAPIVersion = "2022-09-01"

// Compile parses a Bicep file and lowers it to an ARM template JSON tree
// (languageVersion 2.0, resources keyed by symbolic name) that package
// armtemplate evaluates. Errors are *Error values located in filename (or
// in the module file they come from).
func Compile(src []byte, filename string, opts ...Option) (map[string]any, error) {
	return compileFile(src, filename, newConfig(src, opts), []string{filename})
}

func newConfig(src []byte, opts []Option) *config {
	cfg := &config{budget: maxNameBudget + 4*int64(len(src))}
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

func newCompiler(cfg *config, filename string, stack []string) *compiler {
	return &compiler{
		cfg: cfg, file: filename, stack: stack,
		params: map[string]*ParamDecl{}, vars: map[string]*VarDecl{}, res: map[string]*resInfo{},
		mods: map[string]*modInfo{}, types: map[string]*TypeDecl{}, implicit: map[string]bool{},
	}
}

func compileFile(src []byte, filename string, cfg *config, stack []string) (map[string]any, error) {
	f, err := Parse(src, filename)
	if err != nil {
		return nil, err
	}
	return newCompiler(cfg, filename, stack).compile(f)
}

type compiler struct {
	cfg   *config
	file  string
	stack []string

	params map[string]*ParamDecl
	vars   map[string]*VarDecl
	res    map[string]*resInfo
	resSeq []*resInfo
	mods   map[string]*modInfo
	modSeq []*modInfo
	types  map[string]*TypeDecl
	// implicit are the undeclared names used as parameters (AllowUndeclared).
	implicit map[string]bool
}

// resInfo is a resource declaration with what lowering derives from it.
type resInfo struct {
	decl     *ResourceDecl
	sym      string // ARM symbolic name: name, or parent::child for nested
	fullType string
	parent   *resInfo
	body     *ObjectLit
	cond     Expr
	loop     *ForExpr
	name     Expr // the name property
	scope    *resInfo
	// rgScope is, for an existing resource in another resource group,
	// the ARM expressions of its subscription ("" for this one) and group.
	rgSub, rgName string
	busy          bool // computing its name, to catch self-reference
	nested        bool // declared inside its parent's body
}

type modInfo struct {
	decl *ModuleDecl
	body *ObjectLit
	cond Expr
	loop *ForExpr
}

// env is the lowering context of an expression: loop variables bound to
// ARM expressions, and the symbolic names it refers to (implicit
// dependencies).
type env struct {
	binds map[string]string
	deps  map[string]bool
}

func newEnv() *env { return &env{binds: map[string]string{}, deps: map[string]bool{}} }

func (e *env) with(binds map[string]string) *env {
	n := &env{binds: map[string]string{}, deps: e.deps}
	for k, v := range e.binds {
		n.binds[k] = v
	}
	for k, v := range binds {
		n.binds[k] = v
	}
	return n
}

func (c *compiler) errf(p Pos, format string, args ...any) error {
	return &Error{File: c.file, Pos: p, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) compile(f *File) (map[string]any, error) {
	seen := map[string]Pos{}
	claim := func(name string, p Pos) error {
		if prev, ok := seen[name]; ok {
			return c.errf(p, "%q is already declared at %d:%d", name, prev.Line, prev.Col)
		}
		seen[name] = p
		return nil
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ParamDecl:
			if err := claim(d.Name, d.Pos); err != nil {
				return nil, err
			}
			c.params[d.Name] = d
		case *VarDecl:
			if err := claim(d.Name, d.Pos); err != nil {
				return nil, err
			}
			c.vars[d.Name] = d
		case *ResourceDecl:
			if err := claim(d.Name, d.Pos); err != nil {
				return nil, err
			}
			if err := c.declareResource(d, nil); err != nil {
				return nil, err
			}
		case *ModuleDecl:
			if err := claim(d.Name, d.Pos); err != nil {
				return nil, err
			}
			m := &modInfo{decl: d}
			var err error
			if m.body, m.cond, m.loop, err = c.unwrapBody(d.Body); err != nil {
				return nil, err
			}
			c.mods[d.Name] = m
			c.modSeq = append(c.modSeq, m)
		case *TypeDecl:
			if err := claim(d.Name, d.Pos); err != nil {
				return nil, err
			}
			c.types[d.Name] = d
		case *FuncDecl:
			return nil, c.errf(d.Pos, "user-defined functions (func %s) are not supported", d.Name)
		}
	}
	// Parents named with parent: are resolved once every resource is known.
	for _, r := range c.resSeq {
		if err := c.resolveParentAndScope(r); err != nil {
			return nil, err
		}
	}
	out := map[string]any{
		"$schema":         "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"languageVersion": "2.0",
		"contentVersion":  "1.0.0.0",
	}
	params := map[string]any{}
	vars := map[string]any{}
	var varCopies []any
	resources := map[string]any{}
	outputs := map[string]any{}
	meta := map[string]any{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ParamDecl:
			p, err := c.param(d)
			if err != nil {
				return nil, err
			}
			params[d.Name] = p
		case *VarDecl:
			if len(d.Decorators) > 0 && !onlyDecorators(d.Decorators, "description", "export") {
				return nil, c.errf(d.Decorators[0].Pos, "decorator @%s is not supported on a variable", d.Decorators[0].Name)
			}
			if fe, ok := d.Value.(*ForExpr); ok {
				input, count, err := c.loopInput(fe, newEnv(), "copyIndex('"+d.Name+"')")
				if err != nil {
					return nil, err
				}
				varCopies = append(varCopies, map[string]any{"name": d.Name, "count": count, "input": input})
				continue
			}
			v, err := c.value(d.Value, newEnv())
			if err != nil {
				return nil, err
			}
			vars[d.Name] = v
		case *OutputDecl:
			o, err := c.output(d)
			if err != nil {
				return nil, err
			}
			outputs[d.Name] = o
		case *MetadataDecl:
			v, err := c.value(d.Value, newEnv())
			if err != nil {
				return nil, err
			}
			meta[d.Name] = v
		case *TargetScopeDecl:
			s, ok := d.Value.(*StringLit)
			if !ok || len(s.Exprs) > 0 {
				return nil, c.errf(d.Pos, "targetScope must be a string literal")
			}
			if s.Parts[0] != "resourceGroup" {
				return nil, c.errf(d.Pos, "targetScope %q is not supported (only resourceGroup)", s.Parts[0])
			}
		}
	}
	for _, r := range c.resSeq {
		m, err := c.resource(r)
		if err != nil {
			return nil, err
		}
		resources[r.sym] = m
	}
	for _, m := range c.modSeq {
		x, err := c.module(m)
		if err != nil {
			return nil, err
		}
		resources[m.decl.Name] = x
	}
	for name := range c.implicit {
		params[name] = map[string]any{"type": "string", "metadata": map[string]any{"description": "used but not declared"}}
	}
	if len(varCopies) > 0 {
		vars["copy"] = varCopies
	}
	set := func(k string, m map[string]any) {
		if len(m) > 0 {
			out[k] = m
		}
	}
	set("parameters", params)
	set("variables", vars)
	out["resources"] = resources
	set("outputs", outputs)
	set("metadata", meta)
	return out, nil
}

func onlyDecorators(ds []*Decorator, allowed ...string) bool {
	for _, d := range ds {
		ok := false
		for _, a := range allowed {
			if d.Name == a {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// unwrapBody splits a resource or module body into its object, condition
// and loop.
func (c *compiler) unwrapBody(b Expr) (*ObjectLit, Expr, *ForExpr, error) {
	var loop *ForExpr
	if f, ok := b.(*ForExpr); ok {
		loop, b = f, f.Body
	}
	switch x := b.(type) {
	case *ObjectLit:
		return x, nil, loop, nil
	case *IfBody:
		return x.Body, x.Cond, loop, nil
	}
	return nil, nil, nil, c.errf(b.exprPos(), "a resource or module loop body must be an object or if (...) {...}")
}

func (c *compiler) declareResource(d *ResourceDecl, parent *resInfo) error {
	r := &resInfo{decl: d, sym: d.Name, fullType: d.Type, parent: parent, nested: parent != nil}
	if parent != nil {
		r.sym = parent.sym + "::" + d.Name
		if !strings.Contains(d.Type, "/") {
			r.fullType = parent.fullType + "/" + d.Type
		}
		if parent.loop != nil {
			return c.errf(d.Pos, "a nested resource inside a resource loop is not supported")
		}
	}
	if _, dup := c.res[r.sym]; dup {
		return c.errf(d.Pos, "resource %q is already declared", r.sym)
	}
	var err error
	if r.body, r.cond, r.loop, err = c.unwrapBody(d.Body); err != nil {
		return err
	}
	if parent != nil && r.loop != nil {
		return c.errf(d.Pos, "a loop in a nested resource is not supported")
	}
	for _, p := range r.body.Props {
		if p.Key == "name" {
			r.name = p.Value
		}
	}
	if r.name == nil {
		return c.errf(d.Pos, "resource %s has no name", d.Name)
	}
	c.res[r.sym] = r
	c.resSeq = append(c.resSeq, r)
	for _, p := range r.body.Props {
		if p.Resource != nil {
			if err := c.declareResource(p.Resource, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *compiler) resolveParentAndScope(r *resInfo) error {
	for _, p := range r.body.Props {
		switch p.Key {
		case "parent":
			if r.parent != nil {
				return c.errf(p.Pos, "a nested resource cannot also have parent:")
			}
			id, ok := p.Value.(*Ident)
			pr := c.res[identName(id, ok)]
			if pr == nil {
				return c.errf(p.Pos, "parent must be the symbolic name of a resource")
			}
			if pr.loop != nil || r.loop != nil {
				return c.errf(p.Pos, "parent: with resource loops is not supported")
			}
			r.parent = pr
			depth := 0
			for q := pr; q != nil; q = q.parent {
				if q == r {
					return c.errf(p.Pos, "resource %s is its own parent", r.sym)
				}
				if depth++; depth > maxParentDepth {
					return c.errf(p.Pos, "parent: chain deeper than %d", maxParentDepth)
				}
			}
		case "scope":
			id, ok := p.Value.(*Ident)
			if sr := c.res[identName(id, ok)]; sr != nil {
				if sr.loop != nil {
					return c.errf(p.Pos, "scope: on a resource loop is not supported")
				}
				r.scope = sr
				continue
			}
			if call, ok := p.Value.(*Call); ok && call.Name == "resourceGroup" && call.Recv == nil {
				switch {
				case len(call.Args) == 0:
					continue
				case r.decl.Existing && len(call.Args) <= 2:
					args := make([]string, len(call.Args))
					for i, a := range call.Args {
						s, err := c.expr(a, newEnv())
						if err != nil {
							return err
						}
						args[i] = s
					}
					r.rgName = args[len(args)-1]
					if len(args) == 2 {
						r.rgSub = args[0]
					}
					continue
				}
			}
			return c.errf(p.Pos, "scope: other than a resource of this file, resourceGroup() or (for existing resources) resourceGroup([subscriptionId, ]name) is not supported")
		}
	}
	return nil
}

func identName(id *Ident, ok bool) string {
	if !ok || id == nil {
		return ""
	}
	return id.Name
}

// resource lowers one resource declaration to its languageVersion 2.0 form.
func (c *compiler) resource(r *resInfo) (map[string]any, error) {
	d := r.decl
	e := newEnv()
	m := map[string]any{"type": r.fullType, "apiVersion": d.APIVersion}
	if d.Existing {
		m["existing"] = true
	}
	var copyBlock map[string]any
	if r.loop != nil {
		binds, count, err := c.loopBinds(r.loop, e, "copyIndex()")
		if err != nil {
			return nil, err
		}
		copyBlock = map[string]any{"name": r.sym, "count": count}
		e = e.with(binds)
	}
	for _, dec := range d.Decorators {
		switch dec.Name {
		case "description":
		case "batchSize":
			if copyBlock == nil || len(dec.Args) != 1 {
				return nil, c.errf(dec.Pos, "@batchSize(n) applies to a resource loop")
			}
			n, err := c.value(dec.Args[0], newEnv())
			if err != nil {
				return nil, err
			}
			copyBlock["mode"], copyBlock["batchSize"] = "serial", n
		default:
			return nil, c.errf(dec.Pos, "decorator @%s is not supported on a resource", dec.Name)
		}
	}
	name, err := c.nameExpr(r, e, d.Pos)
	if err != nil {
		return nil, err
	}
	m["name"] = "[" + name + "]"
	if s, ok := literal(r.name); ok && r.parent == nil {
		m["name"] = escapeLiteral(s)
	}
	var explicit []string
	for _, p := range r.body.Props {
		switch {
		case p.Resource != nil, p.Key == "name", p.Key == "parent":
			continue
		case p.Key == "scope":
			if r.rgName != "" {
				sub := r.rgSub
				if sub == "" {
					sub = "subscription().subscriptionId"
				}
				m["scope"] = "[format('/subscriptions/{0}/resourceGroups/{1}', " + sub + ", " + r.rgName + ")]"
			}
			if r.scope != nil {
				rel, err := c.relativeID(&ref{r: r.scope, env: newEnv()}, e)
				if err != nil {
					return nil, err
				}
				m["scope"] = "[" + rel + "]"
			}
			continue
		case p.Key == "dependsOn":
			arr, ok := p.Value.(*ArrayLit)
			if !ok {
				return nil, c.errf(p.Pos, "dependsOn must be an array of resource or module names")
			}
			for _, it := range arr.Items {
				id, ok := it.(*Ident)
				if !ok || (c.res[id.Name] == nil && c.mods[id.Name] == nil) {
					return nil, c.errf(it.exprPos(), "dependsOn entries must be resource or module names")
				}
				explicit = append(explicit, id.Name)
			}
			continue
		}
		if fe, ok := p.Value.(*ForExpr); ok {
			// "copy" at the top of a resource is the resource's own loop.
			return nil, c.errf(fe.Pos, "a for-expression as the top-level resource property %q is not supported", p.Key)
		}
		v, err := c.value(p.Value, e)
		if err != nil {
			return nil, err
		}
		m[p.Key] = v
	}
	// A resource declared inside a conditional resource shares its
	// condition, as in Bicep.
	var conds []string
	for q := r; q != nil; q = q.parent {
		if q.cond != nil {
			s, err := c.expr(q.cond, e)
			if err != nil {
				return nil, err
			}
			conds = append(conds, s)
		}
		if !q.nested {
			break
		}
	}
	switch {
	case len(conds) == 1 && r.cond != nil:
		v, err := c.value(r.cond, e)
		if err != nil {
			return nil, err
		}
		m["condition"] = v
	case len(conds) == 1:
		m["condition"] = "[" + conds[0] + "]"
	case len(conds) > 1:
		m["condition"] = "[and(" + strings.Join(conds, ", ") + ")]"
	}
	if copyBlock != nil {
		m["copy"] = copyBlock
	}
	deps := map[string]bool{}
	for _, x := range explicit {
		deps[x] = true
	}
	for x := range e.deps {
		deps[x] = true
	}
	if r.parent != nil && !r.parent.decl.Existing {
		deps[r.parent.sym] = true
	}
	if r.scope != nil && !r.scope.decl.Existing {
		deps[r.scope.sym] = true
	}
	delete(deps, r.sym)
	if len(deps) > 0 {
		list := make([]any, 0, len(deps))
		for _, k := range sortedNames(deps) {
			list = append(list, k)
		}
		m["dependsOn"] = list
	}
	return m, nil
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// loopBinds lowers a loop's collection and binds its variables: the item
// to coll[index] and the index to the given copyIndex expression.
func (c *compiler) loopBinds(f *ForExpr, e *env, index string) (map[string]string, string, error) {
	coll, err := c.expr(f.Coll, e)
	if err != nil {
		return nil, "", err
	}
	binds := map[string]string{}
	if f.Item != "" {
		binds[f.Item] = coll + "[" + index + "]"
	}
	if f.Index != "" {
		binds[f.Index] = index
	}
	return binds, "[length(" + coll + ")]", nil
}

// loopInput lowers [for ...] used as a variable, output or property value.
func (c *compiler) loopInput(f *ForExpr, e *env, index string) (any, string, error) {
	if _, ok := f.Body.(*IfBody); ok {
		return nil, "", c.errf(f.Pos, "a filtered loop (for ... : if) is only supported for resources and modules")
	}
	binds, count, err := c.loopBinds(f, e, index)
	if err != nil {
		return nil, "", err
	}
	input, err := c.value(f.Body, e.with(binds))
	if err != nil {
		return nil, "", err
	}
	return input, count, nil
}

// addPropertyCopy turns key: [for ...] into an ARM property copy loop.
func (c *compiler) addPropertyCopy(m map[string]any, key string, f *ForExpr, e *env) error {
	input, count, err := c.loopInput(f, e, "copyIndex('"+strings.ReplaceAll(key, "'", "''")+"')")
	if err != nil {
		return err
	}
	list, _ := m["copy"].([]any)
	m["copy"] = append(list, map[string]any{"name": key, "count": count, "input": input})
	return nil
}

func (c *compiler) module(mi *modInfo) (map[string]any, error) {
	d := mi.decl
	e := newEnv()
	props := map[string]any{"expressionEvaluationOptions": map[string]any{"scope": "inner"}, "mode": "Incremental"}
	m := map[string]any{"type": "Microsoft.Resources/deployments", "apiVersion": deploymentsAPIVersion, "properties": props}
	var copyBlock map[string]any
	if mi.loop != nil {
		binds, count, err := c.loopBinds(mi.loop, e, "copyIndex()")
		if err != nil {
			return nil, err
		}
		copyBlock = map[string]any{"name": d.Name, "count": count}
		e = e.with(binds)
	}
	for _, dec := range d.Decorators {
		switch dec.Name {
		case "description":
		case "batchSize":
			if copyBlock == nil || len(dec.Args) != 1 {
				return nil, c.errf(dec.Pos, "@batchSize(n) applies to a module loop")
			}
			n, err := c.value(dec.Args[0], newEnv())
			if err != nil {
				return nil, err
			}
			copyBlock["mode"], copyBlock["batchSize"] = "serial", n
		default:
			return nil, c.errf(dec.Pos, "decorator @%s is not supported on a module", dec.Name)
		}
	}
	m["name"] = d.Name
	params := map[string]any{}
	var explicit []string
	for _, p := range mi.body.Props {
		switch p.Key {
		case "name":
			v, err := c.value(p.Value, e)
			if err != nil {
				return nil, err
			}
			m["name"] = v
		case "params":
			o, ok := p.Value.(*ObjectLit)
			if !ok {
				return nil, c.errf(p.Pos, "module params must be an object literal")
			}
			for _, pp := range o.Props {
				w := map[string]any{}
				if fe, ok := pp.Value.(*ForExpr); ok {
					if err := c.addPropertyCopy(w, "value", fe, e); err != nil {
						return nil, err
					}
				} else {
					v, err := c.value(pp.Value, e)
					if err != nil {
						return nil, err
					}
					w["value"] = v
				}
				params[pp.Key] = w
			}
		case "scope":
			call, ok := p.Value.(*Call)
			if !ok || call.Name != "resourceGroup" || call.Recv != nil || len(call.Args) > 1 {
				return nil, c.errf(p.Pos, "module scope other than resourceGroup() or resourceGroup(name) is not supported")
			}
			if len(call.Args) == 1 {
				v, err := c.value(call.Args[0], e)
				if err != nil {
					return nil, err
				}
				props["resourceGroup"] = v
			}
		case "dependsOn":
			arr, ok := p.Value.(*ArrayLit)
			if !ok {
				return nil, c.errf(p.Pos, "dependsOn must be an array of resource or module names")
			}
			for _, it := range arr.Items {
				id, ok := it.(*Ident)
				if !ok || (c.res[id.Name] == nil && c.mods[id.Name] == nil) {
					return nil, c.errf(it.exprPos(), "dependsOn entries must be resource or module names")
				}
				explicit = append(explicit, id.Name)
			}
		default:
			return nil, c.errf(p.Pos, "module property %q is not supported", p.Key)
		}
	}
	props["parameters"] = params
	if isRegistryModule(d.Path) {
		// Not available offline: the evaluator leaves the deployment's
		// contents unknown.
		props["templateLink"] = map[string]any{"id": d.Path}
	} else {
		tpl, err := c.loadModule(d)
		if err != nil {
			return nil, err
		}
		props["template"] = tpl
	}
	if mi.cond != nil {
		v, err := c.value(mi.cond, e)
		if err != nil {
			return nil, err
		}
		m["condition"] = v
	}
	if copyBlock != nil {
		m["copy"] = copyBlock
	}
	deps := map[string]bool{}
	for _, x := range explicit {
		deps[x] = true
	}
	for x := range e.deps {
		deps[x] = true
	}
	delete(deps, d.Name)
	if len(deps) > 0 {
		list := make([]any, 0, len(deps))
		for _, k := range sortedNames(deps) {
			list = append(list, k)
		}
		m["dependsOn"] = list
	}
	return m, nil
}

func isRegistryModule(p string) bool {
	return strings.HasPrefix(p, "br:") || strings.HasPrefix(p, "br/") || strings.HasPrefix(p, "ts:") || strings.HasPrefix(p, "ts/")
}

func (c *compiler) loadModule(d *ModuleDecl) (map[string]any, error) {
	if c.cfg.loader == nil {
		return nil, c.errf(d.Pos, "module %s: local module %q needs a loader", d.Name, d.Path)
	}
	c.cfg.modules++
	if c.cfg.modules > maxModules {
		return nil, c.errf(d.Pos, "more than %d modules", maxModules)
	}
	if len(c.stack) > maxModuleDepth {
		return nil, c.errf(d.Pos, "modules nested more than %d deep", maxModuleDepth)
	}
	p := d.Path
	if !path.IsAbs(p) {
		p = path.Join(path.Dir(strings.ReplaceAll(c.file, "\\", "/")), p)
	}
	for _, s := range c.stack {
		if s == p {
			return nil, c.errf(d.Pos, "module %s: %q includes itself (%s)", d.Name, d.Path, strings.Join(append(append([]string{}, c.stack...), p), " → "))
		}
	}
	src, err := c.cfg.loader(p)
	if err != nil {
		return nil, &Error{File: c.file, Pos: d.Pos, Msg: fmt.Sprintf("module %s: %v", d.Name, err)}
	}
	return compileFile(src, p, c.cfg, append(append([]string{}, c.stack...), p))
}

func (c *compiler) param(d *ParamDecl) (map[string]any, error) {
	typ, allowed, err := c.typeOf(d.Type, 0)
	if err != nil {
		return nil, err
	}
	p := map[string]any{"type": typ}
	if allowed != nil {
		p["allowedValues"] = allowed
	}
	meta := map[string]any{}
	for _, dec := range d.Decorators {
		arg := func() (any, error) {
			if len(dec.Args) != 1 {
				return nil, c.errf(dec.Pos, "@%s takes one argument", dec.Name)
			}
			return c.value(dec.Args[0], newEnv())
		}
		switch dec.Name {
		case "description":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			meta["description"] = v
		case "metadata":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			if mv, ok := v.(map[string]any); ok {
				for k, x := range mv {
					meta[k] = x
				}
			}
		case "allowed":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			p["allowedValues"] = v
		case "minLength", "maxLength", "minValue", "maxValue":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			p[dec.Name] = v
		case "secure":
			switch typ {
			case "string":
				p["type"] = "securestring"
			case "object":
				p["type"] = "secureObject"
			default:
				return nil, c.errf(dec.Pos, "@secure applies to string and object parameters")
			}
		case "export", "sealed", "discriminator":
		default:
			return nil, c.errf(dec.Pos, "decorator @%s is not supported on a parameter", dec.Name)
		}
	}
	if len(meta) > 0 {
		p["metadata"] = meta
	}
	if d.Default != nil {
		v, err := c.value(d.Default, newEnv())
		if err != nil {
			return nil, err
		}
		p["defaultValue"] = v
	}
	return p, nil
}

// typeOf maps a type to an ARM parameter or output type and, for literal
// types, the allowed values.
func (c *compiler) typeOf(t *TypeExpr, depth int) (string, []any, error) {
	if depth > maxDepth {
		return "", nil, c.errf(t.Pos, "type aliases nested more than %d deep", maxDepth)
	}
	switch {
	case t.Array:
		return "array", nil, nil
	case t.Object:
		return "object", nil, nil
	case t.Resource:
		return "string", nil, nil
	case len(t.Union) > 0 || len(t.Literals) > 0:
		members := t.Union
		if len(members) == 0 {
			members = []*TypeExpr{t}
		}
		var typ string
		var allowed []any
		for _, m := range members {
			if len(m.Literals) != 1 {
				return "", nil, c.errf(m.Pos, "union types other than unions of literals are not supported")
			}
			v, err := c.value(m.Literals[0], newEnv())
			if err != nil {
				return "", nil, err
			}
			mt := jsonType(v)
			if typ != "" && mt != typ {
				return "", nil, c.errf(m.Pos, "a union of literals of different types is not supported")
			}
			typ = mt
			allowed = append(allowed, v)
		}
		return typ, allowed, nil
	}
	switch t.Name {
	case "string", "int", "bool", "object", "array":
		return t.Name, nil, nil
	}
	if td := c.types[t.Name]; td != nil {
		return c.typeOf(td.Type, depth+1)
	}
	return "", nil, c.errf(t.Pos, "type %q is not supported", t.Name)
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "int"
	case bool:
		return "bool"
	case []any:
		return "array"
	}
	return "object"
}

func (c *compiler) output(d *OutputDecl) (map[string]any, error) {
	if d.Type.Resource {
		return nil, c.errf(d.Pos, "resource-typed outputs are not supported")
	}
	typ, _, err := c.typeOf(d.Type, 0)
	if err != nil {
		return nil, err
	}
	o := map[string]any{"type": typ}
	for _, dec := range d.Decorators {
		switch dec.Name {
		case "description", "export":
		case "secure":
			if typ == "string" {
				o["type"] = "securestring"
			} else {
				o["type"] = "secureObject"
			}
		default:
			return nil, c.errf(dec.Pos, "decorator @%s is not supported on an output", dec.Name)
		}
	}
	if fe, ok := d.Value.(*ForExpr); ok {
		input, count, err := c.loopInput(fe, newEnv(), "copyIndex()")
		if err != nil {
			return nil, err
		}
		o["copy"] = map[string]any{"count": count, "input": input}
		return o, nil
	}
	v, err := c.value(d.Value, newEnv())
	if err != nil {
		return nil, err
	}
	o["value"] = v
	return o, nil
}

// literal returns the value of a plain string literal.
func literal(e Expr) (string, bool) {
	s, ok := e.(*StringLit)
	if !ok || len(s.Exprs) > 0 {
		return "", false
	}
	return s.Parts[0], true
}

// escapeLiteral keeps a literal JSON string from reading as an expression.
func escapeLiteral(s string) string {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		return "[" + s
	}
	return s
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// value lowers an expression in a JSON value position: literals, objects
// and arrays stay JSON; everything else becomes "[expression]".
func (c *compiler) value(x Expr, e *env) (any, error) {
	switch v := x.(type) {
	case *StringLit:
		if len(v.Exprs) == 0 {
			return escapeLiteral(v.Parts[0]), nil
		}
	case *IntLit:
		return v.Value, nil
	case *Unary:
		if n, ok := v.X.(*IntLit); ok && v.Op == Minus {
			return -n.Value, nil
		}
	case *BoolLit:
		return v.Value, nil
	case *NullLit:
		return nil, nil
	case *ObjectLit:
		m := make(map[string]any, len(v.Props))
		for _, p := range v.Props {
			if p.Resource != nil {
				return nil, c.errf(p.Pos, "a nested resource is only allowed at the top of a resource body")
			}
			if fe, ok := p.Value.(*ForExpr); ok {
				if err := c.addPropertyCopy(m, p.Key, fe, e); err != nil {
					return nil, err
				}
				continue
			}
			pv, err := c.value(p.Value, e)
			if err != nil {
				return nil, err
			}
			m[p.Key] = pv
		}
		return m, nil
	case *ArrayLit:
		a := make([]any, 0, len(v.Items))
		for _, it := range v.Items {
			iv, err := c.value(it, e)
			if err != nil {
				return nil, err
			}
			a = append(a, iv)
		}
		return a, nil
	case *ForExpr:
		return nil, c.errf(v.Pos, "a for-expression is only supported as the whole value of a property, variable, output, resource or module")
	}
	s, err := c.expr(x, e)
	if err != nil {
		return nil, err
	}
	return "[" + s + "]", nil
}

var binaryFuncs = map[Kind]string{
	Plus: "add", Minus: "sub", Star: "mul", Slash: "div", Percent: "mod",
	Less: "less", LessEq: "lessOrEquals", Greater: "greater", GreaterEq: "greaterOrEquals",
	Eq: "equals", And: "and", Or: "or", Coalesce: "coalesce",
}

// unsupportedFuncs are Bicep functions with no offline ARM equivalent.
var unsupportedFuncs = map[string]string{
	"loadTextContent": "file loading", "loadJsonContent": "file loading", "loadYamlContent": "file loading",
	"loadFileAsBase64": "file loading", "filter": "lambda functions", "map": "lambda functions",
	"reduce": "lambda functions", "sort": "lambda functions", "toObject": "lambda functions",
	"groupBy": "lambda functions", "mapValues": "lambda functions", "shallowMerge": "shallowMerge",
}

// expr lowers an expression to ARM expression text (without brackets).
func (c *compiler) expr(x Expr, e *env) (string, error) {
	switch v := x.(type) {
	case *StringLit:
		if len(v.Exprs) == 0 {
			return quote(v.Parts[0]), nil
		}
		var f strings.Builder
		args := make([]string, 0, len(v.Exprs))
		for i, part := range v.Parts {
			f.WriteString(strings.NewReplacer("{", "{{", "}", "}}").Replace(part))
			if i < len(v.Exprs) {
				a, err := c.expr(v.Exprs[i], e)
				if err != nil {
					return "", err
				}
				args = append(args, a)
				fmt.Fprintf(&f, "{%d}", i)
			}
		}
		return "format(" + quote(f.String()) + ", " + strings.Join(args, ", ") + ")", nil
	case *IntLit:
		return strconv.FormatInt(v.Value, 10), nil
	case *BoolLit:
		if v.Value {
			return "true()", nil
		}
		return "false()", nil
	case *NullLit:
		return "null()", nil
	case *Ident:
		return c.ident(v, e)
	case *ObjectLit:
		if len(v.Props) == 0 {
			return "json('{}')", nil
		}
		args := make([]string, 0, 2*len(v.Props))
		for _, p := range v.Props {
			if p.Resource != nil {
				return "", c.errf(p.Pos, "a nested resource is only allowed at the top of a resource body")
			}
			if _, ok := p.Value.(*ForExpr); ok {
				return "", c.errf(p.Pos, "a for-expression inside an expression is not supported")
			}
			a, err := c.expr(p.Value, e)
			if err != nil {
				return "", err
			}
			args = append(args, quote(p.Key), a)
		}
		return "createObject(" + strings.Join(args, ", ") + ")", nil
	case *ArrayLit:
		if len(v.Items) == 0 {
			return "json('[]')", nil
		}
		args := make([]string, 0, len(v.Items))
		for _, it := range v.Items {
			a, err := c.expr(it, e)
			if err != nil {
				return "", err
			}
			args = append(args, a)
		}
		return "createArray(" + strings.Join(args, ", ") + ")", nil
	case *ForExpr:
		return "", c.errf(v.Pos, "a for-expression inside an expression is not supported")
	case *IfBody:
		return "", c.errf(v.Pos, "if (...) is only allowed as a resource or module body")
	case *Unary:
		if n, ok := v.X.(*IntLit); ok && v.Op == Minus {
			return strconv.FormatInt(-n.Value, 10), nil
		}
		a, err := c.expr(v.X, e)
		if err != nil {
			return "", err
		}
		if v.Op == Not {
			return "not(" + a + ")", nil
		}
		return "sub(0, " + a + ")", nil
	case *Binary:
		a, err := c.expr(v.X, e)
		if err != nil {
			return "", err
		}
		b, err := c.expr(v.Y, e)
		if err != nil {
			return "", err
		}
		switch v.Op {
		case NotEq:
			return "not(equals(" + a + ", " + b + "))", nil
		case EqI:
			return "equals(toLower(" + a + "), toLower(" + b + "))", nil
		case NotEqI:
			return "not(equals(toLower(" + a + "), toLower(" + b + ")))", nil
		}
		fn, ok := binaryFuncs[v.Op]
		if !ok {
			return "", c.errf(v.Pos, "operator %s is not supported", v.Op)
		}
		return fn + "(" + a + ", " + b + ")", nil
	case *Ternary:
		parts := make([]string, 3)
		for i, y := range []Expr{v.Cond, v.A, v.B} {
			s, err := c.expr(y, e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "if(" + strings.Join(parts, ", ") + ")", nil
	case *Member:
		return c.member(v, e)
	case *IndexExpr:
		rr, err := c.resourceRef(v, e)
		if err != nil {
			return "", err
		}
		if rr != nil {
			return "", c.errf(v.Pos, "resource %s used as a value; use a property such as .id or .name", rr.r.sym)
		}
		a, err := c.expr(v.X, e)
		if err != nil {
			return "", err
		}
		i, err := c.expr(v.Index, e)
		if err != nil {
			return "", err
		}
		return a + "[" + i + "]", nil
	case *Call:
		return c.call(v, e)
	}
	return "", c.errf(x.exprPos(), "unsupported expression")
}

func (c *compiler) ident(v *Ident, e *env) (string, error) {
	if b, ok := e.binds[v.Name]; ok {
		return b, nil
	}
	if _, ok := c.params[v.Name]; ok {
		return "parameters(" + quote(v.Name) + ")", nil
	}
	if _, ok := c.vars[v.Name]; ok {
		return "variables(" + quote(v.Name) + ")", nil
	}
	if c.res[v.Name] != nil {
		return "", c.errf(v.Pos, "resource %s used as a value; use a property such as %s.id or %s.name", v.Name, v.Name, v.Name)
	}
	if c.mods[v.Name] != nil {
		return "", c.errf(v.Pos, "module %s used as a value; use %s.outputs.x or %s.name", v.Name, v.Name, v.Name)
	}
	if c.cfg.allowUndeclared && c.types[v.Name] == nil {
		c.implicit[v.Name] = true
		return "parameters(" + quote(v.Name) + ")", nil
	}
	return "", c.errf(v.Pos, "unknown name %q", v.Name)
}

// ref is a reference to one resource instance: for a loop element, env
// binds the loop's variables to that element.
type ref struct {
	r   *resInfo
	env *env
}

// resourceRef resolves x to a resource when it names one (acr, acr[i],
// parent::child); nil when it does not.
func (c *compiler) resourceRef(x Expr, e *env) (*ref, error) {
	switch v := x.(type) {
	case *Ident:
		if _, bound := e.binds[v.Name]; bound {
			return nil, nil
		}
		r := c.res[v.Name]
		if r == nil {
			return nil, nil
		}
		if r.loop != nil {
			return nil, c.errf(v.Pos, "resource collection %s needs an index, as in %s[0]", v.Name, v.Name)
		}
		if !r.decl.Existing {
			e.deps[r.sym] = true
		}
		return &ref{r: r, env: newEnv()}, nil
	case *IndexExpr:
		id, ok := v.X.(*Ident)
		if !ok {
			return nil, nil
		}
		if _, bound := e.binds[id.Name]; bound {
			return nil, nil
		}
		r := c.res[id.Name]
		if r == nil || r.loop == nil {
			return nil, nil
		}
		idx, err := c.expr(v.Index, e)
		if err != nil {
			return nil, err
		}
		binds, _, err := c.loopBinds(r.loop, newEnv(), idx)
		if err != nil {
			return nil, err
		}
		if !r.decl.Existing {
			e.deps[r.sym] = true
		}
		return &ref{r: r, env: newEnv().with(binds)}, nil
	}
	return nil, nil
}

// nameExpr is the full ARM name of a resource instance: parent names and
// its own joined by '/'.
func (c *compiler) nameExpr(r *resInfo, e *env, at Pos) (string, error) {
	segs, err := c.nameSegments(r, e, at)
	if err != nil {
		return "", err
	}
	if len(segs) == 1 {
		return segs[0], nil
	}
	ph := make([]string, len(segs))
	for i := range segs {
		ph[i] = "{" + strconv.Itoa(i) + "}"
	}
	return "format(" + quote(strings.Join(ph, "/")) + ", " + strings.Join(segs, ", ") + ")", nil
}

func (c *compiler) nameSegments(r *resInfo, e *env, at Pos) ([]string, error) {
	if r.busy {
		return nil, c.errf(at, "the name of resource %s refers to itself", r.sym)
	}
	r.busy = true
	defer func() { r.busy = false }()
	var segs []string
	if r.parent != nil {
		ps, err := c.nameSegments(r.parent, newEnv(), at)
		if err != nil {
			return nil, err
		}
		segs = append(segs, ps...)
	}
	// A name's own dependencies are not the referrer's: lower it in a
	// fresh dependency set with the loop bindings.
	own, err := c.expr(r.name, &env{binds: e.binds, deps: map[string]bool{}})
	if err != nil {
		return nil, err
	}
	// Names are inlined wherever a resource is referenced; charge at least
	// a little per use so names built from names cannot grow without end.
	c.cfg.budget -= int64(max(len(own), 64))
	if c.cfg.budget < 0 {
		return nil, c.errf(at, "resource names expand beyond the size limit (16 MiB plus 4 bytes per input byte)")
	}
	return append(segs, own), nil
}

// idExpr is the ARM resource id of a resource instance.
func (c *compiler) idExpr(rf *ref, at Pos) (string, error) {
	segs, err := c.nameSegments(rf.r, rf.env, at)
	if err != nil {
		return "", err
	}
	args := append([]string{quote(rf.r.fullType)}, segs...)
	if rf.r.scope != nil {
		sid, err := c.idExpr(&ref{r: rf.r.scope, env: newEnv()}, at)
		if err != nil {
			return "", err
		}
		return "extensionResourceId(" + sid + ", " + strings.Join(args, ", ") + ")", nil
	}
	if rf.r.rgName != "" {
		args = append([]string{rf.r.rgName}, args...)
		if rf.r.rgSub != "" {
			args = append([]string{rf.r.rgSub}, args...)
		}
	}
	return "resourceId(" + strings.Join(args, ", ") + ")", nil
}

// relativeID is the "Namespace/type/name[/child/name]" form ARM accepts for
// scope.
func (c *compiler) relativeID(rf *ref, e *env) (string, error) {
	segs, err := c.nameSegments(rf.r, rf.env, rf.r.decl.Pos)
	if err != nil {
		return "", err
	}
	if !rf.r.decl.Existing {
		e.deps[rf.r.sym] = true
	}
	types := strings.Split(rf.r.fullType, "/")
	if len(types) != len(segs)+1 {
		return "", c.errf(rf.r.decl.Pos, "resource type %s does not match its %d name segments", rf.r.fullType, len(segs))
	}
	var f strings.Builder
	f.WriteString(types[0])
	for i, t := range types[1:] {
		fmt.Fprintf(&f, "/%s/{%d}", t, i)
	}
	return "format(" + quote(f.String()) + ", " + strings.Join(segs, ", ") + ")", nil
}

func (c *compiler) referenceExpr(rf *ref, full bool, at Pos) (string, error) {
	api := quote(rf.r.decl.APIVersion)
	if rf.r.loop == nil {
		if full {
			return "reference(" + quote(rf.r.sym) + ", " + api + ", 'full')", nil
		}
		return "reference(" + quote(rf.r.sym) + ")", nil
	}
	id, err := c.idExpr(rf, at)
	if err != nil {
		return "", err
	}
	if full {
		return "reference(" + id + ", " + api + ", 'full')", nil
	}
	return "reference(" + id + ", " + api + ")", nil
}

func (c *compiler) member(v *Member, e *env) (string, error) {
	rf, err := c.resourceRef(v.X, e)
	if err != nil {
		return "", err
	}
	if rf != nil && !v.Safe {
		switch v.Name {
		case "id":
			return c.idExpr(rf, v.Pos)
		case "name":
			// A child's .name is its own name, not "parent/child", as in Bicep.
			segs, err := c.nameSegments(rf.r, rf.env, v.Pos)
			if err != nil {
				return "", err
			}
			return segs[len(segs)-1], nil
		case "type":
			return quote(rf.r.fullType), nil
		case "apiVersion":
			return quote(rf.r.decl.APIVersion), nil
		case "properties":
			return c.referenceExpr(rf, false, v.Pos)
		}
		full, err := c.referenceExpr(rf, true, v.Pos)
		if err != nil {
			return "", err
		}
		return full + "." + v.Name, nil
	}
	if id, ok := v.X.(*Ident); ok && c.mods[id.Name] != nil {
		if _, bound := e.binds[id.Name]; !bound {
			return c.moduleMember(c.mods[id.Name], v, e)
		}
	}
	if inner, ok := v.X.(*Member); ok && inner.Name == "outputs" && !inner.Safe {
		if id, ok := inner.X.(*Ident); ok && c.mods[id.Name] != nil {
			if _, bound := e.binds[id.Name]; !bound {
				if c.mods[id.Name].loop != nil {
					return "", c.errf(v.Pos, "outputs of a module loop are not supported")
				}
				e.deps[id.Name] = true
				return "reference(" + quote(id.Name) + ").outputs." + v.Name + ".value", nil
			}
		}
	}
	a, err := c.expr(v.X, e)
	if err != nil {
		return "", err
	}
	if v.Safe {
		return "if(contains(" + a + ", " + quote(v.Name) + "), " + a + "." + v.Name + ", null())", nil
	}
	return a + "." + v.Name, nil
}

func (c *compiler) moduleMember(m *modInfo, v *Member, e *env) (string, error) {
	if m.loop != nil {
		return "", c.errf(v.Pos, "members of a module loop are not supported")
	}
	switch v.Name {
	case "name":
		for _, p := range m.body.Props {
			if p.Key == "name" {
				return c.expr(p.Value, newEnv())
			}
		}
		return quote(m.decl.Name), nil
	case "outputs":
		e.deps[m.decl.Name] = true
		return "reference(" + quote(m.decl.Name) + ").outputs", nil
	}
	return "", c.errf(v.Pos, "module property %q is not supported (use .name or .outputs)", v.Name)
}

func (c *compiler) call(v *Call, e *env) (string, error) {
	if v.Recv != nil {
		rf, err := c.resourceRef(v.Recv, e)
		if err != nil {
			return "", err
		}
		if rf == nil {
			return "", c.errf(v.Pos, "method call .%s() is not supported", v.Name)
		}
		if !strings.HasPrefix(v.Name, "list") {
			return "", c.errf(v.Pos, "resource function %s.%s() is not supported", rf.r.sym, v.Name)
		}
		id, err := c.idExpr(rf, v.Pos)
		if err != nil {
			return "", err
		}
		args := []string{id, quote(rf.r.decl.APIVersion)}
		for _, a := range v.Args {
			s, err := c.expr(a, e)
			if err != nil {
				return "", err
			}
			args = append(args, s)
		}
		return v.Name + "(" + strings.Join(args, ", ") + ")", nil
	}
	if what, ok := unsupportedFuncs[v.Name]; ok {
		return "", c.errf(v.Pos, "%s() is not supported (%s)", v.Name, what)
	}
	args := make([]string, 0, len(v.Args))
	for _, a := range v.Args {
		s, err := c.expr(a, e)
		if err != nil {
			return "", err
		}
		args = append(args, s)
	}
	if v.Name == "any" && len(args) == 1 {
		return args[0], nil
	}
	return v.Name + "(" + strings.Join(args, ", ") + ")", nil
}
