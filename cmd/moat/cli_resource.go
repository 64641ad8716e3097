package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

// registryType is the resource type of a registry, as ARM spells it.
const registryType = "Microsoft.ContainerRegistry/registries"

// resourceTarget is how the generic resource commands name resources:
// either --ids or the parts az takes.
type resourceTarget struct {
	ids                                   []string
	group, name, rtype, namespace, parent string
	apiVersion                            string
}

func (t *resourceTarget) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSliceVar(&t.ids, "ids", nil, "full resource ids (space- or comma-separated); no other naming flag is needed")
	f.StringVarP(&t.group, "resource-group", "g", "", "resource group")
	f.StringVarP(&t.name, "name", "n", "", "resource name")
	f.StringVar(&t.rtype, "resource-type", "", "resource type, e.g. Microsoft.ContainerRegistry/registries")
	f.StringVar(&t.namespace, "namespace", "", "provider namespace, when --resource-type has none")
	f.StringVar(&t.parent, "parent", "", "parent path of a child resource, e.g. registries/myregistry")
	f.StringVar(&t.apiVersion, "api-version", "", "api-version (default: the newest moat serves for registries and resource groups)")
}

// resolve returns the resource ids the flags name.
func (t *resourceTarget) resolve(sub string) ([]string, error) {
	if len(t.ids) > 0 {
		if t.group != "" || t.name != "" || t.rtype != "" {
			return nil, usagef("--ids cannot be combined with --resource-group, --name or --resource-type")
		}
		for _, id := range t.ids {
			if err := checkResourceID(id); err != nil {
				return nil, err
			}
		}
		return t.ids, nil
	}
	if err := requireFlags("--resource-group", t.group, "--name", t.name, "--resource-type", t.rtype); err != nil {
		return nil, usagef("name the resource with --ids, or with --resource-group, --name and --resource-type: %v", err)
	}
	typ := strings.Trim(t.rtype, "/")
	if t.namespace != "" {
		typ = strings.Trim(t.namespace, "/") + "/" + typ
	}
	if !strings.Contains(typ, "/") {
		return nil, usagef("--resource-type %q names no provider namespace; use Namespace/type or --namespace", t.rtype)
	}
	ns, rest, _ := strings.Cut(typ, "/")
	if t.parent != "" {
		rest = strings.Trim(t.parent, "/") + "/" + rest
	}
	id := "/subscriptions/" + sub + "/resourceGroups/" + t.group + "/providers/" + ns + "/" + rest + "/" + t.name
	if err := checkResourceID(id); err != nil {
		return nil, err
	}
	return []string{id}, nil
}

// checkResourceID refuses ids that are not subscription-scoped ARM paths or
// that would walk out of one (".", "..", empty segments).
func checkResourceID(id string) error {
	if !strings.HasPrefix(strings.ToLower(id), "/subscriptions/") {
		return usagef("resource id %q: want /subscriptions/{sub}/…", id)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(id[1:], "/"), "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "?#") {
			return usagef("resource id %q: segment %q is not allowed", id, seg)
		}
	}
	return nil
}

// apiVersionFor is --api-version, or the newest version moat serves for
// registries and resource groups; other types need the flag.
func (t *resourceTarget) apiVersionFor(id string) (string, error) {
	if t.apiVersion != "" {
		return t.apiVersion, nil
	}
	lower := strings.ToLower(id)
	switch {
	case strings.Contains(lower, "/providers/microsoft.containerregistry/"):
		return model.Latest().String(), nil
	case !strings.Contains(lower, "/providers/") && strings.Count(strings.Trim(lower, "/"), "/") == 3:
		return groupsAPIVersion, nil
	}
	return "", usagef("--api-version is required for %s", id)
}

func newResourceCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "resource", Short: "Show and update any ARM resource of the deployment", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)

	var showT resourceTarget
	show := &cobra.Command{
		Use:   "show (--ids ID | -g RG -n NAME --resource-type TYPE) [--api-version V]",
		Short: "Show a resource",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return forEachResource(cmd, cio, &out, &showT, func(s *session, id, v string) (any, error) {
				return s.call(cmd.Context(), http.MethodGet, id, v, nil)
			})
		},
	}
	showT.addFlags(show)

	var updT resourceTarget
	var sets []string
	update := &cobra.Command{
		Use:   "update (--ids ID | -g RG -n NAME --resource-type TYPE) [--api-version V] --set path=value ...",
		Short: "Update a resource: read it, apply the --set edits, and write it back whole (PUT)",
		Long: "Update a resource as az resource update does: GET it, apply each --set path=value\n" +
			"(path is dotted, with [N] for list elements; keys match existing ones regardless of\n" +
			"case; the value is JSON if it parses as JSON, else a string), then PUT the result.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(sets) == 0 {
				return usagef("give at least one --set path=value")
			}
			edits := make([]setEdit, 0, len(sets))
			for _, s := range sets {
				e, err := parseSet(s)
				if err != nil {
					return &usageError{err: err}
				}
				edits = append(edits, e)
			}
			return forEachResource(cmd, cio, &out, &updT, func(s *session, id, v string) (any, error) {
				doc, err := s.call(cmd.Context(), http.MethodGet, id, v, nil)
				if err != nil {
					return nil, err
				}
				for _, e := range edits {
					if doc, err = e.apply(doc); err != nil {
						return nil, failf("InvalidSet", "%v", err)
					}
				}
				return s.call(cmd.Context(), http.MethodPut, id, v, doc)
			})
		},
	}
	updT.addFlags(update)
	update.Flags().StringArrayVar(&sets, "set", nil, "path=value to set; repeatable")
	cmd.AddCommand(show, update)
	return cmd
}

// forEachResource resolves the target and runs do for each id, printing one
// result, or a list when --ids named several.
func forEachResource(cmd *cobra.Command, cio cliIO, out *outputOptions, t *resourceTarget, do func(s *session, id, apiVersion string) (any, error)) error {
	if err := out.validate(); err != nil {
		return err
	}
	// The flags are checked before the profile is read, so a usage error is
	// one whether or not the user is logged in.
	if _, err := t.resolve(defaultSubscriptionID); err != nil {
		return err
	}
	s, err := openSession(cmd.Context())
	if err != nil {
		return err
	}
	ids, err := t.resolve(s.prof.SubscriptionID)
	if err != nil {
		return err
	}
	var results []any
	for _, id := range ids {
		v, err := t.apiVersionFor(id)
		if err != nil {
			return err
		}
		res, err := do(s, id, v)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	if len(results) == 1 {
		return out.print(cio.stdout, results[0], nil)
	}
	return out.print(cio.stdout, results, nil)
}

// setEdit is one --set path=value.
type setEdit struct {
	path  string
	steps []pathStep
	value any
}

// pathStep is an object key or a list index.
type pathStep struct {
	key     string
	index   int
	isIndex bool
}

// parseSet reads "a.b[0].c=value". The value is JSON when it parses as
// JSON (true, 7, {"x":1}, "quoted"), else the literal string, as az does.
func parseSet(s string) (setEdit, error) {
	path, raw, ok := strings.Cut(s, "=")
	if !ok {
		return setEdit{}, fmt.Errorf("--set %q: want path=value", s)
	}
	steps, err := parsePath(path)
	if err != nil {
		return setEdit{}, fmt.Errorf("--set %q: %w", s, err)
	}
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		v = raw
	}
	return setEdit{path: path, steps: steps, value: v}, nil
}

func parsePath(path string) ([]pathStep, error) {
	if path == "" {
		return nil, fmt.Errorf("empty path")
	}
	var steps []pathStep
	for _, seg := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		if key == "" {
			return nil, fmt.Errorf("path %q has an empty key", path)
		}
		steps = append(steps, pathStep{key: key})
		if rest == "" && !strings.Contains(seg, "[") {
			continue
		}
		rest = "[" + rest
		for rest != "" {
			inner, after, ok := strings.Cut(rest[1:], "]")
			if !strings.HasPrefix(rest, "[") || !ok {
				return nil, fmt.Errorf("path %q: %q is not a list index [N]", path, seg)
			}
			i, err := strconv.Atoi(inner)
			if err != nil {
				return nil, fmt.Errorf("path %q: [%s] is not a list index", path, inner)
			}
			steps = append(steps, pathStep{index: i, isIndex: true})
			rest = after
		}
	}
	return steps, nil
}

// apply sets the edit's value in doc and returns the new document. Missing
// objects on the way are created; a key matches an existing key regardless
// of case, and keeps the existing key's spelling.
func (e setEdit) apply(doc any) (any, error) {
	return setIn(doc, e.steps, e.value, "")
}

func setIn(node any, steps []pathStep, val any, where string) (any, error) {
	if len(steps) == 0 {
		return val, nil
	}
	st := steps[0]
	if st.isIndex {
		here := fmt.Sprintf("%s[%d]", where, st.index)
		l, ok := node.([]any)
		if !ok {
			return nil, fmt.Errorf("%s is not a list", orRoot(where))
		}
		i := st.index
		if i < 0 {
			i += len(l)
		}
		if i < 0 || i >= len(l) {
			return nil, fmt.Errorf("%s: index out of range (the list has %d elements)", here, len(l))
		}
		nv, err := setIn(l[i], steps[1:], val, here)
		if err != nil {
			return nil, err
		}
		l[i] = nv
		return l, nil
	}
	here := st.key
	if where != "" {
		here = where + "." + st.key
	}
	var m map[string]any
	switch t := node.(type) {
	case nil:
		m = map[string]any{}
	case map[string]any:
		m = t
	default:
		return nil, fmt.Errorf("%s is not an object", orRoot(where))
	}
	k := matchKey(m, st.key)
	nv, err := setIn(m[k], steps[1:], val, here)
	if err != nil {
		return nil, err
	}
	m[k] = nv
	return m, nil
}

// matchKey is the key of m that equals key, else the one that equals it
// regardless of case, else key itself.
func matchKey(m map[string]any, key string) string {
	if _, ok := m[key]; ok {
		return key
	}
	match := ""
	for k := range m {
		// The smallest of several matches, so the choice does not depend on
		// map order.
		if strings.EqualFold(k, key) && (match == "" || k < match) {
			match = k
		}
	}
	if match != "" {
		return match
	}
	return key
}

func orRoot(where string) string {
	if where == "" {
		return "the resource"
	}
	return where
}
