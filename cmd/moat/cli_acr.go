package main

// moat acr speaks the registries API as JSON at the newest api-version moat
// serves (model.Latest), not through armcontainerregistry v1.2.0: that SDK
// pins 2023-07-01 and cannot send anonymousPullEnabled in an update, and
// the plain shape shows every property the server returns, as az does.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moat-registry/moat/internal/model"
)

var registryColumns = []column{
	{"NAME", "name"}, {"RESOURCE GROUP", "resourceGroup"}, {"LOCATION", "location"}, {"SKU", "sku.name"},
	{"LOGIN SERVER", "properties.loginServer"}, {"CREATION DATE", "properties.creationDate"},
	{"ADMIN ENABLED", "properties.adminUserEnabled"}, {"PUBLIC NETWORK ACCESS", "properties.publicNetworkAccess"},
}

func registryPath(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + registryType + "/" + name
}

// boolFlag is an az-style boolean flag that takes its value as the next
// argument (--public-network-enabled false); bare marks the flags that may
// also be given alone (--admin-enabled), meaning true.
type boolFlag struct {
	set, val bool
}

func (b *boolFlag) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatBool(b.val)
}

func (b *boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	b.set, b.val = true, v
	return nil
}

func (b *boolFlag) Type() string { return "true|false" }

// registrySettings are the flags acr create and acr update share.
type registrySettings struct {
	sku, defaultAction                                       string
	publicNetwork, trustedServices, exports, admin, anonPull boolFlag
}

func (r *registrySettings) addFlags(f *pflag.FlagSet) {
	f.StringVar(&r.sku, "sku", "", "Basic, Standard or Premium")
	f.StringVar(&r.defaultAction, "default-action", "", "network rules' default action: Allow or Deny (Premium)")
	f.Var(&r.publicNetwork, "public-network-enabled", "allow access through the public endpoint (false also sets --default-action Deny)")
	f.Var(&r.trustedServices, "allow-trusted-services", "let trusted services bypass the network rules")
	f.Var(&r.exports, "allow-exports", "allow artifacts to be exported (import into other registries, export pipelines)")
	f.Var(&r.admin, "admin-enabled", "enable the admin user")
	f.Var(&r.anonPull, "anonymous-pull-enabled", "allow anonymous pull (Standard, Premium)")
	f.Lookup("admin-enabled").NoOptDefVal = "true"
	f.Lookup("anonymous-pull-enabled").NoOptDefVal = "true"
}

// bareBoolFlags are the flags that may stand alone (meaning true) or take
// their value as the next argument, as az's three-state flags do.
var bareBoolFlags = []string{"--admin-enabled", "--anonymous-pull-enabled"}

// joinBareBoolValues rewrites "--admin-enabled false" into
// "--admin-enabled=false" (and the same for the other bareBoolFlags) before
// cobra parses the arguments: pflag gives a flag with a no-value default
// only "--flag=value", so a separate value would otherwise become a
// positional argument no longer tied to its flag (and two such flags in
// one command could not be told apart). Only true/false, in any case, are
// taken; arguments after "--" are left alone.
func joinBareBoolValues(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if slices.Contains(bareBoolFlags, a) && i+1 < len(args) &&
			(strings.EqualFold(args[i+1], "true") || strings.EqualFold(args[i+1], "false")) {
			out = append(out, a+"="+strings.ToLower(args[i+1]))
			i++
			continue
		}
		out = append(out, a)
	}
	return out
}

// takeBareValue lets "--admin-enabled false" (value as a separate argument)
// work for the two flags that may also stand alone: with exactly one of them
// given and one true/false argument left over, the argument is its value.
func (r *registrySettings) takeBareValue(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var given []*boolFlag
	for name, b := range map[string]*boolFlag{"admin-enabled": &r.admin, "anonymous-pull-enabled": &r.anonPull} {
		if cmd.Flags().Changed(name) {
			given = append(given, b)
		}
	}
	if len(args) == 1 && len(given) == 1 {
		if err := given[0].Set(args[0]); err == nil {
			return nil
		}
	}
	return usagef("%s takes no arguments, got %q (write --admin-enabled=false for a value)", cmd.CommandPath(), args)
}

// properties are the registry properties the flags name; defaultAction
// becomes Deny with --public-network-enabled false unless given, as az does.
func (r *registrySettings) properties() (map[string]any, error) {
	p := map[string]any{}
	if r.publicNetwork.set {
		p["publicNetworkAccess"] = map[bool]string{true: "Enabled", false: "Disabled"}[r.publicNetwork.val]
	}
	action := r.defaultAction
	if action != "" && !strings.EqualFold(action, "Allow") && !strings.EqualFold(action, "Deny") {
		return nil, usagef("--default-action %q: want Allow or Deny", action)
	}
	if action == "" && r.publicNetwork.set && !r.publicNetwork.val {
		action = "Deny"
	}
	if action != "" {
		p["networkRuleSet"] = map[string]any{"defaultAction": action}
	}
	if r.trustedServices.set {
		p["networkRuleBypassOptions"] = map[bool]string{true: "AzureServices", false: "None"}[r.trustedServices.val]
	}
	if r.exports.set {
		p["policies"] = map[string]any{"exportPolicy": map[string]any{"status": map[bool]string{true: "enabled", false: "disabled"}[r.exports.val]}}
	}
	if r.admin.set {
		p["adminUserEnabled"] = r.admin.val
	}
	if r.anonPull.set {
		p["anonymousPullEnabled"] = r.anonPull.val
	}
	return p, nil
}

func checkSKU(sku string) error {
	for _, s := range []string{"Basic", "Standard", "Premium"} {
		if strings.EqualFold(sku, s) {
			return nil
		}
	}
	return usagef("--sku %q: want Basic, Standard or Premium", sku)
}

// withResourceGroup adds az's resourceGroup field, read from the id.
func withResourceGroup(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	id, _ := m["id"].(string)
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			m["resourceGroup"] = parts[i+1]
			break
		}
	}
	return m
}

// registryRef names one registry; the group is found by listing when -g is
// not given.
type registryRef struct {
	name, group string
	flag        string // the flag that names it, for usage errors
}

func (r *registryRef) addFlags(f *pflag.FlagSet) {
	r.flag = "--name"
	f.StringVarP(&r.name, "name", "n", "", "registry name")
	f.StringVarP(&r.group, "resource-group", "g", "", "resource group (default: found from the name)")
}

func (r *registryRef) path(ctx context.Context, s *session) (string, error) {
	if r.group != "" {
		return registryPath(s.prof.SubscriptionID, r.group, r.name), nil
	}
	items, err := s.list(ctx, "/subscriptions/"+s.prof.SubscriptionID+"/providers/"+registryType, model.Latest().String())
	if err != nil {
		return "", err
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if n, _ := m["name"].(string); strings.EqualFold(n, r.name) {
			id, _ := m["id"].(string)
			if id == "" {
				break
			}
			return id, nil
		}
	}
	return "", failf("ResourceNotFound", "the registry '%s' could not be found in subscription '%s'", r.name, s.prof.SubscriptionID)
}

func newACRCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "acr", Short: "Manage the deployment's registries (az acr style)", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)
	api := model.Latest().String()
	printReg := func(v any) error { return out.print(cio.stdout, withResourceGroup(v), registryColumns) }

	var cr registryRef
	var cs registrySettings
	var location string
	create := &cobra.Command{
		Use:   "create -n NAME -g RG --sku SKU [flags]",
		Short: "Create a registry",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cs.takeBareValue(cmd, args); err != nil {
				return err
			}
			if err := requireFlags("--name", cr.name, "--resource-group", cr.group, "--sku", cs.sku); err != nil {
				return err
			}
			if err := checkSKU(cs.sku); err != nil {
				return err
			}
			props, err := cs.properties()
			if err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := openSession(ctx)
			if err != nil {
				return err
			}
			if location == "" {
				// az's default: the resource group's location.
				g, err := s.call(ctx, http.MethodGet, groupPath(s.prof.SubscriptionID, cr.group), groupsAPIVersion, nil)
				if err != nil {
					return err
				}
				m, _ := g.(map[string]any)
				location, _ = m["location"].(string)
			}
			body := map[string]any{"location": location, "sku": map[string]any{"name": cs.sku}, "properties": props}
			res, err := s.call(ctx, http.MethodPut, registryPath(s.prof.SubscriptionID, cr.group, cr.name), api, body)
			if err != nil {
				return err
			}
			return printReg(res)
		},
	}
	cr.addFlags(create.Flags())
	cs.addFlags(create.Flags())
	create.Flags().StringVarP(&location, "location", "l", "", "location (default: the resource group's)")

	var ur registryRef
	var us registrySettings
	update := &cobra.Command{
		Use:   "update -n NAME [-g RG] [flags]",
		Short: "Update a registry's settings (PATCH: what is not named stays)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := us.takeBareValue(cmd, args); err != nil {
				return err
			}
			if err := requireFlags("--name", ur.name); err != nil {
				return err
			}
			body := map[string]any{}
			if us.sku != "" {
				if err := checkSKU(us.sku); err != nil {
					return err
				}
				body["sku"] = map[string]any{"name": us.sku}
			}
			props, err := us.properties()
			if err != nil {
				return err
			}
			if len(props) > 0 {
				body["properties"] = props
			}
			if len(body) == 0 {
				return usagef("nothing to update: name at least one setting")
			}
			return withRegistry(cmd, &out, &ur, func(ctx context.Context, s *session, path string) error {
				res, err := s.call(ctx, http.MethodPatch, path, api, body)
				if err != nil {
					return err
				}
				return printReg(res)
			})
		},
	}
	ur.addFlags(update.Flags())
	us.addFlags(update.Flags())

	var sr registryRef
	show := &cobra.Command{
		Use:   "show -n NAME [-g RG]",
		Short: "Show a registry",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, &out, &sr, func(ctx context.Context, s *session, path string) error {
				res, err := s.call(ctx, http.MethodGet, path, api, nil)
				if err != nil {
					return err
				}
				return printReg(res)
			})
		},
	}
	sr.addFlags(show.Flags())

	var dr registryRef
	var yes bool
	del := &cobra.Command{
		Use:   "delete -n NAME [-g RG] --yes",
		Short: "Delete a registry and its content",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dr.name != "" && !yes {
				return usagef("deleting registry %q deletes its content; pass --yes", dr.name)
			}
			return withRegistry(cmd, &out, &dr, func(ctx context.Context, s *session, path string) error {
				_, err := s.call(ctx, http.MethodDelete, path, api, nil)
				return err
			})
		},
	}
	dr.addFlags(del.Flags())
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	var listGroup string
	list := &cobra.Command{
		Use:   "list [-g RG]",
		Short: "List the registries of the subscription or of one resource group",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			path := "/subscriptions/" + s.prof.SubscriptionID + "/providers/" + registryType
			if listGroup != "" {
				path = "/subscriptions/" + s.prof.SubscriptionID + "/resourceGroups/" + listGroup + "/providers/" + registryType
			}
			items, err := s.list(cmd.Context(), path, api)
			if err != nil {
				return err
			}
			for i := range items {
				items[i] = withResourceGroup(items[i])
			}
			return out.print(cio.stdout, items, registryColumns)
		},
	}
	list.Flags().StringVarP(&listGroup, "resource-group", "g", "", "resource group")

	cmd.AddCommand(create, update, show, del, list, newNetworkRuleCmd(cio, &out), newACRConfigCmd(cio, &out),
		newPrivateEndpointConnectionCmd(cio, &out), newImportCmd(cio, &out))
	cmd.AddCommand(newScopeMapCmd(cio, &out), newTokenCmd(cio, &out))    // cli_acr_scopemap.go, cli_acr_token.go
	cmd.AddCommand(newAuditCmd(cio, &out), newCheckAccessCmd(cio, &out)) // cli_audit.go
	// cli_acr_login.go, cli_acr_credential.go
	cmd.AddCommand(newACRLoginCmd(cio, &out), newACRCredentialCmd(cio, &out))
	cmd.AddCommand(newTransferCmds(cio, &out)...) // cli_acr_pipeline.go
	return cmd
}

// registryChildList is `list -r REGISTRY`: it lists the registry's child
// resources under seg and prints them with print.
func registryChildList(use, short, seg, api string, out *outputOptions, print func(any) error) *cobra.Command {
	var lr registryRef
	list := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, out, &lr, func(ctx context.Context, s *session, path string) error {
				items, err := s.list(ctx, path+"/"+seg, api)
				if err != nil {
					return err
				}
				return print(items)
			})
		},
	}
	lr.addRegistryFlags(list.Flags())
	return list
}

// requireYes gives del a --yes flag and refuses to run without it, with
// refusal (formatted with the name *name) as the usage error.
func requireYes(del *cobra.Command, refusal string, name *string) {
	var yes bool
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	del.PreRunE = func(*cobra.Command, []string) error {
		if !yes {
			return usagef(refusal, *name)
		}
		return nil
	}
}

// withRegistry checks the name, opens the session, finds the registry's
// path and runs do.
func withRegistry(cmd *cobra.Command, out *outputOptions, r *registryRef, do func(ctx context.Context, s *session, path string) error) error {
	if err := requireFlags(r.flag, r.name); err != nil {
		return err
	}
	if err := out.validate(); err != nil {
		return err
	}
	ctx := cmd.Context()
	s, err := openSession(ctx)
	if err != nil {
		return err
	}
	path, err := r.path(ctx, s)
	if err != nil {
		return err
	}
	return do(ctx, s, path)
}

var ipRuleColumns = []column{{"Action", "action"}, {"IpAddressOrRange", "value"}}

func newNetworkRuleCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "network-rule", Short: "Manage a registry's IP rules", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()

	// ruleSet reads the registry's networkRuleSet (nil when it has none).
	ruleSet := func(ctx context.Context, s *session, path string) (map[string]any, []any, error) {
		reg, err := s.call(ctx, http.MethodGet, path, api, nil)
		if err != nil {
			return nil, nil, err
		}
		m, _ := reg.(map[string]any)
		props, _ := m["properties"].(map[string]any)
		nrs, _ := props["networkRuleSet"].(map[string]any)
		rules, _ := nrs["ipRules"].([]any)
		return nrs, rules, nil
	}
	// patch writes the rules back with the registry's default action.
	patch := func(ctx context.Context, s *session, path string, nrs map[string]any, rules []any) error {
		set := map[string]any{"ipRules": nonNilList(rules)}
		if a, ok := nrs["defaultAction"]; ok {
			set["defaultAction"] = a
		}
		res, err := s.call(ctx, http.MethodPatch, path, api, map[string]any{"properties": map[string]any{"networkRuleSet": set}})
		if err != nil {
			return err
		}
		return out.print(cio.stdout, withResourceGroup(res), registryColumns)
	}
	ruleValue := func(r any) string {
		m, _ := r.(map[string]any)
		v, _ := m["value"].(string)
		return v
	}

	// editCmd is add or remove: read the rule set, edit the list for the
	// given address (edit says why it cannot), PATCH it back.
	editCmd := func(use, short string, edit func(name, ip string, rules []any) ([]any, error)) *cobra.Command {
		var ref registryRef
		var ip string
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := requireFlags("--ip-address", ip); err != nil {
					return err
				}
				return withRegistry(cmd, out, &ref, func(ctx context.Context, s *session, path string) error {
					nrs, rules, err := ruleSet(ctx, s, path)
					if err != nil {
						return err
					}
					edited, err := edit(ref.name, ip, rules)
					if err != nil {
						return err
					}
					return patch(ctx, s, path, nrs, edited)
				})
			},
		}
		ref.addFlags(c.Flags())
		c.Flags().StringVar(&ip, "ip-address", "", "IPv4/IPv6 address or CIDR range")
		return c
	}
	add := editCmd("add -n NAME [-g RG] --ip-address IP/CIDR", "Allow an IP address or CIDR range",
		func(name, ip string, rules []any) ([]any, error) {
			for _, r := range rules {
				if ruleValue(r) == ip {
					return nil, failf("IpRuleExists", "registry '%s' already allows %s", name, ip)
				}
			}
			return append(rules, map[string]any{"action": "Allow", "value": ip}), nil
		})
	remove := editCmd("remove -n NAME [-g RG] --ip-address IP/CIDR", "Remove an IP rule",
		func(name, ip string, rules []any) ([]any, error) {
			kept := []any{}
			for _, r := range rules {
				if ruleValue(r) != ip {
					kept = append(kept, r)
				}
			}
			if len(kept) == len(rules) {
				return nil, failf("IpRuleNotFound", "registry '%s' has no IP rule %s", name, ip)
			}
			return kept, nil
		})

	var lr registryRef
	list := &cobra.Command{
		Use:   "list -n NAME [-g RG]",
		Short: "List a registry's IP rules",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, out, &lr, func(ctx context.Context, s *session, path string) error {
				_, rules, err := ruleSet(ctx, s, path)
				if err != nil {
					return err
				}
				if out.query == "" && out.format != "json" {
					return out.print(cio.stdout, nonNilList(rules), ipRuleColumns)
				}
				return out.print(cio.stdout, map[string]any{"ipRules": nonNilList(rules)}, nil)
			})
		},
	}
	lr.addFlags(list.Flags())
	cmd.AddCommand(add, remove, list)
	return cmd
}
