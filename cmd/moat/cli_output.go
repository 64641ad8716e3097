package main

// The client commands (login, group, acr, resource) share this file's
// output and error conventions, modelled on az:
//
//   - --output json (default, indented), table (chosen columns, or the
//     scalar fields of each object) or tsv (values only, tab-separated);
//     --query is a JMESPath expression applied before formatting.
//   - A failure is one line on stderr, "moat: <code>: <message>", where the
//     code is the ARM error code the server answered; exit status 1.
//   - A usage error (unknown flag, missing or bad argument) exits with 2.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
	"github.com/spf13/cobra"
)

// cliError is a failure reported to the user as "<code>: <message>".
type cliError struct {
	Code    string
	Message string
}

func (e *cliError) Error() string { return e.Code + ": " + e.Message }

func failf(code, format string, args ...any) error {
	return &cliError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// usageError marks a mistake in how a command was called (exit status 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode is the process exit status for err: 0 without one, 2 for usage
// errors (including cobra's own unknown-command and flag errors), else 1.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	// A command with its own exit codes (moat check's 100) says so.
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "required flag", "accepts ", "requires at least", "invalid argument"} {
		if strings.HasPrefix(msg, p) {
			return 2
		}
	}
	return 1
}

// outputOptions are --output and --query, shared by every client command.
type outputOptions struct {
	format string
	query  string
}

func addOutputFlags(cmd *cobra.Command, o *outputOptions) {
	f := cmd.PersistentFlags()
	f.StringVarP(&o.format, "output", "o", "json", "output format: json, table or tsv")
	f.StringVar(&o.query, "query", "", "JMESPath query applied to the result before it is printed")
}

func (o *outputOptions) validate() error {
	switch o.format {
	case "json", "table", "tsv", "none":
	default:
		return usagef("--output %q: want json, table, tsv or none", o.format)
	}
	if o.query != "" {
		if _, err := jmespath.Compile(o.query); err != nil {
			return usagef("--query %q: %v", o.query, err)
		}
	}
	return nil
}

// column is one column of the table format: its heading and the JMESPath
// expression that reads it from one result object.
type column struct {
	heading string
	expr    string
}

// print writes v (JSON-shaped: maps, slices, strings, float64, bool, nil)
// in the chosen format. cols are the table columns used when no --query
// reshaped the result; without them the table shows scalar fields.
func (o *outputOptions) print(w io.Writer, v any, cols []column) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.query != "" {
		q, err := jmespath.Search(o.query, v)
		if err != nil {
			return usagef("--query %q: %v", o.query, err)
		}
		v, cols = q, nil
	}
	switch o.format {
	case "none":
		return nil
	case "table":
		return writeTable(w, v, cols)
	case "tsv":
		return writeTSV(w, v)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// rows turns a result into the objects that become table or tsv lines.
func rows(v any) []any {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		return t
	default:
		return []any{t}
	}
}

// scalarKeys are the keys of the object's scalar fields, sorted (Go maps
// have no order; sorting keeps the output stable).
func scalarKeys(m map[string]any) []string {
	var keys []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if isScalar(m[k]) {
			keys = append(keys, k)
		}
	}
	return keys
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// cell formats one value for table or tsv output.
func cell(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Sprint(t)
		}
		return string(b)
	}
}

func writeTable(w io.Writer, v any, cols []column) error {
	rs := rows(v)
	var head []string
	var lines [][]string
	switch {
	case cols != nil:
		for _, c := range cols {
			head = append(head, c.heading)
		}
		for _, r := range rs {
			line := make([]string, len(cols))
			for i, c := range cols {
				x, err := jmespath.Search(c.expr, r)
				if err == nil {
					line[i] = cell(x)
				}
			}
			lines = append(lines, line)
		}
	default:
		// The union of the rows' scalar fields, as az does for objects; a
		// list of scalars is one unnamed column.
		seen := map[string]bool{}
		for _, r := range rs {
			if m, ok := r.(map[string]any); ok {
				for _, k := range scalarKeys(m) {
					if !seen[k] {
						seen[k] = true
						head = append(head, k)
					}
				}
			}
		}
		if len(head) == 0 {
			head = []string{"Result"}
			for _, r := range rs {
				lines = append(lines, []string{cell(r)})
			}
			break
		}
		for _, r := range rs {
			m, _ := r.(map[string]any)
			line := make([]string, len(head))
			for i, k := range head {
				if x, ok := m[k]; ok && isScalar(x) {
					line[i] = cell(x)
				}
			}
			lines = append(lines, line)
		}
	}
	widths := make([]int, len(head))
	for i, h := range head {
		widths[i] = len(h)
		for _, l := range lines {
			widths[i] = max(widths[i], len(l[i]))
		}
	}
	var sb strings.Builder
	writeRow := func(cells []string) {
		var line strings.Builder
		for i, c := range cells {
			line.WriteString(c + strings.Repeat(" ", widths[i]-len(c)+2))
		}
		sb.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	writeRow(head)
	dashes := make([]string, len(head))
	for i := range head {
		dashes[i] = strings.Repeat("-", widths[i])
	}
	writeRow(dashes)
	for _, l := range lines {
		writeRow(l)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// writeTSV prints, like az, one line per object with the values of its
// scalar fields (sorted by key), and one line per scalar.
func writeTSV(w io.Writer, v any) error {
	var sb strings.Builder
	for _, r := range rows(v) {
		if m, ok := r.(map[string]any); ok {
			var vals []string
			for _, k := range scalarKeys(m) {
				vals = append(vals, cell(m[k]))
			}
			sb.WriteString(strings.Join(vals, "\t") + "\n")
			continue
		}
		if l, ok := r.([]any); ok {
			var vals []string
			for _, x := range l {
				vals = append(vals, cell(x))
			}
			sb.WriteString(strings.Join(vals, "\t") + "\n")
			continue
		}
		sb.WriteString(cell(r) + "\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
