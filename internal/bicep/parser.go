package bicep

import (
	"fmt"
	"strconv"
	"strings"
)

// maxDepth bounds the nesting of expressions, objects, arrays, types and
// interpolations, so hostile input cannot exhaust the stack.
const maxDepth = 128

type parser struct {
	file  string
	toks  []Token
	i     int
	depth int
}

// Parse lexes and parses a Bicep file. Errors are *Error values with the
// file name, line and column.
func Parse(src []byte, file string) (*File, error) {
	toks, err := Lex(src, file)
	if err != nil {
		return nil, err
	}
	p := &parser{file: file, toks: toks}
	return p.parseFile()
}

func (p *parser) peek() Token { return p.toks[p.i] }

func (p *parser) peekAt(n int) Token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() Token {
	t := p.toks[p.i]
	if t.Kind != EOF {
		p.i++
	}
	return t
}

func (p *parser) skipNL() {
	for p.peek().Kind == Newline {
		p.i++
	}
}

func (p *parser) errf(pos Pos, format string, args ...any) error {
	return &Error{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func describe(t Token) string {
	switch t.Kind {
	case IdentTok:
		return fmt.Sprintf("identifier %q", t.Text)
	case IntTok:
		return "integer " + t.Text
	case EOF:
		return "end of file"
	}
	return t.Kind.String()
}

// unexpected reports t where what was wanted.
func (p *parser) unexpected(t Token, what string) error {
	if t.Kind == EOF {
		return p.errf(t.Pos, "unexpected end of file, expected %s", what)
	}
	return p.errf(t.Pos, "unexpected %s, expected %s", describe(t), what)
}

func (p *parser) expect(k Kind, what string) (Token, error) {
	t := p.peek()
	if t.Kind != k {
		return t, p.unexpected(t, what)
	}
	return p.next(), nil
}

func (p *parser) expectIdent(what string) (Token, error) { return p.expect(IdentTok, what) }

func (p *parser) isKeyword(s string) bool {
	t := p.peek()
	return t.Kind == IdentTok && t.Text == s
}

func (p *parser) enter(pos Pos) error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf(pos, "nested more than %d deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func (p *parser) parseFile() (*File, error) {
	f := &File{Name: p.file}
	for {
		p.skipNL()
		if p.peek().Kind == EOF {
			return f, nil
		}
		decs, err := p.decorators()
		if err != nil {
			return nil, err
		}
		d, err := p.decl(decs)
		if err != nil {
			return nil, err
		}
		f.Decls = append(f.Decls, d)
		if t := p.peek(); t.Kind != Newline && t.Kind != EOF {
			return nil, p.unexpected(t, "a newline after the declaration")
		}
	}
}

func (p *parser) decorators() ([]*Decorator, error) {
	var out []*Decorator
	for p.peek().Kind == At {
		at := p.next()
		d := &Decorator{Pos: at.Pos}
		name, err := p.expectIdent("a decorator name")
		if err != nil {
			return nil, err
		}
		d.Name = name.Text
		if p.peek().Kind == Dot {
			p.next()
			n2, err := p.expectIdent("a decorator name")
			if err != nil {
				return nil, err
			}
			d.Namespace, d.Name = d.Name, n2.Text
		}
		if p.peek().Kind != LParen {
			return nil, p.unexpected(p.peek(), "'(' after the decorator name")
		}
		args, err := p.args()
		if err != nil {
			return nil, err
		}
		d.Args = args
		out = append(out, d)
		p.skipNL()
	}
	return out, nil
}

func (p *parser) decl(decs []*Decorator) (Decl, error) {
	t := p.peek()
	if t.Kind != IdentTok {
		return nil, p.unexpected(t, "a declaration (param, var, resource, module, output, ...)")
	}
	noDecorators := func() error {
		if len(decs) > 0 {
			return p.errf(decs[0].Pos, "decorators are not allowed on %s", t.Text)
		}
		return nil
	}
	switch t.Text {
	case "param":
		p.next()
		name, err := p.expectIdent("a parameter name")
		if err != nil {
			return nil, err
		}
		typ, err := p.typeExpr()
		if err != nil {
			return nil, err
		}
		d := &ParamDecl{Pos: t.Pos, Decorators: decs, Name: name.Text, Type: typ}
		if p.peek().Kind == Assign {
			p.next()
			if d.Default, err = p.expr(); err != nil {
				return nil, err
			}
		}
		return d, nil
	case "var":
		p.next()
		name, err := p.expectIdent("a variable name")
		if err != nil {
			return nil, err
		}
		if p.peek().Kind != Assign {
			if _, err := p.typeExpr(); err != nil {
				return nil, err
			}
		}
		if _, err := p.expect(Assign, "'='"); err != nil {
			return nil, err
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &VarDecl{Pos: t.Pos, Decorators: decs, Name: name.Text, Value: v}, nil
	case "resource":
		p.next()
		return p.resource(t.Pos, decs)
	case "module":
		p.next()
		name, err := p.expectIdent("a module name")
		if err != nil {
			return nil, err
		}
		path, err := p.expect(StringComplete, "the module path as a plain string")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(Assign, "'='"); err != nil {
			return nil, err
		}
		body, err := p.declBody()
		if err != nil {
			return nil, err
		}
		return &ModuleDecl{Pos: t.Pos, Decorators: decs, Name: name.Text, Path: path.Text, Body: body}, nil
	case "output":
		p.next()
		name, err := p.expectIdent("an output name")
		if err != nil {
			return nil, err
		}
		typ, err := p.typeExpr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(Assign, "'='"); err != nil {
			return nil, err
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &OutputDecl{Pos: t.Pos, Decorators: decs, Name: name.Text, Type: typ, Value: v}, nil
	case "targetScope":
		if err := noDecorators(); err != nil {
			return nil, err
		}
		p.next()
		if _, err := p.expect(Assign, "'='"); err != nil {
			return nil, err
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &TargetScopeDecl{Pos: t.Pos, Value: v}, nil
	case "metadata":
		p.next()
		name, err := p.expectIdent("a metadata name")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(Assign, "'='"); err != nil {
			return nil, err
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &MetadataDecl{Pos: t.Pos, Name: name.Text, Value: v}, nil
	case "type":
		p.next()
		name, err := p.expectIdent("a type name")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(Assign, "'='"); err != nil {
			return nil, err
		}
		typ, err := p.typeExpr()
		if err != nil {
			return nil, err
		}
		return &TypeDecl{Pos: t.Pos, Decorators: decs, Name: name.Text, Type: typ}, nil
	case "import", "provider", "extension":
		p.next()
		if err := p.skipStatement(); err != nil {
			return nil, err
		}
		return &ImportDecl{Pos: t.Pos}, nil
	case "func":
		p.next()
		name, err := p.expectIdent("a function name")
		if err != nil {
			return nil, err
		}
		if err := p.skipStatement(); err != nil {
			return nil, err
		}
		return &FuncDecl{Pos: t.Pos, Name: name.Text}, nil
	}
	return nil, p.unexpected(t, "a declaration (param, var, resource, module, output, ...)")
}

// skipStatement skips to the end of the line, over balanced brackets.
func (p *parser) skipStatement() error {
	var open []Token
	for {
		t := p.peek()
		switch t.Kind {
		case EOF:
			if len(open) > 0 {
				return p.unexpected(t, "a closing bracket for the one at "+fmt.Sprintf("%d:%d", open[len(open)-1].Pos.Line, open[len(open)-1].Pos.Col))
			}
			return nil
		case Newline:
			if len(open) == 0 {
				return nil
			}
		case LParen, LBrack, LBrace:
			open = append(open, t)
			if len(open) > maxDepth {
				return p.errf(t.Pos, "nested more than %d deep", maxDepth)
			}
		case RParen, RBrack, RBrace:
			if len(open) == 0 {
				return p.unexpected(t, "a newline")
			}
			open = open[:len(open)-1]
		}
		p.next()
	}
}

func (p *parser) resource(pos Pos, decs []*Decorator) (*ResourceDecl, error) {
	name, err := p.expectIdent("a resource name")
	if err != nil {
		return nil, err
	}
	typ, err := p.expect(StringComplete, "the resource type 'Namespace/type@apiVersion'")
	if err != nil {
		return nil, err
	}
	d := &ResourceDecl{Pos: pos, Decorators: decs, Name: name.Text}
	at := strings.LastIndexByte(typ.Text, '@')
	if at <= 0 || at == len(typ.Text)-1 {
		return nil, p.errf(typ.Pos, "resource type %q must be 'type@apiVersion'", typ.Text)
	}
	d.Type, d.APIVersion = typ.Text[:at], typ.Text[at+1:]
	if p.isKeyword("existing") {
		p.next()
		d.Existing = true
	}
	if _, err := p.expect(Assign, "'='"); err != nil {
		return nil, err
	}
	if d.Body, err = p.declBody(); err != nil {
		return nil, err
	}
	return d, nil
}

// declBody parses a resource or module body: an object, if (c) {...} or a
// [for ...] loop over one of those.
func (p *parser) declBody() (Expr, error) {
	t := p.peek()
	switch {
	case t.Kind == LBrace:
		return p.object()
	case t.Kind == IdentTok && t.Text == "if":
		return p.ifBody()
	case t.Kind == LBrack && p.peekAt(1).Kind == IdentTok && p.peekAt(1).Text == "for":
		return p.array()
	}
	return nil, p.unexpected(t, "'{', 'if' or '[for'")
}

func (p *parser) ifBody() (*IfBody, error) {
	t := p.next() // if
	if _, err := p.expect(LParen, "'(' after if"); err != nil {
		return nil, err
	}
	p.skipNL()
	c, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.skipNL()
	if _, err := p.expect(RParen, "')'"); err != nil {
		return nil, err
	}
	if p.peek().Kind != LBrace {
		return nil, p.unexpected(p.peek(), "'{' after the condition")
	}
	body, err := p.object()
	if err != nil {
		return nil, err
	}
	return &IfBody{Pos: t.Pos, Cond: c, Body: body}, nil
}

// typeExpr parses a type; lowering uses only its outline.
func (p *parser) typeExpr() (*TypeExpr, error) {
	start := p.peek().Pos
	if err := p.enter(start); err != nil {
		return nil, err
	}
	defer p.leave()
	t, err := p.typePostfix()
	if err != nil {
		return nil, err
	}
	if p.peek().Kind != Pipe {
		return t, nil
	}
	u := &TypeExpr{Pos: start, Union: []*TypeExpr{t}}
	for p.peek().Kind == Pipe {
		p.next()
		p.skipNL()
		m, err := p.typePostfix()
		if err != nil {
			return nil, err
		}
		u.Union = append(u.Union, m)
	}
	return u, nil
}

func (p *parser) typePostfix() (*TypeExpr, error) {
	t, err := p.typePrimary()
	if err != nil {
		return nil, err
	}
	for {
		switch p.peek().Kind {
		case LBrack:
			if p.peekAt(1).Kind != RBrack {
				return t, nil
			}
			p.next()
			p.next()
			t = &TypeExpr{Pos: t.Pos, Array: true}
		case Question:
			p.next()
			t.Nullable = true
		case Dot:
			if t.Name == "" {
				return nil, p.unexpected(p.peek(), "a type")
			}
			p.next()
			n, err := p.expectIdent("a type name")
			if err != nil {
				return nil, err
			}
			t.Name = n.Text // sys.string is string
		default:
			return t, nil
		}
	}
}

func (p *parser) typePrimary() (*TypeExpr, error) {
	t := p.peek()
	switch t.Kind {
	case IdentTok:
		p.next()
		switch t.Text {
		case "true", "false":
			return &TypeExpr{Pos: t.Pos, Literals: []Expr{&BoolLit{Pos: t.Pos, Value: t.Text == "true"}}}, nil
		case "resource":
			if p.peek().Kind == StringComplete {
				p.next()
				return &TypeExpr{Pos: t.Pos, Resource: true}, nil
			}
		}
		return &TypeExpr{Pos: t.Pos, Name: t.Text}, nil
	case StringComplete, IntTok, Minus:
		e, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &TypeExpr{Pos: t.Pos, Literals: []Expr{e}}, nil
	case LParen:
		p.next()
		p.skipNL()
		in, err := p.typeExpr()
		if err != nil {
			return nil, err
		}
		p.skipNL()
		if _, err := p.expect(RParen, "')'"); err != nil {
			return nil, err
		}
		return in, nil
	case LBrace:
		p.next()
		if err := p.typeMembers(RBrace, true); err != nil {
			return nil, err
		}
		return &TypeExpr{Pos: t.Pos, Object: true}, nil
	case LBrack:
		p.next()
		if err := p.typeMembers(RBrack, false); err != nil {
			return nil, err
		}
		return &TypeExpr{Pos: t.Pos, Array: true}, nil
	}
	return nil, p.unexpected(t, "a type")
}

// typeMembers parses the members of an object type (key: type) or a tuple
// type up to the closing token.
func (p *parser) typeMembers(closing Kind, keyed bool) error {
	for {
		p.skipNL()
		if p.peek().Kind == closing {
			p.next()
			return nil
		}
		if _, err := p.decorators(); err != nil {
			return err
		}
		if keyed {
			k := p.next()
			if k.Kind != IdentTok && k.Kind != StringComplete && k.Kind != Star {
				return p.unexpected(k, "a property name")
			}
			if p.peek().Kind == Question {
				p.next()
			}
			if _, err := p.expect(Colon, "':'"); err != nil {
				return err
			}
		}
		if _, err := p.typeExpr(); err != nil {
			return err
		}
		if err := p.separator(closing); err != nil {
			return err
		}
	}
}

// separator consumes what ends an object property or array item: a comma,
// newlines, or nothing before the closing token.
func (p *parser) separator(closing Kind) error {
	switch p.peek().Kind {
	case Comma:
		p.next()
	case Newline:
	case closing:
		return nil
	default:
		return p.unexpected(p.peek(), fmt.Sprintf("a newline, ',' or %s", closing))
	}
	p.skipNL()
	return nil
}

// Expressions, lowest precedence first: ?: then ?? || && equality
// comparison additive multiplicative unary postfix.

func (p *parser) expr() (Expr, error) {
	start := p.peek().Pos
	if err := p.enter(start); err != nil {
		return nil, err
	}
	defer p.leave()
	c, err := p.binary(0)
	if err != nil {
		return nil, err
	}
	if p.peek().Kind != Question {
		return c, nil
	}
	q := p.next()
	p.skipNL()
	a, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.skipNL()
	if _, err := p.expect(Colon, "':' of the ternary"); err != nil {
		return nil, err
	}
	p.skipNL()
	b, err := p.expr()
	if err != nil {
		return nil, err
	}
	return &Ternary{Pos: q.Pos, Cond: c, A: a, B: b}, nil
}

var levels = [][]Kind{
	{Coalesce},
	{Or},
	{And},
	{Eq, NotEq, EqI, NotEqI},
	{Less, LessEq, Greater, GreaterEq},
	{Plus, Minus},
	{Star, Slash, Percent},
}

func (p *parser) binary(level int) (Expr, error) {
	if level == len(levels) {
		return p.unary()
	}
	x, err := p.binary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		found := false
		for _, k := range levels[level] {
			if t.Kind == k {
				found = true
			}
		}
		if !found {
			return x, nil
		}
		p.next()
		p.skipNL()
		y, err := p.binary(level + 1)
		if err != nil {
			return nil, err
		}
		x = &Binary{Pos: t.Pos, Op: t.Kind, X: x, Y: y}
	}
}

func (p *parser) unary() (Expr, error) {
	t := p.peek()
	if t.Kind == Not || t.Kind == Minus {
		p.next()
		if err := p.enter(t.Pos); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &Unary{Pos: t.Pos, Op: t.Kind, X: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (Expr, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch t.Kind {
		case Dot, SafeDot:
			p.next()
			n, err := p.expectIdent("a property name")
			if err != nil {
				return nil, err
			}
			if t.Kind == Dot && p.peek().Kind == LParen {
				args, err := p.args()
				if err != nil {
					return nil, err
				}
				c := &Call{Pos: n.Pos, Name: n.Text, Args: args}
				if id, ok := x.(*Ident); ok && (id.Name == "sys" || id.Name == "az") {
					c.Namespace = id.Name
				} else {
					c.Recv = x
				}
				x = c
				continue
			}
			x = &Member{Pos: t.Pos, X: x, Name: n.Text, Safe: t.Kind == SafeDot}
		case LBrack:
			p.next()
			p.skipNL()
			i, err := p.expr()
			if err != nil {
				return nil, err
			}
			p.skipNL()
			if _, err := p.expect(RBrack, "']'"); err != nil {
				return nil, err
			}
			x = &IndexExpr{Pos: t.Pos, X: x, Index: i}
		case DoubleColon:
			id, ok := x.(*Ident)
			if !ok {
				return nil, p.errf(t.Pos, "'::' must follow a resource name")
			}
			p.next()
			n, err := p.expectIdent("a nested resource name")
			if err != nil {
				return nil, err
			}
			x = &Ident{Pos: id.Pos, Name: id.Name + "::" + n.Text}
		default:
			return x, nil
		}
		if err := p.enter(t.Pos); err != nil {
			return nil, err
		}
		defer p.leave()
	}
}

func (p *parser) args() ([]Expr, error) {
	open, err := p.expect(LParen, "'('")
	if err != nil {
		return nil, err
	}
	var args []Expr
	p.skipNL()
	if p.peek().Kind == RParen {
		p.next()
		return args, nil
	}
	for {
		p.skipNL()
		a, err := p.expr()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		p.skipNL()
		t := p.next()
		switch t.Kind {
		case Comma:
			continue
		case RParen:
			return args, nil
		}
		if t.Kind == EOF {
			return nil, p.errf(t.Pos, "unexpected end of file, expected ')' for the '(' at %d:%d", open.Pos.Line, open.Pos.Col)
		}
		return nil, p.unexpected(t, "',' or ')'")
	}
}

func (p *parser) primary() (Expr, error) {
	t := p.peek()
	switch t.Kind {
	case IntTok:
		p.next()
		v, err := strconv.ParseInt(t.Text, 10, 64)
		if err != nil {
			return nil, p.errf(t.Pos, "integer %s is out of range", t.Text)
		}
		return &IntLit{Pos: t.Pos, Value: v}, nil
	case StringComplete, MultilineString:
		p.next()
		return &StringLit{Pos: t.Pos, Parts: []string{t.Text}}, nil
	case StringLeft:
		return p.interpolated()
	case IdentTok:
		p.next()
		switch t.Text {
		case "true", "false":
			return &BoolLit{Pos: t.Pos, Value: t.Text == "true"}, nil
		case "null":
			return &NullLit{Pos: t.Pos}, nil
		}
		if p.peek().Kind == LParen {
			args, err := p.args()
			if err != nil {
				return nil, err
			}
			return &Call{Pos: t.Pos, Name: t.Text, Args: args}, nil
		}
		if p.peek().Kind == Arrow {
			return nil, p.errf(t.Pos, "lambda expressions are not supported")
		}
		return &Ident{Pos: t.Pos, Name: t.Text}, nil
	case LParen:
		p.next()
		p.skipNL()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		p.skipNL()
		if p.peek().Kind == Comma {
			return nil, p.errf(t.Pos, "lambda expressions are not supported")
		}
		if _, err := p.expect(RParen, "')'"); err != nil {
			return nil, err
		}
		if p.peek().Kind == Arrow {
			return nil, p.errf(t.Pos, "lambda expressions are not supported")
		}
		return x, nil
	case LBrace:
		return p.object()
	case LBrack:
		return p.array()
	}
	return nil, p.unexpected(t, "an expression")
}

func (p *parser) interpolated() (Expr, error) {
	first := p.next()
	s := &StringLit{Pos: first.Pos, Parts: []string{first.Text}}
	for {
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		s.Exprs = append(s.Exprs, e)
		t := p.next()
		switch t.Kind {
		case StringMiddle:
			s.Parts = append(s.Parts, t.Text)
		case StringRight:
			s.Parts = append(s.Parts, t.Text)
			return s, nil
		default:
			return nil, p.unexpected(t, "'}' closing the interpolation")
		}
	}
}

func (p *parser) object() (*ObjectLit, error) {
	open := p.next()
	if err := p.enter(open.Pos); err != nil {
		return nil, err
	}
	defer p.leave()
	o := &ObjectLit{Pos: open.Pos}
	p.skipNL()
	for {
		t := p.peek()
		if t.Kind == RBrace {
			p.next()
			return o, nil
		}
		if t.Kind == EOF {
			return nil, p.errf(t.Pos, "unexpected end of file, expected '}' for the '{' at %d:%d", open.Pos.Line, open.Pos.Col)
		}
		decs, err := p.decorators()
		if err != nil {
			return nil, err
		}
		t = p.peek()
		if t.Kind == IdentTok && t.Text == "resource" && p.peekAt(1).Kind == IdentTok {
			p.next()
			r, err := p.resource(t.Pos, decs)
			if err != nil {
				return nil, err
			}
			o.Props = append(o.Props, &Prop{Pos: t.Pos, Resource: r})
		} else {
			if len(decs) > 0 {
				return nil, p.errf(decs[0].Pos, "decorators are not allowed on object properties")
			}
			if t.Kind != IdentTok && t.Kind != StringComplete {
				return nil, p.unexpected(t, "a property name or '}'")
			}
			p.next()
			if _, err := p.expect(Colon, "':' after the property name"); err != nil {
				return nil, err
			}
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			o.Props = append(o.Props, &Prop{Pos: t.Pos, Key: t.Text, Value: v})
		}
		if err := p.separator(RBrace); err != nil {
			return nil, err
		}
	}
}

func (p *parser) array() (Expr, error) {
	open := p.next()
	if err := p.enter(open.Pos); err != nil {
		return nil, err
	}
	defer p.leave()
	p.skipNL()
	if p.isKeyword("for") {
		return p.forExpr(open)
	}
	a := &ArrayLit{Pos: open.Pos}
	for {
		t := p.peek()
		if t.Kind == RBrack {
			p.next()
			return a, nil
		}
		if t.Kind == EOF {
			return nil, p.errf(t.Pos, "unexpected end of file, expected ']' for the '[' at %d:%d", open.Pos.Line, open.Pos.Col)
		}
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		a.Items = append(a.Items, v)
		if err := p.separator(RBrack); err != nil {
			return nil, err
		}
	}
}

func (p *parser) forExpr(open Token) (*ForExpr, error) {
	p.next() // for
	f := &ForExpr{Pos: open.Pos}
	if p.peek().Kind == LParen {
		p.next()
		it, err := p.expectIdent("the item variable")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(Comma, "','"); err != nil {
			return nil, err
		}
		ix, err := p.expectIdent("the index variable")
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(RParen, "')'"); err != nil {
			return nil, err
		}
		f.Item, f.Index = it.Text, ix.Text
	} else {
		it, err := p.expectIdent("the item variable")
		if err != nil {
			return nil, err
		}
		f.Item = it.Text
	}
	if !p.isKeyword("in") {
		return nil, p.unexpected(p.peek(), "'in'")
	}
	p.next()
	coll, err := p.expr()
	if err != nil {
		return nil, err
	}
	f.Coll = coll
	if _, err := p.expect(Colon, "':' after the loop collection"); err != nil {
		return nil, err
	}
	p.skipNL()
	if p.isKeyword("if") && p.peekAt(1).Kind == LParen {
		if f.Body, err = p.ifBody(); err != nil {
			return nil, err
		}
	} else if f.Body, err = p.expr(); err != nil {
		return nil, err
	}
	p.skipNL()
	if _, err := p.expect(RBrack, "']' closing the loop"); err != nil {
		return nil, err
	}
	return f, nil
}
