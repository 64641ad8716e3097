package transfer

// Import from a registry outside the deployment (source.registryUri that is
// not one of this deployment's login servers).
//
// The client is go-containerregistry's: its ping/token handshake, its
// manifest fetch (which checks a fetched-by-digest manifest against its
// digest) and its referrers call (the referrers API, falling back to the
// tag schema sha256-<hex>). Blobs are fetched with plain GETs through the
// authenticated transport so that each one streams straight into the blob
// store and a broken transfer resumes with a Range request where it stopped.
//
// Decisions:
//   - Nothing is written to the metadata store before every manifest of the
//     image was fetched and every blob is committed in the blob store. A
//     failed blob upload is aborted. A blob committed before another failed
//     stays in the blob store, linked nowhere (garbage collection's business):
//     blobs are content-addressed, so it is never wrong, only unreferenced.
//   - Transport errors, 408, 429 and 5xx answers, bodies cut short and
//     downloads stalled for StallTimeout are retried (Attempts per blob, with
//     exponential backoff), resuming where they stopped; 4xx answers and a
//     digest mismatch are not: they will not get better.
//   - Plain HTTP is refused for every request (redirects and token servers
//     included) unless PlainHTTPLoopback is set and the host is a loopback
//     literal or "localhost": credentials never travel in clear over a
//     network.
//   - Every request carries the importer markers (marker.go).

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Defaults of Remote.
const (
	DefaultConcurrency = 4
	DefaultAttempts    = 5
	DefaultBackoff     = 200 * time.Millisecond
	// DefaultStallTimeout: see Remote.StallTimeout.
	DefaultStallTimeout = 2 * time.Minute
	maxBackoff          = 5 * time.Second
)

// Remote configures imports from registries outside the deployment. The
// zero value of every field but Blobs is a sensible default.
type Remote struct {
	// Blobs is the blob store layers are streamed into; required.
	Blobs blob.Store
	// RootCAs are the roots trusted for source registries; nil means the
	// system roots. Extra CAs (e.g. another moat deployment's local CA) are
	// added to a copy of the system pool by the caller.
	RootCAs *x509.CertPool
	// PlainHTTPLoopback allows http:// to sources on loopback literals and
	// "localhost" (tests, a local registry); every other plain HTTP request
	// is refused.
	PlainHTTPLoopback bool
	// Concurrency bounds the blobs fetched at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Attempts bounds the tries per blob; 0 means DefaultAttempts.
	Attempts int
	// Backoff is the first retry delay, doubled per retry; 0 means
	// DefaultBackoff.
	Backoff time.Duration
	// StallTimeout ends (and retries) a blob download that received nothing
	// for this long; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// Logger receives retries; nil means slog.Default().
	Logger *slog.Logger
}

// Progress counts an import's work; the API layer reads it while the
// import runs. Totals are known once every manifest was fetched.
type Progress struct {
	Manifests  atomic.Int64
	BlobsTotal atomic.Int64
	BlobsDone  atomic.Int64
	BytesTotal atomic.Int64
	BytesDone  atomic.Int64
}

// counter names a counter of Progress.
type counter int

const (
	cManifests counter = iota
	cBlobsTotal
	cBlobsDone
	cBytesTotal
	cBytesDone
)

// add counts n on counter c; a nil Progress counts nothing.
func (p *Progress) add(c counter, n int64) {
	if p == nil {
		return
	}
	[]*atomic.Int64{&p.Manifests, &p.BlobsTotal, &p.BlobsDone, &p.BytesTotal, &p.BytesDone}[c].Add(n)
}

// ProgressSnapshot is a copy of Progress's counters.
type ProgressSnapshot struct {
	Manifests  int64 `json:"manifests"`
	BlobsTotal int64 `json:"blobsTotal"`
	BlobsDone  int64 `json:"blobsDone"`
	BytesTotal int64 `json:"bytesTotal"`
	BytesDone  int64 `json:"bytesDone"`
}

// Snapshot reads the counters.
func (p *Progress) Snapshot() ProgressSnapshot {
	if p == nil {
		return ProgressSnapshot{}
	}
	return ProgressSnapshot{Manifests: p.Manifests.Load(), BlobsTotal: p.BlobsTotal.Load(), BlobsDone: p.BlobsDone.Load(),
		BytesTotal: p.BytesTotal.Load(), BytesDone: p.BytesDone.Load()}
}

// remoteHost is a parsed source.registryUri of an outside registry.
type remoteHost struct {
	host  string // host[:port]
	plain bool   // the URI said http://
}

// parseRegistryURI reads "host[:port]", "https://host[:port]" or
// "http://host[:port]" (a trailing slash allowed); nothing else.
func parseRegistryURI(uri string) (remoteHost, error) {
	var rh remoteHost
	s := strings.TrimSuffix(strings.TrimSpace(uri), "/")
	switch {
	case strings.HasPrefix(strings.ToLower(s), "https://"):
		s = s[len("https://"):]
	case strings.HasPrefix(strings.ToLower(s), "http://"):
		s, rh.plain = s[len("http://"):], true
	case strings.Contains(s, "://"):
		return rh, fail(KindInvalid, "source.registryUri", "source.registryUri %q has a scheme other than https:// or http://", uri)
	}
	u, err := url.Parse("//" + s)
	if s == "" || err != nil || u.Host != s || !validHostname(u.Hostname()) {
		return rh, fail(KindInvalid, "source.registryUri", "source.registryUri %q is not a registry host (host[:port], no path)", uri)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return rh, fail(KindInvalid, "source.registryUri", "source.registryUri %q has an invalid port", uri)
		}
	}
	rh.host = strings.ToLower(s)
	return rh, nil
}

// hostnameRE is a DNS name: dot-separated labels of letters, digits and
// inner hyphens.
var hostnameRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// validHostname accepts a DNS name or an IP literal (IPv6 without zone).
func validHostname(h string) bool {
	if ip := net.ParseIP(h); ip != nil {
		return true
	}
	return len(h) <= 253 && hostnameRE.MatchString(h)
}

// isLoopbackHost reports whether hostport names this machine without a
// resolver's help: a loopback IP literal or "localhost".
func isLoopbackHost(hostport string) bool {
	h := hostport
	if sh, _, err := net.SplitHostPort(hostport); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validateRemote checks what an outside source needs besides the image.
func validateRemote(req ImportRequest) error {
	rh, err := parseRegistryURI(req.Source.RegistryURI)
	if err != nil {
		return err
	}
	if rh.plain && !isLoopbackHost(rh.host) {
		return fail(KindInvalid, "source.registryUri", "source.registryUri %q: plain HTTP is allowed only to a loopback source", req.Source.RegistryURI)
	}
	s := req.Source
	if s.Password == "" && s.Username != "" {
		return fail(KindInvalid, "source.credentials.password", "source.credentials.password is required with source.credentials.username")
	}
	if s.Username == "" && s.Password != "" {
		return fail(KindInvalid, "source.credentials.username", "source.credentials.username is required with source.credentials.password for a registry outside this deployment")
	}
	return nil
}

// errPlainHTTP refuses a clear-text request.
var errPlainHTTP = errors.New("plain HTTP to a source registry is refused (only https, or http to a loopback source when the server allows it)")

// importerTransport refuses plain HTTP where not allowed and marks every
// request as moat's importer's.
type importerTransport struct {
	inner         http.RoundTripper
	plainLoopback bool
}

func (t *importerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && (r.URL.Scheme != "http" || !t.plainLoopback || !isLoopbackHost(r.URL.Host)) {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Redacted(), errPlainHTTP)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not change its caller's request
	r.Header.Set(ImportHeader, ImportHeaderValue)
	ua := r.Header.Get("User-Agent")
	if ua == "" {
		ua = importUserAgent
	} else {
		ua += " " + importUserAgent
	}
	r.Header.Set("User-Agent", ua)
	return t.inner.RoundTrip(r)
}

// remoteRun is one import from an outside registry.
type remoteRun struct {
	cfg      *Remote
	log      *slog.Logger
	progress *Progress
	host     string
	repo     name.Repository
	auth     http.RoundTripper // authenticated for pull on repo
	client   *http.Client      // over auth, for blobs
	opts     []remote.Option
	hasCreds bool
}

// newRemoteRun connects to the source (ping and, when asked for, the token
// handshake) for pull on the source repository.
func newRemoteRun(ctx context.Context, cfg *Remote, req ImportRequest, src imageRef, progress *Progress) (*remoteRun, error) {
	rh, err := parseRegistryURI(req.Source.RegistryURI)
	if err != nil {
		return nil, err
	}
	nopts := []name.Option{name.WeakValidation}
	if cfg.PlainHTTPLoopback && isLoopbackHost(rh.host) {
		nopts = append(nopts, name.Insecure) // try https, then http
	}
	// The registry first, then the repository in it: parsed together, a
	// host without a dot or port would be taken for a Docker Hub namespace.
	reg, err := name.NewRegistry(rh.host, nopts...)
	if err != nil {
		return nil, fail(KindInvalid, "source.registryUri", "source.registryUri %q is not a registry host: %v", req.Source.RegistryURI, err)
	}
	repo := reg.Repo(src.repo)
	tlsConf := &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	marked := &importerTransport{inner: base, plainLoopback: cfg.PlainHTTPLoopback}
	auth := authn.Anonymous
	if req.Source.Username != "" {
		auth = &authn.Basic{Username: req.Source.Username, Password: req.Source.Password}
	}
	x := &remoteRun{cfg: cfg, log: cfg.Logger, progress: progress, host: rh.host, repo: repo, hasCreds: req.Source.Username != ""}
	if x.log == nil {
		x.log = slog.Default()
	}
	// Manifests and referrers go through ggcr's retrying transport; blobs
	// retry themselves (they resume).
	rt := transport.NewRetry(transport.NewUserAgent(marked, ""), transport.WithRetryStatusCodes(
		http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	x.auth, err = transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		base.CloseIdleConnections()
		return nil, x.classify(err, "connecting to")
	}
	x.client = &http.Client{Transport: x.auth}
	x.opts = []remote.Option{remote.WithTransport(x.auth), remote.WithContext(ctx)}
	return x, nil
}

func (x *remoteRun) close() { x.client.CloseIdleConnections() }

// classify turns a client error into an *Error the API can answer with;
// what is the verb phrase of what failed ("fetching manifest …").
func (x *remoteRun) classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			if det, ok := d.Detail.(map[string]any); ok && det["policy"] == exportPolicyName {
				return fail(KindExportDisabled, "source", "the source registry %s refused the import: %s", x.host, d.Message)
			}
		}
		msg := te.Error()
		switch te.StatusCode {
		case http.StatusUnauthorized:
			if !x.hasCreds {
				return fail(KindSourceAuth, "source.credentials", "the source registry %s requires credentials (source.credentials) for %s: %s", x.host, x.repo.RepositoryStr(), msg)
			}
			return fail(KindSourceAuth, "source.credentials", "the source registry %s refused the credentials for %s: %s", x.host, x.repo.RepositoryStr(), msg)
		case http.StatusForbidden:
			return fail(KindSourceDenied, "source", "the source registry %s denied %s %s: %s", x.host, what, x.repo.RepositoryStr(), msg)
		case http.StatusNotFound:
			return fail(KindNotFound, "source.sourceImage", "%s %s on the source registry %s: not found: %s", what, x.repo.RepositoryStr(), x.host, msg)
		}
		return fail(KindUnreachable, "source", "%s %s on the source registry %s failed: %s", what, x.repo.RepositoryStr(), x.host, msg)
	}
	if errors.Is(err, errPlainHTTP) {
		return fail(KindUnreachable, "source.registryUri", "%s the source registry %s: %v", what, x.host, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s on %s: %w", what, x.repo.RepositoryStr(), x.host, err)
	}
	return fail(KindUnreachable, "source", "%s %s on the source registry %s failed: %v", what, x.repo.RepositoryStr(), x.host, err)
}

// fetchManifest reads one manifest (by tag or digest) and checks it: a
// known media type, within the size limit, and the digest asked for.
func (x *remoteRun) fetchManifest(ref name.Reference, want digest.Digest) (meta.Manifest, error) {
	d, err := remote.Get(ref, x.opts...)
	if err != nil {
		return meta.Manifest{}, x.classify(err, "fetching manifest "+ref.Identifier()+" of")
	}
	if int64(len(d.Manifest)) > manifest.MaxSize {
		return meta.Manifest{}, fail(KindSourceInvalid, "source.sourceImage", "manifest %s of %s on %s is %d bytes, more than moat stores (%d)", ref.Identifier(), x.repo.RepositoryStr(), x.host, len(d.Manifest), manifest.MaxSize)
	}
	alg := digest.SHA256
	if want != "" {
		alg = want.Algorithm()
	}
	if !alg.Available() {
		return meta.Manifest{}, fail(KindInvalid, "source.sourceImage", "digest algorithm %q is not supported", alg)
	}
	got := alg.FromBytes(d.Manifest)
	if want != "" && got != want {
		return meta.Manifest{}, fail(KindSourceInvalid, "source.sourceImage", "the source registry %s sent manifest %s of %s with digest %s: digest mismatch", x.host, want, x.repo.RepositoryStr(), got)
	}
	return meta.Manifest{Digest: got, MediaType: string(d.MediaType), Content: d.Manifest}, nil
}

// descriptorSizes reads the config and layer sizes of an image manifest.
func descriptorSizes(content []byte) (map[digest.Digest]int64, error) {
	var doc struct {
		Config *struct {
			Digest digest.Digest `json:"digest"`
			Size   int64         `json:"size"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
			Size   int64         `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(content, &doc); err != nil {
		return nil, err
	}
	out := map[digest.Digest]int64{}
	if doc.Config != nil {
		out[doc.Config.Digest] = doc.Config.Size
	}
	for _, l := range doc.Layers {
		out[l.Digest] = l.Size
	}
	return out, nil
}

// collect fetches the image graph from the source, children before parents
// and referrers after their subject (the order PutManifest needs), with the
// size of every blob.
func (x *remoteRun) collect(ctx context.Context, root meta.Manifest) ([]node, map[digest.Digest]int64, error) {
	var out []node
	blobs := map[digest.Digest]int64{}
	seen := map[digest.Digest]bool{}
	var visit func(m meta.Manifest) error
	visit = func(m meta.Manifest) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if seen[m.Digest] {
			return nil
		}
		seen[m.Digest] = true
		if len(seen) > maxManifests {
			return fail(KindInvalid, "source.sourceImage", "the source image has more than %d manifests (with referrers)", maxManifests)
		}
		parsed, err := manifest.Parse(m.MediaType, m.Content)
		if err != nil {
			return fail(KindSourceInvalid, "source.sourceImage", "manifest %s of %s on %s cannot be imported: %v", m.Digest, x.repo.RepositoryStr(), x.host, err)
		}
		for _, c := range parsed.Children {
			cm, err := x.fetchManifest(x.repo.Digest(c.String()), c)
			if err != nil {
				return err
			}
			if err := visit(cm); err != nil {
				return err
			}
		}
		n := node{m: m}
		n.m.Blobs, n.m.Children = parsed.Blobs, parsed.Children
		n.m.MediaType, n.m.ArtifactType, n.m.Subject = parsed.MediaType, parsed.ArtifactType, parsed.Subject
		n.m.Size = int64(len(m.Content))
		if len(parsed.Annotations) > 0 {
			if n.m.Annotations, err = json.Marshal(parsed.Annotations); err != nil {
				return fmt.Errorf("encoding annotations of %s: %w", m.Digest, err)
			}
		}
		if len(parsed.Blobs) > 0 {
			sizes, err := descriptorSizes(m.Content)
			if err != nil {
				return fail(KindSourceInvalid, "source.sourceImage", "manifest %s of %s on %s: %v", m.Digest, x.repo.RepositoryStr(), x.host, err)
			}
			for _, b := range parsed.Blobs {
				size, ok := sizes[b]
				if !ok || size < 0 {
					return fail(KindSourceInvalid, "source.sourceImage", "manifest %s of %s on %s: blob %s has no valid size", m.Digest, x.repo.RepositoryStr(), x.host, b)
				}
				if prev, dup := blobs[b]; dup && prev != size {
					return fail(KindSourceInvalid, "source.sourceImage", "blob %s of %s on %s is declared with two sizes (%d and %d)", b, x.repo.RepositoryStr(), x.host, prev, size)
				}
				blobs[b] = size
				n.sizes = append(n.sizes, size)
			}
		}
		out = append(out, n)
		x.progress.add(cManifests, 1)
		idx, err := remote.Referrers(x.repo.Digest(m.Digest.String()), x.opts...)
		if err != nil {
			return x.classify(err, "listing the referrers of "+m.Digest.String()+" in")
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return x.classify(err, "reading the referrers of "+m.Digest.String()+" in")
		}
		for _, r := range im.Manifests {
			rd, err := digest.Parse(r.Digest.String())
			if err != nil {
				return fail(KindSourceInvalid, "source.sourceImage", "a referrer of %s on %s has an invalid digest: %v", m.Digest, x.host, err)
			}
			if seen[rd] {
				continue
			}
			rm, err := x.fetchManifest(x.repo.Digest(rd.String()), rd)
			var e *Error
			if errors.As(err, &e) && e.Kind == KindNotFound {
				continue // deleted since it was listed
			}
			if err != nil {
				return err
			}
			if err := visit(rm); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return nil, nil, err
	}
	return out, blobs, nil
}

// fetchBlobs streams every blob into the blob store, Concurrency at a time;
// the first failure cancels the others.
func (x *remoteRun) fetchBlobs(ctx context.Context, blobs map[digest.Digest]int64) error {
	var total int64
	for _, s := range blobs {
		total += s
	}
	x.progress.add(cBlobsTotal, int64(len(blobs)))
	x.progress.add(cBytesTotal, total)
	n := x.cfg.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for d, size := range blobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := x.fetchBlob(ctx, d, size); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// fetchBlob makes blob d (of the declared size) present in the blob store,
// verified against its digest.
func (x *remoteRun) fetchBlob(ctx context.Context, d digest.Digest, size int64) error {
	if got, err := x.cfg.Blobs.Stat(ctx, d); err == nil {
		if got != size {
			return fail(KindSourceInvalid, "source.sourceImage", "the source declares blob %s of %s with %d bytes; that content has %d", d, x.repo.RepositoryStr(), size, got)
		}
		// Content-addressed: the bytes are already here.
		x.progress.add(cBytesDone, size)
		x.progress.add(cBlobsDone, 1)
		return nil
	}
	if !d.Algorithm().Available() {
		return fail(KindSourceInvalid, "source.sourceImage", "blob %s uses an unsupported digest algorithm", d)
	}
	id, err := newUploadID()
	if err != nil {
		return err
	}
	initial, err := x.cfg.Blobs.StartUpload(ctx, id, d.Algorithm())
	if err != nil {
		return fmt.Errorf("starting the upload of blob %s: %w", d, err)
	}
	committed := false
	defer func() {
		if !committed {
			if err := x.cfg.Blobs.Abort(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, blob.ErrNotFound) {
				x.log.WarnContext(ctx, "import: aborting a blob upload", "blob", d, "err", err)
			}
		}
	}()
	attempts := x.cfg.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	backoff := x.cfg.Backoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	st := initial
	for attempt := 1; ; attempt++ {
		before := st.Offset
		next, err := x.fetchInto(ctx, id, initial, st, d, size)
		x.progress.add(cBytesDone, next.Offset-before)
		st = next
		if err == nil {
			break
		}
		var te *transientError
		if !errors.As(err, &te) {
			return err
		}
		if attempt >= attempts || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fail(KindUnreachable, "source", "fetching blob %s of %s from %s failed after %d attempts: %v", d, x.repo.RepositoryStr(), x.host, attempt, te.err)
		}
		x.log.InfoContext(ctx, "import: retrying a blob", "source", x.host, "repository", x.repo.RepositoryStr(), "blob", d,
			"attempt", attempt, "offset", st.Offset, "err", te.err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
	if _, err := x.cfg.Blobs.Commit(ctx, id, st, d); err != nil {
		if errors.Is(err, blob.ErrDigestMismatch) {
			return fail(KindSourceInvalid, "source.sourceImage", "the source registry %s sent blob %s of %s whose content does not match its digest", x.host, d, x.repo.RepositoryStr())
		}
		return fmt.Errorf("committing blob %s: %w", d, err)
	}
	committed = true
	x.progress.add(cBlobsDone, 1)
	return nil
}

// transientError is a failure worth another attempt.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// cutReader ends the stream at the first read error instead of failing it,
// so that the blob store keeps what arrived and the next attempt resumes
// from there; err says why it ended.
type cutReader struct {
	r      io.Reader
	err    error
	onRead func() // after every read that returned bytes
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.onRead != nil {
		c.onRead()
	}
	if err != nil && err != io.EOF {
		c.err = err
		return n, io.EOF
	}
	return n, err
}

// fetchInto GETs blob d from st.Offset on and appends it to upload id. It
// returns the state reached, which is st or further on every path; initial
// restarts the upload when the source ignores the Range.
func (x *remoteRun) fetchInto(ctx context.Context, id string, initial, st blob.UploadState, d digest.Digest, size int64) (blob.UploadState, error) {
	u := url.URL{Scheme: "https", Host: x.repo.RegistryStr(), Path: "/v2/" + x.repo.RepositoryStr() + "/blobs/" + d.String()}
	// A source that stops sending without closing the connection would hold
	// the import forever: a watchdog, reset by every read, ends the request.
	stall := x.cfg.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchdog := time.AfterFunc(stall, cancel)
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		return st, err
	}
	if st.Offset > 0 {
		// A closed range: some registries understand only that form.
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", st.Offset, size-1))
	}
	resp, err := x.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if errors.Is(err, errPlainHTTP) {
			return st, x.classify(err, "fetching blob "+d.String()+" of")
		}
		return st, &transientError{err}
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusOK:
		if st.Offset > 0 {
			st = initial // the source ignored the Range: start over
		}
	case resp.StatusCode == http.StatusPartialContent && st.Offset > 0:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != st.Offset {
			return st, fail(KindSourceInvalid, "source", "the source registry %s answered a range request for blob %s with Content-Range %q", x.host, d, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && st.Offset > 0:
		// The source cannot resume: the next attempt starts over.
		return initial, &transientError{fmt.Errorf("GET blob %s from byte %d: %s", d, st.Offset, resp.Status)}
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return st, &transientError{fmt.Errorf("GET blob %s: %s", d, resp.Status)}
	default:
		return st, x.classify(transport.CheckError(resp, http.StatusOK), "fetching blob "+d.String()+" of")
	}
	// One byte more than declared is read to tell "too long" from "exact".
	body := &cutReader{r: io.LimitReader(resp.Body, size-st.Offset+1), onRead: func() { watchdog.Reset(stall) }}
	next, err := x.cfg.Blobs.Append(ctx, id, st, body)
	if err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		return st, fmt.Errorf("writing blob %s: %w", d, err)
	}
	switch {
	case next.Offset > size:
		return next, fail(KindSourceInvalid, "source", "the source registry %s sent more than the %d bytes declared for blob %s", x.host, size, d)
	case body.err != nil:
		if ctx.Err() != nil {
			return next, ctx.Err()
		}
		return next, &transientError{fmt.Errorf("reading blob %s at byte %d: %w", d, next.Offset, body.err)}
	case next.Offset < size:
		return next, &transientError{fmt.Errorf("blob %s ended at byte %d of %d: %w", d, next.Offset, size, io.ErrUnexpectedEOF)}
	}
	return next, nil
}

// contentRangeStart reads the first byte position of "bytes START-END/SIZE".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil && n >= 0
}

// newUploadID is a random id the blob store accepts ([A-Za-z0-9_-]).
func newUploadID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making an upload id: %w", err)
	}
	return "import-" + hex.EncodeToString(b[:]), nil
}
