package transfer

// Transfer archives: what an export pipeline run writes and an import
// pipeline run reads. An archive is an OCI image layout in a tar (what
// `skopeo copy oci-archive:FILE:REF` reads):
//
//	oci-layout                  {"imageLayoutVersion":"1.0.0"}
//	blobs/<alg>/<hex>           every manifest and every blob, once
//	index.json                  one entry per artifact (and per referrer)
//
// Decisions:
//   - index.json names each artifact with org.opencontainers.image.ref.name:
//     "repo:tag" for an artifact exported by tag, "repo@digest" for one
//     exported by digest and for every referrer (stored untagged on import).
//     The import puts each artifact back into the repository that name
//     gives.
//   - Writing streams: manifests come from the metadata store, blobs are
//     copied from the blob store one at a time; nothing is held whole in
//     memory. index.json is written last, so an archive cut short anywhere
//     lacks it and is refused on import.
//   - Reading streams as well: every blob entry goes straight into the blob
//     store through an upload, verified against the digest its name gives
//     (a mismatch fails the run). Manifests are read back from the blob store
//     once the whole tar was read. Nothing is written to the metadata store
//     before the whole archive was read and every artifact's graph (its
//     manifests and every blob they reference) was found in it; tags are set
//     last. So a corrupt, truncated or incomplete archive tags nothing.
//   - Blobs are content-addressed and shared: OverwriteBlobs cannot change
//     what a digest holds, so import accepts it and behaves the same without
//     it.

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/manifest"
	"github.com/moat-registry/moat/internal/storage/blob"
	"github.com/moat-registry/moat/internal/storage/meta"
)

const (
	// RefNameAnnotation names an artifact in an OCI layout's index.json.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	ociIndexMediaType = "application/vnd.oci.image.index.v1+json"
	// maxArchiveManifest bounds a manifest or index.json read from an
	// archive, as the data plane bounds a pushed manifest.
	maxArchiveManifest = 4 << 20
	// copyBuffer is the buffer of archive reads and writes.
	copyBuffer = 1 << 20
)

// Pipeline options (ACR's names).
const (
	OptOverwriteTags             = "OverwriteTags"
	OptOverwriteBlobs            = "OverwriteBlobs"
	OptContinueOnErrors          = "ContinueOnErrors"
	OptDeleteSourceBlobOnSuccess = "DeleteSourceBlobOnSuccess"
)

// ArtifactResult is the outcome of one artifact of a run.
type ArtifactResult struct {
	Artifact string `json:"artifact"`
	Digest   string `json:"digest,omitempty"`
	// Status is Succeeded or Failed.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Result statuses.
const (
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
)

// RunProgress counts a run's bytes; the run reports Done/Total as its
// percentage.
type RunProgress struct {
	Total atomic.Int64
	Done  atomic.Int64
}

// Percent is the progress as a whole percentage, 0 while the total is unknown.
func (p *RunProgress) Percent() int {
	if p == nil {
		return 0
	}
	t, d := p.Total.Load(), p.Done.Load()
	if t <= 0 {
		return 0
	}
	if d >= t {
		return 100
	}
	return int(d * 100 / t)
}

// countingWriter counts bytes into a RunProgress.
type countingWriter struct {
	w io.Writer
	p *RunProgress
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if c.p != nil {
		c.p.Done.Add(int64(n))
	}
	return n, err
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      digest.Digest     `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType,omitempty"`
	Manifests     []ociDescriptor `json:"manifests"`
}

// exportItem is one artifact's graph to write.
type exportItem struct {
	ref   imageRef
	nodes []node
	root  digest.Digest
}

// WriteArchive writes the artifacts ("repo:tag" or "repo@digest") of
// registry reg to w as one archive. An artifact that cannot be read fails
// the whole write unless continueOnErrors, when it is left out and reported
// Failed. It returns one result per artifact, in request order.
func WriteArchive(ctx context.Context, w io.Writer, store meta.Store, blobs blob.Store, reg string, artifacts []string,
	continueOnErrors bool, prog *RunProgress) ([]ArtifactResult, error) {
	results := make([]ArtifactResult, len(artifacts))
	var items []exportItem
	for i, a := range artifacts {
		results[i] = ArtifactResult{Artifact: a, Status: StatusFailed}
		it, err := collectExport(ctx, store, reg, a)
		if err != nil {
			var fe *Error
			if !continueOnErrors || !errors.As(err, &fe) {
				return results, err
			}
			results[i].Message = fe.Message
			continue
		}
		results[i].Status, results[i].Digest = StatusSucceeded, it.root.String()
		items = append(items, it)
	}
	if len(items) == 0 {
		return results, fail(KindNotFound, "artifacts", "none of the requested artifacts could be exported")
	}
	// Every blob once, in the order first met; manifests likewise.
	type entry struct {
		d       digest.Digest
		size    int64
		content []byte // a manifest's bytes; nil for a blob
	}
	var entries []entry
	seen := map[digest.Digest]bool{}
	var index ociIndex
	index.SchemaVersion, index.MediaType = 2, ociIndexMediaType
	for _, it := range items {
		for _, n := range it.nodes {
			for j, b := range n.m.Blobs {
				if !seen[b] {
					seen[b] = true
					entries = append(entries, entry{d: b, size: n.sizes[j]})
				}
			}
			if !seen[n.m.Digest] {
				seen[n.m.Digest] = true
				entries = append(entries, entry{d: n.m.Digest, size: int64(len(n.m.Content)), content: n.m.Content})
			}
			name := ""
			switch {
			case n.m.Digest == it.root:
				name = it.ref.String()
			case n.m.Subject != "":
				name = it.ref.repo + "@" + n.m.Digest.String() // a referrer
			default:
				continue // a child of an index: reached through it
			}
			index.Manifests = append(index.Manifests, ociDescriptor{MediaType: n.m.MediaType, Digest: n.m.Digest,
				Size: int64(len(n.m.Content)), Annotations: map[string]string{RefNameAnnotation: name}})
		}
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	if prog != nil {
		prog.Total.Store(total)
	}
	tw := tar.NewWriter(w)
	now := time.Now().UTC().Truncate(time.Second)
	file := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: now, Format: tar.FormatPAX})
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: now, Format: tar.FormatPAX})
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	if err := file("oci-layout", int64(len(layout))); err != nil {
		return results, fmt.Errorf("writing the archive: %w", err)
	}
	if _, err := tw.Write(layout); err != nil {
		return results, fmt.Errorf("writing the archive: %w", err)
	}
	if err := dir("blobs/"); err != nil {
		return results, fmt.Errorf("writing the archive: %w", err)
	}
	algs := map[digest.Algorithm]bool{}
	for _, e := range entries {
		if !algs[e.d.Algorithm()] {
			algs[e.d.Algorithm()] = true
			if err := dir("blobs/" + string(e.d.Algorithm()) + "/"); err != nil {
				return results, fmt.Errorf("writing the archive: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return results, err
		}
		if err := file("blobs/"+string(e.d.Algorithm())+"/"+e.d.Encoded(), e.size); err != nil {
			return results, fmt.Errorf("writing the archive: %w", err)
		}
		if e.content != nil {
			if _, err := (countingWriter{tw, prog}).Write(e.content); err != nil {
				return results, fmt.Errorf("writing manifest %s to the archive: %w", e.d, err)
			}
			continue
		}
		if err := copyBlob(ctx, countingWriter{tw, prog}, blobs, e.d, e.size); err != nil {
			return results, err
		}
	}
	idx, err := json.Marshal(index)
	if err != nil {
		return results, fmt.Errorf("encoding index.json: %w", err)
	}
	if err := file("index.json", int64(len(idx))); err != nil {
		return results, fmt.Errorf("writing the archive: %w", err)
	}
	if _, err := tw.Write(idx); err != nil {
		return results, fmt.Errorf("writing the archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return results, fmt.Errorf("writing the archive: %w", err)
	}
	return results, nil
}

func copyBlob(ctx context.Context, w io.Writer, blobs blob.Store, d digest.Digest, size int64) error {
	rd, err := blobs.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", d, err)
	}
	defer func() { _ = rd.Close() }()
	// Large buffers: the export is bound by the disk (or the network).
	n, err := io.CopyBuffer(w, io.LimitReader(rd, size), make([]byte, copyBuffer))
	if err != nil {
		return fmt.Errorf("copying blob %s to the archive: %w", d, err)
	}
	if n != size {
		return fmt.Errorf("blob %s has %d bytes in the blob store, %d expected", d, n, size)
	}
	return nil
}

// collectExport reads one artifact's graph.
func collectExport(ctx context.Context, store meta.Store, reg, artifact string) (exportItem, error) {
	ref, err := parseImage(artifact, "artifacts", true)
	if err != nil {
		return exportItem{}, err
	}
	var root meta.Manifest
	if ref.digest != "" {
		root, err = store.GetManifest(ctx, reg, ref.repo, ref.digest)
	} else {
		root, err = store.GetManifestByTag(ctx, reg, ref.repo, ref.tag)
	}
	if errors.Is(err, meta.ErrNotFound) {
		return exportItem{}, fail(KindNotFound, "artifacts", "the artifact '%s' was not found in registry '%s'", ref.String(), reg)
	}
	if err != nil {
		return exportItem{}, fmt.Errorf("reading artifact %s of %s: %w", ref.String(), reg, err)
	}
	nodes, err := collect(ctx, store, reg, ref.repo, root)
	if err != nil {
		return exportItem{}, err
	}
	return exportItem{ref: ref, nodes: nodes, root: root.Digest}, nil
}

// ImportOptions are an import run's options.
type ImportOptions struct {
	OverwriteTags    bool
	ContinueOnErrors bool
}

// archiveError is a problem with the archive itself.
func archiveError(format string, args ...any) error {
	return fail(KindSourceInvalid, "source", format, args...)
}

// ReadArchive imports the archive read from r into registry reg. size is
// the archive's length when known (for progress), else 0. It returns one
// result per artifact of the archive's index.json.
func ReadArchive(ctx context.Context, r io.Reader, size int64, store meta.Store, blobs blob.Store, reg string,
	opts ImportOptions, prog *RunProgress) ([]ArtifactResult, error) {
	if _, err := store.GetRegistry(ctx, reg); err != nil {
		return nil, fmt.Errorf("reading registry %q: %w", reg, err)
	}
	if prog != nil {
		prog.Total.Store(size)
	}
	cr := &countingReader{r: bufio.NewReaderSize(r, copyBuffer), p: prog}
	tr := tar.NewReader(cr)
	inArchive := map[digest.Digest]int64{}
	var index *ociIndex
	layoutSeen := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, archiveError("the archive is not a readable tar (corrupt or truncated): %v", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		switch {
		case name == "oci-layout":
			var l struct {
				Version string `json:"imageLayoutVersion"`
			}
			if err := readJSON(tr, hdr.Size, &l); err != nil {
				return nil, archiveError("the archive's oci-layout is unreadable: %v", err)
			}
			if l.Version != "1.0.0" {
				return nil, archiveError("the archive's oci-layout has imageLayoutVersion %q; 1.0.0 is supported", l.Version)
			}
			layoutSeen = true
		case name == "index.json":
			index = &ociIndex{}
			if err := readJSON(tr, hdr.Size, index); err != nil {
				return nil, archiveError("the archive's index.json is unreadable: %v", err)
			}
		case strings.HasPrefix(name, "blobs/"):
			d, err := blobDigest(name)
			if err != nil {
				return nil, archiveError("the archive entry %q is not a blob name (blobs/ALGORITHM/HEX): %v", hdr.Name, err)
			}
			if err := storeArchiveBlob(ctx, blobs, tr, d, hdr.Size); err != nil {
				return nil, err
			}
			inArchive[d] = hdr.Size
		}
	}
	switch {
	case !layoutSeen:
		return nil, archiveError("the archive has no oci-layout file: it is not an OCI image layout, or it is truncated")
	case index == nil:
		return nil, archiveError("the archive has no index.json: it is not an OCI image layout, or it is truncated")
	case len(index.Manifests) == 0:
		return nil, archiveError("the archive's index.json lists no artifacts")
	}

	// Plan every artifact before writing anything.
	type planned struct {
		ref   imageRef
		nodes []node
		root  digest.Digest
	}
	results := make([]ArtifactResult, len(index.Manifests))
	plans := make([]*planned, len(index.Manifests))
	for i, desc := range index.Manifests {
		name := desc.Annotations[RefNameAnnotation]
		results[i] = ArtifactResult{Artifact: name, Digest: desc.Digest.String(), Status: StatusFailed}
		p, err := func() (*planned, error) {
			if name == "" {
				return nil, archiveError("index.json entry %d (%s) has no %s annotation naming repo:tag or repo@digest", i, desc.Digest, RefNameAnnotation)
			}
			ref, err := parseImage(name, "index.json", true)
			if err != nil {
				return nil, archiveError("index.json entry %d: %v", i, err)
			}
			if ref.digest != "" && ref.digest != desc.Digest {
				return nil, archiveError("index.json entry %d names %s but its descriptor is %s", i, name, desc.Digest)
			}
			nodes, err := archiveGraph(ctx, blobs, inArchive, desc)
			if err != nil {
				return nil, err
			}
			if ref.tag != "" && !opts.OverwriteTags {
				if err := checkTagsFree(ctx, store, reg, []imageRef{ref}); err != nil {
					var fe *Error
					if errors.As(err, &fe) {
						return nil, fail(KindTagExists, "artifacts", "the tag %s already exists in registry '%s'; the pipeline option %s replaces it", ref.String(), reg, OptOverwriteTags)
					}
					return nil, err
				}
			}
			return &planned{ref: ref, nodes: nodes, root: desc.Digest}, nil
		}()
		if err != nil {
			var fe *Error
			if !opts.ContinueOnErrors || !errors.As(err, &fe) {
				return results, err
			}
			results[i].Message = fe.Message
			continue
		}
		plans[i] = p
	}
	// Untagged (digest) entries first, so referrers find their subject and
	// no tag moves before every manifest is stored.
	written := 0
	for pass := 0; pass < 2; pass++ {
		for i, p := range plans {
			if p == nil || (pass == 0) != (p.ref.tag == "") {
				continue
			}
			if err := putAll(ctx, store, reg, p.ref.repo, p.nodes); err != nil {
				if !opts.ContinueOnErrors {
					return results, err
				}
				results[i].Message = err.Error()
				plans[i] = nil
				continue
			}
			if p.ref.tag != "" {
				m := p.nodes[indexOf(p.nodes, p.root)].m
				m.Registry, m.Repository = reg, p.ref.repo
				if err := store.PutManifest(ctx, m, p.ref.tag); err != nil {
					return results, fmt.Errorf("tagging %s in %s: %w", p.ref.String(), reg, err)
				}
			}
			results[i].Status, results[i].Message = StatusSucceeded, ""
			written++
		}
	}
	if written == 0 {
		return results, archiveError("no artifact of the archive could be imported")
	}
	return results, nil
}

type countingReader struct {
	r io.Reader
	p *RunProgress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if c.p != nil {
		c.p.Done.Add(int64(n))
	}
	return n, err
}

func readJSON(r io.Reader, size int64, v any) error {
	if size > maxArchiveManifest {
		return fmt.Errorf("%d bytes is larger than the %d allowed", size, maxArchiveManifest)
	}
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// blobDigest parses blobs/ALG/HEX.
func blobDigest(name string) (digest.Digest, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 {
		return "", errors.New("wrong number of path segments")
	}
	return digest.Parse(parts[1] + ":" + parts[2])
}

// storeArchiveBlob streams one entry into the blob store, verified.
func storeArchiveBlob(ctx context.Context, blobs blob.Store, r io.Reader, d digest.Digest, size int64) error {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "pipeline-" + hex.EncodeToString(b[:])
	st, err := blobs.StartUpload(ctx, id, d.Algorithm())
	if err != nil {
		return fmt.Errorf("starting the upload of blob %s: %w", d, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = blobs.Abort(context.WithoutCancel(ctx), id)
		}
	}()
	st, err = blobs.Append(ctx, id, st, io.LimitReader(r, size))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) {
			return archiveError("the archive is truncated inside blob %s: %v", d, err)
		}
		return fmt.Errorf("storing blob %s: %w", d, err)
	}
	if st.Offset != size {
		return archiveError("the archive is truncated inside blob %s (%d of %d bytes)", d, st.Offset, size)
	}
	if _, err := blobs.Commit(ctx, id, st, d); err != nil {
		if errors.Is(err, blob.ErrDigestMismatch) {
			return archiveError("the archive is corrupt: the content of blob %s does not match its digest", d)
		}
		return fmt.Errorf("committing blob %s: %w", d, err)
	}
	ok = true
	return nil
}

// archiveGraph reads the manifest desc names, and its children, from the
// blob store where the archive's entries went, and checks that every
// manifest and blob they reference was in the archive.
func archiveGraph(ctx context.Context, blobs blob.Store, inArchive map[digest.Digest]int64, desc ociDescriptor) ([]node, error) {
	var out []node
	seen := map[digest.Digest]bool{}
	var visit func(d digest.Digest, mediaType string, size int64, parent digest.Digest) error
	visit = func(d digest.Digest, mediaType string, size int64, parent digest.Digest) error {
		if seen[d] {
			return nil
		}
		seen[d] = true
		if len(seen) > maxManifests {
			return archiveError("artifact %s has more than %d manifests", desc.Digest, maxManifests)
		}
		got, ok := inArchive[d]
		if !ok {
			if parent == "" {
				return archiveError("the archive does not contain manifest %s that index.json lists", d)
			}
			return archiveError("the archive does not contain manifest %s that index %s references", d, parent)
		}
		if got != size {
			return archiveError("manifest %s has %d bytes in the archive, its descriptor says %d", d, got, size)
		}
		if size > maxArchiveManifest {
			return archiveError("manifest %s is larger than %d bytes", d, maxArchiveManifest)
		}
		content, err := readBlob(ctx, blobs, d, size)
		if err != nil {
			return err
		}
		parsed, err := manifest.Parse(mediaType, content)
		if err != nil {
			return archiveError("manifest %s in the archive is invalid: %v", d, err)
		}
		for _, c := range parsed.Children {
			cd, err := childDescriptor(content, c)
			if err != nil {
				return archiveError("index %s: %v", d, err)
			}
			if err := visit(c, cd.MediaType, cd.Size, d); err != nil {
				return err
			}
		}
		n := node{m: meta.Manifest{Digest: d, Content: content, MediaType: parsed.MediaType, ArtifactType: parsed.ArtifactType,
			Subject: parsed.Subject, Size: size, Blobs: parsed.Blobs, Children: parsed.Children}}
		if len(parsed.Annotations) > 0 {
			if n.m.Annotations, err = json.Marshal(parsed.Annotations); err != nil {
				return fmt.Errorf("encoding annotations of %s: %w", d, err)
			}
		}
		for _, b := range parsed.Blobs {
			bs, ok := inArchive[b]
			if !ok {
				return archiveError("manifest %s references blob %s, which is not in the archive", d, b)
			}
			n.sizes = append(n.sizes, bs)
		}
		out = append(out, n)
		return nil
	}
	if err := visit(desc.Digest, desc.MediaType, desc.Size, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// childDescriptor finds child c's descriptor in index content.
func childDescriptor(content []byte, c digest.Digest) (ociDescriptor, error) {
	var idx ociIndex
	if err := json.Unmarshal(content, &idx); err != nil {
		return ociDescriptor{}, err
	}
	for _, m := range idx.Manifests {
		if m.Digest == c {
			return m, nil
		}
	}
	return ociDescriptor{}, fmt.Errorf("no descriptor for child %s", c)
}

func readBlob(ctx context.Context, blobs blob.Store, d digest.Digest, size int64) ([]byte, error) {
	rd, err := blobs.Open(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s back from the blob store: %w", d, err)
	}
	defer func() { _ = rd.Close() }()
	b, err := io.ReadAll(io.LimitReader(rd, size+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s back from the blob store: %w", d, err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("manifest %s has %d bytes in the blob store, %d expected", d, len(b), size)
	}
	return b, nil
}

// ValidateArtifact checks an export run's artifact: repo:tag or repo@digest.
func ValidateArtifact(a string) error {
	if !strings.ContainsAny(a, ":@") {
		return fmt.Errorf("%q names no tag or digest (use repo:tag or repo@digest)", a)
	}
	_, err := parseImage(a, "artifact", true)
	return err
}
