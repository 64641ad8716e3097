package rules

import (
	"fmt"
	"strings"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// verdict is a three-valued answer: pass, fail, or cannot tell because of an
// Unknown. Fail verdicts carry reasons, each pointing at a field.
type verdict struct {
	state   tri
	reasons []Reason
	unknown *armtemplate.Unknown
	field   string // the field the unknown was found at
}

type tri int

const (
	pass tri = iota
	fail
	unknown
)

// Reason explains a failure: which field, and what is wrong with it.
type Reason struct {
	Field   string
	Message string
}

func passed() verdict { return verdict{state: pass} }

func failed(field, format string, args ...any) verdict {
	return verdict{state: fail, reasons: []Reason{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

func undetermined(field string, u *armtemplate.Unknown) verdict {
	return verdict{state: unknown, unknown: u, field: field}
}

// allOf passes when every verdict passes; fails when any fails (a failure
// is certain whatever the unknowns are); else it cannot tell.
func allOf(vs ...verdict) verdict {
	out := passed()
	for _, v := range vs {
		switch v.state {
		case fail:
			if out.state != fail {
				out = verdict{state: fail}
			}
			out.reasons = append(out.reasons, v.reasons...)
		case unknown:
			if out.state == pass {
				out = v
			}
		}
	}
	return out
}

// anyOf passes when any verdict passes; fails when all fail; else it
// cannot tell.
func anyOf(vs ...verdict) verdict {
	var firstUnknown *verdict
	out := verdict{state: fail}
	for i, v := range vs {
		switch v.state {
		case pass:
			return v
		case unknown:
			if firstUnknown == nil {
				firstUnknown = &vs[i]
			}
		case fail:
			out.reasons = append(out.reasons, v.reasons...)
		}
	}
	if firstUnknown != nil {
		return *firstUnknown
	}
	return out
}

// equals is PSRule's equals: the field must exist and equal want; strings
// compare case-insensitively, other types must match exactly.
func equals(t *Target, field string, want any) verdict {
	fv := t.Field(field)
	switch fv.State {
	case Missing:
		return failed(field, "%s is not set; want %s", field, show(want))
	case Undetermined:
		return undetermined(field, fv.Unknown)
	}
	if sameValue(fv.Value, want) {
		return passed()
	}
	return failed(field, "%s is %s; want %s", field, show(fv.Value), show(want))
}

// hasDefault is PSRule's hasDefault: a missing field passes (the platform
// default applies), a present one must equal want.
func hasDefault(t *Target, field string, want any) verdict {
	fv := t.Field(field)
	switch fv.State {
	case Missing:
		return passed()
	case Undetermined:
		return undetermined(field, fv.Unknown)
	}
	if sameValue(fv.Value, want) {
		return passed()
	}
	return failed(field, "%s is %s; want %s", field, show(fv.Value), show(want))
}

// in is PSRule's in: the field must exist and equal one of values.
func in(t *Target, field string, values ...string) verdict {
	fv := t.Field(field)
	switch fv.State {
	case Missing:
		return failed(field, "%s is not set; want one of %s", field, strings.Join(values, ", "))
	case Undetermined:
		return undetermined(field, fv.Unknown)
	}
	for _, w := range values {
		if sameValue(fv.Value, w) {
			return passed()
		}
	}
	return failed(field, "%s is %s; want one of %s", field, show(fv.Value), strings.Join(values, ", "))
}

// exists passes when the field is set (to anything but null).
func exists(t *Target, field string) verdict {
	fv := t.Field(field)
	switch fv.State {
	case Missing:
		return failed(field, "%s is not set", field)
	case Undetermined:
		return undetermined(field, fv.Unknown)
	}
	return passed()
}

func not(v verdict, field, format string, args ...any) verdict {
	switch v.state {
	case pass:
		return failed(field, format, args...)
	case fail:
		return passed()
	}
	return v
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && strings.EqualFold(g, w)
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case int:
		switch g := got.(type) {
		case int64:
			return g == int64(w)
		case float64:
			return g == float64(w)
		case int:
			return g == w
		}
	}
	return false
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprint(v)
}
