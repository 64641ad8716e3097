package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBicepCLI puts an executable named bicep on PATH that answers
// `bicep build --stdout FILE` like the official CLI: the template on stdout,
// or a located "Error BCP…" diagnostic on stderr with exit status 1. The
// official CLI needs .NET, which this machine does not have; the stand-in
// speaks its command line and output format.
func fakeBicepCLI(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
[ "$1" = build ] && [ "$2" = --stdout ] || { echo "unexpected arguments: $*" >&2; exit 2; }
if grep -q BROKEN "$3"; then
  echo "$3(4,7) : Error BCP018: Expected the \"=\" character at this location. [https://aka.ms/bicep/core-diagnostics#BCP018]" >&2
  exit 1
fi
cat <<'JSON'
{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "resources": [
    {"type": "Microsoft.ContainerRegistry/registries", "apiVersion": "2023-07-01", "name": "fromcli0001",
     "location": "westeurope", "sku": {"name": "Premium"}, "properties": {"adminUserEnabled": true}}
  ]
}
JSON
`
	if err := os.WriteFile(filepath.Join(dir, "bicep"), []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCheckBicepCompilerChoice(t *testing.T) {
	t.Run("binary missing is a usage error", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, code := runCheckCmd(t, "--bicep", "binary", checkFixtures+"seed003.bicep"); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		out, code := runCheckCmd(t, "--bicep", "auto", "--outcome", "All", checkFixtures+"seed003.bicep")
		if code != 0 || !strings.Contains(out, "seedbicep003") {
			t.Fatalf("auto without a CLI must fall back to native: exit %d\n%s", code, out)
		}
	})
	t.Run("bad choice", func(t *testing.T) {
		if _, code := runCheckCmd(t, "--bicep", "dotnet", checkFixtures+"seed003.bicep"); code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
	})
	t.Run("cli", func(t *testing.T) {
		fakeBicepCLI(t)
		for _, mode := range []string{"binary", "auto"} {
			out, code := runCheckCmd(t, "--bicep", mode, checkFixtures+"seed003.bicep")
			if code != 100 || !strings.Contains(out, "Fail Azure.ACR.AdminUser [Error] fromcli0001") {
				t.Fatalf("--bicep %s: exit %d\n%s", mode, code, out)
			}
		}
		// native ignores the CLI on PATH: the default never depends on it.
		out, code := runCheckCmd(t, "--outcome", "All", checkFixtures+"seed003.bicep")
		if code != 0 || strings.Contains(out, "fromcli0001") || !strings.Contains(out, "seedbicep003") {
			t.Fatalf("native: exit %d\n%s", code, out)
		}
		broken := filepath.Join(t.TempDir(), "broken.bicep")
		if err := os.WriteFile(broken, []byte("// BROKEN\nparam x string\n\nvar y 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code = runCheckCmd(t, "--bicep", "binary", broken, checkFixtures+"open.json")
		if code != 1 || !strings.Contains(out, "broken.bicep:4:7") || !strings.Contains(out, "BCP018") || !strings.Contains(out, "openregistry") {
			t.Fatalf("a CLI diagnostic must be a located error and the other files still checked: exit %d\n%s", code, out)
		}
	})
}
