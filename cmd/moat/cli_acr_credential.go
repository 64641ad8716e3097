package main

// moat acr credential show|renew: the registry admin user's credentials
// (listCredentials, regenerateCredential), printed as az prints them.

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

var credentialColumns = []column{
	{"USERNAME", "username"},
	{"PASSWORD", "passwords[?name=='password'].value | [0]"},
	{"PASSWORD2", "passwords[?name=='password2'].value | [0]"},
}

func newACRCredentialCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "Manage a registry's admin user credentials", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()

	var sr registryRef
	show := &cobra.Command{
		Use:   "show -n NAME [-g RG]",
		Short: "Show the admin user's name and passwords",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, out, &sr, func(ctx context.Context, s *session, path string) error {
				res, err := s.call(ctx, http.MethodPost, path+"/listCredentials", api, nil)
				if err != nil {
					return err
				}
				return out.print(cio.stdout, res, credentialColumns)
			})
		},
	}
	sr.addFlags(show.Flags())

	var rr registryRef
	var pwName string
	renew := &cobra.Command{
		Use:   "renew -n NAME [-g RG] --password-name password|password2",
		Short: "Regenerate one of the admin user's passwords",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--password-name", pwName); err != nil {
				return err
			}
			if pwName != "password" && pwName != "password2" {
				return usagef("--password-name %q: want password or password2", pwName)
			}
			return withRegistry(cmd, out, &rr, func(ctx context.Context, s *session, path string) error {
				res, err := s.call(ctx, http.MethodPost, path+"/regenerateCredential", api, map[string]any{"name": pwName})
				if err != nil {
					return err
				}
				return out.print(cio.stdout, res, credentialColumns)
			})
		},
	}
	rr.addFlags(renew.Flags())
	renew.Flags().StringVar(&pwName, "password-name", "", "the password to regenerate: password or password2")

	cmd.AddCommand(show, renew)
	return cmd
}
