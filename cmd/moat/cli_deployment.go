package main

// moat deployment group create sends an ARM template to the deployment's
// Microsoft.Resources/deployments API, which evaluates it server-side. The
// client only reads the files (JSON with ARM's comments and trailing
// commas, through armtemplate; Bicep compiled by package bicep), gathers
// the parameters as az does, and waits for the deployment to finish,
// showing its state on stderr.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/armtemplate"
	"github.com/moat-registry/moat/internal/bicep"
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
	var noWait bool
	// request reads the files into the deployment's request body.
	request := func() (map[string]any, error) {
		if err := requireFlags("--resource-group", rg, "--template-file", templateFile); err != nil {
			return nil, err
		}
		if err := out.validate(); err != nil {
			return nil, err
		}
		if !strings.EqualFold(mode, "Incremental") && !strings.EqualFold(mode, "Complete") {
			return nil, usagef("--mode %q: want Incremental or Complete", mode)
		}
		tpl, tplRoot, err := readTemplate(templateFile)
		if err != nil {
			return nil, err
		}
		values, err := gatherParameters(tpl, params)
		if err != nil {
			return nil, err
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(templateFile), filepath.Ext(templateFile))
		}
		return map[string]any{"properties": map[string]any{"mode": mode, "template": tplRoot, "parameters": values}}, nil
	}
	create := &cobra.Command{
		Use:   "create -g RG --template-file FILE [--parameters @FILE | NAME=VALUE | JSON ...] [-n NAME]",
		Short: "Deploy a template into a resource group and wait for it to finish",
		Long: "Deploy an ARM template (JSON; comments and trailing commas allowed) or a Bicep file\n" +
			"(.bicep, compiled by moat itself) into a resource group. --parameters is repeatable,\n" +
			"later values win: @file (a parameter file), an inline JSON parameters object, or\n" +
			"NAME=VALUE (VALUE is converted to the type the template declares). The deployment's\n" +
			"name defaults to the template file's name. While it waits, the deployment's state is\n" +
			"shown on stderr.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := request()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := openSession(ctx)
			if err != nil {
				return err
			}
			path := deploymentPath(s.prof.SubscriptionID, rg, name)
			u := s.prof.Server + (&url.URL{Path: path}).EscapedPath() + "?api-version=" + deploymentsAPIVersion
			status, hdr, b, err := s.send(ctx, http.MethodPut, u, body)
			if err != nil {
				return err
			}
			if status >= 300 {
				return armError(status, hdr.Get("x-ms-error-code"), b)
			}
			res, err := decodeAnswer(http.MethodPut, b)
			if err != nil {
				return err
			}
			if noWait {
				return out.print(cio.stdout, res, deploymentColumns)
			}
			// Progress only on a terminal, as az: a redirected stderr keeps
			// the one-line error contract.
			var progress io.Writer
			if isTerminal(cio.stderr) {
				progress = cio.stderr
			}
			res, err = waitDeployment(ctx, s, progress, name, u, res)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, deploymentColumns)
		},
	}
	f := create.Flags()
	f.StringVarP(&rg, "resource-group", "g", "", "resource group")
	f.StringVarP(&name, "name", "n", "", "deployment name (default: the template file's name)")
	f.StringVarP(&templateFile, "template-file", "f", "", "ARM template (JSON) or Bicep file (.bicep)")
	f.StringArrayVarP(&params, "parameters", "p", nil, "@file, inline JSON or NAME=VALUE; repeatable")
	f.StringVar(&mode, "mode", "Incremental", "Incremental or Complete")
	f.BoolVar(&noWait, "no-wait", false, "do not wait for the deployment to finish")

	validate := &cobra.Command{
		Use:   "validate -g RG --template-file FILE [--parameters ...] [-n NAME]",
		Short: "Evaluate a template against a resource group without deploying it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := request()
			if err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			res, err := s.call(cmd.Context(), http.MethodPost, deploymentPath(s.prof.SubscriptionID, rg, name)+"/validate", deploymentsAPIVersion, body)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, res, deploymentColumns)
		},
	}
	whatIf := &cobra.Command{
		Use:   "what-if -g RG --template-file FILE [--parameters ...] [-n NAME]",
		Short: "Show what a deployment would change, without deploying it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := request()
			if err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			res, err := s.call(cmd.Context(), http.MethodPost, deploymentPath(s.prof.SubscriptionID, rg, name)+"/whatIf", deploymentsAPIVersion, body)
			if err != nil {
				return err
			}
			if out.format == "table" && out.query == "" {
				return out.print(cio.stdout, dig(res, "properties", "changes"), whatIfColumns)
			}
			return out.print(cio.stdout, res, whatIfColumns)
		},
	}
	for _, c := range []*cobra.Command{validate, whatIf} {
		vf := c.Flags()
		vf.StringVarP(&rg, "resource-group", "g", "", "resource group")
		vf.StringVarP(&name, "name", "n", "", "deployment name (default: the template file's name)")
		vf.StringVarP(&templateFile, "template-file", "f", "", "ARM template (JSON) or Bicep file (.bicep)")
		vf.StringArrayVarP(&params, "parameters", "p", nil, "@file, inline JSON or NAME=VALUE; repeatable")
		vf.StringVar(&mode, "mode", "Incremental", "Incremental or Complete")
	}

	var srg, sname string
	// named is a command on one deployment: show, delete, cancel.
	named := func(use, short, method, suffix string, print bool) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " -g RG -n NAME",
			Short: short,
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
				res, err := s.call(cmd.Context(), method, deploymentPath(s.prof.SubscriptionID, srg, sname)+suffix, deploymentsAPIVersion, nil)
				if err != nil || !print {
					return err
				}
				return out.print(cio.stdout, res, deploymentColumns)
			},
		}
		c.Flags().StringVarP(&srg, "resource-group", "g", "", "resource group")
		c.Flags().StringVarP(&sname, "name", "n", "", "deployment name")
		return c
	}
	show := named("show", "Show a deployment", http.MethodGet, "", true)
	del := named("delete", "Delete a deployment's record (the resources it made stay)", http.MethodDelete, "", false)
	cancel := named("cancel", "Cancel a running deployment", http.MethodPost, "/cancel", false)

	var lrg string
	list := &cobra.Command{
		Use:   "list -g RG",
		Short: "List the deployments of a resource group",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--resource-group", lrg); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			items, err := s.list(cmd.Context(), groupPath(s.prof.SubscriptionID, lrg)+"/providers/Microsoft.Resources/deployments", deploymentsAPIVersion)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, items, deploymentColumns)
		},
	}
	list.Flags().StringVarP(&lrg, "resource-group", "g", "", "resource group")
	group.AddCommand(create, validate, whatIf, show, list, del, cancel)

	// moat deployment operation group list, as az deployment operation group list.
	operation := &cobra.Command{Use: "operation", Short: "Operations of deployments", Args: noArgs, RunE: subcommandRequired}
	opGroup := &cobra.Command{Use: "group", Short: "Operations of resource-group deployments", Args: noArgs, RunE: subcommandRequired}
	var org, oname string
	opList := &cobra.Command{
		Use:   "list -g RG -n NAME",
		Short: "List a deployment's operations (one per resource)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--resource-group", org, "--name", oname); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			items, err := s.list(cmd.Context(), deploymentPath(s.prof.SubscriptionID, org, oname)+"/operations", deploymentsAPIVersion)
			if err != nil {
				return err
			}
			return out.print(cio.stdout, items, operationColumns)
		},
	}
	opList.Flags().StringVarP(&org, "resource-group", "g", "", "resource group")
	opList.Flags().StringVarP(&oname, "name", "n", "", "deployment name")
	opGroup.AddCommand(opList)
	operation.AddCommand(opGroup)
	cmd.AddCommand(operation)
	return cmd
}

var whatIfColumns = []column{{"Change", "changeType"}, {"Resource", "resourceId"}}

var operationColumns = []column{{"Resource", "properties.targetResource.resourceName"}, {"Type", "properties.targetResource.resourceType"},
	{"State", "properties.provisioningState"}, {"Status", "properties.statusCode"}, {"Timestamp", "properties.timestamp"}}

// waitDeployment polls the deployment until it ends, redrawing one line
// with its state and the time waited on progress (nil: none). A failed
// deployment is the failed resource's error.
func waitDeployment(ctx context.Context, s *session, progress io.Writer, name, u string, res any) (any, error) {
	tty := progress != nil
	start := time.Now()
	last := ""
	delay := 100 * time.Millisecond
	defer func() {
		if tty && last != "" {
			_, _ = fmt.Fprint(progress, "\r\033[K")
		}
	}()
	for range maxPolls {
		state, _ := dig(res, "properties", "provisioningState").(string)
		switch strings.ToLower(state) {
		case "succeeded", "":
			return res, nil
		case "failed", "canceled":
			return nil, deploymentError(res)
		}
		line := fmt.Sprintf("deployment '%s': %s", name, state)
		if tty {
			_, _ = fmt.Fprintf(progress, "\r\033[K%s (%ds)", line, int(time.Since(start).Seconds()))
		}
		last = line
		if err := sleepCtx(ctx, delay); err != nil {
			return nil, err
		}
		delay = min(delay*2, time.Second)
		var err error
		if res, err = s.callURL(ctx, http.MethodGet, u, nil); err != nil {
			return nil, err
		}
	}
	return nil, failf("OperationTimedOut", "deployment '%s' did not finish", name)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
	data, err := os.ReadFile(file) //nolint:gosec // G304: a file the user named
	if err != nil {
		return nil, nil, usagef("--template-file: %v", err)
	}
	if strings.EqualFold(filepath.Ext(file), ".bicep") {
		// Bicep is compiled here, as az does before it sends the JSON;
		// local modules are read relative to the file that names them.
		root, err := bicep.Compile(data, file, bicep.WithLoader(func(p string) ([]byte, error) {
			return os.ReadFile(filepath.FromSlash(p))
		}))
		if err != nil {
			return nil, nil, failf("InvalidTemplate", "%v", err)
		}
		parse := func() (*armtemplate.Template, error) {
			tpl, err := armtemplate.NewTemplate(root)
			if err != nil {
				return nil, failf("InvalidTemplate", "%s: %v", file, err)
			}
			return tpl, nil
		}
		return parse, root, nil
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
