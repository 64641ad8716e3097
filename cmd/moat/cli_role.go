package main

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

// authorizationAPIVersion is the Microsoft.Authorization version the role
// commands use (az's).
const authorizationAPIVersion = "2022-04-01"

var (
	assignmentColumns = []column{{"Principal", "principalName"}, {"Role", "roleDefinitionName"}, {"Scope", "scope"}, {"Name", "name"}}
	definitionColumns = []column{{"Name", "roleName"}, {"Id", "name"}, {"Description", "description"}}
)

// newRoleCmd is `moat role`, shaped like `az role`.
func newRoleCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "role", Short: "Manage role assignments and list role definitions", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)
	cmd.AddCommand(newRoleAssignmentCmd(cio, &out), newRoleDefinitionCmd(cio, &out))
	return cmd
}

// roleFlags are the flags of the assignment commands.
type roleFlags struct {
	assignee, role, scope, resourceGroup string
	ids                                  []string
}

// scopeOf is --scope, or the resource group of -g, or the subscription.
func (f *roleFlags) scopeOf(s *session) (string, error) {
	switch {
	case f.scope != "" && f.resourceGroup != "":
		return "", usagef("pass --scope or --resource-group, not both")
	case f.scope == "/":
		return "/", nil
	case f.scope != "":
		if !strings.HasPrefix(strings.ToLower(f.scope), "/subscriptions/") {
			return "", usagef("--scope %q is not an ARM id: use /, /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{name} or a resource id", f.scope)
		}
		return strings.TrimSuffix(f.scope, "/"), nil
	case f.resourceGroup != "":
		return "/subscriptions/" + s.prof.SubscriptionID + "/resourceGroups/" + f.resourceGroup, nil
	}
	return "/subscriptions/" + s.prof.SubscriptionID, nil
}

func assignmentsPath(scope string) string {
	if scope == "/" {
		scope = ""
	}
	return scope + "/providers/Microsoft.Authorization/roleAssignments"
}

// resolveAssignee finds the object id of --assignee (an object id, an
// application id or a user name), as az resolves it through Graph.
func resolveAssignee(ctx context.Context, s *session, ref string) (id, typ string, err error) {
	if ref == "" || strings.ContainsAny(ref, "/?#%") {
		return "", "", usagef("--assignee %q is not an object id, application id or user name", ref)
	}
	res, err := s.call(ctx, http.MethodGet, "/providers/Microsoft.Authorization/principals/"+ref, authorizationAPIVersion, nil)
	if err != nil {
		return "", "", err
	}
	m, _ := res.(map[string]any)
	id, _ = m["id"].(string)
	typ, _ = m["principalType"].(string)
	if id == "" {
		return "", "", failf("InvalidResponse", "the principal lookup of %q answered no id", ref)
	}
	return id, typ, nil
}

// resolveRole finds a role definition by name or id; it returns the
// definition's id and GUID.
func resolveRole(ctx context.Context, s *session, ref string) (id, guid, name string, err error) {
	var def map[string]any
	if _, perr := uuid.Parse(lastSegment(ref)); perr == nil {
		res, err := s.call(ctx, http.MethodGet, "/subscriptions/"+s.prof.SubscriptionID+"/providers/Microsoft.Authorization/roleDefinitions/"+lastSegment(ref), authorizationAPIVersion, nil)
		if err != nil {
			return "", "", "", err
		}
		def, _ = res.(map[string]any)
	} else {
		items, err := s.list(ctx, "/subscriptions/"+s.prof.SubscriptionID+"/providers/Microsoft.Authorization/roleDefinitions", authorizationAPIVersion)
		if err != nil {
			return "", "", "", err
		}
		for _, it := range items {
			m, _ := it.(map[string]any)
			if n, _ := cliDigString(m, "properties", "roleName"); strings.EqualFold(n, ref) {
				def = m
			}
		}
		if def == nil {
			return "", "", "", failf("RoleDefinitionDoesNotExist", "there is no role %q; see moat role definition list", ref)
		}
	}
	id, _ = def["id"].(string)
	guid, _ = def["name"].(string)
	name, _ = cliDigString(def, "properties", "roleName")
	return id, guid, name, nil
}

func cliDigString(m map[string]any, keys ...string) (string, bool) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		cur = mm[k]
	}
	s, ok := cur.(string)
	return s, ok
}

func lastSegment(s string) string { return s[strings.LastIndex(s, "/")+1:] }

// roleNames maps role definition GUIDs to names for the table output.
func roleNames(ctx context.Context, s *session) (map[string]string, error) {
	items, err := s.list(ctx, "/subscriptions/"+s.prof.SubscriptionID+"/providers/Microsoft.Authorization/roleDefinitions", authorizationAPIVersion)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		g, _ := m["name"].(string)
		n, _ := cliDigString(m, "properties", "roleName")
		out[strings.ToLower(g)] = n
	}
	return out, nil
}

// flatten is az's output shape for role assignments: the properties at the
// top level, with roleDefinitionName (and principalName when known).
func flatten(a any, names map[string]string, principal map[string]string) map[string]any {
	m, _ := a.(map[string]any)
	out := map[string]any{"id": m["id"], "name": m["name"], "type": m["type"]}
	if p, ok := m["properties"].(map[string]any); ok {
		for k, v := range p {
			out[k] = v
		}
	}
	rd, _ := out["roleDefinitionId"].(string)
	out["roleDefinitionName"] = names[strings.ToLower(lastSegment(rd))]
	pid, _ := out["principalId"].(string)
	if n, ok := principal[strings.ToLower(pid)]; ok {
		out["principalName"] = n
	} else {
		out["principalName"] = pid
	}
	return out
}

func newRoleAssignmentCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "assignment", Short: "Manage role assignments", Args: noArgs, RunE: subcommandRequired}

	var cf roleFlags
	create := &cobra.Command{
		Use:   "create --assignee PRINCIPAL --role ROLE [--scope ID | -g RG]",
		Short: "Give a principal a role at a scope (and everything below it)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--assignee", cf.assignee, "--role", cf.role); err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := openSession(ctx)
			if err != nil {
				return err
			}
			scope, err := cf.scopeOf(s)
			if err != nil {
				return err
			}
			pid, ptype, err := resolveAssignee(ctx, s, cf.assignee)
			if err != nil {
				return err
			}
			roleID, guid, roleName, err := resolveRole(ctx, s, cf.role)
			if err != nil {
				return err
			}
			res, err := s.call(ctx, http.MethodPut, assignmentsPath(scope)+"/"+uuid.NewString(), authorizationAPIVersion, map[string]any{
				"properties": map[string]any{"roleDefinitionId": roleID, "principalId": pid, "principalType": ptype},
			})
			if err != nil {
				return err
			}
			return out.print(cio.stdout, flatten(res, map[string]string{strings.ToLower(guid): roleName}, map[string]string{pid: cf.assignee}), assignmentColumns)
		},
	}
	create.Flags().StringVar(&cf.assignee, "assignee", "", "the principal: object id, application (client) id or user name")
	create.Flags().StringVar(&cf.role, "role", "", "the role: name (AcrPull, Owner, ...) or role definition id")
	create.Flags().StringVar(&cf.scope, "scope", "", "where the role applies: /, /subscriptions/{id}, a resource group or resource id (default: the subscription)")
	create.Flags().StringVarP(&cf.resourceGroup, "resource-group", "g", "", "the resource group to scope the assignment to")

	var lf roleFlags
	var all bool
	list := &cobra.Command{
		Use:   "list [--assignee PRINCIPAL] [--role ROLE] [--scope ID | -g RG] [--all]",
		Short: "List role assignments at, above (and with --all, below) a scope",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, names, who, err := listAssignments(cmd.Context(), &lf, all)
			if err != nil {
				return err
			}
			rows := make([]any, 0, len(items))
			for _, it := range items {
				rows = append(rows, flatten(it, names, who))
			}
			return out.print(cio.stdout, rows, assignmentColumns)
		},
	}
	list.Flags().StringVar(&lf.assignee, "assignee", "", "only this principal's assignments (object id, application id or user name)")
	list.Flags().StringVar(&lf.role, "role", "", "only assignments of this role")
	list.Flags().StringVar(&lf.scope, "scope", "", "the scope (default: the subscription)")
	list.Flags().StringVarP(&lf.resourceGroup, "resource-group", "g", "", "the resource group")
	list.Flags().BoolVar(&all, "all", false, "also list assignments below the scope")

	var df roleFlags
	var yes bool
	del := &cobra.Command{
		Use:   "delete (--ids ID... | --assignee PRINCIPAL [--role ROLE] [--scope ID | -g RG]) [--yes]",
		Short: "Delete role assignments",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if len(df.ids) == 0 && df.assignee == "" && df.role == "" {
				return usagef("name what to delete: --ids, or --assignee and/or --role")
			}
			var ids []string
			if len(df.ids) > 0 {
				if df.assignee != "" || df.role != "" || df.scope != "" || df.resourceGroup != "" {
					return usagef("--ids cannot be combined with --assignee, --role, --scope or --resource-group")
				}
				for _, id := range df.ids {
					if !assignmentIDPattern.MatchString(id) {
						return usagef("--ids %q is not a role assignment id ({scope}/providers/Microsoft.Authorization/roleAssignments/{guid})", id)
					}
				}
				ids = df.ids
			} else {
				s, err := openSession(ctx)
				if err != nil {
					return err
				}
				scope, err := df.scopeOf(s)
				if err != nil {
					return err
				}
				items, _, _, err := listAssignments(ctx, &df, false)
				if err != nil {
					return err
				}
				for _, it := range items {
					m, _ := it.(map[string]any)
					id, _ := m["id"].(string)
					// Only what is assigned at the scope itself, as az does:
					// an inherited assignment is deleted where it was made.
					if sc, _ := cliDigString(m, "properties", "scope"); strings.EqualFold(strings.TrimSuffix(sc, "/"), strings.TrimSuffix(scope, "/")) {
						ids = append(ids, id)
					}
				}
				if len(ids) == 0 {
					return failf("RoleAssignmentNotFound", "no role assignment matches")
				}
				if len(ids) > 1 && !yes {
					return usagef("%d role assignments match; pass --yes to delete them all", len(ids))
				}
			}
			s, err := openSession(ctx)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if _, err := s.call(ctx, http.MethodDelete, id, authorizationAPIVersion, nil); err != nil {
					return err
				}
			}
			return nil
		},
	}
	del.Flags().StringSliceVar(&df.ids, "ids", nil, "role assignment ids to delete")
	del.Flags().StringVar(&df.assignee, "assignee", "", "delete this principal's assignments")
	del.Flags().StringVar(&df.role, "role", "", "delete assignments of this role")
	del.Flags().StringVar(&df.scope, "scope", "", "the scope (default: the subscription)")
	del.Flags().StringVarP(&df.resourceGroup, "resource-group", "g", "", "the resource group")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "delete every match when several match")

	cmd.AddCommand(create, list, del)
	return cmd
}

var assignmentIDPattern = regexp.MustCompile(`(?i)^(/subscriptions/[^/]+(/resourceGroups/[^/]+(/providers/[^/]+(/[^/]+/[^/]+)+)?)?)?/providers/Microsoft\.Authorization/roleAssignments/[0-9a-f-]{36}$`)

// listAssignments lists the assignments f names: at and above its scope
// (and below with all), of its assignee and role. It also returns the role
// names and the assignee's name by object id, for the output.
func listAssignments(ctx context.Context, f *roleFlags, all bool) (items []any, names, who map[string]string, err error) {
	s, err := openSession(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	scope, err := f.scopeOf(s)
	if err != nil {
		return nil, nil, nil, err
	}
	var terms []string
	if !all {
		terms = append(terms, "atScope()")
	}
	who = map[string]string{}
	pid := ""
	if f.assignee != "" {
		if pid, _, err = resolveAssignee(ctx, s, f.assignee); err != nil {
			return nil, nil, nil, err
		}
		who[strings.ToLower(pid)] = f.assignee
		terms = append(terms, "principalId eq '"+pid+"'")
	}
	roleGUID := ""
	if f.role != "" {
		if _, roleGUID, _, err = resolveRole(ctx, s, f.role); err != nil {
			return nil, nil, nil, err
		}
	}
	if names, err = roleNames(ctx, s); err != nil {
		return nil, nil, nil, err
	}
	path := assignmentsPath(scope)
	u := s.prof.Server + (&url.URL{Path: path}).EscapedPath() + "?api-version=" + authorizationAPIVersion
	if len(terms) > 0 {
		u += "&$filter=" + url.QueryEscape(strings.Join(terms, " and "))
	}
	raw, err := s.listURL(ctx, u)
	if err != nil {
		return nil, nil, nil, err
	}
	items = []any{}
	for _, it := range raw {
		m, _ := it.(map[string]any)
		rd, _ := cliDigString(m, "properties", "roleDefinitionId")
		if roleGUID != "" && !strings.EqualFold(lastSegment(rd), roleGUID) {
			continue
		}
		items = append(items, it)
	}
	return items, names, who, nil
}

func newRoleDefinitionCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "definition", Short: "List role definitions", Args: noArgs, RunE: subcommandRequired}
	var name string
	list := &cobra.Command{
		Use:   "list [--name ROLE]",
		Short: "List the built-in role definitions",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := openSession(ctx)
			if err != nil {
				return err
			}
			u := s.prof.Server + "/subscriptions/" + url.PathEscape(s.prof.SubscriptionID) + "/providers/Microsoft.Authorization/roleDefinitions?api-version=" + authorizationAPIVersion
			if name != "" {
				u += "&$filter=" + url.QueryEscape("roleName eq '"+strings.ReplaceAll(name, "'", "''")+"'")
			}
			items, err := s.listURL(ctx, u)
			if err != nil {
				return err
			}
			rows := make([]any, 0, len(items))
			for _, it := range items {
				m, _ := it.(map[string]any)
				row := map[string]any{"id": m["id"], "name": m["name"], "type": m["type"]}
				if p, ok := m["properties"].(map[string]any); ok {
					for k, v := range p {
						row[k] = v
					}
				}
				rows = append(rows, row)
			}
			return out.print(cio.stdout, rows, definitionColumns)
		},
	}
	list.Flags().StringVarP(&name, "name", "n", "", "only the role with this name")
	cmd.AddCommand(list)
	return cmd
}
