package bicep

import (
	"fmt"
	"strings"
	"testing"
)

// largeFile builds a Bicep file of about n bytes from typical registry
// declarations.
func largeFile(n int) []byte {
	var b strings.Builder
	b.WriteString("param location string = resourceGroup().location\n@allowed([\n  'Basic'\n  'Premium'\n])\nparam sku string = 'Premium'\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `
// Registry %[1]d
@description('registry %[1]d')
resource acr%[1]d 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: 'acr${uniqueString(resourceGroup().id, '%[1]d')}'
  location: location
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: sku != 'Premium' && %[1]d %% 2 == 0
    publicNetworkAccess: 'Disabled'
    networkRuleSet: {
      defaultAction: 'Deny'
      ipRules: [for ip in ['10.0.0.%[1]d', '10.1.0.%[1]d']: {
        action: 'Allow'
        value: ip
      }]
    }
    policies: {
      retentionPolicy: { days: 7, status: 'enabled' }
    }
  }
}
output server%[1]d string = acr%[1]d.properties.loginServer
`, i)
	}
	return []byte(b.String())
}

func BenchmarkParse(b *testing.B) {
	src := largeFile(4 << 20)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(src, "large.bicep"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	src := largeFile(1 << 20)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Compile(src, "large.bicep"); err != nil {
			b.Fatal(err)
		}
	}
}
