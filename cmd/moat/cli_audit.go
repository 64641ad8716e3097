package main

// moat acr audit list and moat acr check-access: the audit records of the
// data plane's network decisions, and the decision a client would get now,
// through moat's management extensions auditRecords and
// checkNetworkAccess.

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

var auditColumns = []column{
	{"Time", "time"}, {"ClientIp", "clientIp"}, {"Endpoint", "endpoint"}, {"Allowed", "allowed"},
	{"Step", "step"}, {"Principal", "principal"}, {"Reason", "reason"}, {"Method", "method"}, {"Path", "path"},
}

var checkAccessColumns = []column{
	{"Allowed", "allowed"}, {"Step", "step"}, {"Rule", "rule"}, {"Reason", "reason"},
}

func newAuditCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read a registry's audit records (network denials, login lockouts)", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()

	var r registryRef
	var denied bool
	var since time.Duration
	list := &cobra.Command{
		Use:   "list -n NAME [-g RG] [--denied] [--since DURATION]",
		Short: "List audit records, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since < 0 {
				return usagef("--since %s: want a positive duration such as 1h or 30m", since)
			}
			return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
				q := url.Values{"api-version": {api}}
				if denied {
					q.Set("$filter", "denied")
				}
				if since > 0 {
					q.Set("since", time.Now().Add(-since).UTC().Format(time.RFC3339Nano))
				}
				u := s.prof.Server + (&url.URL{Path: path + "/auditRecords"}).EscapedPath() + "?" + q.Encode()
				res, err := s.callURL(ctx, http.MethodGet, u, nil)
				if err != nil {
					return err
				}
				m, _ := res.(map[string]any)
				items, _ := m["value"].([]any)
				return out.print(cio.stdout, nonNilList(items), auditColumns)
			})
		},
	}
	r.addFlags(list.Flags())
	list.Flags().BoolVar(&denied, "denied", false, "only denied requests")
	list.Flags().DurationVar(&since, "since", 0, "only records newer than this (e.g. 1h, 30m)")
	cmd.AddCommand(list)
	return cmd
}

func newCheckAccessCmd(cio cliIO, out *outputOptions) *cobra.Command {
	api := model.Latest().String()
	var r registryRef
	var ip, endpoint, identity string
	cmd := &cobra.Command{
		Use:   "check-access -n NAME [-g RG] --ip IP [--private-endpoint ID] [--identity TRUSTED_SERVICE]",
		Short: "Explain whether the network rules let a client in, and which step and rule decide",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--ip", ip); err != nil {
				return err
			}
			return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
				body := map[string]any{"clientIp": ip}
				if endpoint != "" {
					body["privateEndpoint"] = endpoint
				}
				if identity != "" {
					body["trustedService"] = identity
				}
				res, err := s.call(ctx, http.MethodPost, path+"/checkNetworkAccess", api, body)
				if err != nil {
					return err
				}
				return out.print(cio.stdout, res, checkAccessColumns)
			})
		},
	}
	r.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&ip, "ip", "", "the client's IP address")
	cmd.Flags().StringVar(&endpoint, "private-endpoint", "", "the private endpoint the request arrives on (default: the public endpoint)")
	cmd.Flags().StringVar(&identity, "identity", "", "the trusted service the caller is recognised as: ContainerInstances, DefenderForCloud, RegistryTasks, MachineLearning, RegistryImport or AppService")
	return cmd
}
