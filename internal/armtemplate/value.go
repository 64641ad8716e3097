package armtemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Unknown is a value that cannot be determined without a live deployment:
// the result of reference(), list*(), utcNow() and friends, of a missing
// parameter in check mode, and of anything computed from those. It appears in
// evaluated resources wherever such a value ends up, so a rule can say
// "cannot determine" and quote what caused it.
type Unknown struct {
	Expr   string // the call (or parameter) that produced it, e.g. "reference('x').id"
	Path   string // JSON path of the template string that contained it
	Pos    Pos    // where that string starts in the source, when known
	Reason string // why it is unknown, e.g. "reference() needs a live deployment"
}

func (u *Unknown) String() string {
	var b strings.Builder
	b.WriteString("cannot determine: ")
	b.WriteString(u.Expr)
	if u.Reason != "" {
		b.WriteString(" (" + u.Reason + ")")
	}
	if u.Path != "" {
		b.WriteString(" at " + u.Path)
	}
	if u.Pos.IsValid() {
		b.WriteString(" (line " + u.Pos.String() + ")")
	}
	return b.String()
}

// MarshalJSON renders an Unknown as a marker object so evaluated resources
// can be printed.
func (u *Unknown) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"$unknown": u.Expr, "reason": u.Reason, "path": u.Path})
}

// IsUnknown reports whether v is an Unknown.
func IsUnknown(v any) bool {
	_, ok := v.(*Unknown)
	return ok
}

// FindUnknown returns the first Unknown inside v (depth-first, object keys in
// sorted order), or nil when v is fully known.
func FindUnknown(v any) *Unknown {
	switch t := v.(type) {
	case *Unknown:
		return t
	case []any:
		for _, e := range t {
			if u := FindUnknown(e); u != nil {
				return u
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if u := FindUnknown(t[k]); u != nil {
				return u
			}
		}
	}
	return nil
}

// Sentinel errors; every *Error wraps one, so callers (the management API's
// error codes, the checker's messages) can classify with errors.Is.
var (
	ErrUnknownFunction   = errors.New("unknown function")
	ErrArity             = errors.New("wrong number of arguments")
	ErrType              = errors.New("type mismatch")
	ErrInvalidArgument   = errors.New("invalid argument")
	ErrParameterType     = errors.New("parameter has the wrong type")
	ErrParameterValue    = errors.New("parameter value not allowed")
	ErrMissingParameter  = errors.New("parameter has no value")
	ErrUnknownParameter  = errors.New("parameter not declared")
	ErrUnknownVariable   = errors.New("variable not declared")
	ErrCycle             = errors.New("circular reference")
	ErrLimit             = errors.New("limit exceeded")
	ErrInvalidTemplate   = errors.New("invalid template")
	ErrUnresolvedDepends = errors.New("dependsOn names no resource in the template")
)

// Error is an evaluation error located in the template: the JSON path, the
// template string holding the expression, and the source position.
type Error struct {
	Path string // e.g. resources[2].properties.networkRuleSet
	Expr string // the template string being evaluated, when there was one
	Pos  Pos    // where the value at Path starts, when known
	Err  error  // wraps a sentinel above, or an *expr.SyntaxError
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
	} else {
		b.WriteString("template")
	}
	if e.Pos.IsValid() {
		b.WriteString(" (line " + strconv.Itoa(e.Pos.Line) + ", column " + strconv.Itoa(e.Pos.Col) + ")")
	}
	if e.Expr != "" {
		b.WriteString(": expression " + strconv.Quote(e.Expr))
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// typeName names a value's type the way ARM error messages do.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "Null"
	case bool:
		return "Boolean"
	case int64:
		return "Integer"
	case float64:
		return "Float"
	case string:
		return "String"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	case *Unknown:
		return "Unknown"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// Normalize converts Go values from callers (encoding/json output, ints of
// any width, []string, map[string]string, json.Number) into the value model
// the evaluator uses: nil, bool, int64, float64, string, []any,
// map[string]any, *Unknown.
func Normalize(v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, string, int64, *Unknown:
		return t, nil
	case int:
		return int64(t), nil
	case int32:
		return int64(t), nil
	case uint32:
		return int64(t), nil
	case float32:
		return normFloat(float64(t)), nil
	case float64:
		return normFloat(t), nil
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: number %s", ErrType, t)
		}
		return f, nil
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(t))
		for k, s := range t {
			out[k] = s
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := Normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			n, err := Normalize(e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unsupported Go type %T", ErrType, v)
	}
}

func normFloat(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return f
}

// work is a countdown of evaluation steps shared by one evaluation, so
// values that share structure (a variable used twice in createArray, nested
// a hundred times) cannot make equals(), string() or union() run for ever.
// A nil *work is unlimited.
type work struct{ left int64 }

// spend takes n steps and reports whether the budget still holds.
func (w *work) spend(n int64) bool {
	if w == nil {
		return true
	}
	w.left -= n
	return w.left >= 0
}

func (w *work) exhausted() bool { return w != nil && w.left < 0 }

// maxTextLen caps any JSON text built from a value.
const maxTextLen = 16 << 20

// deepEqual compares values as ARM's equals() does: strings case-sensitively,
// objects by key set and values, arrays element-wise.
func deepEqual(a, b any) bool { return equalW(a, b, nil) }

func equalW(a, b any, w *work) bool {
	if !w.spend(1) {
		return false
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return float64(x) == y
		}
		return false
	case float64:
		switch y := b.(type) {
		case int64:
			return x == float64(y)
		case float64:
			return x == y
		}
		return false
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalW(x[i], y[i], w) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			wv, ok := lookupKey(y, k)
			if !ok || !equalW(v, wv, w) {
				return false
			}
		}
		return true
	case *Unknown:
		return false
	}
	return false
}

// lookupKey finds an object property the ARM way: exact match first, then
// case-insensitively.
func lookupKey(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// toJSONText serialises a value compactly, as string() and format() do for
// objects and arrays.
func toJSONText(v any) (string, error) { return toJSONTextW(v, nil) }

func toJSONTextW(v any, w *work) (string, error) {
	var b strings.Builder
	if err := writeJSON(&b, v, w); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeJSON(b *strings.Builder, v any, w *work) error {
	if !w.spend(1) {
		return fmt.Errorf("%w: the value is too large to serialise", ErrLimit)
	}
	if b.Len() > maxTextLen {
		return fmt.Errorf("%w: JSON text longer than %d bytes", ErrLimit, maxTextLen)
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case float64:
		b.WriteString(strconv.FormatFloat(t, 'g', -1, 64))
	case string:
		q, _ := json.Marshal(t)
		b.Write(q)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, e, w); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			q, _ := json.Marshal(k)
			b.Write(q)
			b.WriteByte(':')
			if err := writeJSON(b, t[k], w); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("%w: cannot serialise %s", ErrType, typeName(v))
	}
	return nil
}

// scalarText converts a scalar to text the way ARM's string() and concat()
// do. Booleans render as True/False, as .NET does.
func scalarText(v any) (string, error) { return scalarTextW(v, nil) }

func scalarTextW(v any, w *work) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64), nil
	case bool:
		if t {
			return "True", nil
		}
		return "False", nil
	case nil:
		return "", nil
	default:
		return toJSONTextW(v, w)
	}
}

// sizeWithin walks v, spending one step per node, and reports whether the
// budget held.
func sizeWithin(v any, w *work) bool {
	if !w.spend(1) {
		return false
	}
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if !sizeWithin(e, w) {
				return false
			}
		}
	case map[string]any:
		for _, e := range t {
			if !sizeWithin(e, w) {
				return false
			}
		}
	}
	return true
}
