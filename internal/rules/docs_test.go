package rules

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestDocExamplesPass checks that every rule has a doc page and that the
// page's ARM example passes the rule it documents.
func TestDocExamplesPass(t *testing.T) {
	cfg := &Config{Values: map[string]any{"AZURE_CONTAINER_REGISTRY_NAME_FORMAT": "^cr[a-z0-9]{3,47}$"}}
	for _, r := range Set() {
		data, err := os.ReadFile("../../" + r.DocPath())
		if err != nil {
			t.Errorf("%s: %v", r.Name, err)
			continue
		}
		doc := string(data)
		_, after, ok := strings.Cut(doc, "```json\n")
		snippet, _, ok2 := strings.Cut(after, "```")
		if !ok || !ok2 || !strings.Contains(doc, "```bicep\n") {
			t.Errorf("%s: the page needs an ARM and a Bicep example", r.Name)
			continue
		}
		var res any
		if err := json.Unmarshal([]byte(snippet), &res); err != nil {
			t.Errorf("%s: ARM example: %v", r.Name, err)
			continue
		}
		if _, isList := res.([]any); !isList {
			res = []any{res}
		}
		tpl, _ := json.Marshal(map[string]any{
			"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
			"contentVersion": "1.0.0.0",
			"parameters": map[string]any{
				"registryName": map[string]any{"type": "string", "defaultValue": "crexample01"},
				"location":     map[string]any{"type": "string", "defaultValue": "westeurope"},
				"workspaceId":  map[string]any{"type": "string", "defaultValue": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"},
			},
			"resources": res,
		})
		results, err := checkBytes(tpl, nil)
		if err != nil {
			t.Errorf("%s: ARM example: %v", r.Name, err)
			continue
		}
		checked := false
		for _, res := range results {
			if res.Rule.Name == r.Name && res.Target.Type == RegistryType {
				checked = true
				if got := Evaluate(r, res.Target, cfg); got.Outcome != Pass {
					t.Errorf("%s: its ARM example gives %s: %s", r.Name, got.Outcome, got.Message())
				}
			}
		}
		if !checked {
			t.Errorf("%s: its ARM example has no registry", r.Name)
		}
	}
}
