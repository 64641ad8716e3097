package armtemplate_test

import (
	"fmt"

	"github.com/moat-registry/moat/internal/armtemplate"
)

func ExampleEvaluate() {
	tpl, err := armtemplate.ParseTemplate([]byte(`{
  // JSONC: comments and trailing commas are fine.
  "parameters": {"name": {"type": "string"}},
  "resources": [{
    "type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
    "name": "[parameters('name')]", "sku": {"name": "Premium"},
    "properties": {"networkRuleSet": {"defaultAction": "Deny"},
                   "dataEndpointEnabled": "[reference('other').enabled]"},
  }],
}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := armtemplate.Evaluate(tpl, armtemplate.Options{
		Mode:           armtemplate.ModeCheck,
		SubscriptionID: "00000000-0000-0000-0000-000000000000",
		ResourceGroup:  "rg",
		Parameters:     map[string]any{"name": "myregistry"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := res.Resources[0]
	props := r.Properties.(map[string]any)
	fmt.Println(r.ID)
	fmt.Println(props["networkRuleSet"].(map[string]any)["defaultAction"])
	if u, ok := props["dataEndpointEnabled"].(*armtemplate.Unknown); ok {
		fmt.Println(u.Expr, "at", u.Path, "line", u.Pos.Line)
	}
	// Output:
	// /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myregistry
	// Deny
	// reference('other') at resources[0].properties.dataEndpointEnabled line 8
}
