package transfer

// Transfer pipelines: ACR's exportPipelines, importPipelines and
// pipelineRuns, kept as meta.Resources below their registry, and the worker
// that executes runs and source triggers.
//
// Decisions:
//   - One worker in the deployment executes every run and polls every
//     source trigger: Pipelines.Run holds the lease "transfer-pipelines"
//     (replica.RunExclusive) while it works, so a run is executed once and
//     an archive a trigger finds is imported once, whichever replica took
//     the request. The management plane only stores a run as Queued and
//     wakes the worker.
//   - A run found Running when the worker takes the lease was being
//     executed by a holder that died or stopped (only the holder executes
//     runs): it is marked Failed with a message saying so. An interrupted
//     import tagged nothing (ReadArchive sets tags last), an interrupted
//     export left no archive (it is published on completion only). Create
//     the run again (a new forceUpdateTag) to retry.
//   - Progress is written to the run every progressEvery, so a GET on any
//     replica shows it.
//   - The export policy is checked again when an export run starts (the
//     policy cannot change while export pipelines exist, but a store written
//     by other means must not leak): fail closed.
//   - A source trigger imports each archive name once per import pipeline:
//     the name is recorded (a child resource of the pipeline) before its run
//     starts, so neither a restart nor another replica imports it twice.
//     Recreating the pipeline forgets the names.
//   - A source trigger whose source fails (unreachable, missing secret, a
//     listing error) is logged when its state changes and at most once per
//     triggerLogEvery while it persists, not at every poll; the state
//     (Healthy or Failing, the last error and when) is stored as a child
//     resource of the pipeline, written only on a change, and answered on
//     the pipeline's GET as the read-only moat-only property
//     properties.moatSourceTrigger (see TriggerStatusOf).
//   - Secrets (the storage credentials) are Microsoft.KeyVault/vaults/secrets
//     resources whose value is kept in the resource's properties and never
//     answered by the API; a pipeline's keyVaultUri
//     (https://VAULT.vault.azure.net/secrets/NAME) names one.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/replica"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Resource types.
const (
	ExportPipelineType   = "Microsoft.ContainerRegistry/registries/exportPipelines"
	ImportPipelineType   = "Microsoft.ContainerRegistry/registries/importPipelines"
	PipelineRunType      = "Microsoft.ContainerRegistry/registries/pipelineRuns"
	SecretType           = "Microsoft.KeyVault/vaults/secrets"
	processedArchiveType = "Microsoft.ContainerRegistry/registries/importPipelines/processedArchives"
	triggerStatusType    = "Microsoft.ContainerRegistry/registries/importPipelines/triggerStatus"
	pipelineLease        = "transfer-pipelines"
)

// Run states (response.status; provisioningState uses Creating, Succeeded
// and Failed).
const (
	RunQueued    = "Queued"
	RunRunning   = "Running"
	RunSucceeded = "Succeeded"
	RunFailed    = "Failed"

	ProvisioningCreating  = "Creating"
	ProvisioningSucceeded = "Succeeded"
	ProvisioningFailed    = "Failed"

	TriggerEnabled  = "Enabled"
	TriggerDisabled = "Disabled"
)

// StorageProps is an export pipeline's target or an import pipeline's
// source.
type StorageProps struct {
	Type        string `json:"type"`
	URI         string `json:"uri,omitempty"`
	KeyVaultURI string `json:"keyVaultUri,omitempty"`
}

// TriggerProps is an import pipeline's trigger.
type TriggerProps struct {
	SourceTrigger *struct {
		Status string `json:"status"`
	} `json:"sourceTrigger,omitempty"`
}

// PipelineProps are the properties of both pipeline kinds.
type PipelineProps struct {
	Target            *StorageProps `json:"target,omitempty"`
	Source            *StorageProps `json:"source,omitempty"`
	Trigger           *TriggerProps `json:"trigger,omitempty"`
	Options           []string      `json:"options"`
	ProvisioningState string        `json:"provisioningState,omitempty"`
}

// HasOption reports whether the pipeline has option o (any case).
func (p PipelineProps) HasOption(o string) bool {
	return slices.ContainsFunc(p.Options, func(s string) bool { return strings.EqualFold(s, o) })
}

// TriggerOn reports whether the source trigger is enabled.
func (p PipelineProps) TriggerOn() bool {
	return p.Trigger != nil && p.Trigger.SourceTrigger != nil && strings.EqualFold(p.Trigger.SourceTrigger.Status, TriggerEnabled)
}

// RunStorage is a run's blob: type AzureStorageBlob and its name.
type RunStorage struct {
	Type string `json:"type,omitempty"`
	Name string `json:"name"`
}

// RunRequest is what a run was asked to do.
type RunRequest struct {
	PipelineResourceID string      `json:"pipelineResourceId"`
	Artifacts          []string    `json:"artifacts,omitempty"`
	Source             *RunStorage `json:"source,omitempty"`
	Target             *RunStorage `json:"target,omitempty"`
	CatalogDigest      string      `json:"catalogDigest,omitempty"`
}

// RunResponse is what a run did.
type RunResponse struct {
	Status            string   `json:"status"`
	ImportedArtifacts []string `json:"importedArtifacts,omitempty"`
	Progress          *struct {
		Percentage string `json:"percentage"`
	} `json:"progress,omitempty"`
	StartTime               *time.Time       `json:"startTime,omitempty"`
	FinishTime              *time.Time       `json:"finishTime,omitempty"`
	Source                  *StorageProps    `json:"source,omitempty"`
	Target                  *StorageProps    `json:"target,omitempty"`
	CatalogDigest           string           `json:"catalogDigest,omitempty"`
	PipelineRunErrorMessage string           `json:"pipelineRunErrorMessage,omitempty"`
	Trigger                 *RunTrigger      `json:"trigger,omitempty"`
	ArtifactResults         []ArtifactResult `json:"artifactResults,omitempty"`
}

// RunTrigger says which archive a source trigger found.
type RunTrigger struct {
	SourceTrigger *struct {
		Timestamp time.Time `json:"timestamp"`
	} `json:"sourceTrigger,omitempty"`
}

// RunProps are a pipeline run's properties.
type RunProps struct {
	Request           RunRequest  `json:"request"`
	Response          RunResponse `json:"response"`
	ForceUpdateTag    string      `json:"forceUpdateTag,omitempty"`
	ProvisioningState string      `json:"provisioningState"`
}

// SecretProps are a secret's stored properties; Value is never answered.
type SecretProps struct {
	Value       string `json:"value"`
	ContentType string `json:"contentType,omitempty"`
}

// ResolveSecret finds the secret a keyVaultUri names: the data-plane form
// https://VAULT.vault.azure.net/secrets/NAME[/VERSION] (any host whose first
// label is the vault) or the secret's ARM id.
func ResolveSecret(ctx context.Context, store meta.ResourceStore, keyVaultURI string) (string, error) {
	if strings.HasPrefix(keyVaultURI, "/") {
		res, err := store.GetResource(ctx, keyVaultURI)
		if errors.Is(err, meta.ErrNotFound) || err == nil && !strings.EqualFold(res.Type, SecretType) {
			return "", fmt.Errorf("the Key Vault secret %s does not exist", keyVaultURI)
		}
		if err != nil {
			return "", fmt.Errorf("reading the Key Vault secret: %w", err)
		}
		return secretValue(res)
	}
	vault, name, err := ParseKeyVaultURI(keyVaultURI)
	if err != nil {
		return "", err
	}
	all, err := store.ListResources(ctx, "", SecretType)
	if err != nil {
		return "", fmt.Errorf("reading Key Vault secrets: %w", err)
	}
	var found []meta.Resource
	for _, r := range all {
		if strings.EqualFold(r.Name, name) && strings.EqualFold(VaultOfSecret(r.ID), vault) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("the Key Vault secret %q of vault %q (keyVaultUri %s) does not exist", name, vault, keyVaultURI)
	case 1:
		return secretValue(found[0])
	}
	return "", fmt.Errorf("the keyVaultUri %s is ambiguous: vault %q exists in several resource groups; use the secret's resource id", keyVaultURI, vault)
}

// ParseKeyVaultURI returns the vault and secret a data-plane secret URI names.
func ParseKeyVaultURI(s string) (vault, name string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Scheme, "https") {
		return "", "", fmt.Errorf("the keyVaultUri %q is not a Key Vault secret URI (https://VAULT.vault.azure.net/secrets/NAME) or a secret's resource id", s)
	}
	vault, _, _ = strings.Cut(u.Hostname(), ".")
	seg := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(seg) < 2 || len(seg) > 3 || !strings.EqualFold(seg[0], "secrets") || seg[1] == "" || vault == "" {
		return "", "", fmt.Errorf("the keyVaultUri %q is not a Key Vault secret URI (https://VAULT.vault.azure.net/secrets/NAME)", s)
	}
	return vault, seg[1], nil
}

// VaultOfSecret is the vault name in a secret's ARM id.
func VaultOfSecret(id string) string {
	seg := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(seg); i++ {
		if strings.EqualFold(seg[i], "vaults") {
			return seg[i+1]
		}
	}
	return ""
}

func secretValue(r meta.Resource) (string, error) {
	var p SecretProps
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		return "", fmt.Errorf("reading the Key Vault secret %s: %w", r.ID, err)
	}
	return p.Value, nil
}

// Pipelines executes pipeline runs and source triggers.
type Pipelines struct {
	meta   meta.Store
	blobs  blob.Store
	log    *slog.Logger
	poll   time.Duration
	lease  time.Duration
	holder string
	wake   chan struct{}
	// trig is each import pipeline's trigger health as this worker last
	// saw it (only the worker goroutine touches it).
	trig map[string]*triggerHealth
}

// PipelinesOptions configure NewPipelines.
type PipelinesOptions struct {
	Meta  meta.Store
	Blobs blob.Store
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Poll is how often queued runs and source triggers are looked at;
	// 0 means 3s.
	Poll time.Duration
	// Lease is the worker lease's ttl; 0 means 30s.
	Lease time.Duration
}

// NewPipelines returns the worker; start it with Run.
func NewPipelines(o PipelinesOptions) *Pipelines {
	p := &Pipelines{meta: o.Meta, blobs: o.Blobs, log: o.Logger, poll: o.Poll, lease: o.Lease,
		holder: replica.NewHolderID(), wake: make(chan struct{}, 1), trig: map[string]*triggerHealth{}}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.poll <= 0 {
		p.poll = 3 * time.Second
	}
	if p.lease <= 0 {
		p.lease = 30 * time.Second
	}
	return p
}

// Wake makes the worker look at queued runs now (on this replica; others
// look within Poll).
func (p *Pipelines) Wake() {
	if p == nil {
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx is done, under the lease when the store has leases.
func (p *Pipelines) Run(ctx context.Context) {
	l, ok := p.meta.(meta.Leaser)
	if !ok {
		p.work(ctx)
		return
	}
	if err := replica.RunExclusive(ctx, l, pipelineLease, p.lease, p.work,
		replica.WithHolder(p.holder), replica.WithLogger(p.log)); err != nil {
		p.log.Error("transfer pipelines", "error", err)
	}
}

func (p *Pipelines) work(ctx context.Context) {
	if err := p.failInterrupted(ctx); err != nil && ctx.Err() == nil {
		p.log.Error("marking interrupted pipeline runs failed", "error", err)
	}
	tick := time.NewTicker(p.poll)
	defer tick.Stop()
	for {
		if err := p.runQueued(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("running queued pipeline runs", "error", err)
		}
		if err := p.pollTriggers(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("polling import pipeline triggers", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.wake:
		}
	}
}

// InterruptedMessage is the error of a run its executor never finished.
const InterruptedMessage = "the run was interrupted: the moat process executing it stopped before it finished (nothing was tagged and no archive was published); create the run again with a new forceUpdateTag to retry"

func (p *Pipelines) failInterrupted(ctx context.Context) error {
	runs, err := p.meta.ListResources(ctx, "", PipelineRunType)
	if err != nil {
		return err
	}
	for _, r := range runs {
		props, err := decodeRun(r)
		if err != nil || props.Response.Status != RunRunning {
			continue
		}
		p.log.Warn("pipeline run interrupted; marking it failed", "run", r.ID)
		props.Response.Status, props.ProvisioningState = RunFailed, ProvisioningFailed
		props.Response.PipelineRunErrorMessage = InterruptedMessage
		now := time.Now().UTC()
		props.Response.FinishTime = &now
		if _, err := p.saveRun(ctx, r, props); err != nil {
			return err
		}
	}
	return nil
}

func decodeRun(r meta.Resource) (RunProps, error) {
	var props RunProps
	if err := json.Unmarshal(r.Properties, &props); err != nil {
		return props, fmt.Errorf("reading pipeline run %s: %w", r.ID, err)
	}
	return props, nil
}

func (p *Pipelines) saveRun(ctx context.Context, r meta.Resource, props RunProps) (meta.Resource, error) {
	b, err := json.Marshal(props)
	if err != nil {
		return r, err
	}
	r.Properties = b
	return p.meta.PutResource(ctx, r) // r.Version: only over what was read
}

func (p *Pipelines) runQueued(ctx context.Context) error {
	runs, err := p.meta.ListResources(ctx, "", PipelineRunType)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if ctx.Err() != nil {
			return nil
		}
		props, err := decodeRun(r)
		if err != nil || props.Response.Status != RunQueued {
			continue
		}
		p.execute(ctx, r, props)
	}
	return nil
}

// registryOf returns the registry name and id in a child resource's id.
func registryOf(id string) (name, regID string) {
	seg := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(seg); i++ {
		if strings.EqualFold(seg[i], "registries") {
			return strings.ToLower(seg[i+1]), "/" + strings.Join(seg[:i+2], "/")
		}
	}
	return "", ""
}

// execute runs one queued run to its end and stores the outcome.
func (p *Pipelines) execute(ctx context.Context, r meta.Resource, props RunProps) {
	now := time.Now().UTC()
	props.Response.Status = RunRunning
	props.Response.StartTime = &now
	props.Response.Progress = &struct {
		Percentage string `json:"percentage"`
	}{Percentage: "0"}
	r, err := p.saveRun(ctx, r, props)
	if err != nil {
		p.log.Warn("pipeline run changed or deleted before it started", "run", r.ID, "error", err)
		return
	}
	prog := &RunProgress{}
	stop := make(chan struct{})
	saved := make(chan meta.Resource, 1)
	// Copied before perform starts changing props, not in the goroutine,
	// where the copy would race with those changes.
	cur, mine := r, props
	go func() {
		// Progress reports; a failed write is only a late percentage.
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				saved <- cur
				return
			case <-t.C:
				mine.Response.Progress = &struct {
					Percentage string `json:"percentage"`
				}{Percentage: strconv.Itoa(prog.Percent())}
				if next, err := p.saveRun(ctx, cur, mine); err == nil {
					cur = next
				}
			}
		}
	}()
	results, runErr := p.perform(ctx, r, &props, prog)
	close(stop)
	r = <-saved
	if ctx.Err() != nil && runErr != nil {
		// Stopped (shutdown or lease lost): the next holder marks it failed.
		p.log.Warn("pipeline run stopped before it finished", "run", r.ID, "error", runErr)
		return
	}
	end := time.Now().UTC()
	props.Response.FinishTime = &end
	props.Response.ArtifactResults = results
	props.Response.ImportedArtifacts = nil
	for _, a := range results {
		if a.Status == StatusSucceeded {
			props.Response.ImportedArtifacts = append(props.Response.ImportedArtifacts, a.Artifact)
		}
	}
	if runErr != nil {
		props.Response.Status, props.ProvisioningState = RunFailed, ProvisioningFailed
		props.Response.PipelineRunErrorMessage = runErr.Error()
		p.log.Info("pipeline run failed", "run", r.ID, "error", runErr)
	} else {
		props.Response.Status, props.ProvisioningState = RunSucceeded, ProvisioningSucceeded
		props.Response.Progress.Percentage = "100"
		p.log.Info("pipeline run succeeded", "run", r.ID, "artifacts", len(props.Response.ImportedArtifacts))
	}
	if _, err := p.saveRun(context.WithoutCancel(ctx), r, props); err != nil {
		p.log.Error("storing a pipeline run's outcome failed", "run", r.ID, "error", err)
	}
}

// progressEvery is how often a running run's percentage is stored.
const progressEvery = 500 * time.Millisecond

// perform does the transfer a run asks for.
func (p *Pipelines) perform(ctx context.Context, r meta.Resource, props *RunProps, prog *RunProgress) ([]ArtifactResult, error) {
	regName, _ := registryOf(r.ID)
	pipe, err := p.meta.GetResource(ctx, props.Request.PipelineResourceID)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, fmt.Errorf("the pipeline %s does not exist", props.Request.PipelineResourceID)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the pipeline: %w", err)
	}
	if pn, _ := registryOf(pipe.ID); pn != regName {
		return nil, fmt.Errorf("the pipeline %s belongs to another registry", pipe.ID)
	}
	var pp PipelineProps
	if err := json.Unmarshal(pipe.Properties, &pp); err != nil {
		return nil, fmt.Errorf("reading the pipeline %s: %w", pipe.ID, err)
	}
	switch {
	case strings.EqualFold(pipe.Type, ExportPipelineType) && pp.Target != nil:
		props.Response.Target = &StorageProps{Type: pp.Target.Type, URI: pp.Target.URI, KeyVaultURI: pp.Target.KeyVaultURI}
		return p.export(ctx, regName, pp, props.Request, prog)
	case strings.EqualFold(pipe.Type, ImportPipelineType) && pp.Source != nil:
		props.Response.Source = &StorageProps{Type: pp.Source.Type, URI: pp.Source.URI, KeyVaultURI: pp.Source.KeyVaultURI}
		return p.importRun(ctx, regName, pp, props.Request, prog)
	}
	return nil, fmt.Errorf("%s is not an export or import pipeline", pipe.ID)
}

func (p *Pipelines) storageFor(ctx context.Context, s *StorageProps) (ArchiveStorage, error) {
	cred := ""
	if s.KeyVaultURI != "" {
		v, err := ResolveSecret(ctx, p.meta, s.KeyVaultURI)
		if err != nil {
			return nil, err
		}
		cred = v
	}
	return OpenStorage(s.URI, cred)
}

func (p *Pipelines) export(ctx context.Context, reg string, pp PipelineProps, req RunRequest, prog *RunProgress) ([]ArtifactResult, error) {
	stored, err := p.meta.GetRegistry(ctx, reg)
	if err != nil {
		return nil, fmt.Errorf("reading registry %q: %w", reg, err)
	}
	mreg, err := model.UnmarshalStored(stored.Location, stored.SKU, stored.Properties, stored.Tags)
	if err != nil {
		return nil, fmt.Errorf("reading the export policy of registry %q: %w", reg, err)
	}
	if strings.EqualFold(mreg.Properties.Policies.ExportPolicy.Status, model.StatusDisabled) {
		return nil, errors.New(ExportDisabledMessage(reg))
	}
	if req.Target == nil {
		return nil, errors.New("the run has no target blob name")
	}
	st, err := p.storageFor(ctx, pp.Target)
	if err != nil {
		return nil, err
	}
	w, err := st.Create(ctx, req.Target.Name, pp.HasOption(OptOverwriteBlobs))
	if err != nil {
		return nil, err
	}
	results, err := WriteArchive(ctx, w, p.meta, p.blobs, reg, req.Artifacts, pp.HasOption(OptContinueOnErrors), prog)
	if err != nil {
		w.Abort()
		return results, err
	}
	if err := w.Commit(); err != nil {
		return results, err
	}
	return results, nil
}

func (p *Pipelines) importRun(ctx context.Context, reg string, pp PipelineProps, req RunRequest, prog *RunProgress) ([]ArtifactResult, error) {
	if req.Source == nil {
		return nil, errors.New("the run has no source blob name")
	}
	st, err := p.storageFor(ctx, pp.Source)
	if err != nil {
		return nil, err
	}
	rc, size, err := st.Open(ctx, req.Source.Name)
	if err != nil {
		return nil, err
	}
	results, err := ReadArchive(ctx, rc, size, p.meta, p.blobs, reg,
		ImportOptions{OverwriteTags: pp.HasOption(OptOverwriteTags), ContinueOnErrors: pp.HasOption(OptContinueOnErrors)}, prog)
	_ = rc.Close()
	if err != nil {
		return results, fmt.Errorf("importing %s from %s: %w", req.Source.Name, st, err)
	}
	if pp.HasOption(OptDeleteSourceBlobOnSuccess) {
		if err := st.Delete(ctx, req.Source.Name); err != nil {
			return results, fmt.Errorf("the import succeeded but deleting the source archive failed: %w", err)
		}
	}
	return results, nil
}

// pollTriggers queues a run for every archive an enabled source trigger
// has not seen yet.
func (p *Pipelines) pollTriggers(ctx context.Context) error {
	pipes, err := p.meta.ListResources(ctx, "", ImportPipelineType)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, pipe := range pipes {
		if ctx.Err() != nil {
			return nil
		}
		var pp PipelineProps
		if err := json.Unmarshal(pipe.Properties, &pp); err != nil || !pp.TriggerOn() || pp.Source == nil {
			continue
		}
		err := p.pollOne(ctx, pipe, pp)
		if ctx.Err() != nil {
			return nil
		}
		seen[triggerKey(pipe)] = true
		p.triggerOutcome(ctx, pipe, err, time.Now())
	}
	for k := range p.trig {
		if !seen[k] {
			delete(p.trig, k) // deleted, disabled or recreated
		}
	}
	return nil
}

func (p *Pipelines) pollOne(ctx context.Context, pipe meta.Resource, pp PipelineProps) error {
	st, err := p.storageFor(ctx, pp.Source)
	if err != nil {
		return err
	}
	names, err := st.List(ctx)
	if err != nil {
		return err
	}
	_, regID := registryOf(pipe.ID)
	for _, n := range names {
		h := sha256.Sum256([]byte(n))
		key := hex.EncodeToString(h[:8])
		recID := pipe.ID + "/processedArchives/" + key
		if _, err := p.meta.GetResource(ctx, recID); err == nil {
			continue
		} else if !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		runName := "trigger-" + pipe.Name + "-" + key
		now := time.Now().UTC()
		props := RunProps{
			Request: RunRequest{PipelineResourceID: pipe.ID, Source: &RunStorage{Type: StorageTypeBlob, Name: n}},
			Response: RunResponse{Status: RunQueued, Trigger: &RunTrigger{SourceTrigger: &struct {
				Timestamp time.Time `json:"timestamp"`
			}{now}}},
			ProvisioningState: ProvisioningCreating,
		}
		b, err := json.Marshal(props)
		if err != nil {
			return err
		}
		rec, _ := json.Marshal(map[string]string{"name": n, "run": runName})
		if _, err := p.meta.PutResource(ctx, meta.Resource{ID: recID, Type: processedArchiveType, Name: key, Properties: rec}); err != nil {
			return err
		}
		run, err := p.meta.PutResource(ctx, meta.Resource{ID: regID + "/pipelineRuns/" + runName, Type: PipelineRunType, Name: runName, Properties: b})
		if err != nil {
			return err
		}
		p.log.Info("source trigger found a new archive", "pipeline", pipe.ID, "archive", n, "run", run.ID)
		p.execute(ctx, run, props)
	}
	return nil
}

// triggerLogEvery bounds how often a persisting trigger failure is logged.
const triggerLogEvery = time.Minute

// Trigger states (TriggerStatus.State).
const (
	TriggerHealthy = "Healthy"
	TriggerFailing = "Failing"
)

// TriggerStatus is an import pipeline's source trigger health: the
// moat-only read-only properties.moatSourceTrigger.
type TriggerStatus struct {
	// State is Healthy or Failing.
	State string `json:"state"`
	// LastError and LastErrorTime are the most recent failure, kept after
	// the trigger recovers.
	LastError     string     `json:"lastError,omitempty"`
	LastErrorTime *time.Time `json:"lastErrorTime,omitempty"`
	// Since is when State began.
	Since time.Time `json:"since"`
}

type triggerHealth struct {
	status  TriggerStatus
	logged  time.Time // last log of the current failure
	message string    // the failure last stored
}

// triggerStep is the pure decision behind triggerOutcome: given the health
// seen so far (nil: never polled by this worker) and a poll's error at now,
// it returns the new health, whether to log and whether to store it.
func triggerStep(prev *triggerHealth, pollErr error, now time.Time) (next triggerHealth, logIt, store bool) {
	if prev != nil {
		next = *prev
	}
	if pollErr == nil {
		if prev != nil && prev.status.State == TriggerHealthy {
			return next, false, false
		}
		next.status.State, next.status.Since = TriggerHealthy, now
		// A worker that never saw a failure stores Healthy only to replace
		// a Failing another worker may have left.
		return next, prev != nil, true
	}
	msg := pollErr.Error()
	failing := prev != nil && prev.status.State == TriggerFailing
	t := now
	next.status.LastError, next.status.LastErrorTime = msg, &t
	if !failing {
		next.status.State, next.status.Since = TriggerFailing, now
		next.logged, next.message = now, msg
		return next, true, true
	}
	if msg != prev.message {
		next.message = msg
		store = true
	}
	if now.Sub(prev.logged) >= triggerLogEvery {
		next.logged = now
		logIt = true
	}
	return next, logIt, store
}

// triggerKey tells a recreated pipeline from its predecessor.
func triggerKey(pipe meta.Resource) string {
	return strings.ToLower(pipe.ID) + "@" + pipe.CreatedAt.UTC().Format(time.RFC3339Nano)
}

// triggerOutcome records one poll of pipe's trigger.
func (p *Pipelines) triggerOutcome(ctx context.Context, pipe meta.Resource, pollErr error, now time.Time) {
	pipeID, key := pipe.ID, triggerKey(pipe)
	next, logIt, store := triggerStep(p.trig[key], pollErr, now)
	p.trig[key] = &next
	if logIt {
		if pollErr != nil {
			p.log.Warn("import pipeline source trigger failing", "pipeline", pipeID, "since", next.status.Since, "error", pollErr)
		} else {
			p.log.Info("import pipeline source trigger works again", "pipeline", pipeID)
		}
	}
	if !store {
		return
	}
	if pollErr == nil && next.status.LastError == "" {
		// Healthy and never failed here: only clear a stored failure.
		cur, err := TriggerStatusOf(ctx, p.meta, pipeID)
		if err != nil || cur == nil || cur.State == TriggerHealthy {
			return
		}
		next.status.LastError, next.status.LastErrorTime = cur.LastError, cur.LastErrorTime
		p.trig[key] = &next
	}
	b, err := json.Marshal(next.status)
	if err == nil {
		_, err = p.meta.PutResource(ctx, meta.Resource{ID: pipeID + "/triggerStatus/default", Type: triggerStatusType, Name: "default", Properties: b})
	}
	if err != nil && ctx.Err() == nil {
		p.log.Warn("storing an import pipeline trigger's status failed", "pipeline", pipeID, "error", err)
	}
}

// TriggerStatusOf returns the stored trigger health of an import pipeline,
// or nil when its trigger has never been polled (or only ever worked).
func TriggerStatusOf(ctx context.Context, store meta.ResourceStore, pipeID string) (*TriggerStatus, error) {
	res, err := store.GetResource(ctx, pipeID+"/triggerStatus/default")
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the trigger status of %s: %w", pipeID, err)
	}
	var st TriggerStatus
	if err := json.Unmarshal(res.Properties, &st); err != nil {
		return nil, fmt.Errorf("reading the trigger status of %s: %w", pipeID, err)
	}
	return &st, nil
}
