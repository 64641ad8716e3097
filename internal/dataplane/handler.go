package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/moat-registry/moat/internal/identity"
	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Options configure a Handler.
type Options struct {
	Meta     meta.Store
	Blobs    blob.Store
	Identity *identity.Service
	// Domain: registries other than the default are reached as
	// "{name}.{Domain}", which is also their login server.
	Domain string
	// DefaultRegistry is served for any Host that is not "{name}.{Domain}".
	DefaultRegistry string
	// Logger receives one line per request at info; nil means slog.Default().
	Logger *slog.Logger
	// Metrics registers the request metrics; nil leaves them unregistered.
	Metrics prometheus.Registerer
	// MaxManifestSize bounds a pushed manifest; 0 means manifest.MaxSize.
	MaxManifestSize int64
	// BlobRedirectTTL, when positive, answers blob GETs with a 307 to a
	// signed URL of the blob store valid that long, instead of streaming the
	// bytes through moat. The store must implement blob.Redirector. See
	// getBlob for what this means for network rules.
	BlobRedirectTTL time.Duration
}

// Handler serves the data plane. It is safe for concurrent use; several
// Handlers (in one process or several) may share the same stores.
type Handler struct {
	meta        meta.Store
	blobs       blob.Store
	id          *identity.Service
	suffix      string // "." + lower-case domain
	defaultReg  string
	defaultLS   string // the default registry's login server
	log         *slog.Logger
	metrics     *metrics
	maxManifest int64
	registries  *registryCache
	uploads     keyedMutex
	now         func() time.Time
	audit       *auditor
	redirect    blob.Redirector // nil: stream blobs
	redirectTTL time.Duration
}

// New returns a Handler over the given stores.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Meta == nil:
		return nil, errors.New("dataplane: Options.Meta is required")
	case opts.Blobs == nil:
		return nil, errors.New("dataplane: Options.Blobs is required")
	case opts.Identity == nil:
		return nil, errors.New("dataplane: Options.Identity is required")
	}
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(opts.Domain)), ".")
	if domain == "" || strings.HasPrefix(domain, ".") {
		return nil, fmt.Errorf("dataplane: invalid Options.Domain %q", opts.Domain)
	}
	def := strings.ToLower(strings.TrimSpace(opts.DefaultRegistry))
	if def == "" || strings.ContainsAny(def, "./: ") {
		return nil, fmt.Errorf("dataplane: invalid Options.DefaultRegistry %q", opts.DefaultRegistry)
	}
	maxManifest := opts.MaxManifestSize
	if maxManifest <= 0 {
		maxManifest = manifest.MaxSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	audit, err := newAuditor(opts.Meta, log, opts.Metrics)
	if err != nil {
		return nil, err
	}
	var redirect blob.Redirector
	if opts.BlobRedirectTTL > 0 {
		rd, ok := opts.Blobs.(blob.Redirector)
		if !ok {
			return nil, errors.New("dataplane: blob download redirects need a blob store that signs URLs (azblob); the local directory store cannot")
		}
		if err := rd.CanRedirect(); err != nil {
			return nil, fmt.Errorf("dataplane: blob download redirects: %w", err)
		}
		redirect = rd
	}
	return &Handler{
		redirect:    redirect,
		redirectTTL: opts.BlobRedirectTTL,
		meta:        opts.Meta,
		blobs:       opts.Blobs,
		id:          opts.Identity,
		suffix:      "." + domain,
		defaultReg:  def,
		defaultLS:   def + "." + domain,
		log:         log,
		metrics:     m,
		maxManifest: maxManifest,
		registries:  newRegistryCache(registryCacheTTL, registryCacheMax),
		uploads:     keyedMutex{m: map[string]*keyedLock{}},
		now:         time.Now,
		audit:       audit,
	}, nil
}

// Invalidate drops the cached lookup of registry name, so a change made
// through the management plane is seen by the next request of this process.
func (h *Handler) Invalidate(name string) {
	h.registries.invalidate(strings.ToLower(name))
}

// InvalidateAll drops every cached registry lookup; other replicas' changes
// may have been missed while change notifications were interrupted.
func (h *Handler) InvalidateAll() {
	h.registries.invalidateAll()
}

// PurgeUploads removes uploads not touched for olderThan (their bytes and
// their records) and returns how many it removed. The server calls it
// periodically; it is safe to run on several replicas at once.
func (h *Handler) PurgeUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	stale, err := h.meta.ListUploadsBefore(ctx, h.now().Add(-olderThan))
	if err != nil {
		return 0, fmt.Errorf("dataplane: listing stale uploads: %w", err)
	}
	n := 0
	var errs []error
	for _, u := range stale {
		if err := h.purgeUpload(ctx, u.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("dataplane: purging uploads: %w", errors.Join(errs...))
	}
	return n, nil
}

// purgeUpload removes one upload, holding its lock so that a request of
// this process cannot be appending to it meanwhile.
func (h *Handler) purgeUpload(ctx context.Context, id string) error {
	unlock := h.uploads.lock(id)
	defer unlock()
	if err := h.blobs.Abort(ctx, id); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("aborting upload %s: %w", id, err)
	}
	if err := h.meta.DeleteUpload(ctx, id); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("deleting upload record %s: %w", id, err)
	}
	return nil
}

// Access decisions, as logged.
const (
	decisionNone            = "none"
	decisionAllowed         = "allowed"
	decisionUnauthenticated = "unauthenticated"
	decisionDenied          = "denied"
)

// request is the state of one request. It embeds the status-recording
// response writer so that a request costs one allocation for both.
type request struct {
	statusWriter
	r         *http.Request
	route     route
	registry  string
	login     string // the registry's login server
	principal string
	decision  string
	ip        netip.Addr // the client address (requestIP), resolved once
	netStep   string     // the network decision's step (netrule.Step)
	netReason string     // why the network decision refused, when it did
	endpoint  string     // the private endpoint the request arrived on, "" for the public listener
	err       *apiError
}

// fail records e for the log and sends it.
func (q *request) fail(e *apiError) {
	q.err = e
	writeError(&q.statusWriter, q.r, e)
}

// failErr maps err (see toAPIError) and sends it.
func (q *request) failErr(err error, notFound *errorCode) {
	q.fail(toAPIError(err, notFound))
}

var apiVersionHeader = []string{"registry/2.0"}

// ServeHTTP serves /v2/..., /oauth2/token and /oauth2/exchange; anything
// else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := &request{
		statusWriter: statusWriter{ResponseWriter: w},
		r:            r,
		route:        parseRoute(r.URL.Path),
		decision:     decisionNone,
		ip:           requestIP(r),
	}
	defer h.finish(q, start)
	h.serve(q)
}

func (h *Handler) serve(q *request) {
	r := q.r
	if q.route.Kind == routeUnknown {
		q.fail(&apiError{Code: codeUnsupported, Status: http.StatusNotFound, Message: "no such endpoint: " + r.URL.Path})
		return
	}
	if q.route.Kind != routeToken && q.route.Kind != routeExchange {
		q.Header()["Docker-Distribution-Api-Version"] = apiVersionHeader
	}
	q.registry, q.login = h.registryFor(r.Host)
	if !h.privateArrival(q) { // a private endpoint serves its own registry only
		return
	}
	entry, err := h.registries.lookup(r.Context(), h.meta, q.registry, h.now())
	if err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			q.fail(errorf(codeNameUnknown, "registry %q does not exist", q.registry))
			return
		}
		q.failErr(fmt.Errorf("looking up registry %q: %w", q.registry, err), nil)
		return
	}
	if !h.checkExportPolicy(q, entry) {
		return
	}
	// The network decision comes before everything else the request asks
	// for, the token endpoint included.
	if !h.checkNetwork(q, entry) {
		return
	}
	if !methodAllowed(q.route.Kind, r.Method) {
		q.Header().Set("Allow", allowedMethods(q.route.Kind))
		q.fail(errorf(codeUnsupported, "method %s is not allowed on this endpoint", r.Method))
		return
	}
	if q.route.Kind == routeToken {
		h.serveToken(q)
		return
	}
	if q.route.Kind == routeExchange {
		h.serveExchange(q)
		return
	}
	if q.route.Kind != routeBase && q.route.Kind != routeCatalog && !validName(q.route.Name) {
		q.fail(&apiError{Code: codeNameInvalid, Message: fmt.Sprintf("invalid repository name %q", q.route.Name),
			Detail: nameDetail{Name: q.route.Name}})
		return
	}

	switch q.route.Kind {
	case routeBase:
		if _, ok := h.authorize(q, nil, catalogScope); ok {
			q.Header().Set("Content-Type", "application/json")
			q.Header().Set("Content-Length", "2")
			q.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = io.WriteString(q, "{}")
			}
		}
	case routeCatalog:
		if _, ok := h.authorize(q, catalogScope, catalogScope); ok {
			h.serveCatalog(q)
		}
	case routeManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			if h.authorizeRepo(q, actionsPull) {
				h.getManifest(q)
			}
		case http.MethodPut:
			if h.authorizeRepo(q, actionsPullPush) {
				h.putManifest(q)
			}
		case http.MethodDelete:
			if h.authorizeRepo(q, actionsDelete) {
				h.deleteManifest(q)
			}
		}
	case routeBlob:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			if h.authorizeRepo(q, actionsPull) {
				h.getBlob(q)
			}
		case http.MethodDelete:
			if h.authorizeRepo(q, actionsDelete) {
				h.deleteBlob(q)
			}
		}
	case routeUploadStart:
		h.startUpload(q) // authorizes itself: a mount also needs the source
	case routeUpload:
		if h.authorizeRepo(q, actionsPullPush) {
			switch r.Method {
			case http.MethodGet:
				h.uploadStatus(q)
			case http.MethodPatch:
				h.patchUpload(q)
			case http.MethodPut:
				h.putUpload(q)
			case http.MethodDelete:
				h.cancelUpload(q)
			}
		}
	case routeTags:
		if h.authorizeRepo(q, actionsPull) {
			h.listTags(q)
		}
	case routeReferrers:
		if h.authorizeRepo(q, actionsPull) {
			h.listReferrers(q)
		}
	}
}

type nameDetail struct {
	Name string `json:"name"`
}

// methodAllowed is the method table of the endpoints.
func methodAllowed(k routeKind, m string) bool {
	switch k {
	case routeBase, routeCatalog, routeTags, routeReferrers:
		return m == http.MethodGet || m == http.MethodHead
	case routeToken:
		return m == http.MethodGet || m == http.MethodPost
	case routeExchange:
		return m == http.MethodPost
	case routeManifest:
		return m == http.MethodGet || m == http.MethodHead || m == http.MethodPut || m == http.MethodDelete
	case routeBlob:
		return m == http.MethodGet || m == http.MethodHead || m == http.MethodDelete
	case routeUploadStart:
		return m == http.MethodPost
	case routeUpload:
		return m == http.MethodGet || m == http.MethodPatch || m == http.MethodPut || m == http.MethodDelete
	}
	return false
}

func allowedMethods(k routeKind) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if methodAllowed(k, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// registryFor picks the registry a request addresses from its Host header
// and returns it with its login server. "{name}.{domain}" (any case, any
// port) is registry name; every other host, including bare IP addresses,
// is the default registry.
func (h *Handler) registryFor(host string) (name, login string) {
	host = stripPort(host)
	host = strings.TrimSuffix(host, ".")
	host = strings.ToLower(host) // no allocation when already lower-case
	if len(host) > len(h.suffix) && strings.HasSuffix(host, h.suffix) {
		name := host[:len(host)-len(h.suffix)]
		if !strings.ContainsAny(name, ".[]") {
			return name, host
		}
	}
	return h.defaultReg, h.defaultLS
}

// stripPort removes a ":port" from a Host header value, and the brackets of
// an IPv6 literal.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && allDigits(host[i+1:]) {
		return host[:i]
	}
	return host
}

// finish recovers a panic, then logs and counts the request.
func (h *Handler) finish(q *request, start time.Time) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler { // net/http's sentinel: let the server abort the connection
			panic(v)
		}
		h.log.LogAttrs(q.r.Context(), slog.LevelError, "panic serving request",
			slog.String("method", q.r.Method), slog.String("path", q.r.URL.Path),
			slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
		if !q.wroteHeader {
			q.fail(&apiError{Code: codeUnknown, Cause: fmt.Errorf("panic: %v", v)})
		} else {
			q.err = &apiError{Code: codeUnknown, Cause: fmt.Errorf("panic after the response started: %v", v)}
		}
	}
	status := q.status
	if !q.wroteHeader {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	elapsed := time.Since(start)
	h.metrics.observe(q.route.Kind, q.r.Method, status, elapsed)

	ctx := q.r.Context()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 15)
	attrs = append(attrs,
		slog.String("method", q.r.Method),
		slog.String("path", q.r.URL.Path),
		slog.String("route", q.route.Kind.String()),
		slog.Int("status", status),
		slog.Int64("bytes", q.bytes),
		slog.Duration("duration", elapsed),
		slog.String("registry", q.registry),
		slog.String("repository", q.route.Name),
		slog.String("client_ip", clientAddr(q)),
		slog.String("principal", q.principal),
		slog.String("decision", q.decision),
		slog.String("network", q.netStep),
	)
	if q.netReason != "" {
		attrs = append(attrs, slog.String("network_reason", q.netReason))
	}
	if q.err != nil {
		attrs = append(attrs, slog.String("error_code", q.err.Code.Code))
		if q.err.Cause != nil {
			attrs = append(attrs, slog.String("error", q.err.Cause.Error()))
		}
	}
	h.log.LogAttrs(ctx, level, "request", attrs...)
}

// clientAddr is the client address the server resolved (see clientip), or
// the TCP peer when none was stored.
func clientAddr(q *request) string {
	if q.ip.IsValid() {
		return q.ip.String()
	}
	return q.r.RemoteAddr
}

// statusWriter records the status and the number of body bytes of a
// response. It forwards io.ReaderFrom so that http.ServeContent still reaches
// net/http's sendfile path, and Unwrap for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status = code
		w.wroteHeader = code >= 200 // 1xx are interim answers
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides every method but Write, so io.Copy cannot loop back into
// ReadFrom.
type writerOnly struct{ io.Writer }

var (
	_ http.Handler  = (*Handler)(nil)
	_ io.ReaderFrom = (*statusWriter)(nil)
	_ http.Flusher  = (*statusWriter)(nil)
)
