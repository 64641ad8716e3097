package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// Options is the part of a ps-rule.yaml file moat understands. Unknown
// keys are ignored, as PSRule ignores keys of modules it does not load.
type Options struct {
	Selection Selection
	Config    *Config
	// PathIgnore is input.pathIgnore.
	PathIgnore []string
}

type optionsFile struct {
	Baseline string `yaml:"baseline"`
	Rule     struct {
		Include  []string `yaml:"include"`
		Exclude  []string `yaml:"exclude"`
		Baseline string   `yaml:"baseline"`
	} `yaml:"rule"`
	Suppression   map[string]yaml.Node `yaml:"suppression"`
	Configuration map[string]any       `yaml:"configuration"`
	Input         struct {
		PathIgnore []string `yaml:"pathIgnore"`
	} `yaml:"input"`
}

// ParseOptions reads ps-rule.yaml text. Suppression entries are either a
// list of target names or {targetName: [...]}, as PSRule accepts.
func ParseOptions(data []byte) (*Options, error) {
	var f optionsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("options: %w", err)
	}
	o := &Options{Config: &Config{Values: map[string]any{}}}
	o.Selection.Include, o.Selection.Exclude = f.Rule.Include, f.Rule.Exclude
	o.Selection.Baseline = f.Rule.Baseline
	if f.Baseline != "" {
		o.Selection.Baseline = f.Baseline
	}
	o.PathIgnore = f.Input.PathIgnore
	for k, v := range f.Configuration {
		nv, err := armtemplate.Normalize(yamlPlain(v))
		if err != nil {
			return nil, fmt.Errorf("options: configuration %s: %w", k, err)
		}
		o.Config.Values[strings.ToUpper(k)] = nv
	}
	if len(f.Suppression) > 0 {
		o.Selection.Suppression = map[string][]string{}
	}
	for rule, node := range f.Suppression {
		var names []string
		if err := node.Decode(&names); err != nil {
			var obj struct {
				TargetName []string `yaml:"targetName"`
			}
			if err2 := node.Decode(&obj); err2 != nil {
				return nil, fmt.Errorf("options: suppression %s (line %d): want a list of target names or {targetName: [...]}", rule, node.Line)
			}
			names = obj.TargetName
		}
		o.Selection.Suppression[rule] = names
	}
	return o, nil
}

// LoadOptionsFile reads a ps-rule.yaml file.
func LoadOptionsFile(path string) (*Options, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the options file the user names
	if err != nil {
		return nil, err
	}
	o, err := ParseOptions(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

// yamlPlain turns yaml.v3's decoded values (map[string]interface{}, int)
// into the JSON-like tree armtemplate.Normalize accepts.
func yamlPlain(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = yamlPlain(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fmt.Sprint(k)] = yamlPlain(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = yamlPlain(e)
		}
		return out
	case int:
		return int64(t)
	}
	return v
}
