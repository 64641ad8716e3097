package main

// moat deployment group create sends an ARM template to the deployment's
// Microsoft.Resources/deployments API, which evaluates it server-side. The
// client only reads the files (JSON with ARM's comments and trailing
// commas, through armtemplate), gathers the parameters as az does, and
// waits for the deployment to finish.

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/armtemplate"
)

const deploymentsAPIVersion = "2021-04-01"

var deploymentColumns = []column{{"Name", "name"}, {"State", "properties.provisioningState"}, {"Timestamp", "properties.timestamp"}, {"Mode", "properties.mode"}}

func deploymentPath(sub, rg, name string) string {
	return groupPath(sub, rg) + "/providers/Microsoft.Resources/deployments/" + name
}

func newDeploymentCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	cmd := &cobra.Command{Use: "deployment", Short: "Deploy ARM templates", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(cmd, &out)
	group := &cobra.Command{Use: "group", Short: "Deployments at resource-group scope", Args: noArgs, RunE: subcommandRequired}
	cmd.AddCommand(group)

	var rg, name, templateFile, mode string
	var params []string
	create := &cobra.Command{
		Use:   "create -g RG --template-file FILE [--parameters @FILE | NAME=VALUE | JSON ...] [-n NAME]",
		Short: "Deploy a template into a resource group and wait for it to finish",
		Long: "Deploy an ARM template (JSON; comments and trailing commas allowed) into a resource\n" +
			"group. --parameters is repeatable, later values win: @file (a parameter file), an\n" +
			"inline JSON parameters object, or NAME=VALUE (VALUE is converted to the type the\n" +
			"template declares). The deployment's name defaults to the template file's name.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--resource-group", rg, "--template-file", templateFile); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			if !strings.EqualFold(mode, "Incremental") && !strings.EqualFold(mode, "Complete") {
				return usagef("--mode %q: want Incremental or Complete", mode)
			}
			tpl, tplRoot, err := readTemplate(templateFile)
			if err != nil {
				return err
			}
			values, err := gatherParameters(tpl, params)
			if err != nil {
				return err
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(templateFile), filepath.Ext(templateFile))
			}
			ctx := cmd.Context()
			s, err := openSession(ctx)
			if err != nil {
				return err
			}
			body := map[string]any{"properties": map[string]any{"mode": mode, "template": tplRoot, "parameters": values}}
			path := deploymentPath(s.prof.SubscriptionID, rg, name)
			res, err := s.call(ctx, http.MethodPut, path, deploymentsAPIVersion, body)
			if err != nil {
				return err
			}
			// Without an async-operation header the deployment's own
			// provisioningState says when it is done.
			delay := 100 * time.Millisecond
			for range maxPolls {
				state, _ := dig(res, "properties", "provisioningState").(string)
				switch strings.ToLower(state) {
				case "succeeded", "":
					return out.print(cio.stdout, res, deploymentColumns)
				case "failed", "canceled":
					return deploymentError(res)
				}
				if err := sleepCtx(ctx, delay); err != nil {
					return err
				}
				delay = min(delay*2, 2*time.Second)
				if res, err = s.call(ctx, http.MethodGet, path, deploymentsAPIVersion, nil); err != nil {
					return err
				}
			}
			return failf("OperationTimedOut", "deployment '%s' did not finish", name)
		},
	}
	f := create.Flags()
	f.StringVarP(&rg, "resource-group", "g", "", "resource group")
	f.StringVarP(&name, "name", "n", "", "deployment name (default: the template file's name)")
	f.StringVarP(&templateFile, "template-file", "f", "", "ARM template (JSON); Bicep files must be built first")
	f.StringArrayVarP(&params, "parameters", "p", nil, "@file, inline JSON or NAME=VALUE; repeatable")
	f.StringVar(&mode, "mode", "Incremental", "Incremental or Complete")

	var srg, sname string
	show := &cobra.Command{
		Use:   "show -g RG -n NAME",
		Short: "Show a deployment",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--resource-group", srg, "--name", sname); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			res, err := s.call(cmd.Context(), http.MethodGet, deploymentPath(s.prof.SubscriptionID, srg, sname), deploymentsAPIVersion, nil)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, deploymentColumns)
		},
	}
	show.Flags().StringVarP(&srg, "resource-group", "g", "", "resource group")
	show.Flags().StringVarP(&sname, "name", "n", "", "deployment name")
	group.AddCommand(create, show)
	return cmd
}

// dig reads nested object fields.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[matchKey(m, k)]
	}
	return v
}

// deploymentError is a failed deployment's error, innermost detail first.
func deploymentError(res any) error {
	e, _ := dig(res, "properties", "error").(map[string]any)
	for range 8 {
		d, _ := e["details"].([]any)
		if c, _ := e["code"].(string); !strings.EqualFold(c, "DeploymentFailed") || len(d) == 0 {
			break
		}
		e, _ = d[0].(map[string]any)
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if code == "" {
		code, msg = "DeploymentFailed", "the deployment failed without saying why"
	}
	return &cliError{Code: code, Message: oneLine(msg)}
}

// readTemplate reads a template file. The root is sent as it is (the
// server evaluates and judges it); the parsed template, made only when a
// NAME=VALUE parameter needs its declared type, converts those.
func readTemplate(file string) (func() (*armtemplate.Template, error), any, error) {
	if strings.EqualFold(filepath.Ext(file), ".bicep") {
		return nil, nil, usagef("--template-file %s: Bicep is not supported; build it to JSON first (az bicep build)", file)
	}
	data, err := os.ReadFile(file) //nolint:gosec // G304: a file the user named
	if err != nil {
		return nil, nil, usagef("--template-file: %v", err)
	}
	root, _, err := armtemplate.ReadJSONC(data)
	if err != nil {
		return nil, nil, failf("InvalidTemplate", "%s: %v", file, err)
	}
	parse := func() (*armtemplate.Template, error) {
		tpl, err := armtemplate.ParseTemplate(data)
		if err != nil {
			return nil, failf("InvalidTemplate", "%s: %v", file, err)
		}
		return tpl, nil
	}
	return parse, root, nil
}

// gatherParameters merges the --parameters arguments, later ones winning,
// into the deployment's {"name": {"value": v}} object.
func gatherParameters(template func() (*armtemplate.Template, error), args []string) (map[string]any, error) {
	values := map[string]any{}
	for _, a := range args {
		a = strings.TrimSpace(a)
		switch {
		case strings.HasPrefix(a, "@") || isParameterFile(a):
			file := strings.TrimPrefix(a, "@")
			data, err := os.ReadFile(file) //nolint:gosec // G304: a file the user named
			if err != nil {
				return nil, usagef("--parameters: %v", err)
			}
			if err := mergeParameterFile(values, file, data); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "{"):
			if err := mergeParameterFile(values, "--parameters", []byte(a)); err != nil {
				return nil, err
			}
		default:
			k, text, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return nil, usagef("--parameters %q: want @file, a JSON object or NAME=VALUE", a)
			}
			tpl, err := template()
			if err != nil {
				return nil, err
			}
			v, err := armtemplate.CoerceParameter(tpl, k, text)
			if err != nil {
				return nil, failf("InvalidParameter", "--parameters %s: %v", k, err)
			}
			values[k] = map[string]any{"value": v}
		}
	}
	return values, nil
}

// isParameterFile is az's rule that a bare path to an existing file is a
// parameter file too.
func isParameterFile(a string) bool {
	if strings.Contains(a, "=") || strings.HasPrefix(a, "{") {
		return false
	}
	st, err := os.Stat(a)
	return err == nil && st.Mode().IsRegular()
}

func mergeParameterFile(values map[string]any, where string, data []byte) error {
	pf, err := armtemplate.ParseParameters(data)
	if err != nil {
		return failf("InvalidParameterFile", "%s: %v", where, err)
	}
	for k, v := range pf.Values {
		if _, ok := v.(*armtemplate.Unknown); ok {
			return failf("InvalidParameterFile", "%s: parameter %q is a Key Vault reference, which moat cannot resolve", where, k)
		}
		values[k] = map[string]any{"value": v}
	}
	return nil
}
