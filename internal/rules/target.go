package rules

import (
	"strings"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// Source is where a target or a finding is declared.
type Source struct {
	File string // path as given or found; "" for live registries
	Line int    // 1-based; 0 when unknown
	Col  int
}

// Target is one resource as the rules see it: the resource object ARM would
// show (type, name, sku, properties ...), where it came from, and the
// resources that extend it (diagnostic settings scoped to it).
type Target struct {
	Type string
	Name string // full resource name; "" when NameUnknown is set
	ID   string // resource id; "" when unknown
	// NameUnknown is set when the name depends on a value that cannot be
	// known offline.
	NameUnknown *armtemplate.Unknown
	// ConditionUnknown is set when the resource is deployed only if a
	// condition that cannot be known offline holds.
	ConditionUnknown *armtemplate.Unknown
	Body             map[string]any
	Source           Source
	// Extensions are the extension resources scoped to this target
	// (Microsoft.Insights/diagnosticSettings ...); UnscopedExtensions are
	// extension resources of the same input whose scope is unknown, so they
	// may extend this target.
	Extensions         []*Target
	UnscopedExtensions []*Target
	// Children are the child resources of the same input (type and name
	// below this target's), e.g. registries/replications.
	Children []*Target

	// locate maps a field path of Body to where it is written.
	locate func(field string) Source
	// bicepPath is the resource's path in its template, for mapping back
	// to Bicep source.
	bicepPath string
}

// DisplayName is the target's name for reports: its name, or the expression
// it is computed from.
func (t *Target) DisplayName() string {
	if t.Name != "" {
		return t.Name
	}
	if t.NameUnknown != nil {
		return "[" + t.NameUnknown.Expr + "]"
	}
	return "(unnamed)"
}

// Locate returns where field (a path such as properties.networkRuleSet) is
// written, or the target's own position when it is not.
func (t *Target) Locate(field string) Source {
	if t.locate != nil {
		if s := t.locate(field); s.Line > 0 {
			return s
		}
	}
	return t.Source
}

// FieldState says whether a field has a value.
type FieldState int

// Field states.
const (
	Present FieldState = iota
	Missing
	Undetermined // the value, or an object on its path, is an Unknown
)

// FieldValue is the result of a field lookup.
type FieldValue struct {
	State   FieldState
	Value   any                  // when Present
	Unknown *armtemplate.Unknown // when Undetermined
}

// Field looks up a dotted path (e.g. properties.networkRuleSet.defaultAction)
// in the target's body, matching names case-insensitively; the exact-case
// key wins when both exist. "name" and "type" are the target's own.
func (t *Target) Field(path string) FieldValue {
	if strings.EqualFold(path, "name") {
		if t.NameUnknown != nil {
			return FieldValue{State: Undetermined, Unknown: t.NameUnknown}
		}
		return FieldValue{State: Present, Value: t.Name}
	}
	if strings.EqualFold(path, "type") {
		return FieldValue{State: Present, Value: t.Type}
	}
	return lookup(t.Body, path)
}

func lookup(root any, path string) FieldValue {
	cur := root
	for part := range strings.SplitSeq(path, ".") {
		if u, ok := cur.(*armtemplate.Unknown); ok {
			return FieldValue{State: Undetermined, Unknown: u}
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return FieldValue{State: Missing}
		}
		v, ok := getFold(m, part)
		if !ok {
			return FieldValue{State: Missing}
		}
		cur = v
	}
	if u, ok := cur.(*armtemplate.Unknown); ok {
		return FieldValue{State: Undetermined, Unknown: u}
	}
	if cur == nil {
		// A JSON null is what ARM treats as "not set".
		return FieldValue{State: Missing}
	}
	return FieldValue{State: Present, Value: cur}
}

func getFold(m map[string]any, key string) (any, bool) {
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
