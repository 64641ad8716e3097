// Package fs owns moat's embedded blob store: content-addressed blobs and
// in-progress uploads kept in one local directory. It implements blob.Store
// and passes the shared suite in blobtest.
//
// Layout under the root directory:
//
//	blobs/<alg>/<first 2 hex>/<hex>   committed blobs (sha256, sha512)
//	uploads/<id>/data                 bytes of an upload in progress
//	uploads/<id>/states               states the upload may continue from
//
// Invariants, beyond those of package blob:
//
//   - Every path is built from a digest that passed digest.Validate (lower-case
//     hex of the exact length, sha256 or sha512 only) or from an upload id of
//     1..128 characters in [A-Za-z0-9_-]. Anything else is rejected before a
//     path is formed, so no input can name a file outside the root.
//   - Atomic visibility: an upload's data file is fsynced and verified against
//     the wanted digest, then renamed into blobs/ (rename is atomic on POSIX)
//     and the directory is fsynced. A blob path therefore only ever holds a
//     complete, verified file. Two commits of the same digest may race: each
//     rename atomically replaces identical bytes, so both succeed and no lock
//     is needed.
//   - Hash state persistence: Append hashes while it writes and returns the
//     hash's marshalled state (see hashstate.go) in the UploadState, so the
//     next Append or the Commit may run in another process sharing the root.
//     The state, not the data file's length, is the truth: bytes beyond
//     UploadState.Offset (left by a request that failed) are truncated away,
//     and a data file shorter than the Offset is ErrOffsetMismatch. A real
//     state is stored (returned by a small Append, or logged for a pending
//     one) only once the bytes it covers are fsynced, so they are on disk
//     and are the bytes its hash consumed; that is what lets Commit compare
//     the running sum instead of reading the upload back.
//   - Sessions (session.go): an Append of more than one hash slice returns
//     a pending state as soon as it has read its body; the bytes are
//     hashed, written and fsynced in the background, and an Append from
//     that state arriving meanwhile feeds the same pipeline. Commit and
//     Abort wait for that work, and Settle waits for all of it. A pending
//     state whose real state was never stored (the process was killed
//     first) is rebuilt by hashing the data file again (upload.recover).
//   - One request at a time per upload, and only from a state that still
//     describes the data: Append, Commit and sessions hold an flock on the
//     upload's data file (a request that finds it held waits up to 2 s,
//     then gets ErrOffsetMismatch), and refuse a
//     state missing from the upload's state log, e.g. one superseded by a
//     later Append from the same starting point (see upload.go). Without
//     this, overlapping requests could publish bytes under a digest they do
//     not have. The lock is per upload; nothing store-wide is locked.
//   - Commit verifies the content even when the blob already exists, so a
//     client cannot claim a blob it does not have by naming its digest.
//   - Zero-copy reads: Open returns a reader that exposes the underlying
//     *os.File through syscall.Conn and io.WriterTo, which is what net uses to
//     pick sendfile(2); http.ServeContent over a TCP connection therefore sends
//     blobs without copying them through user space, ranges included.
//   - Delete leaves the (empty) fan-out directories in place: removing them
//     could race with a commit that just created them.
//   - Drop-behind: once an Append has fsynced its bytes it tells the kernel
//     to drop them from the page cache (posix_fadvise DONTNEED). A push then
//     neither evicts the blobs that pulls keep hot nor grows the page cache
//     by every byte pushed; on a VM whose memory the host backs lazily, a
//     growing page cache cut 512 MiB pushes from ~750 to ~220 MB/s, as fresh
//     pages were faulted in from the host. The price: the first pull of a
//     freshly pushed blob reads it from disk; later pulls find it cached.
//   - Direct writes: on Linux, the full 4 MiB chunks of a body larger than
//     one hash slice are written with O_DIRECT where aligned (see fileWriter in
//     append.go), skipping the page cache altogether; the same fsync ends
//     the Append, so durability is unchanged. A file system that refuses
//     O_DIRECT gets page-cache writes, as every other platform does.
package fs

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

const (
	dirPerm  = 0o750
	filePerm = 0o600
	dataName = "data"
	maxIDLen = 128
)

// Store is a blob.Store over a local directory. It is safe for concurrent use,
// and several Stores (in one process or several) may share one root.
type Store struct {
	blobs   string // <root>/blobs
	uploads string // <root>/uploads

	// serial disables the hash/write pipeline in Append; only benchmarks and
	// tests set it, to compare the two.
	serial bool
	// lockWait is how long a request waits for an upload another holds.
	lockWait time.Duration
	// beforePersist, if set, runs before a session persists a mark; tests
	// use it to hold a session open or make persisting fail.
	beforePersist func() error

	mu       sync.Mutex
	sessions map[string]*session // by upload id
	failures map[string]error    // by upload id: why a session could not store bytes it took
}

// defaultLockWait bounds the wait for an upload that another request (or
// another process's session) holds: long enough for a session to finish
// the writes in its pipeline, 24 MiB, on a slow disk.
const defaultLockWait = 2 * time.Second

var _ blob.Store = (*Store)(nil)

// New returns a Store rooted at root, creating the directory layout if needed.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob fs: root %q: %w", root, err)
	}
	s := &Store{
		blobs:    filepath.Join(abs, "blobs"),
		uploads:  filepath.Join(abs, "uploads"),
		lockWait: defaultLockWait,
		sessions: map[string]*session{},
		failures: map[string]error{},
	}
	for _, dir := range []string{s.blobs, s.uploads} {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return nil, fmt.Errorf("blob fs: create %s: %w", dir, err)
		}
	}
	return s, nil
}

// blobPath validates d and returns where its committed blob lives.
func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return "", fmt.Errorf("%w: digest %q", blob.ErrUnsupportedAlgorithm, string(d))
		}
		return "", fmt.Errorf("blob fs: invalid digest %q: %w", string(d), err)
	}
	alg := d.Algorithm()
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return "", fmt.Errorf("%w: %q", blob.ErrUnsupportedAlgorithm, string(alg))
	}
	enc := d.Encoded()
	return filepath.Join(s.blobs, string(alg), enc[:2], enc), nil
}

// validID reports whether id may name an upload directory: 1..128 characters
// of [A-Za-z0-9_-], so never "." or "..", never a separator.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// uploadDir validates id and returns its upload directory.
func (s *Store) uploadDir(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("blob fs: invalid upload id %q", id)
	}
	return filepath.Join(s.uploads, id), nil
}

// notFound maps a missing file to blob.ErrNotFound, keeping the context.
func notFound(err error, what string) error {
	if errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, what)
	}
	return fmt.Errorf("blob fs: %s: %w", what, err)
}

// Stat implements blob.Store.
func (s *Store) Stat(_ context.Context, d digest.Digest) (int64, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, notFound(err, "blob "+string(d))
	}
	return fi.Size(), nil
}

// Open implements blob.Store. The reader exposes its *os.File for sendfile;
// see reader.go.
func (s *Store) Open(_ context.Context, d digest.Digest) (blob.Reader, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p) //nolint:gosec // p is built from a validated digest under the root
	if err != nil {
		return nil, notFound(err, "blob "+string(d))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close() // read-only; the Stat error is the one to report
		return nil, fmt.Errorf("blob fs: stat blob %s: %w", d, err)
	}
	return &Reader{f: f, size: fi.Size()}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	p, err := s.blobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound(err, "blob "+string(d))
	}
	return nil
}

// StartUpload implements blob.Store. An id that is already in use is an
// error: ids are the caller's to keep unique, and reusing one would mix two
// uploads' bytes.
func (s *Store) StartUpload(_ context.Context, id string, alg digest.Algorithm) (blob.UploadState, error) {
	dir, err := s.uploadDir(id)
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
	state, err := encodeState(alg, 0, h)
	if err != nil {
		return blob.UploadState{}, err
	}
	if err := os.Mkdir(dir, dirPerm); err != nil {
		return blob.UploadState{}, fmt.Errorf("blob fs: start upload %s: %w", id, err)
	}
	st := blob.UploadState{Offset: 0, Hash: state}
	f, err := os.OpenFile(filepath.Join(dir, dataName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm) //nolint:gosec // dir is built from a validated id
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = createStateLog(dir, st)
	}
	if err != nil {
		_ = os.RemoveAll(dir) // best effort: nothing half-made is left behind
		return blob.UploadState{}, fmt.Errorf("blob fs: start upload %s: %w", id, err)
	}
	return st, nil
}

// Abort implements blob.Store. It waits for the upload's session, if any,
// to finish writing, unless a request is still feeding it: that one fails
// once its files are gone.
func (s *Store) Abort(ctx context.Context, id string) error {
	dir, err := s.uploadDir(id)
	if err != nil {
		return err
	}
	if err := s.settle(ctx, id, true); err != nil {
		return fmt.Errorf("blob fs: abort upload %s: %w", id, err)
	}
	if _, err := os.Lstat(dir); err != nil {
		return notFound(err, "upload "+id)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("blob fs: abort upload %s: %w", id, err)
	}
	s.forget(id)
	return nil
}

// Commit implements blob.Store. A pending state's bytes are waited for:
// the blob becomes visible only once they are all on disk.
func (s *Store) Commit(ctx context.Context, id string, st blob.UploadState, want digest.Digest) (int64, error) {
	target, err := s.blobPath(want)
	if err != nil {
		return 0, err
	}
	if _, err := s.uploadDir(id); err != nil {
		return 0, err
	}
	if err := checkState(st); err != nil {
		return 0, err
	}
	if err := s.settle(ctx, id, false); err != nil {
		return 0, fmt.Errorf("blob fs: commit upload %s: %w", id, err)
	}
	if err := s.takeFailure(id, st); err != nil {
		return 0, err
	}
	u, err := s.openUpload(ctx, id, st)
	if err != nil {
		return 0, err
	}
	size, err := s.commitOpen(ctx, u, want, target)
	if cerr := u.close(); err == nil && cerr != nil {
		// The blob is in place; only the upload's cleanup is unfinished.
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	s.forget(id)
	return size, s.removeUpload(u.dir)
}

// commitOpen restores u's hash and commits it.
func (s *Store) commitOpen(ctx context.Context, u *upload, want digest.Digest, target string) (int64, error) {
	alg, h, err := decodeState(u.state)
	if err != nil {
		return 0, err
	}
	return s.commit(ctx, u, u.state, alg, h, want, target)
}

// commit verifies u and moves its data into place while u is locked.
func (s *Store) commit(ctx context.Context, u *upload, st blob.UploadState, alg digest.Algorithm, h hash.Hash, want digest.Digest, target string) (int64, error) {
	if err := verify(ctx, u.data, st.Offset, alg, h, want); err != nil {
		// The upload stays as it was: the client may retry or cancel.
		return 0, fmt.Errorf("blob fs: commit upload %s: %w", u.id, err)
	}
	if _, err := os.Stat(target); err == nil {
		return st.Offset, nil
	}
	// Durability before visibility: the bytes reach the disk before the name
	// that promises them does. (Append synced them already; this covers a
	// truncation of leftovers in openUpload.)
	if err := u.data.Sync(); err != nil {
		return 0, fmt.Errorf("blob fs: sync upload %s: %w", u.id, err)
	}
	if err := mkdirSynced(filepath.Dir(target)); err != nil {
		return 0, err
	}
	if err := os.Rename(filepath.Join(u.dir, dataName), target); err != nil {
		return 0, fmt.Errorf("blob fs: commit upload %s as %s: %w", u.id, want, err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return 0, err
	}
	return st.Offset, nil
}

func (s *Store) removeUpload(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("blob fs: remove committed upload %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// verify checks that the first n bytes of f hash to want. When want uses the
// upload's own algorithm the running sum h already covers exactly those bytes;
// otherwise they are read back and hashed with want's algorithm.
func verify(ctx context.Context, f *os.File, n int64, alg digest.Algorithm, h hash.Hash, want digest.Digest) error {
	var sum []byte
	if want.Algorithm() == alg {
		sum = h.Sum(nil)
	} else {
		wh, err := newHash(want.Algorithm())
		if err != nil {
			return err
		}
		if err := rehash(ctx, f, n, wh); err != nil {
			return err
		}
		sum = wh.Sum(nil)
	}
	wantSum, err := hex.DecodeString(want.Encoded())
	if err != nil {
		return fmt.Errorf("blob fs: digest %s: %w", want, err)
	}
	if subtle.ConstantTimeCompare(sum, wantSum) != 1 {
		return fmt.Errorf("%w: content is %s:%x, want %s", blob.ErrDigestMismatch, want.Algorithm(), sum, want)
	}
	return nil
}

// rehash feeds the first n bytes of f to h, checking ctx between chunks.
func rehash(ctx context.Context, f *os.File, n int64, h io.Writer) error {
	bp := chunkBufs.get()
	defer chunkBufs.put(bp)
	buf := *bp
	var off int64
	for off < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := f.ReadAt(buf[:min(int64(len(buf)), n-off)], off)
		if m > 0 {
			_, _ = h.Write(buf[:m]) // hash.Hash.Write never fails
			off += int64(m)
		}
		if err != nil && (!errors.Is(err, io.EOF) || off != n) {
			return fmt.Errorf("blob fs: re-read upload for hashing: %w", err)
		}
	}
	return nil
}

// mkdirSynced creates dir and its missing parents below the store, fsyncing
// each parent whose entries changed so the new directories survive a crash.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := mkdirSynced(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirPerm); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return nil // a concurrent commit made it
		}
		return fmt.Errorf("blob fs: create %s: %w", dir, err)
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory so that entries created in or renamed into it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // dir is derived from the store root and a validated digest
	if err != nil {
		return fmt.Errorf("blob fs: open dir %s for sync: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob fs: sync dir %s: %w", dir, err)
	}
	return nil
}
