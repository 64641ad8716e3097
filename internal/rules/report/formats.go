package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/moat-registry/moat/internal/rules"
)

type jsonReason struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

type jsonResult struct {
	RuleName   string       `json:"ruleName"`
	RuleRef    string       `json:"ruleRef,omitempty"`
	Level      string       `json:"level"`
	Outcome    string       `json:"outcome"`
	Suppressed bool         `json:"suppressed,omitempty"`
	TargetName string       `json:"targetName"`
	TargetType string       `json:"targetType"`
	TargetID   string       `json:"targetId,omitempty"`
	File       string       `json:"file,omitempty"`
	Line       int          `json:"line,omitempty"`
	Column     int          `json:"column,omitempty"`
	Message    string       `json:"message"`
	Reasons    []jsonReason `json:"reasons,omitempty"`
	Unknown    string       `json:"unknown,omitempty"`
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func writeJSON(w io.Writer, rep *Report, f Filter) error {
	out := struct {
		Results []jsonResult `json:"results"`
		Errors  []jsonError  `json:"errors"`
		Summary Summary      `json:"summary"`
	}{Results: []jsonResult{}, Errors: []jsonError{}, Summary: rep.Summarize()}
	for _, r := range kept(rep, f) {
		jr := jsonResult{
			RuleName: r.Rule.Name, RuleRef: r.Rule.Ref, Level: r.Rule.Level.String(), Outcome: r.Outcome.String(),
			Suppressed: r.Suppressed, TargetName: r.Target.DisplayName(), TargetType: r.Target.Type, TargetID: r.Target.ID,
			File: r.Source.File, Line: r.Source.Line, Column: r.Source.Col, Message: r.Message(), Unknown: r.Unknown,
		}
		for _, rs := range r.Reasons {
			jr.Reasons = append(jr.Reasons, jsonReason(rs))
		}
		out.Results = append(out.Results, jr)
	}
	for _, e := range rep.Errors {
		out.Errors = append(out.Errors, jsonError{File: e.File, Line: e.Line, Column: e.Col, Message: e.Err.Error()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// SARIF 2.1.0, the subset code-scanning services read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	Help                 sarifText      `json:"help"`
	HelpURI              string         `json:"helpUri,omitempty"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties,omitempty"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifResult struct {
	RuleID     string          `json:"ruleId"`
	RuleIndex  int             `json:"ruleIndex"`
	Kind       string          `json:"kind"`
	Level      string          `json:"level"`
	Message    sarifText       `json:"message"`
	Locations  []sarifLocation `json:"locations"`
	Properties map[string]any  `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
}

func sarifLevel(l rules.Level) string {
	switch l {
	case rules.Error:
		return "error"
	case rules.Warning:
		return "warning"
	}
	return "note"
}

func sarifLocations(s rules.Source) []sarifLocation {
	if s.File == "" {
		return []sarifLocation{}
	}
	loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri(s.File)}}}
	if s.Line > 0 {
		loc.PhysicalLocation.Region = &sarifRegion{StartLine: s.Line, StartColumn: s.Col}
	}
	return []sarifLocation{loc}
}

func writeSARIF(w io.Writer, rep *Report, f Filter) error {
	tool := rep.Tool
	if tool == "" {
		tool = "moat"
	}
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{
			Name: tool, Version: rep.Version, InformationURI: "https://github.com/moat-registry/moat", Rules: []sarifRule{},
		}},
		Invocations: []sarifInvocation{{ExecutionSuccessful: len(rep.Errors) == 0}},
		Results:     []sarifResult{},
	}
	for _, r := range rep.Rules {
		tags := make([]string, 0, len(r.Tags))
		for k, v := range r.Tags {
			tags = append(tags, k+"="+v)
		}
		sort.Strings(tags)
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: r.Name, Name: strings.ReplaceAll(r.Name, ".", ""), ShortDescription: sarifText{r.Synopsis},
			Help: sarifText{r.Recommendation}, DefaultConfiguration: sarifConfig{Level: sarifLevel(r.Level)},
			Properties: map[string]any{"tags": tags},
		})
	}
	for _, e := range rep.Errors {
		run.Invocations[0].ToolExecutionNotifications = append(run.Invocations[0].ToolExecutionNotifications, sarifNotification{
			Level: "error", Message: sarifText{e.Err.Error()}, Locations: sarifLocations(rules.Source{File: e.File, Line: e.Line, Col: e.Col}),
		})
	}
	for _, r := range kept(rep, f) {
		sr := sarifResult{
			RuleID: r.Rule.Name, RuleIndex: ruleIndex(rep, r.Rule), Message: sarifText{r.Target.DisplayName() + ": " + r.Message()},
			Locations:  sarifLocations(r.Source),
			Properties: map[string]any{"outcome": r.Outcome.String(), "targetName": r.Target.DisplayName(), "targetType": r.Target.Type},
		}
		switch r.Outcome {
		case rules.Pass:
			sr.Kind, sr.Level = "pass", "none"
		case rules.None:
			sr.Kind, sr.Level = "notApplicable", "none"
		default:
			// An undetermined result is reported as a failure at the rule's
			// level: code scanning hides results of other kinds.
			sr.Kind, sr.Level = "fail", sarifLevel(r.Rule.Level)
		}
		run.Results = append(run.Results, sr)
	}
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// JUnit XML: one test suite per target, one test case per rule.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	File     string      `xml:"file,attr,omitempty"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func writeJUnit(w io.Writer, rep *Report, f Filter) error {
	out := junitSuites{Name: "moat check"}
	index := map[*rules.Target]int{}
	for _, r := range kept(rep, f) {
		i, ok := index[r.Target]
		if !ok {
			i = len(out.Suites)
			index[r.Target] = i
			out.Suites = append(out.Suites, junitSuite{Name: r.Target.DisplayName() + " (" + r.Target.Type + ")", File: r.Target.Source.File})
		}
		s := &out.Suites[i]
		c := junitCase{Name: r.Rule.Name, ClassName: r.Target.DisplayName(), File: r.Source.File, Line: r.Source.Line}
		detail := fmt.Sprintf("%s: %s", location(r.Source), r.Message())
		switch r.Outcome {
		case rules.Fail:
			c.Failure = &junitProblem{Message: r.Message(), Type: r.Rule.Level.String(), Text: detail}
			s.Failures++
		case rules.CannotDetermine:
			c.Failure = &junitProblem{Message: r.Message(), Type: "CannotDetermine", Text: detail}
			s.Failures++
		case rules.None:
			c.Skipped = &junitProblem{Message: r.Message()}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	if len(rep.Errors) > 0 {
		s := junitSuite{Name: "inputs"}
		for _, e := range rep.Errors {
			s.Cases = append(s.Cases, junitCase{Name: e.File, ClassName: "input", File: e.File, Line: e.Line,
				Error: &junitProblem{Message: e.Err.Error(), Text: e.Error()}})
			s.Tests++
			s.Errors++
		}
		out.Suites = append(out.Suites, s)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
