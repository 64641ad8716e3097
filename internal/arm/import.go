package arm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moat-registry/moat/internal/rbac"
	"github.com/moat-registry/moat/internal/storage/meta"
	"github.com/moat-registry/moat/internal/transfer"
)

// importImage is an LRO: POST …/registries/{name}/importImage answers 202
// with a Location, …/registries/{name}/importOperations/{id}, which answers
// 202 while the import runs, 200 when it succeeded and the ARM error (4xx)
// when it failed: the SDK keeps polling on 5xx, so a failure is never one.
//
// Operation state lives in this process's memory: a restart (or another
// replica answering the poll) loses it and the poll answers 404
// OperationNotFound. The import itself stores each manifest in its own
// transaction and sets tags last, so an interrupted import leaves no tag on
// a partial image; running it again finishes it.

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

type importOp struct {
	registryID string // the target's ARM id as requested
	progress   *transfer.Progress
	done       bool
	finished   time.Time
	result     transfer.ImportResult
	err        *apiError
}

// importOps is the process's table of import operations; ids are random, so
// handlers of one process can share it.
var importOps = struct {
	sync.Mutex
	m map[string]*importOp
}{m: map[string]*importOp{}}

// importRoute recognises the import paths: name and op ("" for the action).
type importRoute struct {
	sub, rg, name, op string
}

func parseImportRoute(path string) (importRoute, bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) < 9 || !eq(seg[0], "subscriptions") || !eq(seg[2], "resourcegroups") || !eq(seg[4], "providers") ||
		!eq(seg[5], providerNS) || !eq(seg[6], registriesRT) {
		return importRoute{}, false
	}
	for _, s := range seg {
		if s == "" {
			return importRoute{}, false
		}
	}
	ir := importRoute{sub: seg[1], rg: seg[3], name: seg[7]}
	switch {
	case len(seg) == 9 && eq(seg[8], importAction):
		return ir, true
	case len(seg) == 10 && eq(seg[8], importOpsSeg):
		ir.op = seg[9]
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
	op := &importOp{registryID: registryID(ir.sub, ir.rg, ir.name), progress: req.Progress}
	importOps.Lock()
	now := time.Now()
	for k, o := range importOps.m {
		if o.done && now.Sub(o.finished) > importKeep {
			delete(importOps.m, k)
		}
	}
	importOps.m[id] = op
	importOps.Unlock()

	// The import outlives the request: the client polls for its end.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), importTimeout)
	go func() {
		defer cancel()
		res, err := transfer.Import(ctx, h.o.Meta, req)
		var ae *apiError
		if err != nil {
			ae = importError(err)
			if ae.code == codeImportFailed {
				h.log.ErrorContext(ctx, "import failed", "registry", req.TargetRegistry, "source", req.Source.SourceImage, "err", err)
			}
		} else {
			h.log.InfoContext(ctx, "imported", "registry", req.TargetRegistry, "from", res.SourceRegistry,
				"digest", res.Digest, "manifests", res.Manifests, "tags", res.Tags)
		}
		importOps.Lock()
		op.done, op.finished, op.result, op.err = true, time.Now(), res, ae
		importOps.Unlock()
	}()

	loc := baseURL(r) + (&url.URL{Path: "/subscriptions/" + ir.sub + "/resourceGroups/" + ir.rg + "/providers/" + providerNS +
		"/registries/" + ir.name + "/" + importOpsSeg + "/" + id}).EscapedPath() + "?api-version=" + url.QueryEscape(r.URL.Query().Get("api-version"))
	w.Header().Set("Location", loc)
	w.Header().Set("retry-after-ms", importRetryMs)
	w.WriteHeader(http.StatusAccepted)
	return nil
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
	importOps.Lock()
	op, ok := importOps.m[ir.op]
	var done bool
	var res transfer.ImportResult
	var ae *apiError
	var prog transfer.ProgressSnapshot
	if ok {
		ok = strings.EqualFold(op.registryID, registryID(ir.sub, ir.rg, ir.name))
		done, res, ae = op.done, op.result, op.err
		prog = op.progress.Snapshot()
	}
	importOps.Unlock()
	if !ok {
		return newError(http.StatusNotFound, "OperationNotFound",
			"no import operation %q on registry '%s' (import status is kept in memory for an hour and lost when moat restarts)", ir.op, ir.name)
	}
	if !done {
		w.Header().Set("Location", baseURL(r)+r.URL.RequestURI())
		w.Header().Set("retry-after-ms", importRetryMs)
		writeJSON(w, http.StatusAccepted, importRunningBody{Status: "Running", Progress: prog})
		return nil
	}
	if ae != nil {
		return ae
	}
	tags, repos := res.Tags, res.Repositories
	if tags == nil {
		tags = []string{}
	}
	writeJSON(w, http.StatusOK, importStatusBody{Status: "Succeeded", SourceRegistry: res.SourceRegistry,
		Digest: res.Digest.String(), Manifests: res.Manifests, Tags: tags, Repositories: repos})
	return nil
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
