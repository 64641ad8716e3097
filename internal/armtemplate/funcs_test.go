package armtemplate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const fnTemplate = `{
  "parameters": {
    "name": {"type": "string", "defaultValue": "myregistry"},
    "n": {"type": "int", "defaultValue": 3},
    "flag": {"type": "bool", "defaultValue": true},
    "obj": {"type": "object", "defaultValue": {"a": 1, "Nested": {"x": "y"}}},
    "arr": {"type": "array", "defaultValue": ["a", "b", "c"]},
    "missing": {"type": "string"}
  },
  "variables": {
    "v1": "[concat(parameters('name'), '-v1')]",
    "v2": "[variables('v1')]",
    "o": {"k": "[parameters('n')]"}
  }
}`

func TestFunctions(t *testing.T) {
	tpl, err := ParseTemplate([]byte(fnTemplate))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Mode: ModeCheck, SubscriptionID: "sub1", ResourceGroup: "rg1", Location: "westeurope", DeploymentName: "dep1"}
	cases := []struct {
		in   string
		want any
	}{
		{"plain", "plain"},
		{"[[notexpr]", "[notexpr]"},
		{"[ 'a''b' ]", "a'b"},
		{"[parameters('name')]", "myregistry"},
		{"[PARAMETERS('NAME')]", "myregistry"},
		{"[variables('v2')]", "myregistry-v1"},
		{"[variables('o').k]", int64(3)},
		{"[parameters('obj').nested.x]", "y"},
		{"[parameters('obj')['a']]", int64(1)},
		{"[parameters('arr')[1]]", "b"},
		{"[concat('a', 1, true())]", "a1True"},
		{"[concat(parameters('arr'), createArray('d'))]", []any{"a", "b", "c", "d"}},
		{"[format('{0}-{1:D3}-{{x}}', 'a', 7)]", "a-007-{x}"},
		{"[format('{0,4}|{0,-4}|{1:N2}|{2:X}', 'ab', 1234, 255)]", "  ab|ab  |1,234.00|FF"},
		{"[toLower('AbC')]", "abc"},
		{"[toUpper('AbC')]", "ABC"},
		{"[if(parameters('flag'), 'yes', 'no')]", "yes"},
		{"[if(false(), 1, 2)]", int64(2)},
		{"[equals('a', 'a')]", true},
		{"[equals('a', 'A')]", false},
		{"[equals(createArray(1, 2), createArray(1, 2))]", true},
		{"[not(true())]", false},
		{"[and(true(), false())]", false},
		{"[or(false(), true())]", true},
		{"[empty('')]", true},
		{"[empty(createArray())]", true},
		{"[empty(json('{}'))]", true},
		{"[empty(parameters('obj'))]", false},
		{"[contains('abc', 'b')]", true},
		{"[contains(parameters('arr'), 'z')]", false},
		{"[contains(parameters('obj'), 'A')]", true},
		{"[union(createArray(1, 2), createArray(2, 3))]", []any{int64(1), int64(2), int64(3)}},
		{"[union(json('{\"a\":{\"x\":1}}'), json('{\"a\":{\"y\":2},\"b\":3}'))]", map[string]any{"a": map[string]any{"x": int64(1), "y": int64(2)}, "b": int64(3)}},
		{"[coalesce(null(), null(), 'c')]", "c"},
		{"[resourceGroup().name]", "rg1"},
		{"[resourceGroup().id]", "/subscriptions/sub1/resourceGroups/rg1"},
		{"[resourceGroup().location]", "westeurope"},
		{"[subscription().subscriptionId]", "sub1"},
		{"[deployment().name]", "dep1"},
		{"[resourceId('Microsoft.ContainerRegistry/registries', 'r1')]", "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/r1"},
		{"[resourceId('otherrg', 'Microsoft.ContainerRegistry/registries', 'r1')]", "/subscriptions/sub1/resourceGroups/otherrg/providers/Microsoft.ContainerRegistry/registries/r1"},
		{"[resourceId('s2', 'otherrg', 'Microsoft.ContainerRegistry/registries', 'r1')]", "/subscriptions/s2/resourceGroups/otherrg/providers/Microsoft.ContainerRegistry/registries/r1"},
		{"[resourceId('Microsoft.ContainerRegistry/registries/replications', 'r1', 'westus')]", "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/r1/replications/westus"},
		{"[resourceId('Microsoft.ContainerRegistry/registries/replications', 'r1/westus')]", "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/r1/replications/westus"},
		{"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'abc')]", "/subscriptions/sub1/providers/Microsoft.Authorization/roleDefinitions/abc"},
		{"[tenantResourceId('Microsoft.Management/managementGroups', 'mg')]", "/providers/Microsoft.Management/managementGroups/mg"},
		{"[extensionResourceId('/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r', 'Microsoft.Insights/diagnosticSettings', 'd')]", "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/providers/Microsoft.Insights/diagnosticSettings/d"},
		// Published uniqueString() vectors (checked against Bicep's output).
		{"[uniqueString('test')]", "rbgf3xv4ufgzg"},
		{"[uniqueString('hello', 'world')]", "a7wkljktk6wne"},
		{"[uniqueString('abc')]", "cgtzqvhu4i23s"},
		{"[uniqueString('/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/my-rg')]", "bmg7c6xu4tw46"},
		{"[uniqueString('foo', 'bar', 'baz')]", "xzi4ioaxtmth4"},
		{"[length(uniqueString('a', 'b'))]", int64(13)},
		{"[length('abc')]", int64(3)},
		{"[length(parameters('arr'))]", int64(3)},
		{"[length(parameters('obj'))]", int64(2)},
		{"[string(5)]", "5"},
		{"[string(parameters('obj').nested)]", `{"x":"y"}`},
		{"[string(createArray(1, 'a'))]", `[1,"a"]`},
		{"[int('42')]", int64(42)},
		{"[bool('TRUE')]", true},
		{"[bool(0)]", false},
		{"[json('{\"a\": [1, 2]}').a[1]]", int64(2)},
		{"[json('null')]", nil},
		{"[createObject('a', 1, 'b', 'x')]", map[string]any{"a": int64(1), "b": "x"}},
		{"[array('x')]", []any{"x"}},
		{"[array(parameters('arr'))]", []any{"a", "b", "c"}},
		{"[first(parameters('arr'))]", "a"},
		{"[last(parameters('arr'))]", "c"},
		{"[first('xyz')]", "x"},
		{"[last(createArray())]", nil},
		{"[replace('a-b-c', '-', '')]", "abc"},
		{"[split('a,b;c', createArray(',', ';'))]", []any{"a", "b", "c"}},
		{"[split('a/b', '/')]", []any{"a", "b"}},
		{"[substring('hello', 1, 3)]", "ell"},
		{"[substring('hello', 2)]", "llo"},
		{"[startsWith('Microsoft.X', 'microsoft.')]", true},
		{"[endsWith('abc', 'BC')]", true},
		{"[trim('  x  ')]", "x"},
		{"[less(1, 2)]", true},
		{"[greater('b', 'a')]", true},
		{"[lessOrEquals(2, 2)]", true},
		{"[greaterOrEquals(1, 2)]", false},
		{"[add(1, 2)]", int64(3)},
		{"[sub(1, 2)]", int64(-1)},
		{"[mul(3, 4)]", int64(12)},
		{"[div(7, 2)]", int64(3)},
		{"[mod(7, 2)]", int64(1)},
		{"[min(3, 1, 2)]", int64(1)},
		{"[max(createArray(3, 9, 2))]", int64(9)},
		{"[range(5, 3)]", []any{int64(5), int64(6), int64(7)}},
		{"[skip(parameters('arr'), 1)]", []any{"b", "c"}},
		{"[take(parameters('arr'), 2)]", []any{"a", "b"}},
		{"[take('abc', 5)]", "abc"},
		{"[items(json('{\"b\":2,\"a\":1}'))[0].key]", "a"},
		{"[indexOf('abcABC', 'C')]", int64(2)},
		{"[lastIndexOf('abcABC', 'c')]", int64(5)},
		{"[padLeft('7', 3, '0')]", "007"},
		{"[base64ToString(base64('hi'))]", "hi"},
		{"[guid('a', 'b')]", GUID("a", "b")},
		{"[length(guid('x'))]", int64(36)},
		{"[if(true(), 'a', json('{}').missing)]", "a"},
		{"[-5]", int64(-5)},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := EvaluateString(tpl, c.in, opts)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !deepEqual(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestFunctionErrors(t *testing.T) {
	tpl, err := ParseTemplate([]byte(fnTemplate))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in   string
		want error
		text string
	}{
		{"[nosuchfn(1)]", ErrUnknownFunction, "nosuchfn"},
		{"[my.fn(1)]", ErrUnknownFunction, "user-defined"},
		{"[concat()]", ErrArity, "concat expects at least 1"},
		{"[toLower('a', 'b')]", ErrArity, "toLower expects 1"},
		{"[toLower(1)]", ErrType, "must be a string, got Integer"},
		{"[add('a', 1)]", ErrType, "integer"},
		{"[div(1, 0)]", ErrInvalidArgument, "division by zero"},
		{"[parameters('nope')]", ErrUnknownParameter, "nope"},
		{"[variables('nope')]", ErrUnknownVariable, "nope"},
		{"[parameters('arr')[7]]", ErrInvalidArgument, "out of range"},
		{"[parameters('obj').nope]", ErrInvalidArgument, `no property "nope"`},
		{"[substring('abc', 2, 5)]", ErrInvalidArgument, "past the end"},
		{"[copyIndex()]", ErrInvalidTemplate, "outside a copy loop"},
		{"[range(0, 100000)]", ErrLimit, "range count"},
		{"[format('{1}', 'a')]", ErrInvalidArgument, "only 1 argument"},
		{"[if(1, 2, 3)]", ErrType, "boolean"},
		{"[concat('a',]", nil, "offset"},
		{"[foo]", nil, "not a function call"},
		{"[concat('a')", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			_, err := EvaluateString(tpl, c.in, Options{Mode: ModeCheck})
			if c.in == "[concat('a')" {
				// Not bracketed at both ends: a literal string.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v is not %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %q does not mention %q", err, c.text)
			}
			if !strings.Contains(err.Error(), "expression") {
				t.Fatalf("error %q does not quote the expression", err)
			}
		})
	}
}

func TestUnknownPropagation(t *testing.T) {
	tpl, err := ParseTemplate([]byte(fnTemplate))
	if err != nil {
		t.Fatal(err)
	}
	unknown := []string{
		"[reference('x').properties.loginServer]",
		"[concat('a', reference('x').id)]",
		"[listKeys('x', '2020-01-01').keys[0]]",
		"[if(equals(reference('x').a, 1), 'a', 'b')]",
		"[and(true(), reference('x').b)]",
		"[parameters('missing')]",
		"[toLower(parameters('missing'))]",
		"[environment().name]",
		"[utcNow()]",
		"[newGuid()]",
		"[coalesce(reference('x').a, 'b')]",
		"[empty(reference('x'))]",
	}
	for _, in := range unknown {
		t.Run(in, func(t *testing.T) {
			got, err := EvaluateString(tpl, in, Options{Mode: ModeCheck})
			if err != nil {
				t.Fatal(err)
			}
			u, ok := got.(*Unknown)
			if !ok {
				t.Fatalf("got %#v, want Unknown", got)
			}
			if u.Expr == "" || !strings.HasPrefix(u.String(), "cannot determine: ") {
				t.Fatalf("unknown without cause: %+v", u)
			}
		})
	}
	known := []struct {
		in   string
		want any
	}{
		{"[and(false(), reference('x').b)]", false},
		{"[or(reference('x').b, true())]", true},
		{"[if(reference('x').b, 'same', 'same')]", "same"},
		{"[length(createArray(reference('x'), 1))]", int64(2)},
		{"[coalesce(null(), 'b', reference('x'))]", "b"},
	}
	for _, c := range known {
		t.Run(c.in, func(t *testing.T) {
			got, err := EvaluateString(tpl, c.in, Options{Mode: ModeCheck})
			if err != nil {
				t.Fatal(err)
			}
			if !deepEqual(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
	got, _ := EvaluateString(tpl, "[concat('a', reference('myreg').loginServer)]", Options{Mode: ModeCheck})
	if u := got.(*Unknown); u.Expr != "reference('myreg')" {
		t.Fatalf("cause = %q, want reference('myreg')", u.Expr)
	}
}

func TestUTCNowAndNewGUIDAreInputs(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 30, 5, 0, time.UTC)
	opts := Options{Now: now, NewGUID: func() string { return "g" }}
	for in, want := range map[string]any{
		"[utcNow()]":             "20261121T103005Z",
		"[utcNow('yyyy-MM-dd')]": "2026-11-21",
		"[newGuid()]":            "g",
	} {
		got, err := EvaluateString(nil, in, opts)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestUniqueStringShape(t *testing.T) {
	for _, in := range [][]string{{""}, {"a"}, {"abcdefgh"}, {"abcdefghi", "x"}, {"日本語"}} {
		s := UniqueString(in...)
		if len(s) != 13 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Errorf("UniqueString(%q) = %q", in, s)
		}
	}
	if UniqueString("a", "b") != UniqueString("a-b") {
		t.Error("inputs are joined with '-'")
	}
	if UniqueString("ABC") == UniqueString("abc") {
		t.Error("uniqueString is case-sensitive")
	}
}

func TestReferenceHook(t *testing.T) {
	opts := Options{Reference: func(target, apiVersion string, full bool) (any, bool) {
		if target == "acr1" && !full {
			return map[string]any{"loginServer": "acr1.example.test"}, true
		}
		return nil, false
	}}
	got, err := EvaluateString(nil, "[reference('acr1').loginServer]", opts)
	if err != nil || got != "acr1.example.test" {
		t.Fatalf("got %v %v", got, err)
	}
	got, err = EvaluateString(nil, "[reference('acr2', '2023-07-01', 'Full').properties]", opts)
	if err != nil || !IsUnknown(got) {
		t.Fatalf("got %v %v", got, err)
	}
}
