// Package meta owns moat's metadata: registries, repositories, which blobs a
// repository may see, manifests, tags, referrers, uploads in progress,
// principals and token-signing keys.
//
// The Store interface is implemented by the sqlite package (the embedded
// default) and, for scale-out, by a PostgreSQL implementation; both run the
// one conformance suite in metatest and share the migrations in migrations/.
//
// Invariants every implementation keeps:
//
//   - Names: registry names are case-insensitive and stored lower-case;
//     repository names and tags are case-sensitive and stored as given (the
//     data plane validates them before they reach the store).
//   - A repository exists once anything was linked, pushed or tagged in it; it
//     is scoped to one registry. Nothing is ever shared or looked up across
//     registries except the blob bytes themselves, which live in the blob store.
//   - PutManifest is atomic: either the manifest, its reference rows, its
//     referrer row and its tag are all stored, or nothing is. It fails with a
//     *MissingReferenceError when a referenced blob is not linked in the
//     repository or a referenced child manifest is not in it.
//   - Writes into a registry that does not exist (LinkBlob, PutManifest,
//     CreateUpload) fail with ErrNotFound, so a registry deleted and created
//     again never sees the old one's data. DeleteX, UnlinkBlob and
//     RetireSigningKey return ErrNotFound for what does not exist;
//     ListRepositories on an unknown registry is an empty list.
//   - GetManifest and GetManifestByTag do not fill Blobs or Children (they are
//     PutManifest input; the caller has Content).
//   - Tags and repository names list in byte order (PostgreSQL needs
//     COLLATE "C" for that).
//   - Every method is safe for concurrent use by many goroutines and by several
//     processes sharing the same database.
package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound: the registry, repository, blob link, manifest, tag, upload,
	// principal or key does not exist.
	ErrNotFound = errors.New("meta: not found")
	// ErrAlreadyExists: a create collided with an existing record.
	ErrAlreadyExists = errors.New("meta: already exists")
	// ErrConflict: an optimistic update lost a race (the record changed since
	// it was read).
	ErrConflict = errors.New("meta: conflict")
)

// MissingReferenceError reports the first reference of a manifest that is not
// present in the repository. errors.Is(err, ErrNotFound) is false for it, so
// callers can tell it from a missing repository.
type MissingReferenceError struct {
	// Digest is the missing blob or manifest.
	Digest digest.Digest
	// Manifest is true when the missing reference is a child manifest (of an
	// index), false when it is a blob (config or layer).
	Manifest bool
}

func (e *MissingReferenceError) Error() string {
	kind := "blob"
	if e.Manifest {
		kind = "manifest"
	}
	return fmt.Sprintf("meta: referenced %s %s is not in the repository", kind, e.Digest)
}

// Registry is one registry of the deployment.
type Registry struct {
	// Name is the registry's name, lower-case; unique in the deployment.
	Name string
	// ResourceID is the ARM resource id
	// (/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}).
	ResourceID string
	// Location is the ARM location.
	Location string
	// SKU is Basic, Standard or Premium.
	SKU string
	// Properties is the JSON of the registry's ARM properties, owned and
	// validated by the management plane; the store keeps it verbatim.
	Properties []byte
	// Tags is the JSON object of ARM resource tags, or nil.
	Tags []byte
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version starts at 1 and increments on every update; UpdateRegistry
	// requires the caller's Version to match the stored one.
	Version int64
}

// Manifest is a manifest stored in one repository.
type Manifest struct {
	Registry   string
	Repository string
	Digest     digest.Digest
	MediaType  string
	// ArtifactType is the manifest's artifactType, or for an image manifest
	// without one, its config media type (as the referrers API reports it).
	ArtifactType string
	// Subject is the digest in the manifest's subject field, or "".
	Subject digest.Digest
	// Annotations is the JSON object of the manifest's annotations, or nil.
	Annotations []byte
	// Content is the manifest's exact bytes. Empty when returned by
	// ListReferrers.
	Content []byte
	// Size is len(Content) as stored.
	Size int64
	// Blobs are the config and layer digests; each must be linked in the
	// repository when the manifest is put.
	Blobs []digest.Digest
	// Children are the manifests an index references; each must be stored in
	// the repository when the index is put.
	Children []digest.Digest
	// CreatedAt is set by the store.
	CreatedAt time.Time
}

// Upload is an upload in progress.
type Upload struct {
	ID         string
	Registry   string
	Repository string
	// Offset and HashState are the blob store's blob.UploadState, persisted.
	Offset    int64
	HashState []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Principal is an identity that can authenticate: a user, service principal,
// managed identity, the registry admin user, a repository-scoped token, ...
type Principal struct {
	// ID is the principal's object id (a UUID); unique.
	ID string
	// Kind says what sort of principal it is ("user", "servicePrincipal", ...).
	Kind string
	// Name is the login name; unique per Kind.
	Name string
	// SecretHash is the hash of the principal's password or secret, or nil.
	SecretHash []byte
	// Properties is kind-specific JSON, or nil.
	Properties []byte
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// SigningKey is a key that signs moat's tokens.
type SigningKey struct {
	// ID is the key id ("kid" in tokens); unique.
	ID string
	// Algorithm is the JWS algorithm, e.g. "ES256".
	Algorithm string
	// PrivateKey is the PKCS#8 DER encoding of the private key.
	PrivateKey []byte
	CreatedAt  time.Time
	// RetiredAt, when set, means the key no longer signs new tokens but still
	// verifies tokens issued before it was retired.
	RetiredAt *time.Time
}

// Store is the metadata store.
type Store interface {
	ResourceStore
	AuditStore

	// Close releases the store's resources.
	Close() error
	// Ping checks that the store can serve requests (for /readyz).
	Ping(ctx context.Context) error

	// CreateRegistry stores a new registry (Version becomes 1); ErrAlreadyExists
	// if the name is taken.
	CreateRegistry(ctx context.Context, r Registry) (Registry, error)
	// GetRegistry returns the registry with that name (case-insensitive).
	GetRegistry(ctx context.Context, name string) (Registry, error)
	// UpdateRegistry replaces ResourceID, Location, SKU, Properties and Tags of
	// the registry named r.Name if its stored Version equals r.Version, and
	// returns the stored record (Version incremented). ErrConflict otherwise.
	UpdateRegistry(ctx context.Context, r Registry) (Registry, error)
	// DeleteRegistry removes the registry and everything stored in it
	// (repositories, blob links, manifests, tags, uploads).
	DeleteRegistry(ctx context.Context, name string) error
	// ListRegistries returns every registry, ordered by name.
	ListRegistries(ctx context.Context) ([]Registry, error)

	// LinkBlob records that repository repo of registry reg may see blob d of
	// the given size (creating the repository if needed). Linking twice is
	// not an error.
	LinkBlob(ctx context.Context, reg, repo string, d digest.Digest, size int64) error
	// StatBlob returns the size of blob d if it is linked in the repository.
	StatBlob(ctx context.Context, reg, repo string, d digest.Digest) (int64, error)
	// UnlinkBlob removes blob d from the repository; ErrNotFound if it was not
	// linked.
	UnlinkBlob(ctx context.Context, reg, repo string, d digest.Digest) error

	// PutManifest stores m (replacing an identical digest is a no-op apart
	// from the tag) and, if tag is not empty, points tag at it, in one
	// transaction. See MissingReferenceError.
	PutManifest(ctx context.Context, m Manifest, tag string) error
	// GetManifest returns the manifest with digest d in the repository.
	GetManifest(ctx context.Context, reg, repo string, d digest.Digest) (Manifest, error)
	// GetManifestByTag returns the manifest the tag points at.
	GetManifestByTag(ctx context.Context, reg, repo, tag string) (Manifest, error)
	// DeleteManifest removes the manifest and every tag pointing at it.
	DeleteManifest(ctx context.Context, reg, repo string, d digest.Digest) error
	// DeleteTag removes the tag; the manifest stays.
	DeleteTag(ctx context.Context, reg, repo, tag string) error
	// ListTags returns the repository's tags in lexical (byte) order, those
	// after last when last is set, at most n when n > 0. ErrNotFound if the
	// repository does not exist.
	ListTags(ctx context.Context, reg, repo, last string, n int) ([]string, error)
	// ListRepositories returns the registry's repository names in lexical order,
	// those after last when last is set, at most n when n > 0.
	ListRepositories(ctx context.Context, reg, last string, n int) ([]string, error)
	// ListReferrers returns the manifests in the repository whose subject is d,
	// filtered by artifactType when it is not empty, ordered by digest, without
	// Content.
	ListReferrers(ctx context.Context, reg, repo string, d digest.Digest, artifactType string) ([]Manifest, error)

	// CreateUpload records a new upload; ErrAlreadyExists if the id is taken.
	CreateUpload(ctx context.Context, u Upload) error
	// GetUpload returns the upload with that id.
	GetUpload(ctx context.Context, id string) (Upload, error)
	// UpdateUpload sets the upload's Offset and HashState if its stored Offset
	// is still prevOffset; ErrConflict if another request advanced it first.
	UpdateUpload(ctx context.Context, id string, prevOffset, offset int64, hashState []byte) error
	// DeleteUpload removes the upload record.
	DeleteUpload(ctx context.Context, id string) error
	// ListUploadsBefore returns uploads not updated since t (for expiry).
	ListUploadsBefore(ctx context.Context, t time.Time) ([]Upload, error)

	// PutPrincipal creates or replaces the principal with p.ID;
	// ErrAlreadyExists if another principal of the same Kind has p.Name.
	PutPrincipal(ctx context.Context, p Principal) error
	// GetPrincipal returns the principal with that id.
	GetPrincipal(ctx context.Context, id string) (Principal, error)
	// GetPrincipalByName returns the principal of that kind and login name.
	GetPrincipalByName(ctx context.Context, kind, name string) (Principal, error)
	// ListPrincipals returns the principals of a kind ("" for all), by name.
	ListPrincipals(ctx context.Context, kind string) ([]Principal, error)
	// DeletePrincipal removes the principal.
	DeletePrincipal(ctx context.Context, id string) error

	// AddSigningKey stores a new key; ErrAlreadyExists if the id is taken.
	AddSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns all keys, newest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RetireSigningKey sets the key's RetiredAt.
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
}
