package bicep

import "github.com/moat-registry/moat/internal/armtemplate"

// Compiled is a lowered file with a map back to its source.
type Compiled struct {
	Template map[string]any
	// Positions maps the JSON paths of the template (as armtemplate writes
	// them in errors, Unknown values and Resource.Path, e.g.
	// resources.acr.properties.networkRuleSet) to where the Bicep
	// declaration, property or array item starts in the top-level file.
	// Paths inside local modules' inline templates are not mapped.
	Positions map[string]Pos
}

// CompileMapped is Compile that also returns the source positions of the
// template's parts, so a caller can report file:line for a resource or
// property of a Bicep file.
func CompileMapped(src []byte, filename string, opts ...Option) (*Compiled, error) {
	cfg := newConfig(src, opts)
	f, err := Parse(src, filename)
	if err != nil {
		return nil, err
	}
	tpl, err := newCompiler(cfg, filename, []string{filename}).compile(f)
	if err != nil {
		return nil, err
	}
	return &Compiled{Template: tpl, Positions: positions(f)}, nil
}

// positions walks the syntax tree alongside the paths lowering gives each
// part.
func positions(f *File) map[string]Pos {
	pm := map[string]Pos{}
	var resource func(r *ResourceDecl, sym string)
	resource = func(r *ResourceDecl, sym string) {
		base := armtemplate.JoinKey("resources", sym)
		pm[base] = r.Pos
		body := r.Body
		if fe, ok := body.(*ForExpr); ok {
			body = fe.Body
		}
		if ib, ok := body.(*IfBody); ok {
			pm[armtemplate.JoinKey(base, "condition")] = startPos(ib.Cond)
			body = ib.Body
		}
		o, ok := body.(*ObjectLit)
		if !ok {
			return
		}
		for _, p := range o.Props {
			if p.Resource != nil {
				resource(p.Resource, sym+"::"+p.Resource.Name)
				continue
			}
			walkPositions(pm, armtemplate.JoinKey(base, p.Key), p.Pos, p.Value, 0)
		}
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ParamDecl:
			pm[armtemplate.JoinKey("parameters", d.Name)] = d.Pos
		case *VarDecl:
			walkPositions(pm, armtemplate.JoinKey("variables", d.Name), d.Pos, d.Value, 0)
		case *OutputDecl:
			walkPositions(pm, armtemplate.JoinKey("outputs", d.Name), d.Pos, nil, 0)
			walkPositions(pm, armtemplate.JoinKey(armtemplate.JoinKey("outputs", d.Name), "value"), startPos(d.Value), d.Value, 0)
		case *ResourceDecl:
			resource(d, d.Name)
		case *ModuleDecl:
			pm[armtemplate.JoinKey("resources", d.Name)] = d.Pos
		}
	}
	return pm
}

func walkPositions(pm map[string]Pos, path string, at Pos, v Expr, depth int) {
	pm[path] = at
	if depth > maxDepth {
		return
	}
	switch x := v.(type) {
	case *ObjectLit:
		for _, p := range x.Props {
			if p.Resource == nil {
				walkPositions(pm, armtemplate.JoinKey(path, p.Key), p.Pos, p.Value, depth+1)
			}
		}
	case *ArrayLit:
		for i, it := range x.Items {
			walkPositions(pm, armtemplate.JoinIndex(path, i), startPos(it), it, depth+1)
		}
	}
}

// startPos is where an expression's text starts (operators and member
// accesses are positioned at the operator).
func startPos(e Expr) Pos {
	for i := 0; i <= maxDepth; i++ {
		switch x := e.(type) {
		case *Member:
			e = x.X
		case *IndexExpr:
			e = x.X
		case *Binary:
			e = x.X
		case *Ternary:
			e = x.Cond
		case *Call:
			if x.Recv == nil {
				return x.Pos
			}
			e = x.Recv
		default:
			return e.exprPos()
		}
	}
	return e.exprPos()
}
