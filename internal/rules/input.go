package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moat-registry/moat/internal/armtemplate"
)

// maxInputSize bounds one input file; ARM's own limit for a template is 4 MB,
// a generous multiple keeps exported resource lists readable.
const maxInputSize = 64 << 20

// InputError is a file that could not be read, parsed or evaluated, with
// where the problem is when that is known.
type InputError struct {
	File string
	Line int
	Col  int
	Err  error
}

func (e *InputError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	return loc + ": " + e.Err.Error()
}

func (e *InputError) Unwrap() error { return e.Err }

// ErrBicepUnsupported is reported for .bicep files when no Bicep compiler
// is configured.
var ErrBicepUnsupported = errors.New("not supported yet: no Bicep compiler is built in")

// ErrNotTemplate is reported for a JSON file named on the command line that
// is neither a template, a parameter file nor exported resources.
var ErrNotTemplate = errors.New("not an ARM template, parameter file or exported resource")

// LoadOptions control how inputs become targets.
type LoadOptions struct {
	// Parameters are values given on the command line (--parameters k=v),
	// as text; each is converted to the type the template declares.
	Parameters map[string]string
	// ParameterFiles (--parameters file) apply to every template named on
	// the command line, after the file's own linked parameter file.
	ParameterFiles []string
	// Ignore are glob patterns (input.pathIgnore, --ignore) matched against
	// slash-separated paths relative to the scanned directory: "*" stays in
	// one segment, "**" crosses segments, a pattern without "/" matches a
	// name at any depth, a trailing "/" matches a directory. Hidden
	// directories (.git, .github ...) and node_modules are never scanned;
	// files named on the command line are never ignored.
	Ignore []string
	Config *Config
	// Bicep compiles a Bicep file to an ARM template; nil makes .bicep
	// files an ErrBicepUnsupported error. An error that is an *InputError
	// is reported as it is (with its own file and position).
	Bicep func(src []byte, filename string) (*Compiled, error)
}

// Compiled is a Bicep file lowered to an ARM template JSON tree, with the
// source position of template paths (resources.acr.properties...) when the
// compiler knows them.
type Compiled struct {
	Template map[string]any
	Pos      func(path string) (line, col int, ok bool)
}

// Input is what Load found: targets in input order and the files it could
// not use.
type Input struct {
	Targets []*Target
	Errors  []*InputError
	Files   int // templates, Bicep files and resource exports checked
}

type fileKind int

const (
	kindOther fileKind = iota
	kindTemplate
	kindParameters
	kindResources
	kindBicep
)

type inputFile struct {
	path     string
	explicit bool
	kind     fileKind
	root     any
	pos      *armtemplate.Positions
	tpl      *armtemplate.Template // kindTemplate
	data     []byte
	params   []string // linked parameter files (templates only)
}

// Load reads every path (files, or directories scanned recursively) and
// evaluates what it finds. A file that fails is reported in Input.Errors;
// the others are still checked.
func Load(paths []string, opts LoadOptions) *Input {
	in := &Input{}
	var files []*inputFile
	seen := map[string]bool{}
	add := func(p string, explicit bool) {
		key := filepath.Clean(p)
		if seen[key] {
			return
		}
		seen[key] = true
		files = append(files, &inputFile{path: p, explicit: explicit})
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			in.Errors = append(in.Errors, &InputError{File: p, Err: err})
			continue
		}
		if !st.IsDir() {
			add(p, true)
			continue
		}
		found, errs := scan(p, opts.Ignore)
		in.Errors = append(in.Errors, errs...)
		for _, f := range found {
			add(f, false)
		}
	}

	byPath := map[string]*inputFile{}
	for _, f := range files {
		if err := f.classify(); err != nil {
			in.Errors = append(in.Errors, located(f.path, err))
			f.kind = kindOther
			continue
		}
		if f.kind == kindOther && f.explicit {
			in.Errors = append(in.Errors, &InputError{File: f.path, Err: ErrNotTemplate})
		}
		byPath[filepath.Clean(f.path)] = f
	}
	// Link parameter files to their templates.
	for _, f := range files {
		if f.kind != kindParameters {
			continue
		}
		tp := f.templatePath()
		t, ok := byPath[filepath.Clean(tp)]
		if !ok {
			if _, err := os.Stat(tp); err != nil {
				if f.explicit {
					in.Errors = append(in.Errors, &InputError{File: f.path, Err: fmt.Errorf("its template %s: %w", tp, err)})
				}
				continue
			}
			t = &inputFile{path: tp}
			if err := t.classify(); err != nil {
				in.Errors = append(in.Errors, located(tp, err))
				continue
			}
			byPath[filepath.Clean(tp)] = t
			files = append(files, t)
		}
		t.params = append(t.params, f.path)
	}
	for _, f := range files {
		switch f.kind {
		case kindTemplate, kindBicep:
			in.Files++
			if len(f.params) == 0 {
				in.checkTemplate(f, "", opts)
			}
			for _, pf := range f.params {
				in.checkTemplate(f, pf, opts)
			}
		case kindResources:
			in.Files++
			in.Targets = append(in.Targets, linkExtensions(resourceTargets(f))...)
		}
	}
	return in
}

func located(file string, err error) *InputError {
	var already *InputError
	if errors.As(err, &already) {
		return already
	}
	ie := &InputError{File: file, Err: err}
	var je *armtemplate.JSONError
	var te *armtemplate.Error
	switch {
	case errors.As(err, &je):
		// The position goes in front; the message need not repeat it.
		ie.Line, ie.Col = je.Pos.Line, je.Pos.Col
		ie.Err = fmt.Errorf("%w: %s", armtemplate.ErrJSON, je.Msg)
	case errors.As(err, &te):
		ie.Line, ie.Col = te.Pos.Line, te.Pos.Col
	}
	return ie
}

func scan(root string, ignore []string) ([]string, []*InputError) {
	var out []string
	var errs []*InputError
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, &InputError{File: p, Err: err})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil || rel == "." {
			return nil //nolint:nilerr // the root itself is never ignored
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || ignored(rel+"/", ignore) {
				return fs.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".json", ".jsonc", ".bicep":
		default:
			return nil
		}
		if !ignored(rel, ignore) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, &InputError{File: root, Err: err})
	}
	sort.Strings(out)
	return out, errs
}

// ignored reports whether rel (a directory when it ends in "/") matches
// any pattern.
func ignored(rel string, patterns []string) bool {
	isDir := strings.HasSuffix(rel, "/")
	rel = strings.TrimSuffix(rel, "/")
	for _, p := range patterns {
		p = strings.TrimPrefix(strings.TrimSpace(p), "./")
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		dirOnly := strings.HasSuffix(p, "/")
		p = strings.TrimSuffix(p, "/")
		if dirOnly && !isDir {
			// A file is ignored when a directory above it is; the scan
			// already skipped those.
			continue
		}
		if !strings.Contains(p, "/") {
			p = "**/" + p
		}
		if globMatch(p, rel) {
			return true
		}
	}
	return false
}

// globMatch matches slash-separated name against pattern, where "**" is any
// number of segments.
func globMatch(pattern, name string) bool {
	ps, ns := strings.Split(pattern, "/"), strings.Split(name, "/")
	var match func(i, j int) bool
	match = func(i, j int) bool {
		for i < len(ps) {
			if ps[i] == "**" {
				for k := j; k <= len(ns); k++ {
					if match(i+1, k) {
						return true
					}
				}
				return false
			}
			if j >= len(ns) {
				return false
			}
			if ok, err := path.Match(ps[i], ns[j]); err != nil || !ok {
				return false
			}
			i, j = i+1, j+1
		}
		return j == len(ns)
	}
	return match(0, 0)
}

func (f *inputFile) classify() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	if st.Size() > maxInputSize {
		return fmt.Errorf("%d bytes is more than the %d allowed", st.Size(), maxInputSize)
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	f.data = data
	if strings.EqualFold(filepath.Ext(f.path), ".bicep") {
		f.kind = kindBicep
		return nil
	}
	// Parse once: most inputs are templates, and ParseTemplate keeps the
	// tree and positions the classification needs.
	if tpl, err := armtemplate.ParseTemplate(data); err == nil {
		f.tpl, f.root, f.pos = tpl, tpl.Root, tpl.Positions
	} else {
		var je *armtemplate.JSONError
		if errors.As(err, &je) {
			return err
		}
		// Valid JSON that is not template-shaped (an array of exported
		// resources, a $schema that is not a string): read it plainly.
		if f.root, f.pos, err = armtemplate.ReadJSONC(data); err != nil {
			return err
		}
	}
	f.kind = kindOf(f.root)
	if f.kind == kindTemplate && f.tpl == nil {
		return ErrNotTemplate
	}
	return nil
}

func kindOf(root any) fileKind {
	if arr, ok := root.([]any); ok {
		if len(arr) > 0 && looksLikeResource(arr[0]) {
			return kindResources
		}
		return kindOther
	}
	m, ok := root.(map[string]any)
	if !ok {
		return kindOther
	}
	schema, _ := fieldOf(m, "$schema").(string)
	schema = strings.ToLower(schema)
	switch {
	case strings.Contains(schema, "deploymenttemplate"):
		return kindTemplate
	case strings.Contains(schema, "deploymentparameters"):
		return kindParameters
	}
	if _, ok := fieldOf(m, "resources").([]any); ok {
		return kindTemplate
	}
	if _, ok := fieldOf(m, "resources").(map[string]any); ok {
		return kindTemplate // languageVersion 2.0
	}
	if looksLikeResource(m) {
		return kindResources
	}
	if v, ok := fieldOf(m, "value").([]any); ok && (len(v) == 0 || looksLikeResource(v[0])) {
		return kindResources
	}
	if _, ok := fieldOf(m, "parameters").(map[string]any); ok {
		return kindParameters
	}
	return kindOther
}

func looksLikeResource(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	t, _ := fieldOf(m, "type").(string)
	_, hasName := fieldOf(m, "name").(string)
	return strings.Contains(t, "/") && hasName && !strings.HasPrefix(t, "[")
}

func fieldOf(m map[string]any, key string) any {
	v, _ := getFold(m, key)
	return v
}

// templatePath is the template a parameter file belongs to: its
// metadata.template (relative to the file), else X.json for X.parameters.json.
func (f *inputFile) templatePath() string {
	if m, ok := f.root.(map[string]any); ok {
		if md, ok := fieldOf(m, "metadata").(map[string]any); ok {
			if t, ok := fieldOf(md, "template").(string); ok && t != "" {
				if filepath.IsAbs(t) {
					return t
				}
				return filepath.Join(filepath.Dir(f.path), filepath.FromSlash(t))
			}
		}
	}
	base := filepath.Base(f.path)
	lower := strings.ToLower(base)
	for _, suf := range []string{".parameters.json", ".parameters.jsonc"} {
		if strings.HasSuffix(lower, suf) {
			stem := base[:len(base)-len(suf)]
			for _, ext := range []string{".json", ".jsonc", ".bicep"} {
				p := filepath.Join(filepath.Dir(f.path), stem+ext)
				if _, err := os.Stat(p); err == nil {
					return p
				}
			}
			return filepath.Join(filepath.Dir(f.path), stem+".json")
		}
	}
	return filepath.Join(filepath.Dir(f.path), "(no template named by "+base+")")
}
