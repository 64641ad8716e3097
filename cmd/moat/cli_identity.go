package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// identityAPIVersion is the Microsoft.ManagedIdentity version the identity
// commands use (and, for rotate-secret, any instance type: moat accepts any
// well-formed version for them).
const identityAPIVersion = "2023-01-31"

var identityColumns = []column{
	{"Name", "name"}, {"Location", "location"},
	{"PrincipalId", "properties.principalId"}, {"ClientId", "properties.clientId"},
}

func identityPath(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
}

// newIdentityCmd is `moat identity`, shaped like `az identity`: user-assigned
// managed identities, plus the two things a workload needs that az has no
// command for: rotating an instance's identity secret and getting a token
// the way the workload does.
func newIdentityCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "identity", Short: "Manage user-assigned managed identities and get managed-identity tokens", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)

	var group, name, location string
	named := func(use, short string, run func(ctx context.Context, s *session, path string) (any, error)) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := requireFlags("--resource-group", group, "--name", name); err != nil {
					return err
				}
				if err := out.validate(); err != nil {
					return err
				}
				s, err := openSession(cmd.Context())
				if err != nil {
					return err
				}
				res, err := run(cmd.Context(), s, identityPath(s.prof.SubscriptionID, group, name))
				if err != nil || res == nil {
					return err
				}
				return out.print(cio.stdout, res, identityColumns)
			},
		}
		c.Flags().StringVarP(&group, "resource-group", "g", "", "resource group")
		c.Flags().StringVarP(&name, "name", "n", "", "identity name")
		return c
	}
	create := named("create -g GROUP -n NAME [-l LOCATION]", "Create a user-assigned managed identity (its principal id is what role assignments name)",
		func(ctx context.Context, s *session, path string) (any, error) {
			return s.call(ctx, http.MethodPut, path, identityAPIVersion, map[string]any{"location": location})
		})
	create.Flags().StringVarP(&location, "location", "l", "local", "location")
	show := named("show -g GROUP -n NAME", "Show a user-assigned managed identity",
		func(ctx context.Context, s *session, path string) (any, error) {
			return s.call(ctx, http.MethodGet, path, identityAPIVersion, nil)
		})
	del := named("delete -g GROUP -n NAME", "Delete a user-assigned managed identity (instances using it can no longer get its tokens)",
		func(ctx context.Context, s *session, path string) (any, error) {
			_, err := s.call(ctx, http.MethodDelete, path, identityAPIVersion, nil)
			return nil, err
		})

	var listGroup string
	list := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List the user-assigned managed identities of a resource group or the subscription",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			path := "/subscriptions/" + s.prof.SubscriptionID
			if listGroup != "" {
				path += "/resourceGroups/" + listGroup
			}
			items, err := s.list(cmd.Context(), path+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities", identityAPIVersion)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, items, identityColumns)
		},
	}
	list.Flags().StringVarP(&listGroup, "resource-group", "g", "", "resource group (default: the whole subscription)")

	var ids string
	rotate := &cobra.Command{
		Use:   "rotate-secret --ids INSTANCE_ID",
		Short: "Replace a service instance's IDENTITY_HEADER secret (moat extension); the old one stops working at once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--ids", ids); err != nil {
				return err
			}
			if err := checkResourceID(ids); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			res, err := s.call(cmd.Context(), http.MethodPost, strings.TrimSuffix(ids, "/")+"/rotateIdentitySecret", identityAPIVersion, nil)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, []column{{"IdentityEndpoint", "identityEndpoint"}, {"IdentityHeader", "identityHeader"}})
		},
	}
	rotate.Flags().StringVar(&ids, "ids", "", "resource id of the service instance (container group, site, workspace or task)")

	cmd.AddCommand(create, show, del, list, rotate, newIdentityTokenCmd(cio, &out))
	return cmd
}

// tokenOptions are the flags of `moat identity token`.
type tokenOptions struct {
	endpoint, header, resource, caFile string
	clientID, principalID, resourceID  string
}

func newIdentityTokenCmd(cio cliIO, out *outputOptions) *cobra.Command {
	var o tokenOptions
	c := &cobra.Command{
		Use:   "token [--endpoint URL] [--header SECRET] [--resource URI] [--client-id ID | --principal-id ID | --mi-res-id ID]",
		Short: "Get a token from a managed-identity endpoint, as a workload of the instance does",
		Long: "Ask the App Service-style managed-identity endpoint (moat's /msi/token) for a token, with\n" +
			"the instance's IDENTITY_ENDPOINT and IDENTITY_HEADER (from the flags or the environment),\n" +
			"and print the answer: access_token, expires_on, resource, token_type, client_id.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.endpoint == "" {
				o.endpoint = os.Getenv("IDENTITY_ENDPOINT")
			}
			if o.header == "" {
				o.header = os.Getenv("IDENTITY_HEADER")
			}
			if err := requireFlags("--endpoint (or IDENTITY_ENDPOINT)", o.endpoint, "--header (or IDENTITY_HEADER)", o.header); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			u, err := identityTokenURL(o)
			if err != nil {
				return err
			}
			hc, err := newHTTPClient(o.caFile)
			if err != nil {
				return err
			}
			res, err := fetchIdentityToken(cmd.Context(), hc, u, o.header)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, []column{{"TokenType", "token_type"}, {"ExpiresOn", "expires_on"}, {"ClientId", "client_id"}, {"Resource", "resource"}})
		},
	}
	f := c.Flags()
	f.StringVar(&o.endpoint, "endpoint", "", "the identity endpoint (default $IDENTITY_ENDPOINT)")
	f.StringVar(&o.header, "header", "", "the instance's identity secret (default $IDENTITY_HEADER)")
	f.StringVar(&o.resource, "resource", "https://containerregistry.azure.net", "the resource the token is for")
	f.StringVar(&o.caFile, "ca-file", "", "PEM file of the CA that signed moat's certificate")
	f.StringVar(&o.clientID, "client-id", "", "client id of a user-assigned identity")
	f.StringVar(&o.principalID, "principal-id", "", "principal (object) id of a user-assigned identity")
	f.StringVar(&o.resourceID, "mi-res-id", "", "resource id of a user-assigned identity")
	return c
}

// identityTokenURL builds the request URL of the App Service protocol.
func identityTokenURL(o tokenOptions) (string, error) {
	u, err := url.Parse(o.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("--endpoint %q is not an http(s) URL", o.endpoint)
	}
	q := u.Query()
	q.Set("api-version", "2019-08-01")
	q.Set("resource", o.resource)
	n := 0
	for _, p := range [][2]string{{"client_id", o.clientID}, {"principal_id", o.principalID}, {"mi_res_id", o.resourceID}} {
		if p[1] != "" {
			q.Set(p[0], p[1])
			n++
		}
	}
	if n > 1 {
		return "", usagef("name at most one of --client-id, --principal-id and --mi-res-id")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// fetchIdentityToken sends the token request; a refusal becomes a cliError
// with the endpoint's error code.
func fetchIdentityToken(ctx context.Context, hc *http.Client, u, secret string) (any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, failf("InvalidArgument", "%v", err)
	}
	req.Header.Set("X-IDENTITY-HEADER", secret)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, failf("ConnectionFailed", "%s", oneLine(err.Error()))
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, failf("ConnectionFailed", "reading the answer: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, failf("InvalidResponse", "the endpoint answered %d with no JSON object", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		code, _ := body["error"].(string)
		msg, _ := body["error_description"].(string)
		if code == "" {
			code = fmt.Sprintf("HTTP%d", resp.StatusCode)
		}
		return nil, failf(code, "%s", oneLine(msg))
	}
	return body, nil
}
