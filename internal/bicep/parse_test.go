package bicep

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func kinds(toks []Token) []Kind {
	out := make([]Kind, 0, len(toks))
	for _, t := range toks {
		out = append(out, t.Kind)
	}
	return out
}

func TestLex(t *testing.T) {
	tests := []struct {
		src   string
		kinds []Kind
		texts []string // texts of the string/ident tokens, in order, when set
	}{
		{"param x string", []Kind{IdentTok, IdentTok, IdentTok, EOF}, []string{"param", "x", "string", ""}},
		{"a // comment\nb", []Kind{IdentTok, Newline, IdentTok, EOF}, nil},
		{"a /* multi\nline */ b", []Kind{IdentTok, IdentTok, EOF}, nil},
		{"'it\\'s \\${x} \\u{41}'", []Kind{StringComplete, EOF}, []string{"it's ${x} A", ""}},
		{"'a${b}c${d}e'", []Kind{StringLeft, IdentTok, StringMiddle, IdentTok, StringRight, EOF}, []string{"a", "b", "c", "d", "e", ""}},
		{"'${ {a: 1}.a }'", []Kind{StringLeft, LBrace, IdentTok, Colon, IntTok, RBrace, Dot, IdentTok, StringRight, EOF}, nil},
		{"'''\nmulti 'quoted'\n'''", []Kind{MultilineString, EOF}, []string{"multi 'quoted'\n", ""}},
		{"a.?b ?? c::d", []Kind{IdentTok, SafeDot, IdentTok, Coalesce, IdentTok, DoubleColon, IdentTok, EOF}, nil},
		{"<= >= == != =~ !~ && || ! - + * / % < > = ? : @ | =>", []Kind{LessEq, GreaterEq, Eq, NotEq, EqI, NotEqI, And, Or, Not, Minus, Plus, Star, Slash, Percent, Less, Greater, Assign, Question, Colon, At, Pipe, Arrow, EOF}, nil},
		{"\uFEFF42", []Kind{IntTok, EOF}, []string{"42", ""}},
	}
	for _, tt := range tests {
		toks, err := Lex([]byte(tt.src), "t.bicep")
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		if got := kinds(toks); !reflect.DeepEqual(got, tt.kinds) {
			t.Errorf("%q: kinds %v, want %v", tt.src, got, tt.kinds)
		}
		if tt.texts != nil {
			var got []string
			for _, tk := range toks {
				got = append(got, tk.Text)
			}
			if !reflect.DeepEqual(got, tt.texts) {
				t.Errorf("%q: texts %q, want %q", tt.src, got, tt.texts)
			}
		}
	}
}

func TestLexPositions(t *testing.T) {
	toks, err := Lex([]byte("a\n  /* x\n */ b 'c'"), "t.bicep")
	if err != nil {
		t.Fatal(err)
	}
	want := []Pos{{1, 1}, {1, 2}, {3, 5}, {3, 7}, {3, 10}}
	for i, p := range want {
		if toks[i].Pos != p {
			t.Errorf("token %d (%v) at %v, want %v", i, toks[i].Kind, toks[i].Pos, p)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	deep := "var x = " + strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500) + "\n"
	deepObj := "var x = " + strings.Repeat("{a:", 300) + "1" + strings.Repeat("}", 300) + "\n"
	deepInterp := "var x = " + strings.Repeat("'${", 300) + "1" + strings.Repeat("}'", 300) + "\n"
	deepNot := "var x = " + strings.Repeat("!", 1000) + "true\n"
	tests := []struct {
		name, src, want string
	}{
		{"unterminated string", "var x = 'abc\n", "t.bicep:1:9: unterminated string"},
		{"unterminated string at EOF", "var x = 'abc", "t.bicep:1:9: unterminated string"},
		{"unterminated multi-line", "var x = '''abc\n", "t.bicep:1:9: unterminated multi-line string"},
		{"unterminated interpolation", "var x = '${a", "unterminated string interpolation"},
		{"unterminated interpolation newline", "var x = 'a${b\nc'", "unterminated string"},
		{"unterminated comment", "/* never", "t.bicep:1:1: unterminated /* comment"},
		{"bad token", "var x = 1 # 2", "t.bicep:1:11: unexpected character '#'"},
		{"bad escape", "var x = '\\q'", "t.bicep:1:10: unknown escape sequence"},
		{"decimal", "var x = 1.5", "decimal numbers are not supported"},
		{"unexpected EOF in object", "var x = {\n  a: 1\n", "t.bicep:3:1: unexpected end of file, expected '}' for the '{' at 1:9"},
		{"unexpected EOF after =", "var x =", "t.bicep:1:8: unexpected end of file, expected an expression"},
		{"unexpected EOF in call", "var x = f(1,", "unexpected end of file"},
		{"missing newline", "var x = 1 var y = 2", "t.bicep:1:11: unexpected identifier \"var\", expected a newline after the declaration"},
		{"bad declaration", "x = 1", "t.bicep:1:1: unexpected identifier \"x\", expected a declaration"},
		{"resource without api", "resource a 'A.B/c' = {}", "t.bicep:1:12: resource type \"A.B/c\" must be 'type@apiVersion'"},
		{"lambda", "var x = map([1], i => i)", "lambda expressions are not supported"},
		{"int overflow", "var x = 99999999999999999999", "out of range"},
		{"deep parens", deep, "nested more than 128 deep"},
		{"deep objects", deepObj, "nested more than 128 deep"},
		{"deep interpolation", deepInterp, "nested more than 128 deep"},
		{"deep not", deepNot, "nested more than 128 deep"},
		{"missing colon", "var x = {\n  a 1\n}", "t.bicep:2:5: unexpected integer 1, expected ':' after the property name"},
		{"decorator on a property", "var x = {\n  @description('d')\n  a: 1\n}", "t.bicep:2:3: decorators are not allowed on object properties"},
		{"ternary without colon", "var x = a ? b", "expected ':' of the ternary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "t.bicep")
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseDeclarations(t *testing.T) {
	src := `
metadata info = 'test'
targetScope = 'resourceGroup'
import * as types from 'types.bicep'
import {
  a
  b
} from 'x.bicep'

@sys.description('the name')
@secure()
param name string
param count int = 2
param tags object = {
  env: 'prod'
  'odd key': true
}
type pair = {
  @description('first')
  a: string
  b: int?
}
var list = ['a', 'b'
  'c']
resource acr 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: name
}
resource r 'A.B/c@2020-01-01' = [for (x, i) in list: if (i > 0) {
  name: x
  resource child 'd@2020-01-01' = {
    name: 'c'
  }
}]
module m './m.bicep' = if (count > 1) {
  name: 'm'
}
output o string = acr.properties.loginServer
`
	f, err := Parse([]byte(src), "d.bicep")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range f.Decls {
		got = append(got, reflect.TypeOf(d).Elem().Name())
	}
	want := []string{"MetadataDecl", "TargetScopeDecl", "ImportDecl", "ImportDecl", "ParamDecl", "ParamDecl", "ParamDecl", "TypeDecl", "VarDecl", "ResourceDecl", "ResourceDecl", "ModuleDecl", "OutputDecl"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decls %v\nwant %v", got, want)
	}
	p := f.Decls[4].(*ParamDecl)
	if len(p.Decorators) != 2 || p.Decorators[0].Namespace != "sys" || p.Decorators[0].Name != "description" || p.Decorators[1].Name != "secure" {
		t.Errorf("decorators %+v", p.Decorators)
	}
	if a := f.Decls[8].(*VarDecl).Value.(*ArrayLit); len(a.Items) != 3 {
		t.Errorf("list %d items", len(a.Items))
	}
	acr := f.Decls[9].(*ResourceDecl)
	if !acr.Existing || acr.Type != "Microsoft.ContainerRegistry/registries" || acr.APIVersion != "2023-07-01" {
		t.Errorf("acr %+v", acr)
	}
	r := f.Decls[10].(*ResourceDecl)
	loop := r.Body.(*ForExpr)
	if loop.Item != "x" || loop.Index != "i" {
		t.Errorf("loop %+v", loop)
	}
	body := loop.Body.(*IfBody).Body
	if len(body.Props) != 2 || body.Props[1].Resource == nil || body.Props[1].Resource.Name != "child" {
		t.Errorf("body %+v", body.Props)
	}
	if _, ok := f.Decls[11].(*ModuleDecl).Body.(*IfBody); !ok {
		t.Errorf("module body %T", f.Decls[11].(*ModuleDecl).Body)
	}
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct{ src, want string }{
		{"a || b && c", "(a || (b && c))"},
		{"a ?? b || c", "(a ?? (b || c))"},
		{"a == b < c", "(a == (b < c))"},
		{"a + b * c - d", "((a + (b * c)) - d)"},
		{"!a.b[c]", "!((a.b)[c])"},
		{"-a % b", "(-a % b)"},
		{"a ? b : c ? d : e", "(a ? b : (c ? d : e))"},
		{"a =~ b != c", "((a =~ b) != c)"},
		{"x.?y.z", "((x.?y).z)"},
		{"sys.f(a, b).c", "(sys.f(a, b).c)"},
	}
	for _, tt := range tests {
		f, err := Parse([]byte("var v = "+tt.src), "p.bicep")
		if err != nil {
			t.Errorf("%s: %v", tt.src, err)
			continue
		}
		if got := show(f.Decls[0].(*VarDecl).Value); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.src, got, tt.want)
		}
	}
}

// show prints an expression fully parenthesised, for precedence tests.
func show(e Expr) string {
	switch v := e.(type) {
	case *Ident:
		return v.Name
	case *Unary:
		return opText[v.Op] + show(v.X)
	case *Binary:
		return "(" + show(v.X) + " " + opText[v.Op] + " " + show(v.Y) + ")"
	case *Ternary:
		return "(" + show(v.Cond) + " ? " + show(v.A) + " : " + show(v.B) + ")"
	case *Member:
		dot := "."
		if v.Safe {
			dot = ".?"
		}
		return "(" + show(v.X) + dot + v.Name + ")"
	case *IndexExpr:
		return "(" + show(v.X) + "[" + show(v.Index) + "])"
	case *Call:
		var args []string
		for _, a := range v.Args {
			args = append(args, show(a))
		}
		n := v.Name
		if v.Namespace != "" {
			n = v.Namespace + "." + n
		}
		return n + "(" + strings.Join(args, ", ") + ")"
	}
	return "?"
}

var opText = map[Kind]string{
	Or: "||", And: "&&", Coalesce: "??", Eq: "==", NotEq: "!=", EqI: "=~", NotEqI: "!~",
	Less: "<", LessEq: "<=", Greater: ">", GreaterEq: ">=", Plus: "+", Minus: "-",
	Star: "*", Slash: "/", Percent: "%", Not: "!",
}
