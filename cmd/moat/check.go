package main

// `moat check` finds insecure registry configurations in ARM templates
// (and Bicep files, once a compiler is wired in) and in the live registries
// of a moat deployment. The command owns flags and output; the rules,
// inputs and formats live in internal/rules and internal/rules/report.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/bicep"
	"github.com/moat-registry/moat/internal/rules"
	"github.com/moat-registry/moat/internal/rules/report"
)

// Exit statuses of `moat check`, as PSRule's: 0 clean, 1 an error (bad
// input or usage), 100 rules failed at or above the --break level.
const (
	checkExitError  = 1
	checkExitFailed = 100
)

// checkError carries the exit status `moat check` ends with. main's
// exitCode honours any error with an ExitCode method.
type checkError struct {
	code int
	msg  string
}

func (e *checkError) Error() string { return e.msg }

// ExitCode is the process exit status for this error.
func (e *checkError) ExitCode() int { return e.code }

// checkExitCode is the exit status of a `moat check` run that returned err.
func checkExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ce *checkError
	if errors.As(err, &ce) {
		return ce.code
	}
	return checkExitError
}

// bicepCompiler turns a Bicep file into an ARM template; nil would make
// .bicep files "not supported" errors.
var bicepCompiler = compileBicep

// maxBicepModule bounds one local module file read for a Bicep input.
const maxBicepModule = 16 << 20

// compileBicep lowers a Bicep file with moat's native compiler, reading
// local modules from disk, and keeps the map back to Bicep lines.
func compileBicep(src []byte, filename string) (*rules.Compiled, error) {
	loader := func(p string) ([]byte, error) {
		p = filepath.FromSlash(p)
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.Size() > maxBicepModule {
			return nil, fmt.Errorf("module %s: %d bytes is more than the %d allowed", p, st.Size(), maxBicepModule)
		}
		return os.ReadFile(p) //nolint:gosec // modules the user's own Bicep file names
	}
	c, err := bicep.CompileMapped(src, filename, bicep.WithLoader(loader))
	if err != nil {
		var be *bicep.Error
		if errors.As(err, &be) {
			return nil, &rules.InputError{File: be.File, Line: be.Pos.Line, Col: be.Pos.Col, Err: errors.New(be.Msg)}
		}
		return nil, err
	}
	return &rules.Compiled{Template: c.Template, Pos: func(p string) (int, int, bool) {
		at, ok := c.Positions[p]
		return at.Line, at.Col, ok
	}}, nil
}

type checkOptions struct {
	optionFile string
	parameters []string
	ignore     []string
	format     string
	outputPath string
	outcome    string
	breakLevel string
	baseline   string
	live       bool
	names      []string
	dataDir    string
	database   string
	bicep      string
}

func newCheckCmd() *cobra.Command {
	var o checkOptions
	cmd := &cobra.Command{
		Use:   "check [PATH ...]",
		Short: "Find insecure container registry configurations in ARM templates and live registries",
		Long: `check runs the registry rules (PSRule for Azure's Azure.ACR.* rules and moat's own
Moat.ACR.* rules) over ARM templates (.json, .jsonc; directories are scanned
recursively) or, with --live, over the registries of a moat deployment.

Parameter files are found by their metadata.template or by the
X.parameters.json -> X.json convention. Options are read from a
ps-rule.yaml-compatible file (--option, default ./ps-rule.yaml if present).

Exit status: 0 when no rule failed at or above --break, 100 when one did,
1 when an input could not be read or the command was misused.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd.Context(), cmd.OutOrStdout(), o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.optionFile, "option", "", "ps-rule.yaml options file (default ./ps-rule.yaml when it exists)")
	f.StringArrayVarP(&o.parameters, "parameters", "p", nil, "parameter file or NAME=VALUE for templates named on the command line (repeatable)")
	f.StringArrayVar(&o.ignore, "ignore", nil, "glob of paths to skip when scanning directories (repeatable; adds to input.pathIgnore)")
	f.StringVarP(&o.format, "output", "o", "text", "output format: "+strings.Join(report.Formats, ", "))
	f.StringVar(&o.outputPath, "output-path", "", "write the report to this file instead of stdout")
	f.StringVar(&o.outcome, "outcome", "Fail", "results to show: Fail (includes cannot-determine), Pass or All")
	f.StringVar(&o.breakLevel, "break", "Error", "exit with 100 when a rule of this level or above fails: Error, Warning, Information or Never")
	f.StringVar(&o.baseline, "baseline", "", "rule baseline: GA (the Azure.* rules) or all (default all, or the options file's)")
	f.StringVar(&o.bicep, "bicep", bicepNative, "Bicep compiler: native (moat's own), binary (the bicep CLI on PATH) or auto (the CLI if present, else native)")
	f.BoolVar(&o.live, "live", false, "check the registries of a moat deployment instead of files")
	f.StringArrayVarP(&o.names, "name", "n", nil, "with --live: registry to check (repeatable; default all)")
	f.StringVar(&o.dataDir, "data-dir", "./moat-data", "with --live: the deployment's data directory (its meta.db)")
	f.StringVar(&o.database, "database", "", "with --live: metadata store, postgres://… or sqlite:<path>; default <data-dir>/meta.db")
	return cmd
}

func usageFail(format string, args ...any) error {
	return &checkError{code: checkExitError, msg: fmt.Sprintf(format, args...)}
}

func runCheck(ctx context.Context, stdout io.Writer, o checkOptions, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := report.CheckFormat(o.format); err != nil {
		return usageFail("--output: %v", err)
	}
	filter, err := report.ParseFilter(o.outcome)
	if err != nil {
		return usageFail("--outcome: %v", err)
	}
	breakAt, err := rules.ParseLevel(o.breakLevel)
	if err != nil {
		return usageFail("--break: %v", err)
	}
	opts := &rules.Options{Config: &rules.Config{Values: map[string]any{}}}
	optionFile := o.optionFile
	if optionFile == "" {
		if _, err := os.Stat("ps-rule.yaml"); err == nil {
			optionFile = "ps-rule.yaml"
		}
	}
	if optionFile != "" {
		if opts, err = rules.LoadOptionsFile(optionFile); err != nil {
			return usageFail("--option: %v", err)
		}
	}
	if o.baseline != "" {
		opts.Selection.Baseline = o.baseline
	}
	if _, err := opts.Config.NameFormat(); err != nil {
		return usageFail("%v", err)
	}
	selected, err := opts.Selection.Select(rules.Set())
	if err != nil {
		return usageFail("%v", err)
	}

	var in *rules.Input
	if o.live {
		if len(args) > 0 {
			return usageFail("--live checks registries, not files: remove %s", strings.Join(args, " "))
		}
		if in, err = loadLive(ctx, o); err != nil {
			return &checkError{code: checkExitError, msg: err.Error()}
		}
	} else {
		if len(o.names) > 0 {
			return usageFail("--name needs --live")
		}
		compile, err := chooseBicep(o.bicep)
		if err != nil {
			return usageFail("%v", err)
		}
		lo := rules.LoadOptions{Config: opts.Config, Ignore: append(append([]string{}, opts.PathIgnore...), o.ignore...), Bicep: compile}
		for _, p := range o.parameters {
			if k, v, ok := strings.Cut(p, "="); ok && !strings.ContainsAny(k, `/\`) && k != "" {
				if lo.Parameters == nil {
					lo.Parameters = map[string]string{}
				}
				lo.Parameters[k] = v
				continue
			}
			lo.ParameterFiles = append(lo.ParameterFiles, strings.TrimPrefix(p, "@"))
		}
		if len(args) == 0 {
			args = []string{"."}
		}
		in = rules.Load(args, lo)
	}

	rep := &report.Report{
		Rules:   selected,
		Results: rules.Run(selected, in.Targets, opts.Config, opts.Selection),
		Errors:  in.Errors,
		Files:   in.Files,
		Tool:    "moat",
		Version: version,
	}
	if err := writeReport(stdout, o, rep, filter); err != nil {
		return &checkError{code: checkExitError, msg: err.Error()}
	}
	if len(in.Errors) > 0 {
		return &checkError{code: checkExitError, msg: fmt.Sprintf("check: %d %s could not be checked", len(in.Errors), checkPlural(len(in.Errors), "input", "inputs"))}
	}
	failed := 0
	for _, r := range rep.Results {
		if (r.Outcome == rules.Fail || r.Outcome == rules.CannotDetermine) && breakAt != rules.Never && r.Rule.Level >= breakAt {
			failed++
		}
	}
	if failed > 0 {
		return &checkError{code: checkExitFailed, msg: fmt.Sprintf("check: %d %s at or above level %s", failed, checkPlural(failed, "rule result failed or could not be determined", "rule results failed or could not be determined"), breakAt)}
	}
	return nil
}

func checkPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func writeReport(stdout io.Writer, o checkOptions, rep *report.Report, filter report.Filter) (err error) {
	if o.outputPath == "" {
		return report.Write(stdout, o.format, rep, filter)
	}
	f, err := os.Create(o.outputPath)
	if err != nil {
		return fmt.Errorf("--output-path: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("--output-path: %w", cerr)
		}
	}()
	return report.Write(f, o.format, rep, filter)
}

func loadLive(ctx context.Context, o checkOptions) (*rules.Input, error) {
	if o.database == "" {
		// Opening SQLite creates the file: refuse to invent an empty
		// deployment where there is none.
		p := filepath.Join(o.dataDir, "meta.db")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("--live: no moat deployment at %s: %w", o.dataDir, err)
		}
	}
	store, _, err := openMetaStore(ctx, o.database, o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("--live: %w", err)
	}
	defer func() { _ = store.Close() }() // read-only use: nothing to lose on close
	return rules.LoadLive(ctx, store, o.names)
}
