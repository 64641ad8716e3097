package main

// moat acr scope-map: a registry's scope maps, in az's shape: repositories
// and their actions are given as "--repository REPO ACTION...", repeatable
// (update has --add-repository and --remove-repository). The server
// validates the actions; the CLI only assembles repositories/REPO/ACTION.

import (
	"context"
	"net/http"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moat-registry/moat/internal/model"
)

var scopeMapColumns = []column{
	{"NAME", "name"}, {"TYPE", "properties.type"}, {"CREATION DATE", "properties.creationDate"}, {"DESCRIPTION", "properties.description"},
}

// repoGroup is one "--repository REPO ACTION..." group.
type repoGroup struct {
	flag, repo string
	actions    []string
}

// repoGroups collects az-style "--flag REPO ACTION..." groups. pflag hands
// the actions over as positional arguments; each flag's Set notes how many
// positional arguments came before it, so the actions after it are its own.
type repoGroups struct {
	fs     *pflag.FlagSet
	groups []repoGroup
	marks  []int
}

// repoFlag is one flag name feeding a repoGroups.
type repoFlag struct {
	g    *repoGroups
	name string
}

func (f repoFlag) String() string { return "" }
func (f repoFlag) Type() string   { return "REPO ACTION..." }
func (f repoFlag) Set(v string) error {
	f.g.groups = append(f.g.groups, repoGroup{flag: "--" + f.name, repo: v})
	f.g.marks = append(f.g.marks, len(f.g.fs.Args()))
	return nil
}

func newRepoGroups(fs *pflag.FlagSet, names ...string) *repoGroups {
	g := &repoGroups{fs: fs}
	for _, n := range names {
		fs.Var(repoFlag{g: g, name: n}, n, "a repository and its actions: "+"--"+n+" REPO ACTION... (content/read, content/write, content/delete, metadata/read, metadata/write); repeatable")
	}
	return g
}

// assign gives each group the positional arguments that followed it.
func (g *repoGroups) assign(args []string) ([]repoGroup, error) {
	if len(g.groups) == 0 {
		if len(args) > 0 {
			return nil, usagef("unexpected arguments %q: actions follow --repository REPO", args)
		}
		return nil, nil
	}
	if g.marks[0] > 0 {
		return nil, usagef("unexpected arguments %q before %s: actions follow the repository they apply to", args[:g.marks[0]], g.groups[0].flag)
	}
	out := slices.Clone(g.groups)
	for i := range out {
		end := len(args)
		if i+1 < len(g.marks) {
			end = g.marks[i+1]
		}
		out[i].actions = args[g.marks[i]:end]
		if len(out[i].actions) == 0 {
			return nil, usagef("%s %s names no action; want %s REPO ACTION...", out[i].flag, out[i].repo, out[i].flag)
		}
	}
	return out, nil
}

// actionStrings turns groups into scope-map actions.
func actionStrings(groups []repoGroup) []string {
	var out []string
	for _, g := range groups {
		for _, a := range g.actions {
			s := "repositories/" + g.repo + "/" + a
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func scopeMapPath(regPath, name string) string { return regPath + "/scopeMaps/" + name }

func newScopeMapCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "scope-map", Short: "Manage a registry's scope maps (repository permissions for tokens)", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()
	print := func(v any) error { return out.print(cio.stdout, v, scopeMapColumns) }

	// named builds a command on one scope map; args are its positional
	// arguments (the repository groups' actions).
	named := func(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, args []string, ctx context.Context, s *session, path string) error) (*cobra.Command, *string) {
		var r registryRef
		var name string
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := requireFlags("--name", name); err != nil {
					return err
				}
				return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
					return run(cmd, args, ctx, s, scopeMapPath(path, name))
				})
			},
		}
		r.addRegistryFlags(c.Flags())
		c.Flags().StringVarP(&name, "name", "n", "", "scope map name")
		return c, &name
	}

	var createDesc string
	var createRepos *repoGroups
	create, _ := named("create -r REGISTRY -n NAME --repository REPO ACTION... [--repository REPO ACTION...] [--description TEXT]",
		"Create a scope map", cobra.ArbitraryArgs, func(cmd *cobra.Command, args []string, ctx context.Context, s *session, path string) error {
			groups, err := createRepos.assign(args)
			if err != nil {
				return err
			}
			if len(groups) == 0 {
				return usagef("--repository is required: --repository REPO ACTION...")
			}
			props := map[string]any{"actions": actionStrings(groups)}
			if cmd.Flags().Changed("description") {
				props["description"] = createDesc
			}
			res, err := s.call(ctx, http.MethodPut, path, api, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return print(res)
		})
	create.Flags().StringVar(&createDesc, "description", "", "description (at most 256 characters)")
	createRepos = newRepoGroups(create.Flags(), "repository")

	var updateDesc string
	var updateRepos *repoGroups
	update, _ := named("update -r REGISTRY -n NAME [--add-repository REPO ACTION...] [--remove-repository REPO ACTION...] [--description TEXT]",
		"Add or remove a scope map's actions, or change its description", cobra.ArbitraryArgs,
		func(cmd *cobra.Command, args []string, ctx context.Context, s *session, path string) error {
			groups, err := updateRepos.assign(args)
			if err != nil {
				return err
			}
			if len(groups) == 0 && !cmd.Flags().Changed("description") {
				return usagef("nothing to update: give --add-repository, --remove-repository or --description")
			}
			props := map[string]any{}
			if cmd.Flags().Changed("description") {
				props["description"] = updateDesc
			}
			if len(groups) > 0 {
				cur, err := s.call(ctx, http.MethodGet, path, api, nil)
				if err != nil {
					return err
				}
				m, _ := cur.(map[string]any)
				p, _ := m["properties"].(map[string]any)
				var actions []string
				list, _ := p["actions"].([]any)
				for _, a := range list {
					if str, ok := a.(string); ok {
						actions = append(actions, str)
					}
				}
				for _, g := range groups {
					edit := actionStrings([]repoGroup{g})
					if g.flag == "--add-repository" {
						for _, a := range edit {
							if !slices.Contains(actions, a) {
								actions = append(actions, a)
							}
						}
						continue
					}
					for _, a := range edit {
						if !slices.Contains(actions, a) {
							return failf("ActionNotFound", "the scope map has no action %s to remove", a)
						}
						actions = slices.DeleteFunc(actions, func(x string) bool { return x == a })
					}
				}
				props["actions"] = actions
			}
			res, err := s.call(ctx, http.MethodPatch, path, api, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return print(res)
		})
	update.Flags().StringVar(&updateDesc, "description", "", "description (at most 256 characters)")
	updateRepos = newRepoGroups(update.Flags(), "add-repository", "remove-repository")

	show, _ := named("show -r REGISTRY -n NAME", "Show a scope map", noArgs, func(_ *cobra.Command, _ []string, ctx context.Context, s *session, path string) error {
		res, err := s.call(ctx, http.MethodGet, path, api, nil)
		if err != nil {
			return err
		}
		return print(res)
	})

	del, delName := named("delete -r REGISTRY -n NAME --yes", "Delete a scope map (not while a token uses it)", noArgs,
		func(_ *cobra.Command, _ []string, ctx context.Context, s *session, path string) error {
			_, err := s.call(ctx, http.MethodDelete, path, api, nil)
			return err
		})
	requireYes(del, "deleting scope map %q takes its permissions away; pass --yes", delName)

	list := registryChildList("list -r REGISTRY", "List a registry's scope maps, the system-defined ones included", "scopeMaps", api, out, print)
	cmd.AddCommand(create, update, show, del, list)
	return cmd
}
