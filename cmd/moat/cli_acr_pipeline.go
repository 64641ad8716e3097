package main

// moat acr export-pipeline | import-pipeline | pipeline-run, shaped like
// az acr export-pipeline / import-pipeline / pipeline-run, and moat
// keyvault secret (the secret a pipeline's --secret-uri names), shaped like
// az keyvault secret. pipeline-run create waits for the run (a progress
// bar on a terminal) and fails with the run's error when it fails.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moat-registry/moat/internal/model"
)

var pipelineColumns = []column{
	{"NAME", "name"}, {"URI", "properties.uri"}, {"SECRET URI", "properties.keyVaultUri"}, {"OPTIONS", "properties.options"}, {"STATE", "properties.provisioningState"},
}

var pipelineRunColumns = []column{
	{"NAME", "name"}, {"STATUS", "properties.response.status"}, {"PROGRESS", "properties.response.progress.percentage"},
	{"ARTIFACTS", "properties.response.importedArtifacts"}, {"ERROR", "properties.response.pipelineRunErrorMessage"},
}

// pipelineKind is export or import.
type pipelineKind struct {
	use, seg, storageKey string
}

var (
	exportKind = pipelineKind{use: "export-pipeline", seg: "exportPipelines", storageKey: "target"}
	importKind = pipelineKind{use: "import-pipeline", seg: "importPipelines", storageKey: "source"}
)

// flattenPipeline lifts the storage fields so the table can show them.
func flattenPipeline(v any, key string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	p, _ := m["properties"].(map[string]any)
	if s, ok := p[key].(map[string]any); ok {
		p["uri"], p["keyVaultUri"] = s["uri"], s["keyVaultUri"]
	}
	return m
}

func newPipelineCmd(cio cliIO, out *outputOptions, k pipelineKind) *cobra.Command {
	cmd := &cobra.Command{Use: k.use, Short: "Manage a registry's " + k.seg + " (transfer pipelines)", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()
	print := func(v any) error {
		if l, ok := v.([]any); ok {
			for i := range l {
				l[i] = flattenPipeline(l[i], k.storageKey)
			}
			return out.print(cio.stdout, l, pipelineColumns)
		}
		return out.print(cio.stdout, flattenPipeline(v, k.storageKey), pipelineColumns)
	}
	named := func(use, short string, run func(ctx context.Context, s *session, path string) error) *cobra.Command {
		var r registryRef
		var name string
		c := &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
				return run(ctx, s, path+"/"+k.seg+"/"+name)
			})
		}}
		r.addRegistryFlags(c.Flags())
		c.Flags().StringVarP(&name, "name", "n", "", "pipeline name")
		return c
	}
	var uri, secret string
	var options []string
	var trigger boolFlag
	create := named("create -r REGISTRY -n NAME --storage-container-uri URI [--secret-uri KEYVAULT_SECRET_URI] [--options OPTION...]",
		"Create or replace a pipeline", func(ctx context.Context, s *session, path string) error {
			if err := requireFlags("--storage-container-uri", uri); err != nil {
				return err
			}
			storage := map[string]any{"type": "AzureStorageBlobContainer", "uri": uri}
			if secret != "" {
				storage["keyVaultUri"] = secret
			}
			props := map[string]any{k.storageKey: storage, "options": append([]string{}, options...)}
			if k.storageKey == "source" {
				status := "Disabled"
				if !trigger.set || trigger.val {
					status = "Enabled"
				}
				props["trigger"] = map[string]any{"sourceTrigger": map[string]any{"status": status}}
			}
			res, err := s.call(ctx, http.MethodPut, path, api, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return print(res)
		})
	f := create.Flags()
	f.StringVarP(&uri, "storage-container-uri", "c", "", "the archives' container (https://ACCOUNT.blob.core.windows.net/CONTAINER) or directory (file:///DIR)")
	f.StringVarP(&secret, "secret-uri", "s", "", "the Key Vault secret holding the container's SAS token (https://VAULT.vault.azure.net/secrets/NAME)")
	if k.storageKey == "target" {
		f.StringSliceVar(&options, "options", nil, "OverwriteBlobs, ContinueOnErrors (comma-separated or repeated)")
	} else {
		f.StringSliceVar(&options, "options", nil, "OverwriteTags, OverwriteBlobs, ContinueOnErrors, DeleteSourceBlobOnSuccess (comma-separated or repeated)")
		f.Var(&trigger, "source-trigger-enabled", "import new archives from the source by themselves (default true)")
	}
	show := named("show -r REGISTRY -n NAME", "Show a pipeline", func(ctx context.Context, s *session, path string) error {
		res, err := s.call(ctx, http.MethodGet, path, api, nil)
		if err != nil {
			return err
		}
		return print(res)
	})
	del := named("delete -r REGISTRY -n NAME", "Delete a pipeline", func(ctx context.Context, s *session, path string) error {
		_, err := s.call(ctx, http.MethodDelete, path, api, nil)
		return err
	})
	list := registryChildList("list -r REGISTRY", "List the registry's pipelines", k.seg, api, out, print)
	cmd.AddCommand(create, show, list, del)
	return cmd
}

func newPipelineRunCmd(cio cliIO, out *outputOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline-run", Short: "Run transfer pipelines and show their runs", Args: noArgs, RunE: subcommandRequired}
	api := model.Latest().String()
	print := func(v any) error {
		if l, ok := v.([]any); ok {
			return out.print(cio.stdout, l, pipelineRunColumns)
		}
		return out.print(cio.stdout, v, pipelineRunColumns)
	}
	named := func(use, short string, run func(cmd *cobra.Command, ctx context.Context, s *session, regPath, path string) error) *cobra.Command {
		var r registryRef
		var name string
		c := &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--name", name); err != nil {
				return err
			}
			return withRegistry(cmd, out, &r, func(ctx context.Context, s *session, path string) error {
				return run(cmd, ctx, s, path, path+"/pipelineRuns/"+name)
			})
		}}
		r.addRegistryFlags(c.Flags())
		c.Flags().StringVarP(&name, "name", "n", "", "pipeline run name")
		return c
	}
	var pipeline, pipeType, blobName string
	var artifacts []string
	var force, noWait, noProgress bool
	create := named("create -r REGISTRY -n NAME --pipeline PIPELINE --pipeline-type export|import --storage-blob NAME [--artifacts repo:tag ...]",
		"Run a pipeline: export artifacts to an archive, or import one", func(cmd *cobra.Command, ctx context.Context, s *session, regPath, path string) error {
			if err := requireFlags("--pipeline", pipeline, "--storage-blob", blobName); err != nil {
				return err
			}
			req := map[string]any{}
			switch strings.ToLower(pipeType) {
			case "export":
				if len(artifacts) == 0 {
					return usagef("--artifacts is required for an export run")
				}
				req["pipelineResourceId"] = regPath + "/exportPipelines/" + pipeline
				req["artifacts"] = artifacts
				req["target"] = map[string]any{"type": "AzureStorageBlob", "name": blobName}
			case "import":
				if len(artifacts) > 0 {
					return usagef("--artifacts is for export runs: an import run imports the whole archive")
				}
				req["pipelineResourceId"] = regPath + "/importPipelines/" + pipeline
				req["source"] = map[string]any{"type": "AzureStorageBlob", "name": blobName}
			default:
				return usagef("--pipeline-type must be export or import")
			}
			props := map[string]any{"request": req}
			if force {
				props["forceUpdateTag"] = strconv.FormatInt(time.Now().UnixNano(), 36)
			}
			res, err := s.call(ctx, http.MethodPut, path, api, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			if !noWait {
				var prog io.Writer
				if !noProgress {
					prog = cio.stderr
				}
				if res, err = waitRun(ctx, s, path, api, res, newRunBar(prog)); err != nil {
					return err
				}
				if st := runField(res, "response", "status"); st == "Failed" {
					if err := print(res); err != nil {
						return err
					}
					return failf("PipelineRunFailed", "%s", oneLine(runField(res, "response", "pipelineRunErrorMessage")))
				}
			}
			return print(res)
		})
	f := create.Flags()
	f.StringVarP(&pipeline, "pipeline", "p", "", "the pipeline's name")
	f.StringVarP(&pipeType, "pipeline-type", "t", "export", "export or import")
	f.StringVarP(&blobName, "storage-blob", "b", "", "the archive's blob (or file) name")
	f.StringSliceVarP(&artifacts, "artifacts", "a", nil, "artifacts to export: repo:tag or repo@digest (comma-separated or repeated)")
	f.BoolVarP(&force, "force-redeploy", "f", false, "run again even if a finished run of this name has the same request")
	f.BoolVar(&noWait, "no-wait", false, "do not wait for the run to finish")
	f.BoolVar(&noProgress, "no-progress", false, "do not report progress on stderr")

	show := named("show -r REGISTRY -n NAME", "Show a pipeline run", func(_ *cobra.Command, ctx context.Context, s *session, _, path string) error {
		res, err := s.call(ctx, http.MethodGet, path, api, nil)
		if err != nil {
			return err
		}
		return print(res)
	})
	del := named("delete -r REGISTRY -n NAME", "Delete a finished pipeline run", func(_ *cobra.Command, ctx context.Context, s *session, _, path string) error {
		_, err := s.call(ctx, http.MethodDelete, path, api, nil)
		return err
	})
	list := registryChildList("list -r REGISTRY", "List the registry's pipeline runs", "pipelineRuns", api, out, print)
	cmd.AddCommand(create, show, list, del)
	return cmd
}

// runField reads properties.<keys...> of a run as a string.
func runField(v any, keys ...string) string {
	m, _ := v.(map[string]any)
	cur, _ := m["properties"].(map[string]any)
	for i, k := range keys {
		if i == len(keys)-1 {
			s, _ := cur[k].(string)
			return s
		}
		cur, _ = cur[k].(map[string]any)
	}
	return ""
}

// waitRun polls the run until its provisioningState is final.
func waitRun(ctx context.Context, s *session, path, api string, cur any, report func(pct int, done bool)) (any, error) {
	defer report(0, true)
	for range maxPolls {
		if st := runField(cur, "provisioningState"); st != "" && st != "Creating" {
			return cur, nil
		}
		if p, err := strconv.Atoi(runField(cur, "response", "progress", "percentage")); err == nil {
			report(p, false)
		} else {
			report(0, false)
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return nil, err
		}
		next, err := s.call(ctx, http.MethodGet, path, api, nil)
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return nil, failf("OperationTimedOut", "the pipeline run %s did not finish", path)
}

// newRunBar draws a progress bar on w when w is a terminal, like import's.
func newRunBar(w io.Writer) func(pct int, done bool) {
	f, ok := w.(*os.File)
	if !ok {
		return func(int, bool) {}
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return func(int, bool) {}
	}
	return runBar(w)
}

// runBar rewrites one line: "[#####.....]  50%"; done ends the line.
func runBar(w io.Writer) func(pct int, done bool) {
	last := ""
	return func(pct int, done bool) {
		if done {
			if last != "" {
				_, _ = fmt.Fprintln(w)
			}
			return
		}
		line := formatRunBar(pct)
		if line == last {
			return
		}
		last = line
		_, _ = fmt.Fprintf(w, "\r%s\x1b[K", line)
	}
}

func formatRunBar(pct int) string {
	pct = max(0, min(pct, 100))
	const width = 30
	n := pct * width / 100
	return fmt.Sprintf("pipeline run: [%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(".", width-n), pct)
}

var secretColumns = []column{{"NAME", "name"}, {"SECRET URI", "properties.secretUri"}, {"CONTENT TYPE", "properties.contentType"}}

// Key Vault's ARM api-version for secrets.
const keyVaultAPI = "2023-07-01"

// newKeyVaultCmd is moat keyvault secret set|show|list|delete: moat's own
// secret store, where pipelines find their storage credentials.
func newKeyVaultCmd(cio cliIO) *cobra.Command {
	var out outputOptions
	kv := &cobra.Command{Use: "keyvault", Short: "Manage moat's Key Vault secrets (storage credentials of transfer pipelines)", Args: noArgs, RunE: subcommandRequired}
	addOutputFlags(kv, &out)
	cmd := &cobra.Command{Use: "secret", Short: "Manage secrets", Args: noArgs, RunE: subcommandRequired}
	print := func(v any) error {
		if l, ok := v.([]any); ok {
			return out.print(cio.stdout, l, secretColumns)
		}
		return out.print(cio.stdout, v, secretColumns)
	}
	named := func(use, short string, run func(ctx context.Context, s *session, path string) error) *cobra.Command {
		var vault, group, name string
		c := &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags("--vault-name", vault, "--resource-group", group); err != nil {
				return err
			}
			if err := out.validate(); err != nil {
				return err
			}
			s, err := openSession(cmd.Context())
			if err != nil {
				return err
			}
			path := "/subscriptions/" + s.prof.SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.KeyVault/vaults/" + vault + "/secrets"
			if use != "list" {
				if err := requireFlags("--name", name); err != nil {
					return err
				}
				path += "/" + name
			}
			return run(cmd.Context(), s, path)
		}}
		c.Flags().StringVar(&vault, "vault-name", "", "vault name")
		c.Flags().StringVarP(&group, "resource-group", "g", "", "resource group")
		if use != "list" {
			c.Flags().StringVarP(&name, "name", "n", "", "secret name")
		}
		return c
	}
	var value, contentType string
	set := named("set", "Create or replace a secret (the value is read from --value or MOAT_SECRET_VALUE, never answered back)",
		func(ctx context.Context, s *session, path string) error {
			if value == "" {
				value = os.Getenv("MOAT_SECRET_VALUE")
			}
			if value == "" {
				return usagef("--value (or MOAT_SECRET_VALUE) is required")
			}
			props := map[string]any{"value": value}
			if contentType != "" {
				props["contentType"] = contentType
			}
			res, err := s.call(ctx, http.MethodPut, path, keyVaultAPI, map[string]any{"properties": props})
			if err != nil {
				return err
			}
			return print(res)
		})
	set.Flags().StringVar(&value, "value", "", "the secret's value (prefer MOAT_SECRET_VALUE)")
	set.Flags().StringVar(&contentType, "content-type", "", "the value's content type")
	show := named("show", "Show a secret (never its value)", func(ctx context.Context, s *session, path string) error {
		res, err := s.call(ctx, http.MethodGet, path, keyVaultAPI, nil)
		if err != nil {
			return err
		}
		return print(res)
	})
	list := named("list", "List a vault's secrets", func(ctx context.Context, s *session, path string) error {
		items, err := s.list(ctx, path, keyVaultAPI)
		if err != nil {
			return err
		}
		return print(items)
	})
	del := named("delete", "Delete a secret", func(ctx context.Context, s *session, path string) error {
		_, err := s.call(ctx, http.MethodDelete, path, keyVaultAPI, nil)
		return err
	})
	cmd.AddCommand(set, show, list, del)
	kv.AddCommand(cmd)
	return kv
}

// newTransferCmds are the acr subcommands of transfer pipelines.
func newTransferCmds(cio cliIO, out *outputOptions) []*cobra.Command {
	return []*cobra.Command{newPipelineCmd(cio, out, exportKind), newPipelineCmd(cio, out, importKind), newPipelineRunCmd(cio, out)}
}
