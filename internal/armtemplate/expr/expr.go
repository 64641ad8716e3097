// Package expr owns the syntax of the ARM template expression language: the
// text inside a "[...]" template string. It turns that text into an AST and
// nothing else; evaluation lives in package armtemplate.
//
// Grammar (whitespace between tokens is ignored):
//
//	expr    = primary { "." ident | "[" expr "]" }
//	primary = call | string | number
//	call    = ident [ "." ident ] "(" [ expr { "," expr } ] ")"
//	string  = "'" { char | "''" } "'"
//	number  = [ "-" ] digit { digit } [ "." digit { digit } ]
//
// Identifiers are letters, digits and underscores, starting with a letter or
// underscore. Function names are matched case-insensitively by the evaluator;
// the parser keeps them as written. true, false and null are functions
// (true(), false(), null()), as in ARM.
//
// Invariants: Parse never panics, its recursion depth is bounded by the
// caller's limit, and every error is a *SyntaxError carrying the byte offset
// into the expression text.
package expr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultMaxDepth bounds nesting (calls, property chains, indexes) when the
// caller passes 0.
const DefaultMaxDepth = 128

// ErrSyntax is wrapped by every *SyntaxError.
var ErrSyntax = errors.New("expression syntax error")

// SyntaxError is a located parse error.
type SyntaxError struct {
	Offset int // byte offset into the expression text (without the brackets)
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("at offset %d: %s", e.Offset, e.Msg)
}

// Unwrap lets errors.Is(err, ErrSyntax) match.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Node is an expression AST node. Start and End are byte offsets of the
// node's text in the parsed source, so callers can quote it.
type Node interface {
	Span() (start, end int)
}

// String is a string literal with its quotes removed and ” unescaped.
type String struct {
	Value      string
	Start, End int
}

// Number is an integer literal, or a decimal one when IsFloat.
type Number struct {
	Int        int64
	Float      float64
	IsFloat    bool
	Start, End int
}

// Call is a function call. Namespace is set for user-defined functions
// (ns.name(...)).
type Call struct {
	Namespace  string
	Name       string
	Args       []Node
	Start, End int
}

// Property is member access: Target.Name.
type Property struct {
	Target     Node
	Name       string
	Start, End int
}

// Index is Target[Index].
type Index struct {
	Target     Node
	Index      Node
	Start, End int
}

// Span implements Node.
func (n *String) Span() (int, int) { return n.Start, n.End }

// Span implements Node.
func (n *Number) Span() (int, int) { return n.Start, n.End }

// Span implements Node.
func (n *Call) Span() (int, int) { return n.Start, n.End }

// Span implements Node.
func (n *Property) Span() (int, int) { return n.Start, n.End }

// Span implements Node.
func (n *Index) Span() (int, int) { return n.Start, n.End }

// Classify tells what a JSON string in a template is. It returns the
// expression text (between the outer brackets) and true when s is an
// expression; otherwise the literal value (with a leading "[[" reduced to
// "[") and false.
func Classify(s string) (text string, isExpr bool) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if s[1] == '[' {
			return s[1:], false
		}
		return s[1 : len(s)-1], true
	}
	return s, false
}

// Parse parses expression text (without the surrounding brackets).
// maxDepth <= 0 means DefaultMaxDepth.
func Parse(src string, maxDepth int) (Node, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	p := &parser{src: src, maxDepth: maxDepth}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errf(p.pos, "empty expression")
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, p.errf(p.pos, "unexpected %q after the expression", p.src[p.pos])
	}
	return n, nil
}

type parser struct {
	src      string
	pos      int
	maxDepth int
}

func (p *parser) errf(off int, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) expr(depth int) (Node, error) {
	if depth > p.maxDepth {
		return nil, p.errf(p.pos, "expression nested deeper than %d", p.maxDepth)
	}
	start := p.pos
	n, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	chain := 0
	for {
		p.skipSpace()
		switch p.peek() {
		case '.':
			p.pos++
			p.skipSpace()
			name, err := p.ident()
			if err != nil {
				return nil, err
			}
			n = &Property{Target: n, Name: name, Start: start, End: p.pos}
		case '[':
			p.pos++
			p.skipSpace()
			idx, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.peek() != ']' {
				return nil, p.errf(p.pos, "expected ']' to close the index")
			}
			p.pos++
			n = &Index{Target: n, Index: idx, Start: start, End: p.pos}
		default:
			return n, nil
		}
		// A long accessor chain costs depth too: evaluation recurses on it.
		chain++
		if depth+chain > p.maxDepth {
			return nil, p.errf(p.pos, "expression nested deeper than %d", p.maxDepth)
		}
	}
}

func (p *parser) ident() (string, error) {
	start := p.pos
	if !isIdentStart(p.peek()) {
		if p.pos >= len(p.src) {
			return "", p.errf(p.pos, "expected a name, found the end of the expression")
		}
		return "", p.errf(p.pos, "expected a name, found %q", p.src[p.pos])
	}
	for p.pos < len(p.src) && isIdentPart(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos], nil
}

func (p *parser) primary(depth int) (Node, error) {
	start := p.pos
	c := p.peek()
	switch {
	case c == '\'':
		return p.str()
	case isDigit(c) || c == '-':
		return p.number()
	case isIdentStart(c):
		name, _ := p.ident()
		ns := ""
		p.skipSpace()
		if p.peek() == '.' {
			// ns.func(...): a user-defined function. Anything else after
			// an identifier is an error: bare identifiers are not values.
			save := p.pos
			p.pos++
			p.skipSpace()
			fn, err := p.ident()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.peek() != '(' {
				return nil, p.errf(save, "%q is not a function call; names must be followed by '('", name)
			}
			ns, name = name, fn
		}
		if p.peek() != '(' {
			return nil, p.errf(start, "%q is not a function call; names must be followed by '('", name)
		}
		p.pos++
		call := &Call{Namespace: ns, Name: name, Start: start}
		p.skipSpace()
		if p.peek() == ')' {
			p.pos++
			call.End = p.pos
			return call, nil
		}
		for {
			p.skipSpace()
			arg, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			call.Args = append(call.Args, arg)
			p.skipSpace()
			switch p.peek() {
			case ',':
				p.pos++
			case ')':
				p.pos++
				call.End = p.pos
				return call, nil
			default:
				if p.pos >= len(p.src) {
					return nil, p.errf(p.pos, "unterminated call to %s: expected ')'", name)
				}
				return nil, p.errf(p.pos, "expected ',' or ')' in the arguments of %s, found %q", name, p.src[p.pos])
			}
		}
	case p.pos >= len(p.src):
		return nil, p.errf(p.pos, "unexpected end of the expression")
	default:
		return nil, p.errf(p.pos, "unexpected %q", c)
	}
}

func (p *parser) str() (Node, error) {
	start := p.pos
	p.pos++ // opening quote
	var b strings.Builder
	for {
		i := strings.IndexByte(p.src[p.pos:], '\'')
		if i < 0 {
			return nil, p.errf(start, "unterminated string literal")
		}
		b.WriteString(p.src[p.pos : p.pos+i])
		p.pos += i + 1
		if p.peek() == '\'' { // '' is an escaped quote
			b.WriteByte('\'')
			p.pos++
			continue
		}
		return &String{Value: b.String(), Start: start, End: p.pos}, nil
	}
}

func (p *parser) number() (Node, error) {
	start := p.pos
	if p.peek() == '-' {
		p.pos++
	}
	if !isDigit(p.peek()) {
		return nil, p.errf(start, "expected a digit after '-'")
	}
	for isDigit(p.peek()) {
		p.pos++
	}
	isFloat := false
	if p.peek() == '.' && p.pos+1 < len(p.src) && isDigit(p.src[p.pos+1]) {
		isFloat = true
		p.pos++
		for isDigit(p.peek()) {
			p.pos++
		}
	}
	text := p.src[start:p.pos]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, p.errf(start, "invalid number %q", text)
		}
		return &Number{Float: f, IsFloat: true, Start: start, End: p.pos}, nil
	}
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return nil, p.errf(start, "integer %s out of range", text)
	}
	return &Number{Int: i, Start: start, End: p.pos}, nil
}
