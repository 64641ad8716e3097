package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate"
	"github.com/moat-registry/moat/internal/rules"
)

// Choices of --bicep: which compiler lowers .bicep files for moat check.
const (
	bicepNative = "native" // moat's own (internal/bicep); the default
	bicepBinary = "binary" // the official `bicep` CLI from PATH; an error without it
	bicepAuto   = "auto"   // the CLI when it is on PATH, else moat's own
)

// bicepTimeout bounds one run of the bicep CLI (it starts .NET, which takes
// a few seconds cold).
const bicepTimeout = 2 * time.Minute

// maxBicepOutput bounds the template the bicep CLI may print.
const maxBicepOutput = 64 << 20

// chooseBicep returns the compiler that --bicep names. The official CLI is
// never required: native is the default and auto falls back to it, so the
// check gives the same answer on a machine without .NET.
func chooseBicep(mode string) (func([]byte, string) (*rules.Compiled, error), error) {
	switch mode {
	case bicepNative, "":
		return bicepCompiler, nil
	case bicepBinary, bicepAuto:
		path, err := exec.LookPath("bicep")
		if err != nil {
			if mode == bicepAuto {
				return bicepCompiler, nil
			}
			return nil, fmt.Errorf("--bicep binary: no bicep executable on PATH (install the Bicep CLI, or use --bicep native)")
		}
		return func(_ []byte, filename string) (*rules.Compiled, error) {
			return compileBicepCLI(path, filename)
		}, nil
	}
	return nil, fmt.Errorf("--bicep %q: want native, binary or auto", mode)
}

// bicepDiagnostic is one line of the bicep CLI's error output:
// "<file>(<line>,<col>) : Error BCP…: message".
var bicepDiagnostic = regexp.MustCompile(`^(.*)\((\d+),(\d+)\)\s*:\s*Error\s+([A-Za-z0-9]+):\s*(.*)$`)

// compileBicepCLI runs `bicep build --stdout FILE` and reads the template it
// prints. The CLI reads the file (and its modules) itself, so src is not
// passed. Template paths have no Bicep positions: findings point at the
// file.
func compileBicepCLI(bin, filename string) (*rules.Compiled, error) {
	abs, err := filepath.Abs(filename)
	if err != nil {
		return nil, fmt.Errorf("bicep: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bicepTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "build", "--stdout", abs) //nolint:gosec // the user chose --bicep binary; the file is their input
	cmd.Stdout = &limitedBuffer{buf: &stdout, max: maxBicepOutput}
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 1 << 20}
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("bicep build %s: gave up after %s", filename, bicepTimeout)
	}
	if runErr != nil {
		if ie := firstBicepError(stderr.String(), filename); ie != nil {
			return nil, ie
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = runErr.Error()
		}
		return nil, fmt.Errorf("bicep build %s: %s", filename, firstLine(msg))
	}
	v, _, err := armtemplate.ReadJSONC(stdout.Bytes())
	tmpl, ok := v.(map[string]any)
	if err != nil || !ok {
		return nil, fmt.Errorf("bicep build %s: the CLI's output is not a JSON template", filename)
	}
	return &rules.Compiled{Template: tmpl, Pos: func(string) (int, int, bool) { return 0, 0, false }}, nil
}

// firstBicepError is the first "Error" diagnostic in the CLI's output as a
// located input error, or nil.
func firstBicepError(out, filename string) *rules.InputError {
	for _, line := range strings.Split(out, "\n") {
		m := bicepDiagnostic.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		ln, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		file := filename
		if abs, err := filepath.Abs(filename); err != nil || !sameFile(abs, m[1]) {
			file = m[1] // an error in a module: name that file
		}
		return &rules.InputError{File: file, Line: ln, Col: col, Err: errors.New(m[4] + ": " + m[5])}
	}
	return nil
}

func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// limitedBuffer stops a runaway child from filling memory.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.max {
		return 0, fmt.Errorf("output larger than %d bytes", l.max)
	}
	return l.buf.Write(p)
}
