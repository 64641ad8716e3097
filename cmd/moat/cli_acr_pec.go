package main

// moat acr private-endpoint-connection: a registry's private endpoint
// connections. Approve and reject read the connection and write it back
// with the new state, as az does.

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

var pecColumns = []column{
	{"Name", "name"}, {"Status", "properties.privateLinkServiceConnectionState.status"},
	{"Description", "properties.privateLinkServiceConnectionState.description"},
	{"PrivateEndpoint", "properties.privateEndpoint.id"}, {"ProvisioningState", "properties.provisioningState"},
}

func newPrivateEndpointConnectionCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "private-endpoint-connection", Short: "Manage a registry's private endpoint connections", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()
	connPath := func(regPath, name string) string { return regPath + "/privateEndpointConnections/" + name }

	list := registryChildList("list -r REGISTRY [-g RG]", "List the connections", "privateEndpointConnections", api, out,
		func(v any) error { return out.print(cio.stdout, v, pecColumns) })

	// one builds the commands that name one connection.
	one := func(use, short string, run func(ctx context.Context, s *session, path string) (any, error)) (*cobra.Command, *string) {
		var r registryRef
		var name string
		c := &cobra.Command{
			Use:   use + " -r REGISTRY -n NAME [-g RG]",
			Short: short,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := requireFlags("--name", name); err != nil {
					return err
				}
				return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
					res, err := run(ctx, s, connPath(path, name))
					if err != nil || res == nil {
						return err
					}
					return out.print(cio.stdout, res, pecColumns)
				})
			},
		}
		r.addRegistryFlags(c.Flags())
		c.Flags().StringVarP(&name, "name", "n", "", "connection name")
		return c, &name
	}

	show, _ := one("show", "Show a connection", func(ctx context.Context, s *session, path string) (any, error) {
		return s.call(ctx, http.MethodGet, path, api, nil)
	})
	setState := func(status string, description *string) func(ctx context.Context, s *session, path string) (any, error) {
		return func(ctx context.Context, s *session, path string) (any, error) {
			conn, err := s.call(ctx, http.MethodGet, path, api, nil)
			if err != nil {
				return nil, err
			}
			m, _ := conn.(map[string]any)
			props, _ := m["properties"].(map[string]any)
			if props == nil {
				return nil, failf("InvalidResponse", "the connection at %s has no properties", path)
			}
			props[matchKey(props, "privateLinkServiceConnectionState")] = map[string]any{
				"status": status, "description": *description, "actionsRequired": "None",
			}
			return s.call(ctx, http.MethodPut, path, api, map[string]any{"properties": props})
		}
	}
	var approveDesc, rejectDesc string
	approve, _ := one("approve", "Approve a connection", setState("Approved", &approveDesc))
	approve.Flags().StringVar(&approveDesc, "description", "Approved by moat", "reason for the approval")
	reject, _ := one("reject", "Reject a connection", setState("Rejected", &rejectDesc))
	reject.Flags().StringVar(&rejectDesc, "description", "Rejected by moat", "reason for the rejection")

	del, delName := one("delete", "Delete a connection", func(ctx context.Context, s *session, path string) (any, error) {
		return nil, nilIfNoErr(s.call(ctx, http.MethodDelete, path, api, nil))
	})
	requireYes(del, "deleting connection %q cuts its private endpoint off; pass --yes", delName)
	cmd.AddCommand(list, show, approve, reject, del)
	return cmd
}

// nilIfNoErr drops a call's result, keeping its error.
func nilIfNoErr(_ any, err error) error { return err }
