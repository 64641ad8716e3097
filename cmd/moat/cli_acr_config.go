package main

// moat acr config {retention,content-trust,soft-delete} {show,update}: the
// registry's policies, changed by PATCH so the other policies stay.

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moat-registry/moat/internal/model"
)

// latestPreview is the newest preview api-version: soft delete exists only
// in preview versions.
func latestPreview() string {
	for _, v := range slices.Backward(model.APIVersions) {
		if strings.HasSuffix(v, "-preview") {
			return v
		}
	}
	return model.Latest().String()
}

// addRegistryFlags names the registry with -r/--registry, as az acr config
// does.
func (r *registryRef) addRegistryFlags(f *pflag.FlagSet) {
	r.flag = "--registry"
	f.StringVarP(&r.name, "registry", "r", "", "registry name")
	f.StringVarP(&r.group, "resource-group", "g", "", "resource group (default: found from the name)")
}

// policyCommand is one policy's show and update.
type policyCommand struct {
	use, short, key, apiVersion string
	// flags adds the update flags; body builds the policy's PATCH from them
	// (nil: nothing to change).
	flags func(f *pflag.FlagSet)
	body  func() (map[string]any, error)
}

func newACRConfigCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Manage a registry's policies", Args: noArgs, RunE: subcommandRequired}

	var retStatus, retType string
	var retDays int
	var trustStatus string
	var sdStatus string
	var sdDays int
	policies := []policyCommand{
		{
			use: "retention", short: "the retention policy for untagged manifests", key: "retentionPolicy", apiVersion: model.Latest().String(),
			flags: func(f *pflag.FlagSet) {
				f.StringVar(&retStatus, "status", "", "enabled or disabled")
				f.IntVar(&retDays, "days", -1, "days to keep untagged manifests (0-365)")
				f.StringVar(&retType, "type", "UntaggedManifests", "what the policy applies to (only UntaggedManifests)")
			},
			body: func() (map[string]any, error) {
				if !strings.EqualFold(retType, "UntaggedManifests") {
					return nil, usagef("--type %q: only UntaggedManifests", retType)
				}
				p := map[string]any{}
				if retStatus != "" {
					p["status"] = retStatus
				}
				if retDays >= 0 {
					p["days"] = retDays
				}
				return p, checkStatus(retStatus)
			},
		},
		{
			use: "content-trust", short: "the content trust policy", key: "trustPolicy", apiVersion: model.Latest().String(),
			flags: func(f *pflag.FlagSet) { f.StringVar(&trustStatus, "status", "", "enabled or disabled") },
			body: func() (map[string]any, error) {
				if trustStatus == "" {
					return map[string]any{}, nil
				}
				return map[string]any{"type": "Notary", "status": trustStatus}, checkStatus(trustStatus)
			},
		},
		{
			use: "soft-delete", short: "the soft delete policy", key: "softDeletePolicy", apiVersion: latestPreview(),
			flags: func(f *pflag.FlagSet) {
				f.StringVar(&sdStatus, "status", "", "enabled or disabled")
				f.IntVar(&sdDays, "days", -1, "days to keep deleted artifacts (1-90)")
			},
			body: func() (map[string]any, error) {
				p := map[string]any{}
				if sdStatus != "" {
					p["status"] = sdStatus
				}
				if sdDays >= 0 {
					p["retentionDays"] = sdDays
				}
				return p, checkStatus(sdStatus)
			},
		},
	}
	for _, pc := range policies {
		cmd.AddCommand(pc.command(cio, out))
	}
	return cmd
}

func checkStatus(s string) error {
	if s != "" && !strings.EqualFold(s, "enabled") && !strings.EqualFold(s, "disabled") {
		return usagef("--status %q: want enabled or disabled", s)
	}
	return nil
}

func (pc policyCommand) command(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: pc.use, Short: "Show or update " + pc.short, Args: noArgs, RunE: subcommandRequired}
	printPolicy := func(reg any) error {
		return out.print(cio.stdout, dig(reg, "properties", "policies", pc.key), nil)
	}
	var sr registryRef
	show := &cobra.Command{
		Use:   "show -r REGISTRY [-g RG]",
		Short: "Show " + pc.short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, out, &sr, func(ctx context.Context, s *session, path string) error {
				reg, err := s.call(ctx, http.MethodGet, path, pc.apiVersion, nil)
				if err != nil {
					return err
				}
				return printPolicy(reg)
			})
		},
	}
	sr.addRegistryFlags(show.Flags())

	var ur registryRef
	update := &cobra.Command{
		Use:   "update -r REGISTRY [-g RG] [flags]",
		Short: "Update " + pc.short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			policy, err := pc.body()
			if err != nil {
				return err
			}
			if len(policy) == 0 {
				return usagef("nothing to update: give --status or another setting")
			}
			return withRegistry(cmd, out, &ur, func(ctx context.Context, s *session, path string) error {
				body := map[string]any{"properties": map[string]any{"policies": map[string]any{pc.key: policy}}}
				reg, err := s.call(ctx, http.MethodPatch, path, pc.apiVersion, body)
				if err != nil {
					return err
				}
				return printPolicy(reg)
			})
		},
	}
	ur.addRegistryFlags(update.Flags())
	pc.flags(update.Flags())
	cmd.AddCommand(show, update)
	return cmd
}
