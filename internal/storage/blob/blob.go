// Package blob owns moat's content-addressed blob storage: committed blobs
// keyed by digest and the in-progress uploads that become them.
//
// Invariants every implementation keeps (checked by the shared suite in
// blobtest):
//
//   - A blob is visible under its digest only once its full content has been
//     durably written and verified against that digest; a reader never sees a
//     partial blob, and a crash mid-upload leaves nothing visible.
//   - Blobs are shared: the same digest is stored once for the whole
//     deployment. Which repository may see a blob is the metadata store's
//     business, not this package's.
//   - Upload progress lives in UploadState, which the caller persists (in the
//     metadata store) between requests. The store keeps only the bytes, so an
//     upload may continue on another process that shares the storage. The
//     persisted state is the source of truth: bytes beyond State.Offset left by
//     a crashed request are discarded by the next Append.
//   - One request at a time per upload: Append and Commit on the same upload
//     are exclusive, and a state that a later Append overtook is refused with
//     ErrOffsetMismatch. Otherwise two racing requests could leave bytes on
//     disk that the persisted hash does not describe, and Commit would publish
//     them under a digest they do not match, for every registry.
//   - No store-wide lock is taken on the write path.
package blob

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors returned by every implementation. Wrap them with %w; callers test
// with errors.Is.
var (
	// ErrNotFound: no committed blob with that digest, or no such upload.
	ErrNotFound = errors.New("blob: not found")
	// ErrDigestMismatch: the uploaded content does not hash to the digest the
	// client declared.
	ErrDigestMismatch = errors.New("blob: digest mismatch")
	// ErrOffsetMismatch: Append was called with a state whose Offset differs
	// from what the store can continue from (e.g. bytes are missing).
	ErrOffsetMismatch = errors.New("blob: upload offset mismatch")
	// ErrUnsupportedAlgorithm: a digest algorithm other than sha256/sha512.
	ErrUnsupportedAlgorithm = errors.New("blob: unsupported digest algorithm")
)

// UploadState is the resumable state of an upload. It is opaque to callers
// apart from Offset; persist it as-is between requests.
type UploadState struct {
	// Offset is the number of bytes received so far.
	Offset int64 `json:"offset"`
	// Hash is the marshalled state of the running hash, prefixed with its
	// algorithm, so hashing continues where it stopped on any process.
	Hash []byte `json:"hash"`
}

// Reader reads a committed blob. Implementations backed by local files return
// a value that also implements interface{ Fd() uintptr } / *os.File semantics
// so that net/http can use sendfile; callers must not rely on it.
type Reader interface {
	io.ReadSeekCloser
	// Size is the blob's length in bytes.
	Size() int64
}

// Store is the blob store.
type Store interface {
	// Stat returns the size of the committed blob d, or ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (int64, error)

	// Open returns a reader over the committed blob d, or ErrNotFound.
	Open(ctx context.Context, d digest.Digest) (Reader, error)

	// Delete removes the committed blob d. Deleting a missing blob returns
	// ErrNotFound. Only garbage collection calls this: a blob may be shared by
	// many repositories and registries.
	Delete(ctx context.Context, d digest.Digest) error

	// StartUpload prepares an upload with the given id (chosen by the caller,
	// unique) and returns its initial state. alg is the digest algorithm the
	// client announced, if any (e.g. from POST ?digest=sha512:...); empty means
	// sha256. A different algorithm at Commit is still accepted (the content is
	// re-read and hashed then), so guessing wrong costs time, not correctness.
	StartUpload(ctx context.Context, id string, alg digest.Algorithm) (UploadState, error)

	// Append writes everything read from r to upload id, continuing from
	// st.Offset, and returns the new state. Bytes beyond st.Offset from a
	// previous failed request are discarded first. If r fails, Append returns
	// the error and the caller must keep the old state (the partial bytes will
	// be discarded by the next Append). ErrNotFound if the upload is unknown.
	//
	// A store may return once it has read r and finish storing the bytes in
	// the background: Commit then waits for them, and a state whose bytes
	// could not be stored fails the upload's next request (with
	// ErrOffsetMismatch if the store no longer knows why).
	Append(ctx context.Context, id string, st UploadState, r io.Reader) (UploadState, error)

	// Commit verifies that the upload's first st.Offset bytes hash to want
	// and makes them visible as blob want, atomically, then removes the upload.
	// If the blob already exists the upload is simply removed. On
	// ErrDigestMismatch the upload is left in place (the client may retry or
	// cancel). Returns the blob's size.
	Commit(ctx context.Context, id string, st UploadState, want digest.Digest) (int64, error)

	// Abort removes upload id and its bytes. Aborting an unknown upload returns
	// ErrNotFound.
	Abort(ctx context.Context, id string) error
}

// Redirector is implemented by stores whose committed blobs clients can
// download directly from the storage service, bypassing moat (the data
// plane's optional download redirect).
type Redirector interface {
	// CanRedirect returns nil when DownloadURL can sign URLs with the
	// store's credential, else why not.
	CanRedirect() error
	// DownloadURL returns a URL from which blob d can be read for ttl,
	// without further credentials.
	DownloadURL(ctx context.Context, d digest.Digest, ttl time.Duration) (string, error)
}
