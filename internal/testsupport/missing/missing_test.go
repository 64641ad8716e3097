package missing

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSkipInChild is what TestSkip runs in a child process.
func TestSkipInChild(t *testing.T) {
	if os.Getenv("MISSING_CHILD") == "" {
		return
	}
	Skip(t, "no %s here", "frobnicator")
	t.Error("Skip returned")
}

// TestSkip runs TestSkipInChild in a child process: without CI it skips,
// with CI=true it fails, and either way says what is missing.
func TestSkip(t *testing.T) {
	for _, c := range []struct {
		ci       string
		wantFail bool
		want     []string
	}{
		{"", false, []string{"--- SKIP: TestSkipInChild", "no frobnicator here"}},
		{"false", false, []string{"--- SKIP: TestSkipInChild"}},
		{"true", true, []string{"--- FAIL: TestSkipInChild", "no frobnicator here (" + ciFails + ")"}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSkipInChild$", "-test.v", "-test.count=1") //nolint:gosec // re-runs this test binary
		cmd.Env = append(os.Environ(), "MISSING_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != c.wantFail {
			t.Errorf("CI=%q: child failed=%v (%v), want %v\n%s", c.ci, failed, err, c.wantFail, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("CI=%q: child output lacks %q:\n%s", c.ci, w, out)
			}
		}
		if strings.Contains(string(out), "Skip returned") {
			t.Errorf("CI=%q: Skip returned:\n%s", c.ci, out)
		}
	}
}
