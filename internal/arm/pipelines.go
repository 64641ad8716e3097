package arm

// Transfer pipelines (ACR's shapes) and the Key Vault secrets they take
// their storage credential from:
//
//	PUT|GET|DELETE …/registries/{name}/exportPipelines/{p}   GET …/exportPipelines
//	PUT|GET|DELETE …/registries/{name}/importPipelines/{p}   GET …/importPipelines
//	PUT|GET|DELETE …/registries/{name}/pipelineRuns/{run}    GET …/pipelineRuns
//	PUT|GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{v}/secrets/{s}
//	GET            …/vaults/{v}/secrets
//
// Decisions:
//   - Pipelines need the Premium SKU, as in ACR. Creating an export
//     pipeline, or a run of one, on a registry whose export policy is
//     disabled is refused (400 ExportPolicyDisabled); the registry's policy
//     cannot change while export pipelines exist (registries.go).
//   - A pipeline's keyVaultUri must name an existing secret the caller may
//     read (Microsoft.KeyVault/vaults/secrets/read on it); it is needed for
//     a blob container and optional for a file:/// directory. A secret's
//     value is stored in moat's metadata and never answered: GET shows its
//     contentType and secretUri only. Vaults are implicit: a secret names
//     its vault, and no vault resource is kept.
//   - A run is stored Queued (provisioningState Creating) and executed by
//     the transfer worker (transfer.Pipelines), which stores progress and the
//     outcome on the run; the SDK's poller follows provisioningState. A PUT
//     on a finished run with the same forceUpdateTag and request answers it
//     unchanged; with a new forceUpdateTag it runs again. A queued or running
//     run cannot be replaced or deleted (409 PipelineRunInProgress).

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

const (
	keyVaultNS      = "Microsoft.KeyVault"
	secretsAction   = "Microsoft.KeyVault/vaults/secrets/"
	maxSecretValue  = 25 << 10 // Key Vault's limit
	maxRunArtifacts = 50       // ACR's limit per run
)

// pipelineKinds maps a path segment to its resource type.
var pipelineKinds = map[string]string{
	"exportpipelines": transfer.ExportPipelineType,
	"importpipelines": transfer.ImportPipelineType,
	"pipelineruns":    transfer.PipelineRunType,
}

type pipelineRoute struct {
	reg   route
	seg   string // as sent
	typ   string
	child string
}

func parsePipelineRoute(path string) (pipelineRoute, bool) {
	rt, rest, ok := registrySubpath(path, 2)
	if !ok {
		return pipelineRoute{}, false
	}
	typ, ok := pipelineKinds[strings.ToLower(rest[0])]
	if !ok {
		return pipelineRoute{}, false
	}
	pr := pipelineRoute{reg: rt, seg: rest[0], typ: typ}
	if len(rest) == 2 {
		pr.child = rest[1]
	}
	return pr, true
}

func (pr pipelineRoute) id() string {
	return registryID(pr.reg.sub, pr.reg.rg, pr.reg.name) + "/" + pr.seg + "/" + pr.child
}

// actionPrefix is the ARM action prefix of the route's type.
func (pr pipelineRoute) actionPrefix() string { return pr.typ + "/" }

type secretRoute struct {
	sub, rg, vault, name string
}

func parseSecretRoute(path string) (secretRoute, bool) {
	vault, rest, ok := resourceSubpath(path, keyVaultNS, "vaults", 2)
	if !ok || !eq(rest[0], "secrets") {
		return secretRoute{}, false
	}
	sr := secretRoute{sub: vault.sub, rg: vault.rg, vault: vault.name}
	if len(rest) == 2 {
		sr.name = rest[1]
	}
	return sr, true
}

func (sr secretRoute) vaultID() string {
	return "/subscriptions/" + sr.sub + "/resourceGroups/" + sr.rg + "/providers/" + keyVaultNS + "/vaults/" + sr.vault
}

// servePipelines answers the pipeline and secret routes; false for others.
func (h *handler) servePipelines(w http.ResponseWriter, r *http.Request) bool {
	if sr, ok := parseSecretRoute(r.URL.Path); ok {
		if r.URL.Query().Get("api-version") == "" {
			h.writeError(w, r, newError(http.StatusBadRequest, "MissingApiVersionParameter",
				"the api-version query parameter (?api-version=) is required for all requests"))
			return true
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h.serveSecret(w, r, sr)
		return true
	}
	pr, ok := parsePipelineRoute(r.URL.Path)
	if !ok {
		return false
	}
	if _, err := h.apiVersion(r, false); err != nil {
		h.writeError(w, r, err)
		return true
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	if pr.child == "" {
		h.only(w, r, http.MethodGet, func() error { return h.listPipelineResources(w, r, pr) })
		return true
	}
	var err error
	switch r.Method {
	case http.MethodGet:
		err = h.getPipelineResource(w, r, pr)
	case http.MethodPut:
		if pr.typ == transfer.PipelineRunType {
			err = h.putRun(w, r, pr)
		} else {
			err = h.putPipeline(w, r, pr)
		}
	case http.MethodDelete:
		err = h.deletePipelineResource(w, r, pr)
	default:
		h.methodNotAllowed(w, r, http.MethodPut, http.MethodGet, http.MethodDelete)
		return true
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	return true
}

func pipelineNotFound(pr pipelineRoute) error {
	return newError(http.StatusNotFound, "ResourceNotFound", "the %s '%s' was not found in registry '%s'", strings.TrimSuffix(pr.seg, "s"), pr.child, pr.reg.name)
}

// pipelineShape is a stored pipeline or run as ARM answers it.
func pipelineShape(res meta.Resource) map[string]any {
	out := map[string]any{"id": res.ID, "name": res.Name, "type": res.Type}
	var props map[string]any
	_ = json.Unmarshal(res.Properties, &props)
	out["properties"] = props
	if len(res.Identity) > 0 {
		out["identity"] = json.RawMessage(res.Identity)
	}
	if res.Location != "" {
		out["location"] = res.Location
	}
	out["systemData"] = map[string]any{"createdAt": res.CreatedAt.UTC().Format(time.RFC3339), "lastModifiedAt": res.UpdatedAt.UTC().Format(time.RFC3339)}
	return out
}

func (h *handler) listPipelineResources(w http.ResponseWriter, r *http.Request, pr pipelineRoute) error {
	regID := registryID(pr.reg.sub, pr.reg.rg, pr.reg.name)
	if err := h.require(r, pr.actionPrefix()+"read", regID); err != nil {
		return err
	}
	if _, _, err := h.load(r.Context(), pr.reg); err != nil {
		return err
	}
	all, err := h.o.Meta.ListResources(r.Context(), regID+"/", pr.typ)
	if err != nil {
		return err
	}
	items := []any{}
	for _, res := range all {
		shape, err := h.withTriggerStatus(r, res)
		if err != nil {
			return err
		}
		items = append(items, shape)
	}
	h.writePage(w, r, items)
	return nil
}

func (h *handler) getPipelineResource(w http.ResponseWriter, r *http.Request, pr pipelineRoute) error {
	if err := h.require(r, pr.actionPrefix()+"read", pr.id()); err != nil {
		return err
	}
	if _, _, err := h.load(r.Context(), pr.reg); err != nil {
		return err
	}
	res, err := h.o.Meta.GetResource(r.Context(), pr.id())
	if errors.Is(err, meta.ErrNotFound) || err == nil && !strings.EqualFold(res.Type, pr.typ) {
		return pipelineNotFound(pr)
	}
	if err != nil {
		return err
	}
	shape, err := h.withTriggerStatus(r, res)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, shape)
	return nil
}

// withTriggerStatus is pipelineShape plus, for an import pipeline whose
// source trigger has failed at some point, the read-only moat-only
// properties.moatSourceTrigger (state, lastError, lastErrorTime, since)
// that the transfer worker stores, so any replica answers it.
func (h *handler) withTriggerStatus(r *http.Request, res meta.Resource) (map[string]any, error) {
	shape := pipelineShape(res)
	if !strings.EqualFold(res.Type, transfer.ImportPipelineType) {
		return shape, nil
	}
	st, err := transfer.TriggerStatusOf(r.Context(), h.o.Meta, res.ID)
	if err != nil || st == nil {
		return shape, err
	}
	if props, ok := shape["properties"].(map[string]any); ok {
		props["moatSourceTrigger"] = st
	}
	return shape, nil
}

func (h *handler) deletePipelineResource(w http.ResponseWriter, r *http.Request, pr pipelineRoute) error {
	if err := h.require(r, pr.actionPrefix()+"delete", pr.id()); err != nil {
		return err
	}
	if _, _, err := h.load(r.Context(), pr.reg); err != nil {
		return err
	}
	res, err := h.o.Meta.GetResource(r.Context(), pr.id())
	if errors.Is(err, meta.ErrNotFound) || err == nil && !strings.EqualFold(res.Type, pr.typ) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if pr.typ == transfer.PipelineRunType {
		var props transfer.RunProps
		if json.Unmarshal(res.Properties, &props) == nil && inProgress(props) {
			return newError(http.StatusConflict, "PipelineRunInProgress", "the pipeline run '%s' is %s; delete it when it has finished", pr.child, props.Response.Status)
		}
	}
	if err := h.o.Meta.DeleteResource(r.Context(), res.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func inProgress(p transfer.RunProps) bool {
	return p.Response.Status == transfer.RunQueued || p.Response.Status == transfer.RunRunning
}

type pipelineBody struct {
	Location   string          `json:"location"`
	Identity   json.RawMessage `json:"identity"`
	Properties *struct {
		Target  *transfer.StorageProps `json:"target"`
		Source  *transfer.StorageProps `json:"source"`
		Trigger *transfer.TriggerProps `json:"trigger"`
		Options []string               `json:"options"`
	} `json:"properties"`
}

var pipelineOptions = map[string][]string{
	transfer.ExportPipelineType: {transfer.OptOverwriteBlobs, transfer.OptContinueOnErrors},
	transfer.ImportPipelineType: {transfer.OptOverwriteTags, transfer.OptOverwriteBlobs, transfer.OptContinueOnErrors, transfer.OptDeleteSourceBlobOnSuccess},
}

func (h *handler) requirePremium(stored meta.Registry, reg model.Registry) error {
	if !strings.EqualFold(reg.SKU, "Premium") {
		return newError(http.StatusBadRequest, "FeatureNotSupportedForSku",
			"transfer pipelines need the Premium SKU; registry '%s' is %s", stored.Name, reg.SKU)
	}
	return nil
}

func exportDisabled(stored meta.Registry, reg model.Registry) error {
	if strings.EqualFold(reg.Properties.Policies.ExportPolicy.Status, model.StatusDisabled) {
		return newError(http.StatusBadRequest, model.CodeExportsDisabled, "%s; export pipelines and their runs are refused",
			transfer.ExportDisabledMessage(stored.Name))
	}
	return nil
}

func (h *handler) putPipeline(w http.ResponseWriter, r *http.Request, pr pipelineRoute) error {
	ctx := r.Context()
	if err := h.require(r, pr.actionPrefix()+"write", pr.id()); err != nil {
		return err
	}
	if !pipelineNameRE.MatchString(pr.child) {
		return invalidParam("name", "the pipeline name '%s' is invalid: use 3 to 50 letters and digits", pr.child)
	}
	stored, reg, err := h.load(ctx, pr.reg)
	if err != nil {
		return err
	}
	if err := h.requirePremium(stored, reg); err != nil {
		return err
	}
	var in pipelineBody
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return invalidParam("properties", "properties is required")
	}
	export := pr.typ == transfer.ExportPipelineType
	if export {
		if err := exportDisabled(stored, reg); err != nil {
			return err
		}
	}
	store := in.Properties.Target
	field := "properties.target"
	if !export {
		store, field = in.Properties.Source, "properties.source"
	}
	if store == nil {
		return invalidParam(field, "%s is required", field)
	}
	if !strings.EqualFold(store.Type, transfer.StorageTypeBlobContainer) {
		return invalidParam(field+".type", "%s.type %q is invalid; use %s", field, store.Type, transfer.StorageTypeBlobContainer)
	}
	store.Type = transfer.StorageTypeBlobContainer
	if store.URI == "" {
		return invalidParam(field+".uri", "%s.uri is required", field)
	}
	if err := transfer.ValidateStorageURI(store.URI); err != nil {
		return invalidParam(field+".uri", "%s", err.Error())
	}
	if store.KeyVaultURI == "" && !transfer.IsDirectoryURI(store.URI) {
		return invalidParam(field+".keyVaultUri", "%s.keyVaultUri is required: it names the Key Vault secret holding the container's SAS token", field)
	}
	if store.KeyVaultURI != "" {
		if err := h.checkSecretRef(r, store.KeyVaultURI, field+".keyVaultUri"); err != nil {
			return err
		}
	}
	allowed := pipelineOptions[pr.typ]
	opts := []string{}
	for i, o := range in.Properties.Options {
		k := slices.IndexFunc(allowed, func(a string) bool { return strings.EqualFold(a, o) })
		if k < 0 {
			return invalidParam("properties.options", "properties.options[%d] %q is invalid for this pipeline; use %s", i, o, strings.Join(allowed, ", "))
		}
		if !slices.Contains(opts, allowed[k]) {
			opts = append(opts, allowed[k])
		}
	}
	props := transfer.PipelineProps{Options: opts, ProvisioningState: transfer.ProvisioningSucceeded}
	if export {
		props.Target = store
	} else {
		props.Source = store
		if t := in.Properties.Trigger; t != nil && t.SourceTrigger != nil {
			switch {
			case strings.EqualFold(t.SourceTrigger.Status, transfer.TriggerEnabled):
				t.SourceTrigger.Status = transfer.TriggerEnabled
			case strings.EqualFold(t.SourceTrigger.Status, transfer.TriggerDisabled):
				t.SourceTrigger.Status = transfer.TriggerDisabled
			default:
				return invalidParam("properties.trigger.sourceTrigger.status", "properties.trigger.sourceTrigger.status %q is invalid; use Enabled or Disabled", t.SourceTrigger.Status)
			}
			props.Trigger = t
		}
	}
	b, err := json.Marshal(props)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if _, err := h.o.Meta.GetResource(ctx, pr.id()); err == nil {
		status = http.StatusOK
	}
	res := meta.Resource{ID: pr.id(), Type: pr.typ, Name: pr.child, Location: in.Location, Properties: b}
	if len(in.Identity) > 0 && string(in.Identity) != "null" {
		res.Identity = in.Identity
	}
	if export {
		// Re-read: the policy may have changed while this request ran.
		stored2, reg2, err := h.load(ctx, pr.reg)
		if err != nil {
			return err
		}
		if err := exportDisabled(stored2, reg2); err != nil {
			return err
		}
	}
	saved, err := h.o.Meta.PutResource(ctx, res)
	if err != nil {
		return err
	}
	if !export && props.TriggerOn() && h.o.Pipelines != nil {
		h.o.Pipelines.Wake()
	}
	writeJSON(w, status, pipelineShape(saved))
	return nil
}

// checkSecretRef fails unless keyVaultURI names a secret the caller may read.
func (h *handler) checkSecretRef(r *http.Request, keyVaultURI, field string) error {
	id := keyVaultURI
	if !strings.HasPrefix(keyVaultURI, "/") {
		vault, name, err := transfer.ParseKeyVaultURI(keyVaultURI)
		if err != nil {
			return invalidParam(field, "%s", err.Error())
		}
		all, err := h.o.Meta.ListResources(r.Context(), "", transfer.SecretType)
		if err != nil {
			return err
		}
		id = ""
		for _, s := range all {
			if strings.EqualFold(s.Name, name) && strings.EqualFold(transfer.VaultOfSecret(s.ID), vault) {
				id = s.ID
			}
		}
		if id == "" {
			return invalidParam(field, "%s %q names a Key Vault secret that does not exist (create it with PUT …/providers/Microsoft.KeyVault/vaults/%s/secrets/%s)", field, keyVaultURI, vault, name)
		}
	}
	if err := h.require(r, secretsAction+"read", id); err != nil {
		return err
	}
	if _, err := transfer.ResolveSecret(r.Context(), h.o.Meta, keyVaultURI); err != nil {
		return invalidParam(field, "%s", err.Error())
	}
	return nil
}

type runBody struct {
	Properties *struct {
		Request        transfer.RunRequest `json:"request"`
		ForceUpdateTag string              `json:"forceUpdateTag"`
	} `json:"properties"`
}

func (h *handler) putRun(w http.ResponseWriter, r *http.Request, pr pipelineRoute) error {
	ctx := r.Context()
	if err := h.require(r, pr.actionPrefix()+"write", pr.id()); err != nil {
		return err
	}
	if !runNameRE.MatchString(pr.child) {
		return invalidParam("name", "the pipeline run name '%s' is invalid: use up to 50 letters, digits, '_' and '-', starting with a letter or digit", pr.child)
	}
	if h.o.Pipelines == nil {
		return newError(http.StatusBadRequest, "PipelinesNotConfigured", "this server does not run transfer pipelines")
	}
	stored, reg, err := h.load(ctx, pr.reg)
	if err != nil {
		return err
	}
	if err := h.requirePremium(stored, reg); err != nil {
		return err
	}
	var in runBody
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return invalidParam("properties", "properties is required")
	}
	req := in.Properties.Request
	if req.PipelineResourceID == "" {
		return invalidParam("properties.request.pipelineResourceId", "properties.request.pipelineResourceId is required")
	}
	pipe, err := h.o.Meta.GetResource(ctx, req.PipelineResourceID)
	if errors.Is(err, meta.ErrNotFound) || err == nil && !strings.HasPrefix(strings.ToLower(pipe.ID), strings.ToLower(stored.ResourceID)+"/") {
		return invalidParam("properties.request.pipelineResourceId", "the pipeline %q does not exist in registry '%s'", req.PipelineResourceID, stored.Name)
	}
	if err != nil {
		return err
	}
	req.PipelineResourceID = pipe.ID
	switch {
	case strings.EqualFold(pipe.Type, transfer.ExportPipelineType):
		if err := exportDisabled(stored, reg); err != nil {
			return err
		}
		if len(req.Artifacts) == 0 || len(req.Artifacts) > maxRunArtifacts {
			return invalidParam("properties.request.artifacts", "an export run needs 1 to %d artifacts (repo:tag or repo@digest)", maxRunArtifacts)
		}
		for i, a := range req.Artifacts {
			if err := transfer.ValidateArtifact(a); err != nil {
				return invalidParam("properties.request.artifacts", "properties.request.artifacts[%d]: %v", i, err)
			}
		}
		if req.Target == nil || req.Target.Name == "" {
			return invalidParam("properties.request.target.name", "an export run needs properties.request.target.name, the archive's blob name")
		}
		if err := transfer.ValidArchiveName(req.Target.Name); err != nil {
			return invalidParam("properties.request.target.name", "%s", err.Error())
		}
		req.Target.Type, req.Source = transfer.StorageTypeBlob, nil
	case strings.EqualFold(pipe.Type, transfer.ImportPipelineType):
		if req.Source == nil || req.Source.Name == "" {
			return invalidParam("properties.request.source.name", "an import run needs properties.request.source.name, the archive's blob name")
		}
		if err := transfer.ValidArchiveName(req.Source.Name); err != nil {
			return invalidParam("properties.request.source.name", "%s", err.Error())
		}
		if len(req.Artifacts) > 0 {
			return invalidParam("properties.request.artifacts", "an import run imports every artifact of its archive; artifacts must be empty")
		}
		req.Source.Type, req.Target = transfer.StorageTypeBlob, nil
	default:
		return invalidParam("properties.request.pipelineResourceId", "%q is not an export or import pipeline", req.PipelineResourceID)
	}

	status := http.StatusCreated
	var version int64
	if old, err := h.o.Meta.GetResource(ctx, pr.id()); err == nil {
		var op transfer.RunProps
		if err := json.Unmarshal(old.Properties, &op); err != nil {
			return err
		}
		if inProgress(op) {
			return newError(http.StatusConflict, "PipelineRunInProgress", "the pipeline run '%s' is %s; wait for it to finish", pr.child, op.Response.Status)
		}
		if op.ForceUpdateTag == in.Properties.ForceUpdateTag && reflect.DeepEqual(op.Request, req) {
			writeJSON(w, http.StatusOK, pipelineShape(old)) // nothing changed: the finished run
			return nil
		}
		status, version = http.StatusOK, old.Version
	} else if !errors.Is(err, meta.ErrNotFound) {
		return err
	}
	props := transfer.RunProps{Request: req, ForceUpdateTag: in.Properties.ForceUpdateTag,
		Response: transfer.RunResponse{Status: transfer.RunQueued}, ProvisioningState: transfer.ProvisioningCreating}
	b, err := json.Marshal(props)
	if err != nil {
		return err
	}
	saved, err := h.o.Meta.PutResource(ctx, meta.Resource{ID: pr.id(), Type: pr.typ, Name: pr.child, Properties: b, Version: version})
	if errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotFound) && version != 0 {
		return newError(http.StatusConflict, "Conflict", "the pipeline run '%s' changed while this request ran; try again", pr.child)
	}
	if err != nil {
		return err
	}
	h.o.Pipelines.Wake()
	writeJSON(w, status, pipelineShape(saved))
	return nil
}

// Secrets.

type secretBody struct {
	Location   string `json:"location"`
	Properties *struct {
		Value       *string `json:"value"`
		ContentType string  `json:"contentType"`
	} `json:"properties"`
}

func secretShape(res meta.Resource, vault string) map[string]any {
	var p transfer.SecretProps
	_ = json.Unmarshal(res.Properties, &p)
	uri := "https://" + strings.ToLower(vault) + ".vault.azure.net/secrets/" + res.Name
	props := map[string]any{
		"secretUri":  uri,
		"attributes": map[string]any{"enabled": true, "created": res.CreatedAt.Unix(), "updated": res.UpdatedAt.Unix()},
	}
	if p.ContentType != "" {
		props["contentType"] = p.ContentType
	}
	out := map[string]any{"id": res.ID, "name": res.Name, "type": transfer.SecretType, "properties": props}
	if res.Location != "" {
		out["location"] = res.Location
	}
	return out
}

func (h *handler) serveSecret(w http.ResponseWriter, r *http.Request, sr secretRoute) {
	ctx := r.Context()
	err := func() error {
		if sr.name == "" {
			if r.Method != http.MethodGet {
				h.methodNotAllowed(w, r, http.MethodGet)
				return nil
			}
			if err := h.require(r, secretsAction+"read", sr.vaultID()); err != nil {
				return err
			}
			all, err := h.o.Meta.ListResources(ctx, sr.vaultID()+"/", transfer.SecretType)
			if err != nil {
				return err
			}
			items := []any{}
			for _, s := range all {
				items = append(items, secretShape(s, sr.vault))
			}
			h.writePage(w, r, items)
			return nil
		}
		id := sr.vaultID() + "/secrets/" + sr.name
		switch r.Method {
		case http.MethodGet:
			if err := h.require(r, secretsAction+"read", id); err != nil {
				return err
			}
			res, err := h.o.Meta.GetResource(ctx, id)
			if errors.Is(err, meta.ErrNotFound) {
				return newError(http.StatusNotFound, "SecretNotFound", "the secret '%s' was not found in vault '%s'", sr.name, sr.vault)
			}
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, secretShape(res, sr.vault))
		case http.MethodPut:
			if err := h.require(r, secretsAction+"write", id); err != nil {
				return err
			}
			if !secretNameRE(sr.name) || !secretNameRE(sr.vault) {
				return invalidParam("name", "vault and secret names are 1 to 127 letters, digits and '-'")
			}
			if _, err := h.o.Meta.GetResource(ctx, groupID(sr.sub, sr.rg)); errors.Is(err, meta.ErrNotFound) {
				return groupNotFound(sr.rg)
			} else if err != nil {
				return err
			}
			// Vault names are unique in the deployment, as in Azure, so a
			// keyVaultUri names one vault.
			all, err := h.o.Meta.ListResources(ctx, "", transfer.SecretType)
			if err != nil {
				return err
			}
			for _, s := range all {
				if strings.EqualFold(transfer.VaultOfSecret(s.ID), sr.vault) && !strings.HasPrefix(strings.ToLower(s.ID), strings.ToLower(sr.vaultID())+"/") {
					return newError(http.StatusConflict, "VaultAlreadyExists", "a vault named '%s' already exists in another resource group", sr.vault)
				}
			}
			var in secretBody
			if err := decodeBody(r, &in); err != nil {
				return err
			}
			if in.Properties == nil || in.Properties.Value == nil || *in.Properties.Value == "" {
				return invalidParam("properties.value", "properties.value is required")
			}
			if len(*in.Properties.Value) > maxSecretValue {
				return invalidParam("properties.value", "properties.value is larger than %d bytes", maxSecretValue)
			}
			b, err := json.Marshal(transfer.SecretProps{Value: *in.Properties.Value, ContentType: in.Properties.ContentType})
			if err != nil {
				return err
			}
			status := http.StatusCreated
			if _, err := h.o.Meta.GetResource(ctx, id); err == nil {
				status = http.StatusOK
			}
			saved, err := h.o.Meta.PutResource(ctx, meta.Resource{ID: id, Type: transfer.SecretType, Name: sr.name, Location: in.Location, Properties: b})
			if err != nil {
				return err
			}
			writeJSON(w, status, secretShape(saved, sr.vault))
		case http.MethodDelete:
			if err := h.require(r, secretsAction+"delete", id); err != nil {
				return err
			}
			if err := h.o.Meta.DeleteResource(ctx, id); errors.Is(err, meta.ErrNotFound) {
				w.WriteHeader(http.StatusNoContent)
				return nil
			} else if err != nil {
				return err
			}
			w.WriteHeader(http.StatusOK)
		default:
			h.methodNotAllowed(w, r, http.MethodPut, http.MethodGet, http.MethodDelete)
		}
		return nil
	}()
	if err != nil {
		h.writeError(w, r, err)
	}
}

func secretNameRE(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// ACR's name patterns.
var (
	pipelineNameRE = regexp.MustCompile(`^[a-zA-Z0-9]{3,50}$`)
	runNameRE      = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,49}$`)
)
