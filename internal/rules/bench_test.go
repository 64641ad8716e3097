package rules

import (
	"fmt"
	"os"
	"testing"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// checkBytes is the whole per-template path without file I/O: parse,
// evaluate in check mode, build targets, run every rule.
func checkBytes(data []byte, params map[string]any) ([]Result, error) {
	tpl, err := armtemplate.ParseTemplate(data)
	if err != nil {
		return nil, err
	}
	values := map[string]any{}
	for k, v := range params {
		values[k] = v
	}
	eo, err := evalOptions(tpl, values, nil)
	if err != nil {
		return nil, err
	}
	res, err := armtemplate.Evaluate(tpl, eo)
	if err != nil {
		return nil, err
	}
	targets := linkExtensions(templateTargets(res, "t.json", tpl.Positions))
	return Run(Set(), targets, nil, Selection{}), nil
}

func BenchmarkCheckTypicalTemplate(b *testing.B) {
	data, err := os.ReadFile("testdata/seed003.json")
	if err != nil {
		b.Fatal(err)
	}
	params := map[string]any{"registryName": "seedregistry003"}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := checkBytes(data, params); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzCheckTemplate(f *testing.F) {
	for _, name := range []string{"seed003.json", "open.json", "loop.json", "audit.json", "unknown-name.json", "broken.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"resources":[{"type":"Microsoft.ContainerRegistry/registries","name":"[concat('a', reference('x'))]","properties":{"networkRuleSet":{"ipRules":[{"value":"::/0"},{"value":5}]}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		results, err := checkBytes(data, nil)
		if err != nil {
			return
		}
		for _, r := range results {
			if r.Outcome == CannotDetermine && r.Unknown == "" {
				t.Fatalf("%s: cannot determine without an expression", r.Rule.Name)
			}
		}
	})
}

// largeTemplate is about 10 MB: 800 registries (ARM's resource limit) with
// 200 IP rules each.
func largeTemplate() []byte {
	var b []byte
	b = append(b, `{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#","contentVersion":"1.0.0.0","resources":[`...)
	for i := range 800 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, fmt.Sprintf(`{"type":"Microsoft.ContainerRegistry/registries","apiVersion":"2023-07-01","name":"registry%04d","location":"westeurope","sku":{"name":"Premium"},"properties":{"adminUserEnabled":false,"networkRuleSet":{"defaultAction":"Deny","ipRules":[`, i)...)
		for j := range 200 {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, fmt.Sprintf(`{"action":"Allow","value":"203.%d.%d.0/24"}`, i%256, j)...)
		}
		b = append(b, `]}}}`...)
	}
	return append(b, "]}"...)
}

func BenchmarkCheckLargeTemplate(b *testing.B) {
	data := largeTemplate()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		results, err := checkBytes(data, nil)
		if err != nil || len(results) == 0 {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadAndCheck is the command's path for one template and its
// parameter file, file reads included.
func BenchmarkLoadAndCheck(b *testing.B) {
	set := Set()
	for b.Loop() {
		in := Load([]string{"testdata/seed003.parameters.json"}, LoadOptions{})
		if len(in.Targets) != 1 || len(Run(set, in.Targets, nil, Selection{})) == 0 {
			b.Fatal(in.Errors)
		}
	}
}
