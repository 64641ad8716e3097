package main

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// cliIO is where the client commands read and write.
type cliIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// addClientCommands adds the az-style client commands to root and makes
// flag errors usage errors (exit status 2).
func addClientCommands(root *cobra.Command, stdout, stderr io.Writer) {
	cio := cliIO{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.AddCommand(newLoginCmd(cio), newLogoutCmd(), newGroupCmd(cio), newACRCmd(cio), newResourceCmd(cio), newDeploymentCmd(cio),
		newRoleCmd(cio)) // cli_role.go
	root.AddCommand(newIdentityCmd(cio)) // cli_identity.go
	root.AddCommand(newADCmd(cio))       // cli_ad.go
	root.AddCommand(newKeyVaultCmd(cio)) // cli_acr_pipeline.go
}

func newLoginCmd(cio cliIO) *cobra.Command {
	var server, caFile, user, password, tenant, subscription string
	var sp bool
	var out outputOptions
	cmd := &cobra.Command{
		Use:   "login --server URL [--ca-file FILE] -u USER [-p PASSWORD]",
		Short: "Sign in to a moat deployment and store the profile the other commands use",
		Long: "Sign in to a moat deployment with its admin user (or a service principal with\n" +
			"--service-principal) and store a profile with the access token in\n" +
			"$MOAT_CONFIG_DIR/profile.json (default ~/.config/moat/profile.json, mode 0600).\n" +
			"The password is never stored: without -p it is read from MOAT_PASSWORD or, failing\n" +
			"that, from the first line of standard input. When the token expires, commands sign\n" +
			"in again by themselves if MOAT_PASSWORD is set.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			u, err := url.Parse(server)
			switch {
			case server == "":
				return usagef("--server is required")
			case err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/"):
				return usagef("--server %q: want https://host[:port]", server)
			case user == "":
				return usagef("-u/--username is required")
			}
			if caFile != "" {
				if caFile, err = filepath.Abs(caFile); err != nil {
					return usagef("--ca-file: %v", err)
				}
			}
			if password == "" {
				if password, err = readSecret(cio); err != nil {
					return err
				}
			}
			p := profile{
				Server: "https://" + u.Host, CAFile: caFile, Username: user, ServicePrincipal: sp,
				Tenant: tenant, SubscriptionID: subscription,
			}
			hc, err := newHTTPClient(caFile)
			if err != nil {
				return err
			}
			tok, err := acquireToken(cmd.Context(), p, password, hc)
			if err != nil {
				return err
			}
			p.AccessToken, p.ExpiresOn = tok.Token, tok.ExpiresOn
			if err := saveProfile(p); err != nil {
				return err
			}
			return out.print(cio.stdout, []any{map[string]any{
				"cloudName": "moat", "id": p.SubscriptionID, "isDefault": true, "name": "moat", "state": "Enabled",
				"tenantId": p.Tenant, "homeTenantId": p.Tenant,
				"user": map[string]any{"name": p.Username, "type": map[bool]string{false: "user", true: "servicePrincipal"}[sp]},
			}}, []column{{"Name", "user.name"}, {"SubscriptionId", "id"}, {"TenantId", "tenantId"}})
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the moat deployment, https://host[:port]")
	f.StringVar(&caFile, "ca-file", "", "PEM file of the CA to trust for the server (moat serve writes <data-dir>/ca.pem)")
	f.StringVarP(&user, "username", "u", "", "user name, or the application (client) id with --service-principal")
	f.StringVarP(&password, "password", "p", "", "password or client secret (prefer MOAT_PASSWORD or standard input)")
	f.BoolVar(&sp, "service-principal", false, "sign in as a service principal with its client secret")
	f.StringVarP(&tenant, "tenant", "t", defaultTenant, "tenant to sign in to")
	f.StringVar(&subscription, "subscription", defaultSubscriptionID, "subscription id the commands use")
	addOutputFlags(cmd, &out)
	return cmd
}

// readSecret reads the password from MOAT_PASSWORD, else one line of stdin.
func readSecret(cio cliIO) (string, error) {
	if s := os.Getenv(passwordEnv); s != "" {
		return s, nil
	}
	if f, ok := cio.stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			if _, err := fmt.Fprint(cio.stderr, "Password: "); err != nil {
				return "", err
			}
		}
	}
	line, err := bufio.NewReader(cio.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("no password: pass -p, set %s or write it to standard input", passwordEnv)
	}
	return line, nil
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the stored profile and its token",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			path, err := profilePath()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("removing the profile: %w", err)
			}
			return nil
		},
	}
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	switch {
	case len(args) > 0 && cmd.HasSubCommands():
		return usagef("unknown command %q for %q; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())
	case len(args) > 0:
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
