package rules

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Level is how serious a failure of a rule is, as PSRule's rule levels.
type Level int

// Levels, least to most serious; Never is only a --break threshold.
const (
	Information Level = iota + 1
	Warning
	Error
	Never
)

func (l Level) String() string {
	switch l {
	case Information:
		return "Information"
	case Warning:
		return "Warning"
	case Error:
		return "Error"
	case Never:
		return "Never"
	}
	return "Unknown"
}

// ParseLevel reads a level name, case-insensitively.
func ParseLevel(s string) (Level, error) {
	for _, l := range []Level{Information, Warning, Error, Never} {
		if strings.EqualFold(s, l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("unknown level %q: want Error, Warning, Information or Never", s)
}

// Outcome is a rule's result for one target.
type Outcome int

// Outcomes. None means the rule does not apply to the target (its
// precondition is false) or the result was suppressed.
const (
	Pass Outcome = iota + 1
	Fail
	None
	CannotDetermine
)

func (o Outcome) String() string {
	switch o {
	case Pass:
		return "Pass"
	case Fail:
		return "Fail"
	case None:
		return "None"
	case CannotDetermine:
		return "CannotDetermine"
	}
	return "Unknown"
}

// Rule is one check: data (name, synopsis, level, tags) plus its
// precondition and condition over a target.
type Rule struct {
	Name string
	// Alias is another name the rule answers to in options (PSRule for
	// Azure's name when it differs).
	Alias    string
	Ref      string // PSRule for Azure's stable reference, for Azure.* rules
	Synopsis string
	Level    Level
	// Tags are PSRule's tags: release (GA, preview), ruleSet,
	// Azure.WAF/pillar.
	Tags map[string]string
	// Type is the resource type the rule applies to (case-insensitive).
	Type string
	// If is the rest of the precondition (SKU selectors ...); nil means the
	// type alone decides. A failing If gives None; an unknown one
	// CannotDetermine.
	If func(t *Target, c *Config) verdict
	// Check is the condition.
	Check func(t *Target, c *Config) verdict
	// Recommendation says how to fix a failure, in one sentence.
	Recommendation string
}

// DocPath is the rule's documentation page, relative to the repository.
func (r *Rule) DocPath() string { return "docs/rules/" + r.Name + ".md" }

// Result is the outcome of one rule for one target.
type Result struct {
	Rule       *Rule
	Target     *Target
	Outcome    Outcome
	Suppressed bool
	Reasons    []Reason
	// Unknown is the expression the outcome depends on (CannotDetermine).
	Unknown string
	// Source is where the finding is: the failing field, the unknown
	// expression, or the resource.
	Source Source
}

// Message is a one-line explanation of the result.
func (r *Result) Message() string {
	if r.Rule == nil || r.Target == nil {
		return ""
	}
	switch r.Outcome {
	case Pass:
		return r.Rule.Synopsis
	case None:
		if r.Suppressed {
			return "suppressed"
		}
		return "the rule does not apply"
	case CannotDetermine:
		return "cannot determine: depends on " + r.Unknown
	}
	msgs := make([]string, 0, len(r.Reasons)+1)
	for _, rs := range r.Reasons {
		msgs = append(msgs, rs.Message)
	}
	if len(msgs) == 0 {
		msgs = append(msgs, r.Rule.Synopsis)
	}
	if u := r.Target.ConditionUnknown; u != nil {
		// Still a failure: the resource is insecure whenever it is deployed.
		msgs = append(msgs, "(deployed only if "+u.Expr+")")
	}
	return strings.Join(msgs, "; ")
}

// Config is the checker configuration: PSRule's configuration values.
type Config struct {
	// Values are the configuration keys (AZURE_RESOURCE_GROUP, ...) by
	// upper-cased name.
	Values map[string]any

	once       sync.Once
	nameFormat *regexp.Regexp
	nameErr    error
}

// String returns a configuration value as a string, or "".
func (c *Config) String(key string) string {
	if c == nil {
		return ""
	}
	s, _ := c.Values[strings.ToUpper(key)].(string)
	return s
}

// NameFormat is AZURE_CONTAINER_REGISTRY_NAME_FORMAT compiled, or nil when
// it is not configured.
func (c *Config) NameFormat() (*regexp.Regexp, error) {
	if c == nil {
		return nil, nil
	}
	c.once.Do(func() {
		if f := c.String("AZURE_CONTAINER_REGISTRY_NAME_FORMAT"); f != "" {
			c.nameFormat, c.nameErr = regexp.Compile(f)
			if c.nameErr != nil {
				c.nameErr = fmt.Errorf("configuration AZURE_CONTAINER_REGISTRY_NAME_FORMAT: %w", c.nameErr)
			}
		}
	})
	return c.nameFormat, c.nameErr
}

// Selection chooses rules and suppresses results, as ps-rule.yaml does.
type Selection struct {
	Include  []string // rule names; empty means all of the baseline
	Exclude  []string
	Baseline string // "" or all: every rule; GA: the Azure.* rules only
	// Suppression maps a rule name to target names whose results for that
	// rule are suppressed (case-insensitive).
	Suppression map[string][]string
}

// Select returns the rules of set that sel keeps, in set order.
func (sel Selection) Select(set []*Rule) ([]*Rule, error) {
	var keep func(*Rule) bool
	switch b := strings.ToLower(sel.Baseline); b {
	case "", "all", "azure.all", "moat.all":
		keep = func(*Rule) bool { return true }
	case "ga", "azure.ga", "azure.default":
		keep = func(r *Rule) bool { return strings.HasPrefix(r.Name, "Azure.") }
	default:
		return nil, fmt.Errorf("unknown baseline %q: want GA or all", sel.Baseline)
	}
	known := map[string]bool{}
	for _, r := range set {
		known[strings.ToLower(r.Name)] = true
		if r.Alias != "" {
			known[strings.ToLower(r.Alias)] = true
		}
	}
	for _, n := range append(append([]string{}, sel.Include...), sel.Exclude...) {
		if !known[strings.ToLower(n)] {
			return nil, fmt.Errorf("unknown rule %q", n)
		}
	}
	var out []*Rule
	for _, r := range set {
		if !keep(r) || r.named(sel.Exclude) {
			continue
		}
		if len(sel.Include) > 0 && !r.named(sel.Include) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// named reports whether list names the rule, by name or alias.
func (r *Rule) named(list []string) bool {
	return containsFold(list, r.Name) || (r.Alias != "" && containsFold(list, r.Alias))
}

func (sel Selection) suppressed(rule *Rule, t *Target) bool {
	for name, targets := range sel.Suppression {
		if rule.named([]string{name}) && (containsFold(targets, t.Name) || containsFold(targets, t.DisplayName())) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Run applies rules to every target, targets in order, rules in order.
func Run(rules []*Rule, targets []*Target, cfg *Config, sel Selection) []Result {
	var out []Result
	for _, t := range targets {
		for _, r := range rules {
			if !strings.EqualFold(r.Type, t.Type) {
				continue
			}
			out = append(out, Evaluate(r, t, cfg))
			if sel.suppressed(r, t) {
				res := &out[len(out)-1]
				res.Outcome, res.Suppressed = None, true
			}
		}
	}
	return out
}

// Evaluate applies one rule to one target.
func Evaluate(r *Rule, t *Target, cfg *Config) Result {
	res := Result{Rule: r, Target: t, Source: t.Source}
	if !strings.EqualFold(r.Type, t.Type) {
		res.Outcome = None
		return res
	}
	v := passed()
	if r.If != nil {
		v = r.If(t, cfg)
	}
	if v.state == fail {
		res.Outcome = None
		return res
	}
	if v.state == pass {
		v = r.Check(t, cfg)
	}
	switch v.state {
	case pass:
		res.Outcome = Pass
	case fail:
		res.Outcome = Fail
		res.Reasons = v.reasons
		if len(v.reasons) > 0 && v.reasons[0].Field != "" {
			res.Source = t.Locate(v.reasons[0].Field)
		}
	case unknown:
		res.Outcome = CannotDetermine
		res.Unknown = v.unknown.Expr
		if v.unknown.Reason != "" {
			res.Unknown += " (" + v.unknown.Reason + ")"
		}
		// The field's own position, not the Unknown's: an Unknown may come
		// from a parameter file, whose positions are not the template's.
		res.Source = t.Locate(v.field)
	}
	return res
}
