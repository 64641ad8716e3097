// Package config owns where moat's options come from: the command line, then
// MOAT_* environment variables, then an optional YAML file, then the flag's
// default. It works over a pflag.FlagSet, so each option is declared once, as
// a flag, and its environment variable and YAML key follow from its name:
//
//	--data-dir   MOAT_DATA_DIR   data-dir: (or data_dir:)
//
// Invariants:
//
//   - A flag given on the command line always wins; the environment and the
//     file only fill flags the command line left alone.
//   - Nothing is ignored silently: an unknown key in the file, or a value that
//     does not parse, is an error that names the option and where the value
//     came from (flag, environment variable or file).
//   - Values from every source go through the flag's own Set, so they are
//     validated exactly like command-line values.
//   - The environment variable is read only for declared flags; other MOAT_*
//     variables (e.g. secrets such as MOAT_ADMIN_PASSWORD) are the caller's.
package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Options tell Apply where to look.
type Options struct {
	// EnvPrefix is prepended to a flag's environment name, e.g. "MOAT_".
	EnvPrefix string
	// ConfigFlag is the name of the flag that names the YAML file ("config").
	// The file itself can come from the command line or the environment, not
	// from the file. Empty means no file is read.
	ConfigFlag string
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads the config file; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
}

// EnvName is the environment variable that sets the flag with that name:
// the prefix, then the name upper-cased with '-' turned into '_'.
func EnvName(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// skipped reports flags that are not options (cobra's help flag).
func skipped(name string) bool { return name == "help" }

// Apply fills every flag of fs that was not set on the command line from,
// in order, the environment, the YAML file named by the ConfigFlag flag, and
// otherwise leaves its default. An environment variable that is set but
// empty counts as unset (as with most tools reading env files). Call it after
// fs was parsed.
func Apply(fs *pflag.FlagSet, opts Options) error {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	readFile := opts.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	env := func(name string) (string, bool) {
		v, ok := lookup(EnvName(opts.EnvPrefix, name))
		return v, ok && v != ""
	}

	var file *fileValues
	if opts.ConfigFlag != "" {
		cf := fs.Lookup(opts.ConfigFlag)
		if cf == nil {
			return fmt.Errorf("config: no flag --%s to name the config file", opts.ConfigFlag)
		}
		if !cf.Changed {
			if v, ok := env(cf.Name); ok {
				if err := fs.Set(cf.Name, v); err != nil {
					return envError(opts.EnvPrefix, cf.Name, v, err)
				}
			}
		}
		if path := cf.Value.String(); path != "" {
			data, err := readFile(path)
			if err != nil {
				return fmt.Errorf("reading config file: %w", err)
			}
			file, err = parseFile(path, data, fs, opts.ConfigFlag)
			if err != nil {
				return err
			}
		}
	}

	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || skipped(f.Name) || f.Name == opts.ConfigFlag {
			return
		}
		if v, ok := env(f.Name); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, envError(opts.EnvPrefix, f.Name, v, err))
			}
			return
		}
		if file != nil {
			if err := file.apply(f); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

func envError(prefix, name, value string, err error) error {
	return fmt.Errorf("invalid value %q for option %s from environment variable %s: %w",
		value, name, EnvName(prefix, name), err)
}

// fileValues are the options a YAML file sets, by flag name.
type fileValues struct {
	path  string
	nodes map[string]*yaml.Node
}

// parseFile reads a YAML mapping of option names to values. Keys are flag
// names, in kebab-case or snake_case; unknown keys are an error naming all of
// them, so a typo never leaves an option at its default unnoticed.
func parseFile(path string, data []byte, fs *pflag.FlagSet, configFlag string) (*fileValues, error) {
	fv := &fileValues{path: path, nodes: map[string]*yaml.Node{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 { // empty file
		return fv, nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" { // only comments
		return fv, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: want a mapping of option names to values", path)
	}
	var unknown []string
	spelled := map[string]string{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config file %s line %d: option names must be strings", path, k.Line)
		}
		name := strings.ReplaceAll(k.Value, "_", "-")
		if fs.Lookup(name) == nil || skipped(name) || name == configFlag {
			unknown = append(unknown, k.Value)
			continue
		}
		if prev, dup := spelled[name]; dup {
			return nil, fmt.Errorf("config file %s line %d: option %s is set twice (%s and %s)", path, k.Line, name, prev, k.Value)
		}
		spelled[name] = k.Value
		fv.nodes[name] = v
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("config file %s: unknown option(s): %s", path, strings.Join(unknown, ", "))
	}
	return fv, nil
}

// apply sets f from the file, if the file has it. A list sets a flag whose
// value is a slice; a scalar goes through Set like a command-line value.
func (fv *fileValues) apply(f *pflag.Flag) error {
	n, ok := fv.nodes[f.Name]
	if !ok {
		return nil
	}
	bad := func(value string, err error) error {
		return fmt.Errorf("invalid value %q for option %s in config file %s line %d: %w",
			value, f.Name, fv.path, n.Line, err)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return bad("", errors.New("no value given"))
		}
		if err := f.Value.Set(n.Value); err != nil {
			return bad(n.Value, err)
		}
	case yaml.SequenceNode:
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return bad("[...]", errors.New("a list is not allowed for this option"))
		}
		items := make([]string, 0, len(n.Content))
		for _, it := range n.Content {
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return bad("[...]", errors.New("list items must be plain values"))
			}
			items = append(items, it.Value)
		}
		if err := sv.Replace(items); err != nil {
			return bad(strings.Join(items, ","), err)
		}
	default:
		return bad("", errors.New("must be a value or a list of values"))
	}
	f.Changed = true
	return nil
}
