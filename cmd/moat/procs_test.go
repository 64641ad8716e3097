package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

func TestServeProcs(t *testing.T) {
	for _, tt := range []struct {
		goDefault int
		envSet    bool
		want      int
	}{
		{goDefault: 1, want: 1 + extraProcs},
		{goDefault: 2, want: 2 + extraProcs},
		{goDefault: 64, want: 64 + extraProcs},
		{goDefault: 2, envSet: true, want: 0}, // the operator's value stays
	} {
		if got := serveProcs(tt.goDefault, tt.envSet); got != tt.want {
			t.Errorf("serveProcs(%d, %v) = %d, want %d", tt.goDefault, tt.envSet, got, tt.want)
		}
	}
}

var runtimeLine = regexp.MustCompile(`msg=runtime gomaxprocs=(\d+) go-default=(\d+) cpus=\d+`)

// TestServeBinaryProcs checks what the running binary does with GOMAXPROCS:
// raised by extraProcs when unset or empty, kept when set.
func TestServeBinaryProcs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tt := range []struct {
		env      string
		operator int // 0: moat decides
	}{
		{env: "GOMAXPROCS="},
		{env: "GOMAXPROCS=3", operator: 3},
	} {
		t.Run(tt.env, func(t *testing.T) {
			p, _ := startMoat(t, []string{tt.env, "MOAT_ADMIN_PASSWORD=s3cret-pass", "MOAT_INSECURE_HTTP=true"},
				"serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "data"))
			defer p.stop(t)
			m := runtimeLine.FindStringSubmatch(p.output())
			if m == nil {
				t.Fatalf("no runtime line in\n%s", p.output())
			}
			got, _ := strconv.Atoi(m[1])
			goDefault, _ := strconv.Atoi(m[2])
			want := goDefault + extraProcs
			if tt.operator != 0 {
				want = tt.operator
			}
			if got != want {
				t.Errorf("%s: gomaxprocs=%d (Go's default %d), want %d", tt.env, got, goDefault, want)
			}
			if goDefault < 1 {
				t.Errorf("%s: Go's default reported as %d: %s", tt.env, goDefault, m[0])
			}
		})
	}
}
