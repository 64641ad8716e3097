package armtemplate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestReadJSONC(t *testing.T) {
	cases := []struct {
		name, in string
		want     any
	}{
		{"plain", `{"a": [1, 2.5, "x", true, false, null]}`, map[string]any{"a": []any{int64(1), 2.5, "x", true, false, nil}}},
		{"line comment", "// c\n{\"a\": 1 // d\n}", map[string]any{"a": int64(1)}},
		{"block comment", "/* c\n c */ {/**/\"a\"/**/:/**/1/**/}", map[string]any{"a": int64(1)}},
		{"trailing commas", `{"a": [1, 2,], "b": {"c": 1,},}`, map[string]any{"a": []any{int64(1), int64(2)}, "b": map[string]any{"c": int64(1)}}},
		{"bom", "\xef\xbb\xbf{\"a\": 1}", map[string]any{"a": int64(1)}},
		{"escapes", `"a\"b\\c\/d\n\u00e9\ud83d\ude00"`, "a\"b\\c/d\né😀"},
		{"slashes in strings are not comments", `"http://x/*y*/"`, "http://x/*y*/"},
		{"last duplicate wins", `{"a": 1, "a": 2}`, map[string]any{"a": int64(2)}},
		{"big int is float", `12345678901234567890`, 12345678901234567890.0},
		{"exponent", `1e3`, 1000.0},
		{"negative", `-7`, int64(-7)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := ReadJSONC([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !deepEqual(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestReadJSONCErrors(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		col      int
		msg      string
	}{
		{"empty", "", 1, 1, "empty document"},
		{"only comment", "// x\n", 2, 1, "empty document"},
		{"unterminated object", "{\n \"a\": 1", 1, 1, "unterminated object"},
		{"unterminated array", "[1,\n2", 1, 1, "unterminated array"},
		{"unterminated string", "{\"a\": \"x\n}", 1, 7, "unterminated string"},
		{"unterminated comment", "{} /* x", 1, 4, "unterminated /* comment"},
		{"missing colon", "{\n  \"a\" 1}", 2, 7, "expected ':'"},
		{"missing comma", "[1 2]", 1, 4, "expected ',' or ']'"},
		{"bare word", "{\"a\": yes}", 1, 7, "expected a value"},
		{"single quotes", "{'a': 1}", 1, 2, "double quotes"},
		{"bad escape", `"\x"`, 1, 2, "invalid escape"},
		{"trailing data", "{} {}", 1, 4, "after the top-level value"},
		{"leading comma", "[,1]", 1, 2, "expected a value"},
		{"deep", strings.Repeat("[", 600) + strings.Repeat("]", 600), 1, 514, "nesting deeper"},
		{"bad number", "-x", 1, 2, "expected a digit"},
		{"lone slash", "{} /", 1, 4, "unexpected '/'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ReadJSONC([]byte(c.in))
			var je *JSONError
			if !errors.As(err, &je) || !errors.Is(err, ErrJSON) {
				t.Fatalf("got %v", err)
			}
			if je.Pos.Line != c.line || je.Pos.Col != c.col || !strings.Contains(je.Msg, c.msg) {
				t.Fatalf("got %d:%d %q, want %d:%d %q", je.Pos.Line, je.Pos.Col, je.Msg, c.line, c.col, c.msg)
			}
		})
	}
}

func TestPositions(t *testing.T) {
	src := "{\n  \"resources\": [\n    {\"name\": \"a\",\n     \"properties\": {\"x y\": [1,\n 2]}}\n  ]\n}"
	_, pos, err := ReadJSONC([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Pos{
		"":                                  {1, 1},
		"resources":                         {2, 16},
		"resources[0]":                      {3, 5},
		"resources[0].name":                 {3, 14},
		"resources[0].properties":           {4, 20},
		"resources[0].properties['x y']":    {4, 28},
		"resources[0].properties['x y'][1]": {5, 2},
	}
	for path, p := range want {
		if got, _ := pos.Lookup(path); got != p {
			t.Errorf("%s at %v, want %v", path, pos.Of(path), p)
		}
	}
}

// FuzzReadJSONC checks the reader never panics and agrees with
// encoding/json on documents both accept.
func FuzzReadJSONC(f *testing.F) {
	for _, s := range []string{
		`{"a": [1, 2, {"b": null}], "c": "d"}`,
		"// x\n{\"a\": 1, /* y */ \"b\": [true,],}",
		"\xef\xbb\xbf{}",
		`"\ud83d\ude00\u0041"`,
		`[1e400]`, `-0.5e-3`, `{"a":`, `[`, `"\`, "/*", `{"$schema": "x", "resources": []}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, pos, err := ReadJSONC(data)
		if err != nil {
			var je *JSONError
			if !errors.As(err, &je) || je.Pos.Line < 1 || je.Pos.Col < 1 {
				t.Fatalf("unlocated error %v", err)
			}
			return
		}
		if _, ok := pos.Lookup(""); !ok {
			t.Fatal("no position for the root")
		}
		var std any
		if json.Unmarshal(data, &std) == nil {
			n, err := Normalize(std)
			if err != nil {
				t.Fatal(err)
			}
			if !deepEqual(v, n) {
				a, _ := toJSONText(v)
				b, _ := toJSONText(n)
				t.Fatalf("differs from encoding/json: %s vs %s", a, b)
			}
		}
	})
}

func TestPositionsNearestAndCase(t *testing.T) {
	_, pos, err := ReadJSONC([]byte("{\n \"Resources\": [\n  {\"Properties\": {\"ipRules\": []}}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := pos.Lookup("resources[0].properties.ipRules"); !ok || p != (Pos{3, 30}) {
		t.Errorf("case-insensitive lookup: %v %v", p, ok)
	}
	p, at := pos.Nearest("resources[0].properties.ipRules[3].value")
	if at != "resources[0].properties.ipRules" || p != (Pos{3, 30}) {
		t.Errorf("nearest: %v %q", p, at)
	}
	if p, at := pos.Nearest("nothing.here"); at != "" || p != (Pos{1, 1}) {
		t.Errorf("nearest of nothing: %v %q", p, at)
	}
	var none *Positions
	if _, ok := none.Lookup(""); ok {
		t.Error("nil positions know something")
	}
}
