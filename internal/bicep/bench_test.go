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

// TestParseThroughput keeps the 5 MB/s target: it measures the process's
// CPU time (GC included) rather than wall time, so a busy machine does not
// make it fail.
func TestParseThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	src := largeFile(2 << 20)
	const rounds = 3
	before, ok := cpuTime()
	if !ok {
		t.Skip("no CPU time on this platform")
	}
	for range rounds {
		if _, err := Parse(src, "large.bicep"); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := cpuTime()
	mbps := float64(len(src)*rounds) / (after - before).Seconds() / 1e6
	t.Logf("parse: %.1f MB/s of CPU time", mbps)
	if mbps < 5 {
		t.Errorf("parse throughput %.1f MB/s, target 5 MB/s", mbps)
	}
}
