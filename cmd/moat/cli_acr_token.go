package main

// moat acr token: a registry's repository-scoped tokens, in az's shape.
// create generates both passwords unless --no-passwords (their values are
// shown only in that answer); without --scope-map it takes az's
// "--repository REPO ACTION..." groups and first creates the scope map
// "{token}-scope-map" from them. credential generate (re)generates one or
// both passwords.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

var tokenColumns = []column{
	{"NAME", "name"}, {"SCOPE MAP", "properties.scopeMapId"}, {"STATUS", "properties.status"},
	{"CREATION DATE", "properties.creationDate"},
}

var tokenCredentialColumns = []column{{"NAME", "name"}, {"VALUE", "value"}, {"EXPIRY", "expiry"}}

func tokenPath(regPath, name string) string { return regPath + "/tokens/" + name }

// expiryFrom is the expiry --expiration-in-days or --expiration names, or
// nil for none.
func expiryFrom(days int, at string, now time.Time) (*string, error) {
	switch {
	case days != 0 && at != "":
		return nil, usagef("give --expiration-in-days or --expiration, not both")
	case days < 0:
		return nil, usagef("--expiration-in-days %d: want a positive number of days", days)
	case days > 0:
		s := now.UTC().Add(time.Duration(days) * 24 * time.Hour).Format(time.RFC3339)
		return &s, nil
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, usagef("--expiration %q: want an RFC 3339 time such as 2030-01-31T00:00:00Z", at)
		}
		s := t.UTC().Format(time.RFC3339)
		return &s, nil
	}
	return nil, nil
}

// scopeMapIDFor is the id of scope map name in the registry at regPath.
func scopeMapIDFor(regPath, name string) string {
	if strings.HasPrefix(strings.ToLower(name), "/subscriptions/") {
		return name
	}
	return scopeMapPath(regPath, name)
}

func newTokenCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage a registry's repository-scoped tokens", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()
	print := func(v any) error { return out.print(cio.stdout, v, tokenColumns) }

	named := func(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, args []string, ctx context.Context, s *session, regPath, name string) error) (*cobra.Command, *string) {
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
					return run(cmd, args, ctx, s, path, name)
				})
			},
		}
		r.addRegistryFlags(c.Flags())
		c.Flags().StringVarP(&name, "name", "n", "", "token name")
		return c, &name
	}

	var cScopeMap, cStatus, cExpiration string
	var cDays int
	var cNoPasswords bool
	var cRepos *repoGroups
	create, _ := named("create -r REGISTRY -n NAME (--scope-map NAME | --repository REPO ACTION...) [flags]",
		"Create a token; its passwords are shown once", cobra.ArbitraryArgs,
		func(cmd *cobra.Command, args []string, ctx context.Context, s *session, regPath, name string) error {
			groups, err := cRepos.assign(args)
			if err != nil {
				return err
			}
			if (cScopeMap == "") == (len(groups) == 0) {
				return usagef("give either --scope-map or --repository REPO ACTION...")
			}
			if cStatus != "" && cStatus != "enabled" && cStatus != "disabled" {
				return usagef("--status %q: want enabled or disabled", cStatus)
			}
			exp, err := expiryFrom(cDays, cExpiration, time.Now())
			if err != nil {
				return err
			}
			if cNoPasswords && exp != nil {
				return usagef("--no-passwords makes no password to expire")
			}
			smID := scopeMapIDFor(regPath, cScopeMap)
			if len(groups) > 0 {
				// az names the scope map it makes for the token so.
				smName := name + "-scope-map"
				sm, err := s.call(ctx, http.MethodPut, scopeMapPath(regPath, smName), api, map[string]any{"properties": map[string]any{
					"actions": actionStrings(groups), "description": "Token " + name + " scope map",
				}})
				if err != nil {
					return err
				}
				m, _ := sm.(map[string]any)
				smID, _ = m["id"].(string)
			}
			props := map[string]any{"scopeMapId": smID}
			if cStatus != "" {
				props["status"] = cStatus
			}
			if !cNoPasswords {
				var pws []any
				for _, n := range []string{"password1", "password2"} {
					p := map[string]any{"name": n}
					if exp != nil {
						p["expiry"] = *exp
					}
					pws = append(pws, p)
				}
				props["credentials"] = map[string]any{"passwords": pws}
			}
			res, err := s.call(ctx, http.MethodPut, tokenPath(regPath, name), api, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return print(res)
		})
	cf := create.Flags()
	cf.StringVar(&cScopeMap, "scope-map", "", "scope map name (or id) giving the token its permissions")
	cf.StringVar(&cStatus, "status", "", "enabled (default) or disabled")
	cf.IntVar(&cDays, "expiration-in-days", 0, "days until the passwords expire (default: never)")
	cf.StringVar(&cExpiration, "expiration", "", "when the passwords expire (RFC 3339)")
	cf.BoolVar(&cNoPasswords, "no-passwords", false, "create the token without passwords")
	cRepos = newRepoGroups(cf, "repository")

	var uScopeMap, uStatus string
	update, _ := named("update -r REGISTRY -n NAME [--scope-map NAME] [--status enabled|disabled]", "Change a token's scope map or status", noArgs,
		func(_ *cobra.Command, _ []string, ctx context.Context, s *session, regPath, name string) error {
			props := map[string]any{}
			if uScopeMap != "" {
				props["scopeMapId"] = scopeMapIDFor(regPath, uScopeMap)
			}
			if uStatus != "" {
				if uStatus != "enabled" && uStatus != "disabled" {
					return usagef("--status %q: want enabled or disabled", uStatus)
				}
				props["status"] = uStatus
			}
			if len(props) == 0 {
				return usagef("nothing to update: give --scope-map or --status")
			}
			res, err := s.call(ctx, http.MethodPatch, tokenPath(regPath, name), api, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return print(res)
		})
	update.Flags().StringVar(&uScopeMap, "scope-map", "", "scope map name (or id)")
	update.Flags().StringVar(&uStatus, "status", "", "enabled or disabled")

	show, _ := named("show -r REGISTRY -n NAME", "Show a token (never its passwords)", noArgs,
		func(_ *cobra.Command, _ []string, ctx context.Context, s *session, regPath, name string) error {
			res, err := s.call(ctx, http.MethodGet, tokenPath(regPath, name), api, nil)
			if err != nil {
				return err
			}
			return print(res)
		})

	del, delName := named("delete -r REGISTRY -n NAME --yes", "Delete a token", noArgs,
		func(_ *cobra.Command, _ []string, ctx context.Context, s *session, regPath, name string) error {
			_, err := s.call(ctx, http.MethodDelete, tokenPath(regPath, name), api, nil)
			return err
		})
	requireYes(del, "deleting token %q revokes its credentials; pass --yes", delName)

	list := registryChildList("list -r REGISTRY", "List a registry's tokens", "tokens", api, out, print)

	cmd.AddCommand(create, update, show, del, list, newTokenCredentialCmd(cio, out))
	return cmd
}

func newTokenCredentialCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "Manage a token's passwords", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()
	var r registryRef
	var name, expiration string
	var days int
	var pw1, pw2 bool
	gen := &cobra.Command{
		Use:   "generate -r REGISTRY -n NAME [--password1] [--password2] [--expiration-in-days N]",
		Short: "Generate one or both passwords of a token; the values are shown once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			exp, err := expiryFrom(days, expiration, time.Now())
			if err != nil {
				return err
			}
			return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, regPath string) error {
				tok, err := s.call(ctx, http.MethodGet, tokenPath(regPath, name), api, nil)
				if err != nil {
					return err
				}
				m, _ := tok.(map[string]any)
				body := map[string]any{"tokenId": m["id"]}
				if pw1 != pw2 {
					body["name"] = map[bool]string{true: "password1", false: "password2"}[pw1]
				}
				if exp != nil {
					body["expiry"] = *exp
				}
				res, err := s.call(ctx, http.MethodPost, regPath+"/generateCredentials", api, body)
				if err != nil {
					return err
				}
				if out.query == "" && out.format == "table" {
					rm, _ := res.(map[string]any)
					list, _ := rm["passwords"].([]any)
					return out.print(cio.stdout, nonNilList(list), tokenCredentialColumns)
				}
				return out.print(cio.stdout, res, nil)
			})
		},
	}
	r.addRegistryFlags(gen.Flags())
	gen.Flags().StringVarP(&name, "name", "n", "", "token name")
	gen.Flags().BoolVar(&pw1, "password1", false, "generate password1 (neither flag: both)")
	gen.Flags().BoolVar(&pw2, "password2", false, "generate password2 (neither flag: both)")
	gen.Flags().IntVar(&days, "expiration-in-days", 0, "days until the password expires (default: never)")
	gen.Flags().StringVar(&expiration, "expiration", "", "when the password expires (RFC 3339)")
	cmd.AddCommand(gen)
	return cmd
}
