package armtemplate

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkRegistryTemplate is issue 7's target: 1,000 typical registry
// templates per second on one core (read + evaluate).
func BenchmarkRegistryTemplate(b *testing.B) {
	data, err := os.ReadFile("testdata/premium.jsonc")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tpl, err := ParseTemplate(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Evaluate(tpl, Options{Mode: ModeCheck}); err != nil {
			b.Fatal(err)
		}
	}
}

// largeTemplate builds a template of about size bytes: registries in a copy
// loop-free list, each with many IP rules and expressions.
func largeTemplate(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"$schema": "x", "contentVersion": "1.0.0.0",
 "parameters": {"prefix": {"type": "string", "defaultValue": "acr"}},
 "variables": {"loc": "[resourceGroup().location]"},
 "resources": [`)
	for i := 0; b.Len() < size; i++ {
		if i >= 700 {
			// Stay under the 800-resource limit: grow the last one's rules.
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `
  {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01",
   "name": "[concat(parameters('prefix'), '%d')]", "location": "[variables('loc')]",
   "sku": {"name": "Premium"},
   "properties": {"publicNetworkAccess": "Enabled", "networkRuleSet": {"defaultAction": "Deny", "ipRules": [`, i)
		for j := 0; j < 230; j++ {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"action": "Allow", "value": "[format('10.%d.{0}.0/24', %d)]"}`, i%250, j)
		}
		b.WriteString("]}}}")
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func BenchmarkTemplate10MB(b *testing.B) {
	data := largeTemplate(10 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tpl, err := ParseTemplate(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Evaluate(tpl, Options{Mode: ModeCheck}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLargeTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("large template")
	}
	data := largeTemplate(10 << 20)
	start := time.Now()
	tpl, err := ParseTemplate(data)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(tpl, Options{Mode: ModeCheck})
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("%.1f MB, %d resources: %v", float64(len(data))/(1<<20), len(res.Resources), d)
	// The target is 1 s on one core; allow slack for shared CI machines.
	if d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
