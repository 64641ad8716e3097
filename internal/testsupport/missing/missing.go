// Package missing owns what a test does when something it needs from the
// machine (a PostgreSQL server, Azurite, an external tool) cannot be had:
// on a developer's machine it skips, saying what to install; under CI=true
// it fails, because CI must run every test and a skip there would hide a
// broken set-up behind a green run.
package missing

import (
	"fmt"
	"os"
	"testing"
)

// ciFails is the phrase a failure under CI=true ends with.
const ciFails = "CI=true, so this fails instead of skipping"

// Skip ends t because what it needs is missing: it skips with the message
// (format and args as for fmt.Sprintf), or fails with it under CI=true.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (%s)", msg, ciFails)
	}
	t.Skip(msg)
}
