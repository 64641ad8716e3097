package main

import (
	"net/http"

	"github.com/spf13/cobra"
)

// groupsAPIVersion is the Microsoft.Resources version the group commands use.
const groupsAPIVersion = "2021-04-01"

var groupColumns = []column{{"Name", "name"}, {"Location", "location"}, {"Status", "properties.provisioningState"}}

func groupPath(sub, rg string) string {
	return "/subscriptions/" + sub + "/resourcegroups/" + rg
}

func newGroupCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "group", Short: "Manage resource groups", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)

	var name, location string
	var yes bool
	create := &cobra.Command{
		Use:   "create -n NAME [-l LOCATION]",
		Short: "Create a resource group (or update its tags in place)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			res, err := s.call(cmd.Context(), http.MethodPut, groupPath(s.prof.SubscriptionID, name), groupsAPIVersion, map[string]any{"location": location})
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, groupColumns)
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "resource group name")
	create.Flags().StringVarP(&location, "location", "l", "local", "location")

	show := &cobra.Command{
		Use:   "show -n NAME",
		Short: "Show a resource group",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			res, err := s.call(cmd.Context(), http.MethodGet, groupPath(s.prof.SubscriptionID, name), groupsAPIVersion, nil)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, groupColumns)
		},
	}
	show.Flags().StringVarP(&name, "name", "n", "", "resource group name")

	del := &cobra.Command{
		Use:   "delete -n NAME --yes",
		Short: "Delete a resource group and every registry in it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			if !yes {
				return usagef("deleting resource group %q deletes every registry in it; pass --yes", name)
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			_, err = s.call(cmd.Context(), http.MethodDelete, groupPath(s.prof.SubscriptionID, name), groupsAPIVersion, nil)
			return err
		},
	}
	del.Flags().StringVarP(&name, "name", "n", "", "resource group name")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the resource groups of the subscription",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			items, err := s.list(cmd.Context(), "/subscriptions/"+s.prof.SubscriptionID+"/resourcegroups", groupsAPIVersion)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, items, groupColumns)
		},
	}
	cmd.AddCommand(create, show, del, list)
	return cmd
}

// nonNil makes an empty list print as [] rather than null.
func nonNilList(items []any) []any {
	if items == nil {
		return []any{}
	}
	return items
}

// requireFlags takes pairs of flag name and value and reports the first flag
// whose value is empty.
func requireFlags(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return usagef("%s is required", pairs[i])
		}
	}
	return nil
}

func subcommandRequired(cmd *cobra.Command, _ []string) error {
	return usagef("%s needs a subcommand; see %s --help", cmd.CommandPath(), cmd.CommandPath())
}
