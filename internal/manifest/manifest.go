// Package manifest owns the parsing and validation of the manifest formats
// moat stores: OCI image manifests and indexes (image-spec v1.1) and Docker
// schema 2 manifests and manifest lists. It is pure: bytes in, facts out.
//
// Parse decides what a manifest refers to (the blobs that must already be in
// the repository, the child manifests of an index, the subject of a
// referrer), which the data plane checks before anything is stored. Docker
// schema 1 is refused: it is deprecated, signed with keys nobody checks, and
// no current client needs to push it.
package manifest

import (
	"bytes"
	// go-digest validates only algorithms whose hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxSize is the largest manifest accepted by default (4 MiB, as the OCI
// distribution spec suggests registries allow at least).
const MaxSize = 4 << 20

// Media types moat understands.
const (
	MediaTypeOCIManifest    = v1.MediaTypeImageManifest
	MediaTypeOCIIndex       = v1.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

var (
	// ErrInvalid: the manifest is malformed or inconsistent. Wrapped with the
	// reason.
	ErrInvalid = errors.New("manifest invalid")
	// ErrUnsupportedMediaType: the manifest's media type is not one moat
	// stores.
	ErrUnsupportedMediaType = errors.New("manifest media type unsupported")
)

// Parsed is what the registry needs to know about a manifest.
type Parsed struct {
	// MediaType is the manifest's media type (from the document, else the
	// Content-Type it was pushed with).
	MediaType string
	// ArtifactType is the artifactType field or, for an image manifest
	// without one, its config media type (what the referrers API reports).
	ArtifactType string
	// Subject is the digest in the subject field, or "".
	Subject digest.Digest
	// Blobs are the config and layer digests that must be in the repository,
	// in document order, without duplicates. Layers with external URLs
	// (foreign or non-distributable layers) are not included.
	Blobs []digest.Digest
	// Children are the manifests an index references, without duplicates.
	Children []digest.Digest
	// Annotations are the manifest's annotations, or nil.
	Annotations map[string]string
}

// IsKnownMediaType reports whether mt (parameters ignored) is a manifest media
// type moat stores.
func IsKnownMediaType(mt string) bool {
	switch baseType(mt) {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

func isIndexType(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

// document is the union of the manifest and index shapes, so one decode tells
// which fields are present.
type document struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
	// Present only in schema 1, to refuse it with a clear message.
	FSLayers json.RawMessage `json:"fsLayers"`
}

// Parse validates body as a manifest pushed with the given Content-Type and
// returns what it refers to. Errors wrap ErrInvalid or
// ErrUnsupportedMediaType with a message that names the offending field.
func Parse(contentType string, body []byte) (*Parsed, error) {
	var doc document
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: not a JSON manifest: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON document", ErrInvalid)
	}
	if doc.SchemaVersion == nil {
		return nil, fmt.Errorf("%w: schemaVersion is missing", ErrInvalid)
	}
	if *doc.SchemaVersion == 1 || doc.FSLayers != nil {
		return nil, fmt.Errorf("%w: Docker schema 1 manifests are not supported", ErrUnsupportedMediaType)
	}
	if *doc.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schemaVersion is %d, want 2", ErrInvalid, *doc.SchemaVersion)
	}

	mt, err := resolveMediaType(contentType, &doc)
	if err != nil {
		return nil, err
	}
	p := &Parsed{MediaType: mt, ArtifactType: doc.ArtifactType, Annotations: doc.Annotations}
	if doc.Subject != nil {
		if err := checkDescriptor("subject", *doc.Subject); err != nil {
			return nil, err
		}
		p.Subject = doc.Subject.Digest
	}

	if isIndexType(mt) {
		if doc.Config != nil || doc.Layers != nil {
			return nil, fmt.Errorf("%w: an index (%s) must not have config or layers", ErrInvalid, mt)
		}
		if doc.Manifests == nil {
			return nil, fmt.Errorf("%w: manifests is missing", ErrInvalid)
		}
		seen := make(map[digest.Digest]bool, len(doc.Manifests))
		for i, d := range doc.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), d); err != nil {
				return nil, err
			}
			if !seen[d.Digest] {
				seen[d.Digest] = true
				p.Children = append(p.Children, d.Digest)
			}
		}
		return p, nil
	}

	if doc.Manifests != nil {
		return nil, fmt.Errorf("%w: an image manifest (%s) must not have manifests", ErrInvalid, mt)
	}
	if doc.Config == nil {
		return nil, fmt.Errorf("%w: config is missing", ErrInvalid)
	}
	if err := checkDescriptor("config", *doc.Config); err != nil {
		return nil, err
	}
	if mt == MediaTypeDockerManifest && doc.Layers == nil {
		return nil, fmt.Errorf("%w: layers is missing", ErrInvalid)
	}
	seen := map[digest.Digest]bool{doc.Config.Digest: true}
	p.Blobs = append(p.Blobs, doc.Config.Digest)
	for i, d := range doc.Layers {
		if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), d); err != nil {
			return nil, err
		}
		if len(d.URLs) > 0 || seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		p.Blobs = append(p.Blobs, d.Digest)
	}
	if p.ArtifactType == "" && mt == MediaTypeOCIManifest {
		p.ArtifactType = doc.Config.MediaType
	}
	return p, nil
}

// resolveMediaType picks the manifest's media type from the document and the
// Content-Type header, which must agree when both name a manifest type.
func resolveMediaType(contentType string, doc *document) (string, error) {
	ct := baseType(contentType)
	if doc.MediaType != "" {
		if !IsKnownMediaType(doc.MediaType) {
			return "", fmt.Errorf("%w: %q", ErrUnsupportedMediaType, doc.MediaType)
		}
		if ct != "" && IsKnownMediaType(ct) && ct != doc.MediaType {
			return "", fmt.Errorf("%w: mediaType %q does not match Content-Type %q", ErrInvalid, doc.MediaType, ct)
		}
		return doc.MediaType, nil
	}
	if IsKnownMediaType(ct) {
		// Docker formats always carry mediaType; only OCI may omit it.
		if ct == MediaTypeDockerManifest || ct == MediaTypeDockerList {
			return "", fmt.Errorf("%w: mediaType is missing", ErrInvalid)
		}
		if (ct == MediaTypeOCIIndex) != (doc.Manifests != nil) {
			return "", fmt.Errorf("%w: document shape does not match Content-Type %q", ErrInvalid, ct)
		}
		return ct, nil
	}
	if ct == "" {
		return "", fmt.Errorf("%w: no mediaType in the manifest and no Content-Type", ErrUnsupportedMediaType)
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedMediaType, ct)
}

func checkDescriptor(field string, d v1.Descriptor) error {
	if d.MediaType == "" {
		return fmt.Errorf("%w: %s.mediaType is missing", ErrInvalid, field)
	}
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: %s.digest %q: %v", ErrInvalid, field, d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: %s.size %d is negative", ErrInvalid, field, d.Size)
	}
	return nil
}

// baseType strips parameters and case from a media type.
func baseType(mt string) string {
	if mt == "" {
		return ""
	}
	if t, _, err := mime.ParseMediaType(mt); err == nil {
		return t
	}
	return strings.ToLower(strings.TrimSpace(strings.SplitN(mt, ";", 2)[0]))
}
