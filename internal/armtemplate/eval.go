package armtemplate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moat-registry/moat/internal/armtemplate/expr"
)

// scope is what an expression can see besides parameters and variables: the
// copy loops it is inside of.
type scope struct {
	// loops maps a lower-cased loop name to the current index; "" is the
	// innermost resource, output or variable loop, which copyIndex() without
	// a name refers to. An index of -1 means the index is unknown (a copy
	// count that could not be determined in check mode).
	// Nested child resources inherit their parent instance's loops.
	loops map[string]int
}

func (s *scope) with(name string, i int, asDefault bool) *scope {
	n := &scope{loops: make(map[string]int, len(s.loops)+2)}
	for k, v := range s.loops {
		n.loops[k] = v
	}
	if name != "" {
		n.loops[strings.ToLower(name)] = i
	}
	if asDefault {
		n.loops[""] = i
	}
	return n
}

var emptyScope = &scope{loops: map[string]int{}}

var errWork = fmt.Errorf("%w: the template needs more evaluation work than allowed (Options.MaxWork)", ErrLimit)

// ectx is the context of evaluating one template string.
type ectx struct {
	ev    *evaluator
	sc    *scope
	src   string // expression text, without the brackets
	path  string
	depth int
}

func (c *ectx) text(n expr.Node) string {
	s, e := n.Span()
	if s < 0 || e > len(c.src) || s > e {
		return c.src
	}
	return c.src[s:e]
}

func (c *ectx) unknown(n expr.Node, reason string) *Unknown {
	return &Unknown{Expr: c.text(n), Path: c.path, Pos: c.ev.pos(c.path), Reason: reason}
}

// evalString evaluates one JSON string of the template: an expression when it
// is bracketed, else a literal (with "[[" unescaped).
func (ev *evaluator) evalString(s, path string, sc *scope) (any, error) {
	text, isExpr := expr.Classify(s)
	if !isExpr {
		return text, nil
	}
	node, err := ev.parse(text)
	if err != nil {
		return nil, ev.errAt(path, s, err)
	}
	c := &ectx{ev: ev, sc: sc, src: text, path: path}
	v, err := c.eval(node)
	if err != nil {
		return nil, ev.errAt(path, s, err)
	}
	return v, nil
}

func (ev *evaluator) parse(text string) (expr.Node, error) {
	if n, ok := ev.parsed[text]; ok {
		return n, nil
	}
	n, err := expr.Parse(text, ev.opts.MaxExprDepth)
	if err != nil {
		return nil, err
	}
	ev.parsed[text] = n
	return n, nil
}

func (ev *evaluator) pos(path string) Pos {
	if path == "" || ev.tpl == nil || ev.tpl.Positions == nil {
		return Pos{}
	}
	return ev.tpl.Positions.Of(path)
}

// errAt locates err at path unless it already carries a location.
func (ev *evaluator) errAt(path, exprText string, err error) error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return &Error{Path: path, Expr: exprText, Pos: ev.pos(path), Err: err}
}

func (c *ectx) eval(n expr.Node) (any, error) {
	c.depth++
	defer func() { c.depth-- }()
	if !c.ev.work.spend(1) {
		return nil, errWork
	}
	if c.depth > c.ev.opts.MaxExprDepth {
		return nil, fmt.Errorf("%w: expression nested deeper than %d", ErrLimit, c.ev.opts.MaxExprDepth)
	}
	switch t := n.(type) {
	case *expr.String:
		return t.Value, nil
	case *expr.Number:
		if t.IsFloat {
			return t.Float, nil
		}
		return t.Int, nil
	case *expr.Call:
		return c.call(t)
	case *expr.Property:
		target, err := c.eval(t.Target)
		if err != nil {
			return nil, err
		}
		return c.member(t, target, t.Name)
	case *expr.Index:
		target, err := c.eval(t.Target)
		if err != nil {
			return nil, err
		}
		idx, err := c.eval(t.Index)
		if err != nil {
			return nil, err
		}
		if u, ok := idx.(*Unknown); ok {
			return u, nil
		}
		switch k := idx.(type) {
		case string:
			return c.member(t, target, k)
		case int64:
			switch a := target.(type) {
			case *Unknown:
				return a, nil
			case []any:
				if k < 0 || k >= int64(len(a)) {
					return nil, fmt.Errorf("%w: index %d out of range for an array of length %d in %s", ErrInvalidArgument, k, len(a), c.text(t))
				}
				return a[k], nil
			default:
				return nil, fmt.Errorf("%w: cannot index %s with an integer in %s", ErrType, typeName(target), c.text(t))
			}
		default:
			return nil, fmt.Errorf("%w: index must be a string or integer, got %s in %s", ErrType, typeName(idx), c.text(t))
		}
	}
	return nil, fmt.Errorf("%w: unsupported expression node %T", ErrInvalidTemplate, n)
}

func (c *ectx) member(n expr.Node, target any, name string) (any, error) {
	switch o := target.(type) {
	case *Unknown:
		return o, nil
	case map[string]any:
		v, ok := lookupKey(o, name)
		if !ok {
			keys := make([]string, 0, len(o))
			for k := range o {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("%w: the object has no property %q (has: %s) in %s", ErrInvalidArgument, name, strings.Join(keys, ", "), c.text(n))
		}
		return v, nil
	default:
		return nil, fmt.Errorf("%w: cannot read property %q of %s in %s", ErrType, name, typeName(target), c.text(n))
	}
}

func (c *ectx) call(n *expr.Call) (any, error) {
	if n.Namespace != "" {
		return nil, fmt.Errorf("%w: %s.%s (user-defined functions are not supported)", ErrUnknownFunction, n.Namespace, n.Name)
	}
	lname := strings.ToLower(n.Name)
	def, ok := builtins[lname]
	if !ok {
		if strings.HasPrefix(lname, "list") {
			// listKeys, listCredentials, listSecrets, ...: answers from a
			// live resource provider.
			return c.unknown(n, n.Name+"() needs a live deployment"), nil
		}
		return nil, fmt.Errorf("%w: %q", ErrUnknownFunction, n.Name)
	}
	if len(n.Args) < def.min || (def.max >= 0 && len(n.Args) > def.max) {
		return nil, fmt.Errorf("%w: %s expects %s, got %d", ErrArity, n.Name, arityText(def.min, def.max), len(n.Args))
	}
	if def.lazy != nil {
		return def.lazy(c, n)
	}
	args := make([]any, len(n.Args))
	for i, a := range n.Args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		if u, ok := v.(*Unknown); ok && !def.unknownOK {
			// Unknown in, Unknown out: the cause (reference(), a missing
			// parameter) is what a caller needs to quote.
			return u, nil
		}
		args[i] = v
	}
	v, err := def.fn(c, n, args)
	if err == nil && c.ev.work.exhausted() {
		err = errWork
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return v, nil
}

func arityText(lo, hi int) string {
	switch {
	case hi < 0:
		return fmt.Sprintf("at least %d argument(s)", lo)
	case lo == hi:
		return fmt.Sprintf("%d argument(s)", lo)
	default:
		return fmt.Sprintf("%d to %d arguments", lo, hi)
	}
}
