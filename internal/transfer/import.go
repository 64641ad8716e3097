// Package transfer owns moving artifacts between registries: importing an
// image (with every platform of an index and every referrer) from another
// registry of the deployment or from any OCI registry into a registry, and
// the export policy that may forbid it on every import path.
//
// Invariants:
//
//   - Import within a deployment copies metadata only: blob bytes are shared
//     by the blob store, so the cost does not depend on the image's size.
//   - Import from outside the deployment (remote.go) streams every blob into
//     the blob store, verified against its digest while it is written, and
//     never holds one in memory; it writes no metadata before every blob is
//     committed.
//   - A registry whose exportPolicy.status is disabled is never the source of
//     an import into another registry (fail closed: an unreadable source
//     policy refuses the import). Importing within one registry is not an
//     export and is allowed. Another moat deployment's importer is refused by
//     the data plane, which recognises the markers moat's importer always
//     sends (marker.go).
//   - Another registry restricting network access (public access disabled or
//     default action Deny) is a source only when it allows trusted services
//     (networkRuleBypassOptions AzureServices), as ACR documents.
//   - Nothing is written before every check passed (source found, target tags
//     free under NoForce), and target tags are set last, after every manifest
//     of the image is stored: a tag never points at a half-imported image.
//     Each manifest is stored in its own transaction, so an import cut short
//     while writing leaves at most untagged manifests behind.
//   - Source credentials are used for the source only and never logged or
//     returned.
package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/model"
	"github.com/moat-registry/moat/internal/netrule"
	"github.com/moat-registry/moat/internal/storage/meta"
)

// Modes of an import.
const (
	// ModeNoForce fails the import if any target tag exists.
	ModeNoForce = "NoForce"
	// ModeForce moves existing target tags to the imported image.
	ModeForce = "Force"
)

// maxManifests bounds the manifests one import copies (an index, its
// children, and their referrers), so a pathological graph cannot run forever.
const maxManifests = 10000

// Source is where an image is imported from, as ACR's ImportSource.
type Source struct {
	// ResourceID is the ARM id of a registry of this deployment.
	ResourceID string
	// RegistryURI is a login server ({name}.{domain}) of this deployment,
	// resolved to its registry, or the host[:port] (optionally https:// or,
	// to a loopback host, http://) of any OCI registry.
	RegistryURI string
	// SourceImage is "repo", "repo:tag" or "repo@digest" ("latest" when
	// neither tag nor digest is given).
	SourceImage string
	// Username and Password authenticate to a registry outside the
	// deployment (ACR's source.credentials); ignored for one inside it.
	Username, Password string
}

// ImportRequest is one import into TargetRegistry.
type ImportRequest struct {
	// TargetRegistry is the name of the registry imported into.
	TargetRegistry string
	// Domain makes this deployment's login servers: {name}.{Domain}.
	Domain string
	Source Source
	// TargetTags are "repo:tag" to point at the image.
	TargetTags []string
	// UntaggedTargetRepositories receive the image without a tag.
	UntaggedTargetRepositories []string
	// Mode is ModeNoForce (the default when empty) or ModeForce.
	Mode string
	// Remote reaches registries outside the deployment; nil refuses them.
	Remote *Remote
	// Progress, when set, counts the work as it is done.
	Progress *Progress
}

// ImportResult says what was imported.
type ImportResult struct {
	// SourceRegistry is the name of the registry imported from.
	SourceRegistry string
	// Digest is the imported image's manifest digest.
	Digest digest.Digest
	// Manifests is how many manifests were copied into each target repository
	// (the image, its children and their referrers).
	Manifests int
	// Tags are the "repo:tag" now pointing at the image.
	Tags []string
	// Repositories are the target repositories, in request order.
	Repositories []string
}

// Kind classifies an import failure for the API layer.
type Kind int

const (
	// KindInvalid: the request is malformed; Field names the field.
	KindInvalid Kind = iota + 1
	// KindNotFound: the source registry, the source image or the target
	// registry does not exist.
	KindNotFound
	// KindTagExists: a target tag exists and the mode is NoForce.
	KindTagExists
	// KindExportDisabled: the source registry's export policy forbids it.
	KindExportDisabled
	// KindUnsupported: a source outside this deployment on a server not
	// configured to reach one.
	KindUnsupported
	// KindNetworkRestricted: the source registry restricts network access
	// and does not let trusted services (import) through.
	KindNetworkRestricted
	// KindSourceAuth: a registry outside the deployment wants credentials,
	// or refused the ones given.
	KindSourceAuth
	// KindSourceDenied: a registry outside the deployment denied access.
	KindSourceDenied
	// KindUnreachable: a registry outside the deployment could not be
	// reached or kept failing.
	KindUnreachable
	// KindSourceInvalid: a registry outside the deployment sent something
	// moat cannot store (digest mismatch, unsupported manifest, bad sizes).
	KindSourceInvalid
)

// Error is an import failure the caller can answer as a client error.
type Error struct {
	Kind Kind
	// Field is the request field at fault (JSON path), when there is one.
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

func fail(k Kind, field, format string, args ...any) *Error {
	return &Error{Kind: k, Field: field, Message: fmt.Sprintf(format, args...)}
}

// The distribution spec's grammars; not a hot path, so regexps are fine.
var (
	repoRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// registryIDRE is an ARM registry id; the name is the last group.
	registryIDRE = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ContainerRegistry/registries/([^/]+)$`)
)

const maxRepoLen = 255

// imageRef is a parsed "repo:tag" or "repo@digest".
type imageRef struct {
	repo   string
	tag    string
	digest digest.Digest
}

func (r imageRef) String() string {
	if r.digest != "" {
		return r.repo + "@" + r.digest.String()
	}
	return r.repo + ":" + r.tag
}

// parseImage parses "repo", "repo:tag", "repo@digest"; allowDigest false
// refuses digests (target tags).
func parseImage(s, field string, allowDigest bool) (imageRef, error) {
	var ref imageRef
	name := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		if !allowDigest {
			return ref, fail(KindInvalid, field, "%s %q must be repo:tag, not a digest", field, s)
		}
		d, err := digest.Parse(s[i+1:])
		if err != nil {
			return ref, fail(KindInvalid, field, "%s %q has an invalid digest: %v", field, s, err)
		}
		ref.digest, name = d, s[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "/") {
		ref.tag, name = name[i+1:], name[:i]
		if !tagRE.MatchString(ref.tag) {
			return ref, fail(KindInvalid, field, "%s %q has an invalid tag %q", field, s, ref.tag)
		}
	}
	if ref.digest != "" {
		ref.tag = "" // repo:tag@digest: the digest decides
	} else if ref.tag == "" {
		ref.tag = "latest"
	}
	if len(name) > maxRepoLen || !repoRE.MatchString(name) {
		return ref, fail(KindInvalid, field, "%s %q has an invalid repository name %q (lower-case letters, digits and separators, at most %d characters)", field, s, name, maxRepoLen)
	}
	ref.repo = name
	return ref, nil
}

// plan is a validated request.
type plan struct {
	src      imageRef
	tags     []imageRef // repo + tag
	untagged []string
	force    bool
}

func validate(req ImportRequest) (plan, error) {
	var p plan
	switch req.Mode {
	case "", ModeNoForce:
	case ModeForce:
		p.force = true
	default:
		return p, fail(KindInvalid, "mode", "mode %q is invalid; use NoForce or Force", req.Mode)
	}
	if req.Source.SourceImage == "" {
		return p, fail(KindInvalid, "source.sourceImage", "source.sourceImage is required")
	}
	src, err := parseImage(req.Source.SourceImage, "source.sourceImage", true)
	if err != nil {
		return p, err
	}
	p.src = src
	seen := map[string]bool{}
	for i, t := range req.TargetTags {
		ref, err := parseImage(t, fmt.Sprintf("targetTags[%d]", i), false)
		if err != nil {
			return p, err
		}
		if !seen[ref.String()] {
			seen[ref.String()] = true
			p.tags = append(p.tags, ref)
		}
	}
	for i, r := range req.UntaggedTargetRepositories {
		if len(r) > maxRepoLen || !repoRE.MatchString(r) {
			return p, fail(KindInvalid, fmt.Sprintf("untaggedTargetRepositories[%d]", i),
				"untaggedTargetRepositories[%d] %q is not a valid repository name", i, r)
		}
		if !seen[r] {
			seen[r] = true
			p.untagged = append(p.untagged, r)
		}
	}
	if len(p.tags) == 0 && len(p.untagged) == 0 {
		// As az acr import: the image keeps its source name.
		if src.digest != "" {
			p.untagged = []string{src.repo}
		} else {
			p.tags = []imageRef{src}
		}
	}
	return p, nil
}

// Validate checks req without reading the store: what an API can refuse
// before it starts the import. Import runs it too.
func Validate(req ImportRequest) error {
	if _, err := validate(req); err != nil {
		return err
	}
	if IsExternal(req) {
		if req.Remote == nil || req.Remote.Blobs == nil {
			return errNotConfigured(req)
		}
		return validateRemote(req)
	}
	_, _, err := sourceName(req)
	return err
}

func errNotConfigured(req ImportRequest) error {
	return fail(KindUnsupported, "source.registryUri",
		"source.registryUri %q is not a registry of this deployment (login servers are NAME.%s), and this server is not configured to import from other registries", req.Source.RegistryURI, req.Domain)
}

// IsExternal reports whether req's source is a registry outside this
// deployment: a registryUri (and no resourceId) that is not one of its login
// servers.
func IsExternal(req ImportRequest) bool {
	if req.Source.ResourceID != "" || req.Source.RegistryURI == "" {
		return false
	}
	_, ok := loginServerName(req.Source.RegistryURI, req.Domain)
	return !ok
}

// SourceRegistryName is the name of the registry of this deployment that
// req imports from, or "" for a source outside it (or an invalid one).
func SourceRegistryName(req ImportRequest) string {
	if IsExternal(req) {
		return ""
	}
	n, _, err := sourceName(req)
	if err != nil {
		return ""
	}
	return n
}

// sourceName is the registry name the source names, and the field naming it.
func sourceName(req ImportRequest) (name, by string, err error) {
	s := req.Source
	switch {
	case s.ResourceID != "":
		m := registryIDRE.FindStringSubmatch(strings.TrimSuffix(s.ResourceID, "/"))
		if m == nil {
			return "", "", fail(KindInvalid, "source.resourceId",
				"source.resourceId %q is not a container registry resource id (/subscriptions/…/resourceGroups/…/providers/Microsoft.ContainerRegistry/registries/NAME)", s.ResourceID)
		}
		name, by = m[1], "source.resourceId"
	case s.RegistryURI != "":
		n, ok := loginServerName(s.RegistryURI, req.Domain)
		if !ok {
			return "", "", fail(KindInvalid, "source.registryUri",
				"source.registryUri %q is not a registry of this deployment (login servers are NAME.%s)", s.RegistryURI, req.Domain)
		}
		name, by = n, "source.registryUri"
	default:
		return "", "", fail(KindInvalid, "source", "the source needs resourceId or registryUri")
	}
	if s.ResourceID != "" && s.RegistryURI != "" {
		if n, ok := loginServerName(s.RegistryURI, req.Domain); !ok || !strings.EqualFold(n, name) {
			return "", "", fail(KindInvalid, "source.registryUri",
				"source.registryUri %q and source.resourceId %q name different registries", s.RegistryURI, s.ResourceID)
		}
	}
	return name, by, nil
}

// resolveSource reads the source registry of this deployment.
func resolveSource(ctx context.Context, store meta.Store, req ImportRequest) (meta.Registry, error) {
	s := req.Source
	name, by, err := sourceName(req)
	if err != nil {
		return meta.Registry{}, err
	}
	reg, err := store.GetRegistry(ctx, name)
	if errors.Is(err, meta.ErrNotFound) || err == nil && s.ResourceID != "" && !strings.EqualFold(reg.ResourceID, strings.TrimSuffix(s.ResourceID, "/")) {
		v := s.ResourceID
		if by == "source.registryUri" {
			v = s.RegistryURI
		}
		return meta.Registry{}, fail(KindNotFound, by, "the source registry %q (%s) was not found", v, by)
	}
	if err != nil {
		return meta.Registry{}, fmt.Errorf("reading source registry %q: %w", name, err)
	}
	return reg, nil
}

// loginServerName returns NAME when uri is NAME.domain (scheme, port,
// trailing slash and case ignored).
func loginServerName(uri, domain string) (string, bool) {
	u := strings.ToLower(strings.TrimSuffix(uri, "/"))
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	if i := strings.LastIndexByte(u, ':'); i >= 0 && i < len(u)-1 && strings.Trim(u[i+1:], "0123456789") == "" {
		u = u[:i] // a port: login servers are compared without one
	}
	domain = strings.ToLower(strings.TrimPrefix(domain, "."))
	var name string
	if domain == "" {
		name = u
	} else {
		n, ok := strings.CutSuffix(u, "."+domain)
		if !ok {
			return "", false
		}
		name = n
	}
	if name == "" || strings.ContainsAny(name, "./:@") {
		return "", false
	}
	return name, true
}

// checkExport fails unless the source may be imported into target: its
// export policy and its network rules decide.
func checkExport(src meta.Registry, target string) error {
	if strings.EqualFold(src.Name, target) {
		return nil // not an export
	}
	reg, err := model.UnmarshalStored(src.Location, src.SKU, src.Properties, src.Tags)
	if err != nil {
		// Fail closed: a policy that cannot be read is not "enabled".
		return fmt.Errorf("reading the export policy of registry %q: %w", src.Name, err)
	}
	props := reg.Properties
	if strings.EqualFold(props.Policies.ExportPolicy.Status, model.StatusDisabled) {
		return fail(KindExportDisabled, "source", "%s", ExportDisabledMessage(src.Name))
	}
	// As in ACR, import reaches a network-restricted registry only through
	// the trusted-services bypass: ask the network decision itself, as the
	// registry-import service, from no client address (so only a bypass or an
	// open registry admits it).
	pol, err := netrule.Compile(reg, nil)
	if err != nil {
		return fmt.Errorf("reading the network rules of registry %q: %w", src.Name, err)
	}
	if d := pol.Decide(netrule.Request{TrustedService: netrule.RegistryImport}); !d.Allowed {
		return fail(KindNetworkRestricted, "source",
			"registry '%s' restricts network access (%s) and does not allow trusted services (networkRuleBypassOptions: %s); import from it is refused",
			src.Name, d.Reason, props.NetworkRuleBypassOptions)
	}
	return nil
}

// node is one manifest to copy.
type node struct {
	m     meta.Manifest // Content, MediaType, Blobs, Children, ... filled
	sizes []int64       // sizes of m.Blobs
}

// collect reads the image graph from the source, children before parents
// and referrers after their subject, so it can be put in that order.
func collect(ctx context.Context, store meta.Store, reg, repo string, root meta.Manifest) ([]node, error) {
	var out []node
	seen := map[digest.Digest]bool{}
	var visit func(m meta.Manifest) error
	visit = func(m meta.Manifest) error {
		if seen[m.Digest] {
			return nil
		}
		seen[m.Digest] = true
		if len(seen) > maxManifests {
			return fail(KindInvalid, "source.sourceImage", "the source image has more than %d manifests (with referrers)", maxManifests)
		}
		parsed, err := manifest.Parse(m.MediaType, m.Content)
		if err != nil {
			return fmt.Errorf("source manifest %s in %s/%s: %w", m.Digest, reg, repo, err)
		}
		for _, c := range parsed.Children {
			cm, err := store.GetManifest(ctx, reg, repo, c)
			if err != nil {
				return fmt.Errorf("child manifest %s of %s in %s/%s: %w", c, m.Digest, reg, repo, err)
			}
			if err := visit(cm); err != nil {
				return err
			}
		}
		n := node{m: m}
		n.m.Blobs, n.m.Children = parsed.Blobs, parsed.Children
		n.m.MediaType, n.m.ArtifactType, n.m.Subject = parsed.MediaType, parsed.ArtifactType, parsed.Subject
		n.m.Size = int64(len(m.Content))
		n.m.Annotations = nil
		if len(parsed.Annotations) > 0 {
			if n.m.Annotations, err = json.Marshal(parsed.Annotations); err != nil {
				return fmt.Errorf("encoding annotations of %s: %w", m.Digest, err)
			}
		}
		for _, b := range parsed.Blobs {
			size, err := store.StatBlob(ctx, reg, repo, b)
			if err != nil {
				return fmt.Errorf("blob %s of manifest %s in %s/%s: %w", b, m.Digest, reg, repo, err)
			}
			n.sizes = append(n.sizes, size)
		}
		out = append(out, n)
		refs, err := store.ListReferrers(ctx, reg, repo, m.Digest, "")
		if err != nil {
			return fmt.Errorf("referrers of %s in %s/%s: %w", m.Digest, reg, repo, err)
		}
		for _, r := range refs {
			rm, err := store.GetManifest(ctx, reg, repo, r.Digest)
			if errors.Is(err, meta.ErrNotFound) {
				continue // deleted since it was listed
			}
			if err != nil {
				return fmt.Errorf("referrer %s of %s in %s/%s: %w", r.Digest, m.Digest, reg, repo, err)
			}
			if err := visit(rm); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return nil, err
	}
	return out, nil
}

// Import copies req.Source.SourceImage, with its children and referrers,
// from a registry of this deployment or, with req.Remote, from any OCI
// registry, into req.TargetRegistry. Failures the client caused are *Error;
// others are server-side.
func Import(ctx context.Context, store meta.Store, req ImportRequest) (ImportResult, error) {
	var res ImportResult
	p, err := validate(req)
	if err != nil {
		return res, err
	}
	if err := Validate(req); err != nil {
		return res, err
	}
	target, err := store.GetRegistry(ctx, req.TargetRegistry)
	if errors.Is(err, meta.ErrNotFound) {
		return res, fail(KindNotFound, "", "the target registry %q was not found", req.TargetRegistry)
	}
	if err != nil {
		return res, fmt.Errorf("reading target registry %q: %w", req.TargetRegistry, err)
	}
	var nodes []node
	var root digest.Digest
	if IsExternal(req) {
		res.SourceRegistry = req.Source.RegistryURI
		nodes, root, err = importRemote(ctx, store, req, p, target.Name)
	} else {
		var src string
		src, nodes, root, err = collectLocal(ctx, store, req, p, target.Name)
		res.SourceRegistry = src
	}
	if err != nil {
		return res, err
	}
	res.Digest, res.Manifests = root, len(nodes)
	if !p.force {
		if err := checkTagsFree(ctx, store, target.Name, p.tags); err != nil {
			return res, err
		}
	}
	res.Tags, res.Repositories, err = write(ctx, store, target.Name, p, nodes, root)
	return res, err
}

// collectLocal reads the image graph from a registry of this deployment,
// after the export policy and the network rules of the source allowed it.
func collectLocal(ctx context.Context, store meta.Store, req ImportRequest, p plan, target string) (string, []node, digest.Digest, error) {
	src, err := resolveSource(ctx, store, req)
	if err != nil {
		return "", nil, "", err
	}
	if err := checkExport(src, target); err != nil {
		return "", nil, "", err
	}
	var root meta.Manifest
	if p.src.digest != "" {
		root, err = store.GetManifest(ctx, src.Name, p.src.repo, p.src.digest)
	} else {
		root, err = store.GetManifestByTag(ctx, src.Name, p.src.repo, p.src.tag)
	}
	if errors.Is(err, meta.ErrNotFound) {
		return "", nil, "", fail(KindNotFound, "source.sourceImage", "the source image '%s' was not found in registry '%s'", p.src.String(), src.Name)
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("reading source image %q of %q: %w", p.src.String(), src.Name, err)
	}
	nodes, err := collect(ctx, store, src.Name, p.src.repo, root)
	if err != nil {
		return "", nil, "", err
	}
	req.Progress.add(cManifests, int64(len(nodes)))
	return src.Name, nodes, root.Digest, nil
}

// importRemote fetches the image graph from a registry outside the
// deployment and streams every blob into the blob store; it writes no
// metadata.
func importRemote(ctx context.Context, store meta.Store, req ImportRequest, p plan, target string) ([]node, digest.Digest, error) {
	if req.Remote == nil || req.Remote.Blobs == nil {
		return nil, "", errNotConfigured(req)
	}
	x, err := newRemoteRun(ctx, req.Remote, req, p.src, req.Progress)
	if err != nil {
		return nil, "", err
	}
	defer x.close()
	var ref name.Reference = x.repo.Tag(p.src.tag)
	if p.src.digest != "" {
		ref = x.repo.Digest(p.src.digest.String())
	}
	root, err := x.fetchManifest(ref, p.src.digest)
	if err != nil {
		return nil, "", err
	}
	nodes, blobs, err := x.collect(ctx, root)
	if err != nil {
		return nil, "", err
	}
	if !p.force {
		// Before the bytes move: a refusal should not cost the download.
		if err := checkTagsFree(ctx, store, target, p.tags); err != nil {
			return nil, "", err
		}
	}
	if err := x.fetchBlobs(ctx, blobs); err != nil {
		return nil, "", err
	}
	return nodes, root.Digest, nil
}

// write stores nodes in every target repository, untagged, then sets the
// target tags: a tag never points at a half-imported image.
func write(ctx context.Context, store meta.Store, target string, p plan, nodes []node, root digest.Digest) (tags, repos []string, err error) {
	seenRepo := map[string]bool{}
	for _, t := range p.tags {
		if !seenRepo[t.repo] {
			seenRepo[t.repo] = true
			repos = append(repos, t.repo)
		}
	}
	for _, r := range p.untagged {
		if !seenRepo[r] {
			seenRepo[r] = true
			repos = append(repos, r)
		}
	}
	for _, repo := range repos {
		if err := putAll(ctx, store, target, repo, nodes); err != nil {
			return nil, nil, err
		}
	}
	rootNode := nodes[indexOf(nodes, root)]
	for _, t := range p.tags {
		if !p.force {
			// Re-checked right before the write: a push may have raced us.
			if err := checkTagsFree(ctx, store, target, []imageRef{t}); err != nil {
				return nil, nil, err
			}
		}
		m := rootNode.m
		m.Registry, m.Repository = target, t.repo
		if err := store.PutManifest(ctx, m, t.tag); err != nil {
			return nil, nil, fmt.Errorf("tagging %s in %s: %w", t.String(), target, err)
		}
		tags = append(tags, t.String())
	}
	return tags, repos, nil
}

func indexOf(nodes []node, d digest.Digest) int {
	for i, n := range nodes {
		if n.m.Digest == d {
			return i
		}
	}
	return 0 // unreachable: the root is always collected
}

// checkTagsFree fails with KindTagExists if a tag exists (NoForce).
func checkTagsFree(ctx context.Context, store meta.Store, reg string, tags []imageRef) error {
	for _, t := range tags {
		m, err := store.GetManifestByTag(ctx, reg, t.repo, t.tag)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking target tag %s: %w", t.String(), err)
		}
		return fail(KindTagExists, "targetTags",
			"the target tag %s already exists in registry '%s' (it points at %s); use mode Force to overwrite it", t.String(), reg, m.Digest)
	}
	return nil
}

// putAll links the blobs and stores the manifests of nodes in repo, in
// order, untagged.
func putAll(ctx context.Context, store meta.Store, reg, repo string, nodes []node) error {
	for _, n := range nodes {
		for i, b := range n.m.Blobs {
			if err := store.LinkBlob(ctx, reg, repo, b, n.sizes[i]); err != nil {
				return fmt.Errorf("linking blob %s into %s/%s: %w", b, reg, repo, err)
			}
		}
		m := n.m
		m.Registry, m.Repository = reg, repo
		if err := store.PutManifest(ctx, m, ""); err != nil {
			return fmt.Errorf("storing manifest %s in %s/%s: %w", m.Digest, reg, repo, err)
		}
	}
	return nil
}
