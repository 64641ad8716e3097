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
		env       string
		envSet    bool
		want      int
		wantErr   bool
	}{
		{goDefault: 1, want: 1 + extraProcs},
		{goDefault: 2, want: 2 + extraProcs},
		{goDefault: 64, want: 64 + extraProcs},
		{goDefault: 2, env: "", envSet: true, want: 2 + extraProcs}, // empty is unset
		{goDefault: 2, env: "3", envSet: true, want: 0},             // the operator's value stays
		{goDefault: 2, env: "1", envSet: true, want: 0},
		{goDefault: 2, env: "0", envSet: true, wantErr: true},
		{goDefault: 2, env: "-4", envSet: true, wantErr: true},
		{goDefault: 2, env: "four", envSet: true, wantErr: true},
		{goDefault: 2, env: "4 ", envSet: true, wantErr: true},
	} {
		got, err := serveProcs(tt.goDefault, tt.env, tt.envSet)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("serveProcs(%d, %q, %v) = %d, %v; want %d, error %v", tt.goDefault, tt.env, tt.envSet, got, err, tt.want, tt.wantErr)
		}
	}
}

var runtimeLine = regexp.MustCompile(`msg=runtime gomaxprocs=(\d+) go-default=(\d+) cpus=\d+`)

// TestServeBinaryProcs checks what the running binary does with GOMAXPROCS:
// raised by extraProcs when unset or empty, kept when set. A value Go would
// ignore is refused with one line: TestStartupErrorsAreOneLine.
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
