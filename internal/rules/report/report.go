// Package report writes the results of `moat check` in the formats CI
// systems read: text (file:line per finding and a summary), JSON, SARIF
// 2.1.0, JUnit XML and Markdown. It owns presentation only; which results
// exist and what they mean is package rules'.
package report

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moat-registry/moat/internal/rules"
)

// Filter chooses which outcomes are written, as PSRule's Output.Outcome.
type Filter int

// Filters. FailOnly includes CannotDetermine: an undetermined result is a
// finding until someone looks at it.
const (
	FailOnly Filter = iota
	PassOnly
	All
)

// ParseFilter reads Fail, Pass or All, case-insensitively.
func ParseFilter(s string) (Filter, error) {
	switch strings.ToLower(s) {
	case "fail", "":
		return FailOnly, nil
	case "pass":
		return PassOnly, nil
	case "all":
		return All, nil
	}
	return 0, fmt.Errorf("unknown outcome %q: want Fail, Pass or All", s)
}

// Keeps reports whether a result with outcome o is written.
func (f Filter) Keeps(o rules.Outcome) bool {
	switch f {
	case FailOnly:
		return o == rules.Fail || o == rules.CannotDetermine
	case PassOnly:
		return o == rules.Pass
	}
	return true
}

// Formats are the names Write accepts.
var Formats = []string{"text", "json", "sarif", "junit", "markdown"}

// Report is everything one run produced.
type Report struct {
	Rules   []*rules.Rule // the rules that ran, in order
	Results []rules.Result
	Errors  []*rules.InputError
	Files   int // inputs checked
	Tool    string
	Version string
}

// Summary counts outcomes.
type Summary struct {
	Targets         int `json:"targets"`
	Files           int `json:"files"`
	Pass            int `json:"pass"`
	Fail            int `json:"fail"`
	CannotDetermine int `json:"cannotDetermine"`
	None            int `json:"none"`
	Suppressed      int `json:"suppressed"`
	Errors          int `json:"errors"`
}

// Summarize counts every result, whatever the filter.
func (r *Report) Summarize() Summary {
	s := Summary{Files: r.Files, Errors: len(r.Errors)}
	targets := map[*rules.Target]bool{}
	for _, res := range r.Results {
		targets[res.Target] = true
		switch res.Outcome {
		case rules.Pass:
			s.Pass++
		case rules.Fail:
			s.Fail++
		case rules.CannotDetermine:
			s.CannotDetermine++
		case rules.None:
			s.None++
			if res.Suppressed {
				s.Suppressed++
			}
		}
	}
	s.Targets = len(targets)
	return s
}

// CheckFormat reports whether Write knows format.
func CheckFormat(format string) error {
	switch strings.ToLower(format) {
	case "", "text", "json", "sarif", "junit", "markdown", "md":
		return nil
	}
	return fmt.Errorf("unknown output format %q: want one of %s", format, strings.Join(Formats, ", "))
}

// Write renders rep in format, keeping the results filter selects.
func Write(w io.Writer, format string, rep *Report, filter Filter) error {
	switch strings.ToLower(format) {
	case "text", "":
		return writeText(w, rep, filter)
	case "json":
		return writeJSON(w, rep, filter)
	case "sarif":
		return writeSARIF(w, rep, filter)
	case "junit":
		return writeJUnit(w, rep, filter)
	case "markdown", "md":
		return writeMarkdown(w, rep, filter)
	}
	return CheckFormat(format)
}

func location(s rules.Source) string {
	switch {
	case s.File == "":
		return "-"
	case s.Line > 0:
		return fmt.Sprintf("%s:%d:%d", s.File, s.Line, s.Col)
	}
	return s.File
}

// uri is a SARIF artifact location: slash-separated, relative as given.
func uri(file string) string {
	if file == "" {
		return ""
	}
	if strings.HasPrefix(file, "/subscriptions/") {
		return strings.TrimPrefix(file, "/")
	}
	return filepath.ToSlash(file)
}

func kept(rep *Report, f Filter) []rules.Result {
	var out []rules.Result
	for _, r := range rep.Results {
		if f.Keeps(r.Outcome) {
			out = append(out, r)
		}
	}
	return out
}

func writeText(w io.Writer, rep *Report, f Filter) error {
	var b strings.Builder
	for _, e := range rep.Errors {
		fmt.Fprintf(&b, "%s: error: %v\n", location(rules.Source{File: e.File, Line: e.Line, Col: e.Col}), e.Err)
	}
	for _, r := range kept(rep, f) {
		fmt.Fprintf(&b, "%s: %s %s [%s] %s: %s\n", location(r.Source), r.Outcome, r.Rule.Name, r.Rule.Level, r.Target.DisplayName(), r.Message())
	}
	s := rep.Summarize()
	fmt.Fprintf(&b, "%d %s, %d %s: %d passed, %d failed, %d cannot be determined, %d not applicable (%d suppressed), %d %s\n",
		s.Files, plural(s.Files, "input", "inputs"), s.Targets, plural(s.Targets, "target", "targets"),
		s.Pass, s.Fail, s.CannotDetermine, s.None, s.Suppressed, s.Errors, plural(s.Errors, "error", "errors"))
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func writeMarkdown(w io.Writer, rep *Report, f Filter) error {
	var b strings.Builder
	b.WriteString("# moat check\n\n")
	s := rep.Summarize()
	fmt.Fprintf(&b, "%d inputs, %d targets: **%d passed**, **%d failed**, %d cannot be determined, %d errors.\n\n", s.Files, s.Targets, s.Pass, s.Fail, s.CannotDetermine, s.Errors)
	if len(rep.Errors) > 0 {
		b.WriteString("## Errors\n\n")
		for _, e := range rep.Errors {
			fmt.Fprintf(&b, "- `%s`: %s\n", location(rules.Source{File: e.File, Line: e.Line, Col: e.Col}), mdEscape(e.Err.Error()))
		}
		b.WriteString("\n")
	}
	res := kept(rep, f)
	if len(res) > 0 {
		b.WriteString("| Outcome | Rule | Level | Target | Location | Detail |\n|---|---|---|---|---|---|\n")
		for _, r := range res {
			fmt.Fprintf(&b, "| %s | [%s](%s) | %s | %s | `%s` | %s |\n", r.Outcome, r.Rule.Name, r.Rule.DocPath(), r.Rule.Level,
				mdEscape(r.Target.DisplayName()), location(r.Source), mdEscape(r.Message()))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

func ruleIndex(rep *Report, r *rules.Rule) int {
	return slices.Index(rep.Rules, r)
}
