package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/moat-registry/moat/internal/rules"
)

func sample(t *testing.T) *Report {
	t.Helper()
	in := rules.Load([]string{"../testdata/open.json", "../testdata/seed003.json", "../testdata/broken.json"}, rules.LoadOptions{})
	set := rules.Set()
	return &Report{Rules: set, Results: rules.Run(set, in.Targets, nil, rules.Selection{}), Errors: in.Errors, Files: in.Files, Version: "test"}
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "text", sample(t), FailOnly); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"../testdata/broken.json:3:5: error:",
		"../testdata/open.json:14:",
		"Fail Azure.ACR.Firewall [Error] openregistry:",
		"CannotDetermine Azure.ACR.Name [Error] [parameters('registryName')]: cannot determine: depends on parameters('registryName')",
		"2 inputs, 2 targets:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, " Pass ") {
		t.Errorf("Fail filter shows passes:\n%s", out)
	}
}

func TestSARIF(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "sarif", sample(t), All); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Kind      string `json:"kind"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "moat" {
		t.Fatalf("envelope: %+v", log)
	}
	run := log.Runs[0]
	if len(run.Tool.Driver.Rules) != len(rules.Set()) || len(run.Results) == 0 {
		t.Fatalf("%d rules, %d results", len(run.Tool.Driver.Rules), len(run.Results))
	}
	levels := map[string]bool{"error": true, "warning": true, "note": true, "none": true}
	for _, r := range run.Results {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID || !levels[r.Level] || r.Message.Text == "" {
			t.Errorf("result %+v", r)
		}
		if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" || r.Locations[0].PhysicalLocation.Region.StartLine < 1 {
			t.Errorf("location of %s: %+v", r.RuleID, r.Locations)
		}
		if r.Kind != "fail" && r.Level != "none" {
			t.Errorf("%s: kind %s with level %s", r.RuleID, r.Kind, r.Level)
		}
	}
}

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "junit", sample(t), All); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Tests == 0 || doc.Failures == 0 || doc.Errors != 1 || len(doc.Suites) != 3 {
		t.Errorf("tests %d failures %d errors %d suites %d", doc.Tests, doc.Failures, doc.Errors, len(doc.Suites))
	}
}

func TestJSONAndMarkdown(t *testing.T) {
	rep := sample(t)
	var b bytes.Buffer
	if err := Write(&b, "json", rep, PassOnly); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []struct {
			Outcome string `json:"outcome"`
		} `json:"results"`
		Errors  []jsonError `json:"errors"`
		Summary Summary     `json:"summary"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range doc.Results {
		if r.Outcome != "Pass" {
			t.Errorf("Pass filter shows %s", r.Outcome)
		}
	}
	if doc.Summary.Fail == 0 || len(doc.Errors) != 1 || doc.Errors[0].Line == 0 {
		t.Errorf("summary %+v errors %+v", doc.Summary, doc.Errors)
	}
	b.Reset()
	if err := Write(&b, "markdown", rep, FailOnly); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| Fail | [Azure.ACR.Firewall](docs/rules/Azure.ACR.Firewall.md) |") {
		t.Errorf("markdown:\n%s", b.String())
	}
	if err := Write(&b, "yaml", rep, FailOnly); err == nil {
		t.Error("unknown format accepted")
	}
}
