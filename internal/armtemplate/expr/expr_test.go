package expr

import (
	"errors"
	"strings"
	"testing"
)

// render prints an AST compactly for comparisons.
func render(n Node) string {
	switch t := n.(type) {
	case *String:
		return "'" + t.Value + "'"
	case *Number:
		if t.IsFloat {
			return "f"
		}
		return "n"
	case *Call:
		var args []string
		for _, a := range t.Args {
			args = append(args, render(a))
		}
		name := t.Name
		if t.Namespace != "" {
			name = t.Namespace + "." + name
		}
		return name + "(" + strings.Join(args, ",") + ")"
	case *Property:
		return render(t.Target) + "." + t.Name
	case *Index:
		return render(t.Target) + "[" + render(t.Index) + "]"
	}
	return "?"
}

func TestParse(t *testing.T) {
	cases := []struct{ in, want string }{
		{"parameters('a')", "parameters('a')"},
		{"  concat ( 'a' , 'b' )  ", "concat('a','b')"},
		{"resourceGroup().location", "resourceGroup().location"},
		{"variables('x')[0].name['y']", "variables('x')[n].name['y']"},
		{"'it''s'", "'it's'"},
		{"add(1, -2)", "add(n,n)"},
		{"json('1.5')", "json('1.5')"},
		{"f(1.5)", "f(f)"},
		{"ns.fn('a')", "ns.fn('a')"},
		{"if(equals(a(), b()), c().d, e()[f()])", "if(equals(a(),b()),c().d,e()[f()])"},
		{"x()\n.y", "x().y"},
	}
	for _, c := range cases {
		n, err := Parse(c.in, 0)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := render(n); got != c.want {
			t.Errorf("%q: got %s, want %s", c.in, got, c.want)
		}
	}
}

func TestSpans(t *testing.T) {
	src := "concat('a', reference('r').id)"
	n, err := Parse(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	prop := n.(*Call).Args[1].(*Property)
	s, e := prop.Span()
	if src[s:e] != "reference('r').id" {
		t.Errorf("span %q", src[s:e])
	}
	s, e = prop.Target.Span()
	if src[s:e] != "reference('r')" {
		t.Errorf("span %q", src[s:e])
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "empty"},
		{"   ", 3, "empty"},
		{"concat(", 7, "unexpected end"},
		{"concat('a'", 10, "unterminated call"},
		{"concat('a' 'b')", 11, "expected ',' or ')'"},
		{"'abc", 0, "unterminated string"},
		{"foo", 0, "not a function call"},
		{"a.b", 1, "not a function call"},
		{"a().", 4, "expected a name"},
		{"a()[1", 5, "expected ']'"},
		{"a() b()", 4, "after the expression"},
		{"-", 0, "digit"},
		{"99999999999999999999", 0, "out of range"},
		{"@", 0, "unexpected"},
		{"a(,)", 2, "unexpected"},
	}
	for _, c := range cases {
		_, err := Parse(c.in, 0)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: got %v", c.in, err)
			continue
		}
		if se.Offset != c.offset || !strings.Contains(se.Msg, c.msg) {
			t.Errorf("%q: got %d %q, want %d %q", c.in, se.Offset, se.Msg, c.offset, c.msg)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	deep := strings.Repeat("f(", 50) + strings.Repeat(")", 50)
	if _, err := Parse(deep, 64); err != nil {
		t.Fatalf("50 levels: %v", err)
	}
	if _, err := Parse(deep, 10); err == nil || !strings.Contains(err.Error(), "deeper than 10") {
		t.Fatalf("limit 10: %v", err)
	}
	chain := "f()" + strings.Repeat(".a", 500)
	if _, err := Parse(chain, 0); err == nil {
		t.Fatal("a 500-long property chain passed the default limit")
	}
	huge := strings.Repeat("f(", 100000)
	if _, err := Parse(huge, 0); err == nil {
		t.Fatal("no error")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		in, text string
		isExpr   bool
	}{
		{"[a()]", "a()", true},
		{"[[a()]", "[a()]", false},
		{"plain", "plain", false},
		{"[a()", "[a()", false},
		{"a()]", "a()]", false},
		{"[]", "", true},
		{"[", "[", false},
		{"", "", false},
	}
	for _, c := range cases {
		text, isExpr := Classify(c.in)
		if text != c.text || isExpr != c.isExpr {
			t.Errorf("%q: got %q %v", c.in, text, isExpr)
		}
	}
}

func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{
		"parameters('a')", "concat('a', variables('b')[0].c)", "if(equals(1, 2), 'x', 'y')",
		"'it''s'", "add(-1, 2.5)", "ns.fn()", "a()[b()]['c'].d", "((", "'", "f(,)", "a.b.c(",
		strings.Repeat("f(", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s, 32)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		start, end := n.Span()
		if start < 0 || end > len(s) || start > end {
			t.Fatalf("span %d..%d out of %d", start, end, len(s))
		}
	})
}
