// Package metatest owns the conformance suite and benchmarks that every
// meta.Store implementation runs, so that the embedded SQLite store and the
// PostgreSQL store behave the same to the rest of moat.
//
// Run checks every Store method and every invariant of meta's package doc,
// plus the behaviour the implementations agree on where meta.go is silent:
//
//   - Writing into a registry that does not exist (LinkBlob, PutManifest,
//     CreateUpload) fails with meta.ErrNotFound and stores nothing, so a
//     registry deleted and created again under the same name starts empty.
//   - DeleteRegistry, UnlinkBlob, DeleteManifest, DeleteTag, DeleteUpload,
//     DeletePrincipal and RetireSigningKey return meta.ErrNotFound for
//     something that does not exist.
//   - UpdateRegistry and UpdateUpload return meta.ErrNotFound for a record
//     that does not exist and meta.ErrConflict for a stale version or offset.
//   - A failed PutManifest leaves no trace: no manifest, no tag, and no
//     repository that did not exist before.
//   - GetManifest and GetManifestByTag need not return Blobs and Children;
//     ListReferrers returns no Content but the other fields.
//   - ListRepositories of a registry with no repositories (or none at all)
//     is empty, not an error.
//   - Store-set timestamps come back equal (time.Time.Equal) on every read;
//     AddSigningKey keeps a non-zero CreatedAt and sets a zero one to now.
//   - Byte fields round-trip exactly, including NUL bytes, invalid UTF-8 and
//     text that looks like a number; nil and empty are the same.
//
// newStore must return an empty store that no other test shares, and close
// it when the test ends (t.Cleanup).
package metatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/meta"
)

// Media types used by the suite's manifests.
const (
	mediaTypeImage  = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeIndex  = "application/vnd.oci.image.index.v1+json"
	mediaTypeConfig = "application/vnd.oci.image.config.v1+json"
)

// tricky bytes that a careless schema mangles: a JSON number (SQLite NUMERIC
// affinity turns text like it into an integer), NUL and invalid UTF-8
// (PostgreSQL TEXT rejects them).
var (
	bytesNumber = []byte("12345")
	bytesBinary = []byte{0, 0xff, 0xfe, '1', 0, 'x', 0x80}
)

type check struct {
	name string
	fn   func(e *env)
}

// Run runs the conformance suite; each case gets a store of its own.
func Run(t *testing.T, newStore func(t *testing.T) meta.Store) {
	var checks []check
	checks = append(checks, registryChecks...)
	checks = append(checks, blobChecks...)
	checks = append(checks, manifestChecks...)
	checks = append(checks, listChecks...)
	checks = append(checks, uploadChecks...)
	checks = append(checks, principalChecks...)
	checks = append(checks, keyChecks...)
	checks = append(checks, changeChecks...)
	checks = append(checks, auditChecks...)
	checks = append(checks, check{"Ping", func(e *env) {
		if err := e.s.Ping(e.ctx); err != nil {
			e.t.Fatalf("Ping: %v", err)
		}
	}})
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			c.fn(&env{t: t, s: newStore(t), ctx: t.Context()})
		})
	}
}

// env is one case's store and helpers. Its helpers fail the test with
// t.Fatalf, so call them only from the test's goroutine.
type env struct {
	t   *testing.T
	s   meta.Store
	ctx context.Context
}

func (e *env) registry(name string) meta.Registry {
	e.t.Helper()
	r, err := e.s.CreateRegistry(e.ctx, meta.Registry{
		Name: name, ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/" + name,
		Location: "westeurope", SKU: "Premium", Properties: []byte(`{"adminUserEnabled":false}`),
	})
	if err != nil {
		e.t.Fatalf("CreateRegistry(%q): %v", name, err)
	}
	return r
}

// blob links the blob named name (its digest is sha256 of name) into the
// repository and returns its digest.
func (e *env) blob(reg, repo, name string) digest.Digest {
	e.t.Helper()
	d := digest.FromString(name)
	if err := e.s.LinkBlob(e.ctx, reg, repo, d, int64(len(name))); err != nil {
		e.t.Fatalf("LinkBlob(%s, %s, %s): %v", reg, repo, d, err)
	}
	return d
}

// image links a config and a layer into the repository and returns an image
// manifest over them whose content (and so digest) depends on nonce.
func (e *env) image(reg, repo, nonce string) meta.Manifest {
	e.t.Helper()
	cfg := e.blob(reg, repo, "config of "+nonce)
	layer := e.blob(reg, repo, "layer of "+nonce)
	return manifestOf(spec{reg: reg, repo: repo, blobs: []digest.Digest{cfg, layer}, nonce: nonce})
}

func (e *env) put(m meta.Manifest, tag string) {
	e.t.Helper()
	if err := e.s.PutManifest(e.ctx, m, tag); err != nil {
		e.t.Fatalf("PutManifest(%s/%s@%s, tag %q): %v", m.Registry, m.Repository, m.Digest, tag, err)
	}
}

// spec describes a manifest for manifestOf.
type spec struct {
	reg, repo    string
	blobs        []digest.Digest // first is the config
	children     []digest.Digest // makes it an index
	subject      digest.Digest
	artifactType string
	annotations  map[string]string
	nonce        string
}

// manifestOf builds a manifest whose Content is real OCI JSON over the
// spec's references and whose Digest is that content's.
func manifestOf(sp spec) meta.Manifest {
	desc := func(mt string, d digest.Digest) map[string]any {
		return map[string]any{"mediaType": mt, "digest": d, "size": 1}
	}
	doc := map[string]any{"schemaVersion": 2}
	m := meta.Manifest{Registry: sp.reg, Repository: sp.repo, Subject: sp.subject, ArtifactType: sp.artifactType,
		Blobs: sp.blobs, Children: sp.children}
	if sp.children != nil || sp.blobs == nil {
		m.MediaType = mediaTypeIndex
		var ms []any
		for _, c := range sp.children {
			ms = append(ms, desc(mediaTypeImage, c))
		}
		doc["manifests"] = ms
	} else {
		m.MediaType = mediaTypeImage
		doc["config"] = desc(mediaTypeConfig, sp.blobs[0])
		var ls []any
		for _, l := range sp.blobs[1:] {
			ls = append(ls, desc("application/vnd.oci.image.layer.v1.tar+gzip", l))
		}
		doc["layers"] = ls
		if m.ArtifactType == "" {
			m.ArtifactType = mediaTypeConfig
		}
	}
	doc["mediaType"] = m.MediaType
	if sp.artifactType != "" {
		doc["artifactType"] = sp.artifactType
	}
	if sp.subject != "" {
		doc["subject"] = desc(mediaTypeImage, sp.subject)
	}
	ann := map[string]string{"org.example.nonce": sp.nonce}
	for k, v := range sp.annotations {
		ann[k] = v
	}
	doc["annotations"] = ann
	content, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("metatest: marshal manifest: %v", err)) // maps of strings always marshal
	}
	annJSON, err := json.Marshal(ann)
	if err != nil {
		panic(fmt.Sprintf("metatest: marshal annotations: %v", err))
	}
	m.Annotations = annJSON
	m.Content = content
	m.Size = int64(len(content))
	m.Digest = digest.FromBytes(content)
	return m
}

// diffManifest lists how got differs from want in the fields a read
// returns; withContent says whether Content is expected.
func diffManifest(got, want meta.Manifest, withContent bool) []string {
	var d []string
	cmp := func(field string, g, w any) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
		}
	}
	cmp("Registry", got.Registry, strings.ToLower(want.Registry))
	cmp("Repository", got.Repository, want.Repository)
	cmp("Digest", got.Digest, want.Digest)
	cmp("MediaType", got.MediaType, want.MediaType)
	cmp("ArtifactType", got.ArtifactType, want.ArtifactType)
	cmp("Subject", got.Subject, want.Subject)
	cmp("Size", got.Size, int64(len(want.Content)))
	if !bytes.Equal(got.Annotations, want.Annotations) {
		d = append(d, fmt.Sprintf("Annotations = %q, want %q", got.Annotations, want.Annotations))
	}
	if withContent && !bytes.Equal(got.Content, want.Content) {
		d = append(d, fmt.Sprintf("Content = %q, want %q", got.Content, want.Content))
	}
	if !withContent && len(got.Content) != 0 {
		d = append(d, "Content is set, want empty")
	}
	if got.CreatedAt.IsZero() {
		d = append(d, "CreatedAt is zero")
	}
	return d
}

func (e *env) wantManifest(what string, got meta.Manifest, err error, want meta.Manifest) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	if d := diffManifest(got, want, true); len(d) > 0 {
		e.t.Fatalf("%s:\n  %s", what, strings.Join(d, "\n  "))
	}
}

func (e *env) wantErr(what string, err, target error) {
	e.t.Helper()
	if !isErr(err, target) {
		e.t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func isErr(err, target error) bool {
	if target == nil {
		return err == nil
	}
	return err != nil && errors.Is(err, target)
}

func (e *env) wantStrings(what string, got []string, err error, want ...string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	if len(got) != len(want) || (len(want) > 0 && strings.Join(got, "\x00") != strings.Join(want, "\x00")) {
		e.t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}
