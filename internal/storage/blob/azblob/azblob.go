// Package azblob owns moat's blob store in Azure Blob Storage (or Azurite):
// content-addressed blobs and in-progress uploads kept in one container, shared
// by every replica. It implements blob.Store and passes the shared suite in
// blobtest.
//
// Configuration (see ParseURL) is --blob-store azblob://<account>/<container>
// with an optional ?endpoint=<blob service URL>, and exactly one credential
// in the environment: MOAT_AZBLOB_ACCOUNT_KEY (shared key), MOAT_AZBLOB_SAS
// (SAS token) or MOAT_AZBLOB_CREDENTIAL=managed-identity (Microsoft Entra
// tokens of the host's managed identity from azidentity; MOAT_AZBLOB_CLIENT_ID
// names a user-assigned one). Several credentials at once are refused, not
// ranked. The container is created if missing.
//
// Layout in the container:
//
//	blobs/<alg>/<hex>   committed blobs (sha256, sha512)
//	uploads/<id>        a block blob per upload in progress
//
// Invariants, beyond those of package blob:
//
//   - Names are built only from digests that passed digest.Validate (sha256 or
//     sha512, lower-case hex of the exact length) and from upload ids of 1..128
//     characters in [A-Za-z0-9_-], so no input names anything else.
//   - Uploads: Append stages the body as blocks of BlockSize bytes on the
//     upload's blob (several at a time, hashing while they travel), then
//     commits the block list "blocks of the state it continued from + the new
//     ones" with If-Match on the ETag it started from. So the upload blob's
//     committed content is always exactly the bytes of the latest state; bytes
//     of a failed Append stay uncommitted and Azure discards them at the next
//     commit. A block id encodes the Append's random nonce, offset and length
//     (state.go), so the committed block list itself records which Append
//     wrote which bytes.
//   - Hash state: the UploadState carries the algorithm, offset, the nonce of
//     the Append that made it, and the marshalled running hash, so any replica
//     continues the upload.
//   - Exclusivity and overtaken states, without leases: a state is usable only
//     while the committed block ending at its Offset carries its nonce. A
//     state replayed from further back drops the blocks after it, so the
//     states it overtook are refused (ErrOffsetMismatch) from then on; two
//     requests racing on one upload cannot both commit, because each commits
//     with If-Match on the ETag it read (the loser gets ErrOffsetMismatch).
//     A replica that dies mid-request holds nothing that blocks the next one.
//   - Atomic visibility: Commit verifies the digest (the running sum, or the
//     upload blob re-read under If-Match when the algorithm differs), then
//     copies the upload blob server-side to blobs/<alg>/<hex> with a source
//     If-Match (the bytes verified are the bytes copied) and a destination
//     If-None-Match: * (an existing blob is never overwritten; it is verified
//     content too, so Commit succeeds). A blob whose copy is not complete
//     (pending, failed, aborted) is reported as not found by Stat and Open, so
//     a reader sees a blob whole or not at all; a failed copy is replaced by
//     the next Commit.
//     The copy stays inside the account: with a shared key or a managed
//     identity's bearer token, the destination request's credential
//     authorises the source too (Azure's rule for Copy Blob within one
//     account); with a SAS the source URL carries the token (which
//     therefore needs read permission).
//   - Download redirects (redirect.go) are service SAS URLs signed with the
//     account key or, under a managed identity, user delegation SAS URLs
//     signed with a user delegation key cached until shortly before it
//     expires. The SDK takes the account of a user delegation SAS from the
//     first label of the endpoint's host, so redirects under a managed
//     identity need a host-style endpoint (every Azure one is); a path-style
//     one (Azurite's https://127.0.0.1:port/<account>) is refused by
//     CanRedirect, and so at start-up.
//   - Commit verifies the content even when the blob already exists.
//   - Reads are ranged GETs on demand, each conditional on the ETag seen at
//     Open (see Reader).
//   - Nothing store-wide is locked; every condition is per blob. Secrets are
//     never logged or put in errors: Config's String and LogValue omit them.
//
// Limits: an upload has at most 50,000 committed blocks (Azure's limit), one
// per Append or per BlockSize bytes, whichever is more; each Append re-reads
// and re-commits the block list, so very many tiny Appends cost more than
// few large ones. Abandoned uploads stay until the caller Aborts them.
package azblob

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

const maxIDLen = 128

// Store is a blob.Store over an Azure Blob Storage container. It is safe for
// concurrent use, and any number of Stores (replicas) may share a container.
type Store struct {
	c           *container.Client
	cfg         Config
	key         *container.SharedKeyCredential // nil unless the account key is the credential
	token       azcore.TokenCredential         // nil unless a managed identity is the credential
	delegation  delegation                     // user delegation key for redirects under token
	blockSize   int
	concurrency int
	bufs        sync.Pool
}

var _ blob.Store = (*Store)(nil)

// New connects to the container cfg names, creating it if missing.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("blob azblob: %w", err)
	}
	containerURL := cfg.serviceURL() + cfg.Container
	opts := &container.ClientOptions{}
	opts.Transport = cfg.Transport
	var (
		c     *container.Client
		key   *container.SharedKeyCredential
		token azcore.TokenCredential
		err   error
	)
	switch {
	case cfg.AccountKey != "":
		var cred *container.SharedKeyCredential
		cred, err = container.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
		if err != nil {
			// The SDK's message may quote the key; do not pass it on.
			return nil, fmt.Errorf("blob azblob: %s is not a valid account key", EnvAccountKey)
		}
		c, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
		key = cred
	case cfg.ManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{}
		if cfg.ClientID != "" {
			mo.ID = azidentity.ClientID(cfg.ClientID)
		}
		var cred *azidentity.ManagedIdentityCredential
		if cred, err = azidentity.NewManagedIdentityCredential(mo); err != nil {
			return nil, fmt.Errorf("blob azblob: managed identity: %w", err)
		}
		c, err = container.NewClient(containerURL, cred, opts)
		token = cred
	default:
		c, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(cfg.SAS, "?"), opts)
	}
	if err != nil {
		return nil, fmt.Errorf("blob azblob: client for %s: %w", cfg, err)
	}
	s := &Store{c: c, cfg: cfg, key: key, token: token, blockSize: cfg.BlockSize, concurrency: cfg.Concurrency}
	if s.blockSize == 0 {
		s.blockSize = defaultBlockSize
	}
	if s.concurrency == 0 {
		s.concurrency = defaultConcurrency
	}
	s.bufs.New = func() any {
		b := make([]byte, s.blockSize)
		return &b
	}
	if err := s.createContainer(ctx); err != nil {
		return nil, fmt.Errorf("blob azblob: %s: %w", cfg, err)
	}
	return s, nil
}

func (s *Store) createContainer(ctx context.Context) error {
	_, err := s.c.Create(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	// A SAS scoped to the container may not create it, yet may use it. Asking
	// for a blob that is never there tells which: BlobNotFound means the
	// container exists and the credential reads it.
	if status(err) == http.StatusForbidden {
		_, perr := s.c.NewBlobClient("uploads/.probe").GetProperties(ctx, nil)
		if perr == nil || bloberror.HasCode(perr, bloberror.BlobNotFound) {
			return nil
		}
	}
	return fmt.Errorf("create container: %w", err)
}

// blobName validates d and returns its committed blob's name.
func blobName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return "", fmt.Errorf("%w: digest %q", blob.ErrUnsupportedAlgorithm, string(d))
		}
		return "", fmt.Errorf("blob azblob: invalid digest %q: %w", string(d), err)
	}
	alg := d.Algorithm()
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return "", fmt.Errorf("%w: %q", blob.ErrUnsupportedAlgorithm, string(alg))
	}
	return "blobs/" + string(alg) + "/" + d.Encoded(), nil
}

// uploadName validates id and returns its upload blob's name.
func uploadName(id string) (string, error) {
	if len(id) == 0 || len(id) > maxIDLen {
		return "", fmt.Errorf("blob azblob: invalid upload id %q", id)
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return "", fmt.Errorf("blob azblob: invalid upload id %q", id)
		}
	}
	return "uploads/" + id, nil
}

func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func isNotFound(err error) bool {
	return bloberror.HasCode(err, bloberror.BlobNotFound) || status(err) == http.StatusNotFound && !bloberror.HasCode(err, bloberror.ContainerNotFound)
}

// notFound maps a missing blob to blob.ErrNotFound, keeping the context.
func notFound(err error, what string) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, what)
	}
	return fmt.Errorf("blob azblob: %s: %w", what, err)
}

// complete reports whether a blob's properties describe finished content: a
// blob made by a copy is not, until the copy has succeeded.
func complete(cs *azb.CopyStatusType) bool {
	return cs == nil || *cs == azb.CopyStatusTypeSuccess
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	name, err := blobName(d)
	if err != nil {
		return 0, err
	}
	p, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if err != nil {
		return 0, notFound(err, "blob "+string(d))
	}
	if !complete(p.CopyStatus) || p.ContentLength == nil {
		return 0, fmt.Errorf("%w: blob %s (copy not complete)", blob.ErrNotFound, d)
	}
	return *p.ContentLength, nil
}

// Open implements blob.Store. The reader fetches ranges on demand.
func (s *Store) Open(ctx context.Context, d digest.Digest) (blob.Reader, error) {
	name, err := blobName(d)
	if err != nil {
		return nil, err
	}
	bc := s.c.NewBlobClient(name)
	p, err := bc.GetProperties(ctx, nil)
	if err != nil {
		return nil, notFound(err, "blob "+string(d))
	}
	if !complete(p.CopyStatus) || p.ContentLength == nil || p.ETag == nil {
		return nil, fmt.Errorf("%w: blob %s (copy not complete)", blob.ErrNotFound, d)
	}
	return &Reader{ctx: ctx, bc: bc, name: string(d), size: *p.ContentLength, etag: *p.ETag}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	name, err := blobName(d)
	if err != nil {
		return err
	}
	if _, err := s.c.NewBlobClient(name).Delete(ctx, nil); err != nil {
		return notFound(err, "blob "+string(d))
	}
	return nil
}

// StartUpload implements blob.Store. The upload blob is created empty, with
// If-None-Match: * so an id in use is refused.
func (s *Store) StartUpload(ctx context.Context, id string, alg digest.Algorithm) (blob.UploadState, error) {
	name, err := uploadName(id)
	if err != nil {
		return blob.UploadState{}, err
	}
	if alg == "" {
		alg = digest.SHA256
	}
	h, err := newHash(alg)
	if err != nil {
		return blob.UploadState{}, err
	}
	st, err := (&state{alg: alg, h: h}).encode()
	if err != nil {
		return blob.UploadState{}, err
	}
	_, err = s.c.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(strings.NewReader("")), &blockblob.UploadOptions{
		AccessConditions: &azb.AccessConditions{ModifiedAccessConditions: &azb.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}},
	})
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || status(err) == http.StatusConflict || status(err) == http.StatusPreconditionFailed {
			return blob.UploadState{}, fmt.Errorf("blob azblob: start upload %s: id already in use", id)
		}
		return blob.UploadState{}, fmt.Errorf("blob azblob: start upload %s: %w", id, err)
	}
	return st, nil
}

// Abort implements blob.Store.
func (s *Store) Abort(ctx context.Context, id string) error {
	name, err := uploadName(id)
	if err != nil {
		return err
	}
	if _, err := s.c.NewBlobClient(name).Delete(ctx, nil); err != nil {
		return notFound(err, "upload "+id)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// pollInterval is how often Commit looks at a server-side copy that did not
// complete at once (within an account it almost always does).
const pollInterval = 50 * time.Millisecond
