package armtemplate

import (
	"errors"
	"os"
	"testing"
)

// FuzzEvaluate feeds arbitrary template text through reading and evaluation
// in both modes: no panics, and every failure is a located error.
func FuzzEvaluate(f *testing.F) {
	for _, name := range []string{"firewall.json", "export-policy.json", "premium.jsonc", "loop.json", "symbolic.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"variables": {"a": "[variables('a')]"}}`,
		`{"resources": [{"type": "A.B/c", "name": "[string(copyIndex())]", "copy": {"name": "l", "count": 3}, "dependsOn": ["l"]}]}`,
		`{"parameters": {"p": {"type": "int", "defaultValue": "[add(1, '2')]"}}}`,
		`{"outputs": {"o": {"type": "array", "copy": {"count": 2, "input": "[substring('abc', copyIndex(), 1)]"}}}}`,
		`{"resources": {"a": {"type": "A.B/c", "name": "x", "dependsOn": ["b"]}, "b": {"type": "A.B/c", "name": "y", "dependsOn": ["a"]}}}`,
		`{"variables": {"x": "[format('{0:N3}{1,-5}{{', 1234, 'a')]", "y": "[split(string(json('[1,{\"a\":null}]')), ',')]"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := ParseTemplate(data)
		if err != nil {
			var je *JSONError
			var ee *Error
			if !errors.As(err, &je) && !errors.As(err, &ee) {
				t.Fatalf("unlocated read error %T %v", err, err)
			}
			return
		}
		for _, mode := range []Mode{ModeDeploy, ModeCheck} {
			_, err := Evaluate(tpl, Options{Mode: mode, MaxCopyCount: 20, MaxResources: 50, MaxWork: 200_000})
			if err != nil {
				if _, ok := AsError(err); !ok {
					t.Fatalf("error is not an *Error: %T %v", err, err)
				}
			}
		}
	})
}

// FuzzEvaluateExpression evaluates arbitrary expressions against a template
// with parameters and variables of every type: no panics, located errors.
func FuzzEvaluateExpression(f *testing.F) {
	tpl, err := ParseTemplate([]byte(fnTemplate))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"[substring('hello', 1, 9223372036854775807)]", "[skip(parameters('arr'), -5)]", "[take('abc', 9223372036854775807)]",
		"[format('{0:D99}{0:X}{0:N}{1,5}', -9223372036854775808, 'x')]", "[padLeft('a', 20, '😀')]",
		"[div(-9223372036854775808, -1)]", "[range(9223372036854775807, 3)]", "[first('😀')]",
		"[union(parameters('obj'), json('{\"Nested\": {\"z\": 1}}'))]", "[items(parameters('obj'))[1].value.x]",
		"[if(reference('x').y, parameters('arr')[0], variables('o').k)]", "[createObject('a', reference('r'))]",
		"[resourceId('a', 'b', 'c', 'N.S/t/u', 'x', 'y/z')]", "[split('', '')]", "[indexOf('', '')]",
		"[utcNow('yyyyMMddHHmmssfff')]", "[base64ToString('!!')]", "[json('[1,2')]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, mode := range []Mode{ModeDeploy, ModeCheck} {
			_, err := EvaluateString(tpl, s, Options{Mode: mode, MaxWork: 100_000})
			if err != nil {
				if _, ok := AsError(err); !ok {
					t.Fatalf("error is not an *Error: %T %v", err, err)
				}
			}
		}
	})
}
