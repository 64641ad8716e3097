package arm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/replica"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

// importImage is an LRO: POST …/registries/{name}/importImage answers 202
// with a Location, …/registries/{name}/importOperations/{id}, which answers
// 202 while the import runs, 200 when it succeeded and the ARM error (4xx)
// when it failed: the SDK keeps polling on 5xx, so a failure is never one.
//
// An operation's state is a resource of the metadata store,
// …/registries/{name}/importOperations/{id} (type importOpType), so any
// replica answers the poll. The replica running the import holds a lease on
// it: it renews the record's "expires" every importLease/3 (storing the
// progress too; a poll reaching that replica reads the live counters). A
// poll that finds a Running operation past its expiry (its replica died or
// lost the database for a whole lease) marks it Failed (409
// ImportInterrupted), conditionally on the record's version, and a runner
// whose renewal finds the record changed stops its import. The import
// itself stores each manifest in its own transaction and sets tags last, so
// an interrupted import leaves no tag on a partial image; running it again
// finishes it. Finished operations stay readable for importKeep. Expiry
// compares wall clocks of replicas: they must agree to well within the
// lease (--pipeline-lease-ttl).

const (
	importAction = "importImage"
	importOpsSeg = "importOperations"
	// importRetryMs is the polling interval suggested to clients.
	importRetryMs = "250"
	// importTimeout bounds one import: seconds within the deployment, the
	// download's time from another registry.
	importTimeout = 6 * time.Hour
	// importKeep is how long a finished operation's result stays readable.
	importKeep = time.Hour
)

// importOpType is an import operation's resource type.
const importOpType = "Microsoft.ContainerRegistry/registries/importOperations"

// Operation states.
const (
	opRunning   = "Running"
	opSucceeded = "Succeeded"
	opFailed    = "Failed"
)

// importOpRecord is an operation's stored state.
type importOpRecord struct {
	Status   string                    `json:"status"`
	Holder   string                    `json:"holder"`
	Expires  time.Time                 `json:"expires"`
	Finished *time.Time                `json:"finished,omitempty"`
	Progress transfer.ProgressSnapshot `json:"progress"`
	Result   *importStatusBody         `json:"result,omitempty"`
	Error    *importOpError            `json:"error,omitempty"`
}

// importOpError is a failed operation's ARM error.
type importOpError struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

// defaultImportLease is the lease of a running import when Options leave it
// zero.
const defaultImportLease = 30 * time.Second

// importHolder names this process in the records it runs.
var importHolder = replica.NewHolderID()

// liveImports are the progress counters of the imports this process runs,
// by operation id: a poll reaching it answers them live.
var liveImports = struct {
	sync.Mutex
	m map[string]*transfer.Progress
}{m: map[string]*transfer.Progress{}}

// interruptedOp is the error of an operation whose runner stopped renewing.
func interruptedOp() *importOpError {
	return &importOpError{Status: http.StatusConflict, Code: "ImportInterrupted",
		Message: "the import was interrupted: the moat replica running it stopped before it finished (no tag was set on a partial image); import again"}
}

func (h *handler) importLease() time.Duration {
	if h.o.ImportLease > 0 {
		return h.o.ImportLease
	}
	return defaultImportLease
}

func opID(regID, id string) string { return regID + "/" + importOpsSeg + "/" + id }

func decodeOp(res meta.Resource) (importOpRecord, error) {
	var rec importOpRecord
	if err := json.Unmarshal(res.Properties, &rec); err != nil {
		return rec, fmt.Errorf("reading import operation %s: %w", res.ID, err)
	}
	return rec, nil
}

// putOp stores rec over res (conditionally on res.Version when non-zero).
func (h *handler) putOp(ctx context.Context, res meta.Resource, rec importOpRecord) (meta.Resource, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return res, err
	}
	res.Properties = b
	return h.o.Meta.PutResource(ctx, res)
}

// pruneOps deletes the registry's operations finished more than importKeep
// ago.
func (h *handler) pruneOps(ctx context.Context, regID string, now time.Time) {
	ops, err := h.o.Meta.ListResources(ctx, regID+"/", importOpType)
	if err != nil {
		h.log.WarnContext(ctx, "listing import operations to prune", "error", err)
		return
	}
	for _, res := range ops {
		rec, err := decodeOp(res)
		if err == nil && rec.Finished != nil && now.Sub(*rec.Finished) > importKeep {
			if err := h.o.Meta.DeleteResource(ctx, res.ID); err != nil && !errors.Is(err, meta.ErrNotFound) {
				h.log.WarnContext(ctx, "pruning an import operation", "operation", res.ID, "error", err)
			}
		}
	}
}

// importRoute recognises the import paths: name and op ("" for the action).
type importRoute struct {
	sub, rg, name, op string
}

func parseImportRoute(path string) (importRoute, bool) {
	rt, rest, ok := registrySubpath(path, 2)
	if !ok {
		return importRoute{}, false
	}
	ir := importRoute{sub: rt.sub, rg: rt.rg, name: rt.name}
	switch {
	case len(rest) == 1 && eq(rest[0], importAction):
		return ir, true
	case len(rest) == 2 && eq(rest[0], importOpsSeg):
		ir.op = rest[1]
		return ir, true
	}
	return importRoute{}, false
}

// serveImport answers the import paths and reports whether it did. It runs
// after authorization.
func (h *handler) serveImport(w http.ResponseWriter, r *http.Request) bool {
	ir, ok := parseImportRoute(r.URL.Path)
	if !ok {
		return false
	}
	if _, err := h.apiVersion(r, false); err != nil {
		h.writeError(w, r, err)
		return true
	}
	id := registryID(ir.sub, ir.rg, ir.name)
	if ir.op == "" {
		h.only(w, r, http.MethodPost, func() error {
			if err := h.require(r, rbac.ActionImportImage, id); err != nil {
				return err
			}
			return h.startImport(w, r, ir)
		})
	} else {
		h.only(w, r, http.MethodGet, func() error {
			if err := h.require(r, actionImportOpStatus, id); err != nil {
				return err
			}
			return h.importStatus(w, r, ir)
		})
	}
	return true
}

// Import actions (ARM), checked with h.require.
const (
	// actionImport is needed on the target registry.
	actionImport = "Microsoft.ContainerRegistry/registries/importImage/action"
	// actionPull is needed on a source registry of this deployment.
	actionPull = "Microsoft.ContainerRegistry/registries/pull/read"
	// actionRead is needed to poll an import operation of the registry.
	actionRead = "Microsoft.ContainerRegistry/registries/read"
)

type importBody struct {
	Source struct {
		ResourceID  string `json:"resourceId"`
		RegistryURI string `json:"registryUri"`
		SourceImage string `json:"sourceImage"`
		Credentials *struct {
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"credentials"`
	} `json:"source"`
	TargetTags                 []string `json:"targetTags"`
	UntaggedTargetRepositories []string `json:"untaggedTargetRepositories"`
	Mode                       string   `json:"mode"`
}

func (h *handler) startImport(w http.ResponseWriter, r *http.Request, ir importRoute) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in importBody
	if err := json.Unmarshal(body, &in); err != nil {
		return newError(http.StatusBadRequest, "InvalidRequestContent", "the request body is not an import request: %v", err)
	}
	if err := h.require(r, actionImport, registryID(ir.sub, ir.rg, ir.name)); err != nil {
		return err
	}
	rt := route{sub: ir.sub, rg: ir.rg, name: ir.name}
	stored, _, err := h.load(r.Context(), rt)
	if err != nil {
		return err
	}
	req := transfer.ImportRequest{
		TargetRegistry: stored.Name,
		Domain:         h.o.Domain,
		Source: transfer.Source{ResourceID: in.Source.ResourceID, RegistryURI: in.Source.RegistryURI,
			SourceImage: in.Source.SourceImage},
		TargetTags:                 in.TargetTags,
		UntaggedTargetRepositories: in.UntaggedTargetRepositories,
		Mode:                       in.Mode,
		Remote:                     h.o.Import,
		Progress:                   &transfer.Progress{},
	}
	if c := in.Source.Credentials; c != nil {
		req.Source.Username, req.Source.Password = c.Username, c.Password
	}
	// What needs no store is refused at once, as ACR does.
	if err := transfer.Validate(req); err != nil {
		return importError(err)
	}
	// Reading a source of this deployment needs pull on it. A source that
	// does not exist is left to the import, which names it.
	if name := transfer.SourceRegistryName(req); name != "" {
		src, err := h.o.Meta.GetRegistry(r.Context(), name)
		switch {
		case err == nil:
			if err := h.require(r, actionPull, src.ResourceID); err != nil {
				return err
			}
		case !errors.Is(err, meta.ErrNotFound):
			return err
		}
	}

	id, err := newOpID()
	if err != nil {
		return err
	}
	regID := registryID(ir.sub, ir.rg, ir.name)
	now := time.Now()
	h.pruneOps(r.Context(), regID, now)
	lease := h.importLease()
	opRes, err := h.putOp(r.Context(), meta.Resource{ID: opID(regID, id), Type: importOpType, Name: id},
		importOpRecord{Status: opRunning, Holder: importHolder, Expires: now.Add(lease)})
	if err != nil {
		return fmt.Errorf("storing the import operation: %w", err)
	}
	liveImports.Lock()
	liveImports.m[id] = req.Progress
	liveImports.Unlock()

	// The import outlives the request: the client polls for its end.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), importTimeout)
	go func() {
		defer cancel()
		defer func() {
			liveImports.Lock()
			delete(liveImports.m, id)
			liveImports.Unlock()
		}()
		renewed := make(chan meta.Resource, 1)
		stop := make(chan struct{})
		go func() { renewed <- h.renewOp(ctx, cancel, opRes, req.Progress, lease, stop) }()
		res, err := transfer.Import(ctx, h.o.Meta, req)
		close(stop)
		opRes := <-renewed
		rec := importOpRecord{Status: opSucceeded, Holder: importHolder, Progress: req.Progress.Snapshot()}
		if err != nil {
			ae := importError(err)
			if ae.code == codeImportFailed {
				h.log.ErrorContext(ctx, "import failed", "registry", req.TargetRegistry, "source", req.Source.SourceImage, "err", err)
			}
			rec.Status, rec.Error = opFailed, &importOpError{Status: ae.status, Code: ae.code, Message: ae.message, Target: ae.target}
		} else {
			h.log.InfoContext(ctx, "imported", "registry", req.TargetRegistry, "from", res.SourceRegistry,
				"digest", res.Digest, "manifests", res.Manifests, "tags", res.Tags)
			tags := res.Tags
			if tags == nil {
				tags = []string{}
			}
			rec.Result = &importStatusBody{Status: opSucceeded, SourceRegistry: res.SourceRegistry,
				Digest: res.Digest.String(), Manifests: res.Manifests, Tags: tags, Repositories: res.Repositories}
		}
		fin := time.Now()
		rec.Finished, rec.Expires = &fin, fin
		if _, err := h.putOp(context.WithoutCancel(ctx), opRes, rec); err != nil {
			// Another replica declared it interrupted (we stopped renewing in
			// time); its answer stands.
			h.log.ErrorContext(ctx, "storing an import operation's outcome failed", "operation", opRes.ID, "error", err)
		}
	}()

	loc := baseURL(r) + (&url.URL{Path: "/subscriptions/" + ir.sub + "/resourceGroups/" + ir.rg + "/providers/" + providerNS +
		"/registries/" + ir.name + "/" + importOpsSeg + "/" + id}).EscapedPath() + "?api-version=" + url.QueryEscape(r.URL.Query().Get("api-version"))
	w.Header().Set("Location", loc)
	w.Header().Set("retry-after-ms", importRetryMs)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// renewOp extends the operation's lease and stores its progress every
// lease/3 until stop is closed, and returns the record as last stored. When
// a renewal finds the record changed (another replica declared the import
// interrupted) or renewing fails until the lease may have expired, it
// cancels the import.
func (h *handler) renewOp(ctx context.Context, cancel context.CancelFunc, res meta.Resource, prog *transfer.Progress,
	lease time.Duration, stop <-chan struct{}) meta.Resource {
	t := time.NewTicker(lease / 3)
	defer t.Stop()
	deadline := time.Now().Add(lease)
	for {
		select {
		case <-stop:
			return res
		case <-t.C:
		}
		sent := time.Now()
		next, err := h.putOp(ctx, res, importOpRecord{Status: opRunning, Holder: importHolder, Expires: sent.Add(lease), Progress: prog.Snapshot()})
		switch {
		case err == nil:
			res, deadline = next, sent.Add(lease)
		case errors.Is(err, meta.ErrConflict) || errors.Is(err, meta.ErrNotFound):
			h.log.WarnContext(ctx, "import operation taken over (declared interrupted); stopping the import", "operation", res.ID)
			cancel()
			<-stop
			return res
		case time.Now().Add(lease / 3).After(deadline):
			h.log.ErrorContext(ctx, "renewing an import operation failed until its lease may have expired; stopping the import", "operation", res.ID, "error", err)
			cancel()
			<-stop
			return res
		default:
			h.log.WarnContext(ctx, "renewing an import operation failed; trying again", "operation", res.ID, "error", err)
		}
	}
}

func newOpID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// importRunningBody is the 202 answer while an import runs.
type importRunningBody struct {
	Status   string                    `json:"status"`
	Progress transfer.ProgressSnapshot `json:"progress"`
}

// importStatusBody is the 200 answer of a finished import.
type importStatusBody struct {
	Status         string   `json:"status"`
	SourceRegistry string   `json:"sourceRegistry"`
	Digest         string   `json:"digest"`
	Manifests      int      `json:"manifests"`
	Tags           []string `json:"tags"`
	Repositories   []string `json:"repositories"`
}

func (h *handler) importStatus(w http.ResponseWriter, r *http.Request, ir importRoute) error {
	// An operation's status is the registry's business: reading it is a read.
	if err := h.require(r, actionRead, registryID(ir.sub, ir.rg, ir.name)); err != nil {
		return err
	}
	regID := registryID(ir.sub, ir.rg, ir.name)
	res, err := h.o.Meta.GetResource(r.Context(), opID(regID, ir.op))
	if errors.Is(err, meta.ErrNotFound) || err == nil && !strings.EqualFold(res.Type, importOpType) {
		return newError(http.StatusNotFound, "OperationNotFound",
			"no import operation %q on registry '%s' (a finished import's status is kept for an hour)", ir.op, ir.name)
	}
	if err != nil {
		return err
	}
	rec, err := decodeOp(res)
	if err != nil {
		return err
	}
	if rec.Status == opRunning && time.Now().After(rec.Expires) {
		// Its replica stopped renewing: the import is over, unfinished.
		fin := time.Now()
		failed := importOpRecord{Status: opFailed, Holder: rec.Holder, Expires: fin, Finished: &fin, Progress: rec.Progress, Error: interruptedOp()}
		switch _, err := h.putOp(r.Context(), res, failed); {
		case err == nil:
			h.log.WarnContext(r.Context(), "import operation interrupted: its replica stopped renewing it", "operation", res.ID, "holder", rec.Holder)
			rec = failed
		case errors.Is(err, meta.ErrConflict):
			// Renewed or finished meanwhile: answer Running; the next poll
			// reads the news.
		default:
			return err
		}
	}
	switch rec.Status {
	case opRunning:
		liveImports.Lock()
		if p, ok := liveImports.m[ir.op]; ok {
			rec.Progress = p.Snapshot()
		}
		liveImports.Unlock()
		w.Header().Set("Location", baseURL(r)+r.URL.RequestURI())
		w.Header().Set("retry-after-ms", importRetryMs)
		writeJSON(w, http.StatusAccepted, importRunningBody{Status: "Running", Progress: rec.Progress})
		return nil
	case opSucceeded:
		if rec.Result != nil {
			writeJSON(w, http.StatusOK, rec.Result)
			return nil
		}
	case opFailed:
		if e := rec.Error; e != nil {
			ae := newError(e.Status, e.Code, "%s", e.Message)
			ae.target = e.Target
			return ae
		}
	}
	return fmt.Errorf("import operation %s has an unreadable state %q", res.ID, rec.Status)
}

const codeImportFailed = "ImportFailed"

// importError maps an import failure to its ARM error; always 4xx, since a
// 5xx would keep the SDK polling.
func importError(err error) *apiError {
	var te *transfer.Error
	if !errors.As(err, &te) {
		return newError(http.StatusConflict, codeImportFailed, "the import failed on the server; see the server log")
	}
	var ae *apiError
	switch te.Kind {
	case transfer.KindNotFound:
		code := "ResourceNotFound"
		if te.Field == "source.sourceImage" {
			code = "ImageNotFound"
		}
		ae = newError(http.StatusNotFound, code, "%s", te.Message)
	case transfer.KindTagExists:
		ae = newError(http.StatusConflict, "TagAlreadyExists", "%s", te.Message)
	case transfer.KindExportDisabled:
		ae = newError(http.StatusForbidden, "ExportPolicyDisabled", "%s", te.Message)
	case transfer.KindNetworkRestricted:
		ae = newError(http.StatusForbidden, "ImportSourceNetworkRestricted", "%s", te.Message)
	case transfer.KindUnsupported:
		ae = newError(http.StatusBadRequest, "ImportSourceNotSupported", "%s", te.Message)
	case transfer.KindSourceAuth:
		// Not 401: the caller authenticated to moat; the source refused moat.
		ae = newError(http.StatusBadRequest, "InvalidSourceCredentials", "%s", te.Message)
	case transfer.KindSourceDenied:
		ae = newError(http.StatusForbidden, "ImportSourceAccessDenied", "%s", te.Message)
	case transfer.KindUnreachable:
		ae = newError(http.StatusFailedDependency, "ImportSourceUnreachable", "%s", te.Message)
	case transfer.KindSourceInvalid:
		ae = newError(http.StatusUnprocessableEntity, "InvalidSourceImage", "%s", te.Message)
	default:
		ae = newError(http.StatusBadRequest, "InvalidParameter", "%s", te.Message)
	}
	ae.target = te.Field
	return ae
}
