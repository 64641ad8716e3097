package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

// principalsAPIVersion is sent on the Moat.Identity routes, which accept
// any version (they are moat's own; see internal/arm/principals.go).
const principalsAPIVersion = "2024-11-01"

const (
	spsAPIPath   = "/providers/Moat.Identity/servicePrincipals"
	usersAPIPath = "/providers/Moat.Identity/users"
)

var (
	spColumns   = []column{{"DisplayName", "displayName"}, {"AppId", "appId"}, {"ObjectId", "objectId"}}
	userColumns = []column{{"UserPrincipalName", "userPrincipalName"}, {"DisplayName", "displayName"}, {"ObjectId", "objectId"}}
)

// newADCmd is `moat ad`, shaped like `az ad sp` and `az ad user`: the
// service principals and users of the deployment's directory.
func newADCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "ad", Short: "Manage the deployment's users and service principals", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)
	cmd.AddCommand(newADSPCmd(cio, &out), newADUserCmd(cio, &out))
	return cmd
}

// runAD opens a session, runs do and prints what it returns (nothing for
// nil).
func runAD(cmd *cobra.Command, cio cliIO, out *outputOptions, cols []column, do func(ctx context.Context, s *session) (any, error)) error {
	if err := out.validate(); err != nil {
		return err
	}
	s, err := openSession(cmd.Context())
	if err != nil {
		return err
	}
	res, err := do(cmd.Context(), s)
	if err != nil || res == nil {
		return err
	}
	return out.print(cio.stdout, res, cols)
}

// checkPathName refuses ids that would change the request path.
func checkPathName(flag, v string) error {
	if err := requireFlags(flag, v); err != nil {
		return err
	}
	if strings.ContainsAny(v, "/?#%") || v == "." || v == ".." {
		return usagef("%s %q is not a valid id", flag, v)
	}
	return nil
}

func newADSPCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "sp", Short: "Manage service principals (client id and secret)", Args: noArgs, RunE: subcommandRequired}

	var name, role string
	var scopes []string
	create := &cobra.Command{
		Use:   "create-for-rbac -n NAME [--role ROLE --scopes SCOPE...]",
		Short: "Create a service principal and, with --role, assign it a role; prints its secret once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			if (role == "") != (len(scopes) == 0) {
				return usagef("--role and --scopes go together")
			}
			return runAD(cmd, cio, out, nil, func(ctx context.Context, s *session) (any, error) {
				// Check the role and scopes before anything is created.
				var roleID string
				var scopeIDs []string
				if role != "" {
					var err error
					if roleID, _, _, err = resolveRole(ctx, s, role); err != nil {
						return nil, err
					}
					for _, sc := range scopes {
						f := roleFlags{scope: sc}
						id, err := f.scopeOf(s)
						if err != nil {
							return nil, err
						}
						scopeIDs = append(scopeIDs, id)
					}
				}
				res, err := s.call(ctx, http.MethodPost, spsAPIPath, principalsAPIVersion, map[string]any{"displayName": name})
				if err != nil {
					return nil, err
				}
				sp, _ := res.(map[string]any)
				appID, _ := sp["appId"].(string)
				objID, _ := sp["objectId"].(string)
				for _, sc := range scopeIDs {
					_, err := s.call(ctx, http.MethodPut, assignmentsPath(sc)+"/"+uuid.NewString(), authorizationAPIVersion, map[string]any{
						"properties": map[string]any{"roleDefinitionId": roleID, "principalId": objID, "principalType": "ServicePrincipal"},
					})
					if err != nil {
						// Leave nothing half made: the principal goes, and with
						// it any assignment already made.
						if _, derr := s.call(ctx, http.MethodDelete, spsAPIPath+"/"+appID, principalsAPIVersion, nil); derr != nil {
							return nil, failf("RoleAssignmentFailed", "assigning %s at %s failed (%v), and removing service principal %s failed too: %v", role, sc, err, appID, derr)
						}
						return nil, err
					}
				}
				return map[string]any{"appId": sp["appId"], "displayName": sp["displayName"], "password": sp["password"], "tenant": sp["tenant"]}, nil
			})
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "display name of the service principal")
	create.Flags().StringVar(&role, "role", "", "role to assign (AcrPull, AcrPush, Owner, ... or a role definition id)")
	create.Flags().StringSliceVar(&scopes, "scopes", nil, "scopes of the role assignment: /, /subscriptions/{id}, a resource group or resource id")

	list := &cobra.Command{
		Use: "list", Short: "List service principals", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAD(cmd, cio, out, spColumns, func(ctx context.Context, s *session) (any, error) {
				return s.list(ctx, spsAPIPath, principalsAPIVersion)
			})
		},
	}

	var id string
	byID := func(use, short, method, suffix string, cols []column) *cobra.Command {
		c := &cobra.Command{
			Use: use, Short: short, Args: noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := checkPathName("--id", id); err != nil {
					return err
				}
				return runAD(cmd, cio, out, cols, func(ctx context.Context, s *session) (any, error) {
					return s.call(ctx, method, spsAPIPath+"/"+id+suffix, principalsAPIVersion, nil)
				})
			},
		}
		c.Flags().StringVar(&id, "id", "", "application (client) id of the service principal")
		return c
	}
	show := byID("show --id APPID", "Show a service principal (never its secret)", http.MethodGet, "", spColumns)
	del := byID("delete --id APPID", "Delete a service principal and its role assignments", http.MethodDelete, "", nil)
	cred := &cobra.Command{Use: "credential", Short: "Manage a service principal's secret", Args: noArgs, RunE: subcommandRequired}
	reset := byID("reset --id APPID", "Replace a service principal's secrets with a new one; prints it once", http.MethodPost, "/resetCredentials", nil)
	reset.RunE = func(cmd *cobra.Command, _ []string) error {
		// az prints {appId, password, tenant}, not the whole principal.
		if err := checkPathName("--id", id); err != nil {
			return err
		}
		return runAD(cmd, cio, out, nil, func(ctx context.Context, s *session) (any, error) {
			res, err := s.call(ctx, http.MethodPost, spsAPIPath+"/"+id+"/resetCredentials", principalsAPIVersion, nil)
			if err != nil {
				return nil, err
			}
			sp, _ := res.(map[string]any)
			return map[string]any{"appId": sp["appId"], "displayName": sp["displayName"], "password": sp["password"], "tenant": sp["tenant"]}, nil
		})
	}
	cred.AddCommand(reset)
	cmd.AddCommand(create, list, show, del, cred)
	return cmd
}

func newADUserCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (name and password)", Args: noArgs, RunE: subcommandRequired}

	var upn, password, display string
	create := &cobra.Command{
		Use:   "create --user-principal-name NAME [--password P] [--display-name D]",
		Short: "Create a user; without --password one is generated and printed once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkPathName("--user-principal-name", upn); err != nil {
				return err
			}
			return runAD(cmd, cio, out, userColumns, func(ctx context.Context, s *session) (any, error) {
				body := map[string]any{"userPrincipalName": upn, "displayName": display}
				if password != "" {
					body["password"] = password
				}
				return s.call(ctx, http.MethodPost, usersAPIPath, principalsAPIVersion, body)
			})
		},
	}
	create.Flags().StringVar(&upn, "user-principal-name", "", "the user's login name")
	create.Flags().StringVar(&password, "password", "", "the password (at least 12 characters); generated when absent")
	create.Flags().StringVar(&display, "display-name", "", "the user's display name")

	list := &cobra.Command{
		Use: "list", Short: "List users", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAD(cmd, cio, out, userColumns, func(ctx context.Context, s *session) (any, error) {
				return s.list(ctx, usersAPIPath, principalsAPIVersion)
			})
		},
	}

	var id, newPassword string
	byID := func(use, short, method string) *cobra.Command {
		c := &cobra.Command{
			Use: use, Short: short, Args: noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := checkPathName("--id", id); err != nil {
					return err
				}
				return runAD(cmd, cio, out, userColumns, func(ctx context.Context, s *session) (any, error) {
					return s.call(ctx, method, usersAPIPath+"/"+id, principalsAPIVersion, nil)
				})
			},
		}
		c.Flags().StringVar(&id, "id", "", "the user principal name")
		return c
	}
	show := byID("show --id NAME", "Show a user", http.MethodGet)
	del := byID("delete --id NAME", "Delete a user and their role assignments", http.MethodDelete)
	update := &cobra.Command{
		Use: "update --id NAME --password P", Short: "Set a user's password (the old one stops working at once)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkPathName("--id", id); err != nil {
				return err
			}
			if err := requireFlags("--password", newPassword); err != nil {
				return err
			}
			return runAD(cmd, cio, out, userColumns, func(ctx context.Context, s *session) (any, error) {
				_, err := s.call(ctx, http.MethodPost, usersAPIPath+"/"+id+"/resetPassword", principalsAPIVersion, map[string]any{"password": newPassword})
				return nil, err
			})
		},
	}
	update.Flags().StringVar(&id, "id", "", "the user principal name")
	update.Flags().StringVar(&newPassword, "password", "", "the new password (at least 12 characters)")
	cmd.AddCommand(create, list, show, del, update)
	return cmd
}
