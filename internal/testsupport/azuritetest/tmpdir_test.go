package azuritetest

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRunKeepsTempFilesInItsDir: Azurite's telemetry writes a directory
// into the temporary directory, some seconds after it starts serving, and
// never removes it; run points TMPDIR into Azurite's data directory so that
// the directory goes with the data.
func TestRunKeepsTempFilesInItsDir(t *testing.T) {
	if testing.Short() {
		t.Skip("installs and runs Azurite")
	}
	bin, err := install()
	if err != nil {
		unavailable(t, err)
	}
	processTmp, dir := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", processTmp) // what Azurite would inherit
	cmd, ep, err := run(bin, dir, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill() // a throw-away emulator
		_ = cmd.Wait()         // killed: its exit status says so
	}()
	written := func(d string) bool { e, _ := os.ReadDir(d); return len(e) > 0 }
	// Serve requests until the telemetry has written somewhere.
	for deadline := time.Now().Add(60 * time.Second); !written(processTmp) && !written(filepath.Join(dir, "tmp")); {
		if time.Now().After(deadline) {
			t.Fatal("Azurite's telemetry wrote nothing within 60s; this test no longer sees what it checks")
		}
		answers(http.DefaultClient, ep+"/"+Account)
		time.Sleep(500 * time.Millisecond)
	}
	entries, err := os.ReadDir(processTmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("Azurite left %s in the process's temporary directory", e.Name())
	}
}
