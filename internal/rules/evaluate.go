package rules

import (
	"fmt"
	"os"
	"strings"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// checkTemplate evaluates one template (or Bicep file) with one linked
// parameter file ("" for none) and appends its targets.
func (in *Input) checkTemplate(f *inputFile, paramFile string, opts LoadOptions) {
	tpl, bicepPos, err := f.template(opts)
	if err != nil {
		in.Errors = append(in.Errors, located(f.path, err))
		return
	}
	values := map[string]any{}
	var files []string
	if paramFile != "" {
		files = append(files, paramFile)
	}
	if f.explicit {
		files = append(files, opts.ParameterFiles...)
	}
	for _, pf := range files {
		data, err := os.ReadFile(pf) //nolint:gosec // reading the files the user names is the point
		if err != nil {
			in.Errors = append(in.Errors, &InputError{File: pf, Err: err})
			return
		}
		p, err := armtemplate.ParseParameters(data)
		if err != nil {
			in.Errors = append(in.Errors, located(pf, err))
			return
		}
		for k, v := range p.Values {
			values[k] = v
		}
	}
	if f.explicit {
		for k, text := range opts.Parameters {
			v, err := armtemplate.CoerceParameter(tpl, k, text)
			if err != nil {
				in.Errors = append(in.Errors, &InputError{File: f.path, Err: fmt.Errorf("--parameters %s: %w", k, err)})
				return
			}
			values[k] = v
		}
	}
	eo, err := evalOptions(tpl, values, opts.Config)
	if err != nil {
		in.Errors = append(in.Errors, &InputError{File: f.path, Err: err})
		return
	}
	res, err := armtemplate.Evaluate(tpl, eo)
	if err != nil {
		ie := located(f.path, err)
		if paramFile != "" {
			ie.Err = fmt.Errorf("with parameters %s: %w", paramFile, ie.Err)
		}
		in.Errors = append(in.Errors, ie)
		return
	}
	targets := templateTargets(res, f.path, tpl.Positions)
	if bicepPos != nil {
		for _, t := range targets {
			locateBicep(t, f.path, bicepPos)
		}
	}
	in.Targets = append(in.Targets, linkExtensions(targets)...)
}

// locateBicep points a target compiled from Bicep at its Bicep source: the
// nearest mapped ancestor of each path.
func locateBicep(t *Target, file string, pos func(string) (int, int, bool)) {
	base := t.bicepPath
	nearest := func(p string) Source {
		for {
			if line, col, ok := pos(p); ok {
				return Source{File: file, Line: line, Col: col}
			}
			cut := strings.LastIndexAny(p, ".[")
			if cut <= 0 {
				return Source{File: file}
			}
			p = p[:cut]
		}
	}
	t.Source = nearest(base)
	t.locate = func(field string) Source {
		if field == "" {
			return nearest(base)
		}
		return nearest(base + "." + field)
	}
}

func (f *inputFile) template(opts LoadOptions) (*armtemplate.Template, func(string) (int, int, bool), error) {
	if f.kind != kindBicep {
		if f.tpl == nil {
			return nil, nil, ErrNotTemplate
		}
		return f.tpl, nil, nil
	}
	if opts.Bicep == nil {
		return nil, nil, ErrBicepUnsupported
	}
	c, err := opts.Bicep(f.data, f.path)
	if err != nil {
		return nil, nil, err
	}
	tpl, err := armtemplate.NewTemplate(c.Template)
	if err != nil {
		return nil, nil, err
	}
	return tpl, c.Pos, nil
}

// evalOptions builds the deployment context from PSRule's configuration:
// AZURE_RESOURCE_GROUP, AZURE_SUBSCRIPTION and AZURE_PARAMETER_DEFAULTS
// (values for parameters that have neither a value nor a defaultValue).
func evalOptions(tpl *armtemplate.Template, values map[string]any, cfg *Config) (armtemplate.Options, error) {
	eo := armtemplate.Options{Mode: armtemplate.ModeCheck, Parameters: values}
	if cfg == nil {
		return eo, nil
	}
	if rg, ok := cfg.Values["AZURE_RESOURCE_GROUP"].(map[string]any); ok {
		if s, ok := fieldOf(rg, "name").(string); ok {
			eo.ResourceGroup = s
		}
		if s, ok := fieldOf(rg, "location").(string); ok {
			eo.Location = s
		}
		if tags, ok := fieldOf(rg, "tags").(map[string]any); ok {
			eo.ResourceGroupTags = map[string]string{}
			for k, v := range tags {
				eo.ResourceGroupTags[k] = fmt.Sprint(v)
			}
		}
	}
	if sub, ok := cfg.Values["AZURE_SUBSCRIPTION"].(map[string]any); ok {
		if s, ok := fieldOf(sub, "subscriptionId").(string); ok {
			eo.SubscriptionID = s
		}
		if s, ok := fieldOf(sub, "displayName").(string); ok {
			eo.SubscriptionName = s
		}
		if s, ok := fieldOf(sub, "tenantId").(string); ok {
			eo.TenantID = s
		}
	}
	if defs, ok := cfg.Values["AZURE_PARAMETER_DEFAULTS"].(map[string]any); ok {
		decls, _ := fieldOf(tpl.Root, "parameters").(map[string]any)
		for name, v := range defs {
			d, declared := getFold(decls, name)
			if !declared {
				continue
			}
			if dm, ok := d.(map[string]any); ok {
				if _, has := getFold(dm, "defaultValue"); has {
					continue
				}
			}
			if _, given := getFold(values, name); given {
				continue
			}
			nv, err := armtemplate.Normalize(v)
			if err != nil {
				return eo, fmt.Errorf("configuration AZURE_PARAMETER_DEFAULTS.%s: %w", name, err)
			}
			values[name] = nv
		}
	}
	return eo, nil
}

// templateTargets turns the deployed resources of an evaluated template
// (nested deployments included) into targets.
func templateTargets(res *armtemplate.Result, file string, pos *armtemplate.Positions) []*Target {
	var out []*Target
	res.Walk(func(r *armtemplate.Resource) {
		if !r.Deployed() || r.Body == nil {
			return
		}
		base := r.Path
		t := &Target{
			Type: r.Type, Name: r.Name, ID: r.ID, bicepPath: r.Path,
			NameUnknown: r.NameUnknown, ConditionUnknown: r.ConditionUnknown,
			Body:   r.Body,
			Source: Source{File: file, Line: r.Pos.Line, Col: r.Pos.Col},
		}
		if pos != nil {
			t.locate = func(field string) Source {
				p := base
				if field != "" {
					p += "." + field
				}
				at, _ := pos.Nearest(p)
				return Source{File: file, Line: at.Line, Col: at.Col}
			}
		}
		out = append(out, t)
	})
	return out
}

// resourceTargets reads resources exported from ARM GETs: one resource, an
// array of them, or a list response {"value": [...]}.
func resourceTargets(f *inputFile) []*Target {
	var list []any
	prefix := ""
	switch r := f.root.(type) {
	case []any:
		list = r
	case map[string]any:
		if v, ok := fieldOf(r, "value").([]any); ok && !looksLikeResource(r) {
			list, prefix = v, "value"
		} else {
			list = []any{r}
			prefix = "-"
		}
	}
	var out []*Target
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok || !looksLikeResource(m) {
			continue
		}
		path := fmt.Sprintf("%s[%d]", prefix, i)
		switch prefix {
		case "-":
			path = ""
		case "":
			path = fmt.Sprintf("[%d]", i)
		}
		out = append(out, resourceTarget(m, f.path, f.pos, path))
	}
	return out
}

func resourceTarget(m map[string]any, file string, pos *armtemplate.Positions, base string) *Target {
	typ, _ := fieldOf(m, "type").(string)
	name, _ := fieldOf(m, "name").(string)
	id, _ := fieldOf(m, "id").(string)
	t := &Target{Type: typ, Name: name, ID: id, Body: m, Source: Source{File: file}}
	if pos != nil {
		at, _ := pos.Nearest(base)
		t.Source.Line, t.Source.Col = at.Line, at.Col
		t.locate = func(field string) Source {
			p := base
			if field != "" {
				if p != "" {
					p += "."
				}
				p += field
			}
			at, _ := pos.Nearest(p)
			return Source{File: file, Line: at.Line, Col: at.Col}
		}
	}
	return t
}

func isDiagnosticSettings(typ string) bool {
	l := strings.ToLower(typ)
	return l == strings.ToLower(diagnosticSettingsType) || strings.HasSuffix(l, "/providers/diagnosticsettings")
}

// linkExtensions attaches diagnostic settings to the registries they are
// scoped to (by resource id); one whose scope is unknown may extend any
// registry of the input.
func linkExtensions(targets []*Target) []*Target {
	var settings, children []*Target
	childPrefix := strings.ToLower(RegistryType) + "/"
	for _, t := range targets {
		switch {
		case isDiagnosticSettings(t.Type):
			settings = append(settings, t)
		case strings.HasPrefix(strings.ToLower(t.Type), childPrefix):
			children = append(children, t)
		}
	}
	if len(settings)+len(children) == 0 {
		return targets
	}
	for _, t := range targets {
		if !strings.EqualFold(t.Type, RegistryType) {
			continue
		}
		for _, c := range children {
			// A child whose name is unknown may belong to any registry;
			// so may every child of a registry whose name is unknown.
			if c.Name == "" || t.Name == "" || strings.HasPrefix(strings.ToLower(c.Name), strings.ToLower(t.Name)+"/") {
				t.Children = append(t.Children, c)
			}
		}
		prefix := strings.ToLower(t.ID) + "/providers/"
		for _, ds := range settings {
			switch {
			case ds.ID == "" || t.ID == "":
				t.UnscopedExtensions = append(t.UnscopedExtensions, ds)
			case strings.HasPrefix(strings.ToLower(ds.ID), prefix):
				t.Extensions = append(t.Extensions, ds)
			}
		}
	}
	return targets
}
