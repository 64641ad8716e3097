package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// An upload directory holds two files:
//
//	data    the bytes received so far (plus, after a failed request,
//	        leftovers beyond the last good state)
//	states  a log of the states this upload may continue from, one record
//	        per successful Append: offset (8 bytes big-endian) and the
//	        SHA-256 of UploadState.Hash
//	pending-<token>
//	        the real state a pending state stands for (see hashstate.go),
//	        written with the state's log record
//
// Commit trusts a state's running sum to describe the data file's first
// Offset bytes. The log is what makes that trust safe when requests overlap
// or a stale state is replayed: every logged state describes a prefix of the
// current data file, so a state missing from it is refused. Without it, two
// Appends from the same state (a retry racing the original, or a client
// doing it on purpose) could leave the file holding one request's bytes
// while the caller persisted the other's state, and Commit would publish
// those bytes under a digest they do not have — for every registry, since
// blobs are shared.
//
// Rules that keep every logged state a prefix of the data file:
//   - An Append or Commit holds an exclusive flock on the data file for its
//     whole run, and so does a session (session.go) until its background
//     work is done, so requests on one upload never interleave, even across
//     processes sharing the root.
//   - A record is written only after the bytes it covers are fsynced.
//   - Before the data file is cut back to a state's Offset, the records
//     after that state are removed and the log is fsynced.
//
// The record itself is not fsynced: if a crash loses it, its state is
// refused (ErrOffsetMismatch) and the client starts over; nothing wrong is
// ever committed.
const (
	stateLogName      = "states"
	pendingPrefixFile = "pending-"
	recordLen         = 8 + sha256.Size
)

// errUploadBusy reports a request on an upload that another request holds.
// It wraps ErrOffsetMismatch: the caller should re-read the upload's state,
// as after any offset disagreement.
var errUploadBusy = fmt.Errorf("%w: upload is in use by another request", blob.ErrOffsetMismatch)

// record returns the log record for st.
func record(st blob.UploadState) []byte {
	rec := make([]byte, 0, recordLen)
	rec = binary.BigEndian.AppendUint64(rec, uint64(st.Offset)) //nolint:gosec // offsets are never negative (decodeState checks)
	sum := sha256.Sum256(st.Hash)
	return append(rec, sum[:]...)
}

// upload is one upload opened for the exclusive use of one Append, Commit
// or session.
type upload struct {
	id    string
	dir   string
	data  *os.File // flocked until close
	log   *os.File
	n     int              // records in the log, the last being the state opened from
	state blob.UploadState // the state opened from, a pending one resolved
}

// openUpload opens and locks upload id and prepares it to continue from st:
// a pending st is resolved to the real state it stands for, which must be
// in the state log; the records after it are dropped, and the data file is
// cut to st.Offset (bytes beyond it are leftovers of a failed request, or
// belong to a state just dropped). A data file shorter than st.Offset is
// ErrOffsetMismatch.
//
// A lock held elsewhere is waited for, up to the Store's lockWait: the
// holder may be a session finishing the previous request's bytes in another
// process sharing the root.
func (s *Store) openUpload(ctx context.Context, id string, st blob.UploadState) (*upload, error) {
	dir, err := s.uploadDir(id)
	if err != nil {
		return nil, err
	}
	data, err := os.OpenFile(filepath.Join(dir, dataName), os.O_RDWR, 0) //nolint:gosec // dir is built from a validated id
	if err != nil {
		return nil, notFound(err, "upload "+id)
	}
	u := &upload{id: id, dir: dir, data: data}
	if err := s.lockWaiting(ctx, data); err != nil {
		_ = data.Close() // unlocked and unchanged; the lock error is the one to report
		return nil, fmt.Errorf("blob fs: upload %s: %w", id, err)
	}
	if err := u.prepare(ctx, st); err != nil {
		_ = u.close() // the prepare error is the one to report
		return nil, err
	}
	return u, nil
}

// lockWaiting takes the upload lock on f, retrying while it is busy until
// lockWait has passed.
func (s *Store) lockWaiting(ctx context.Context, f *os.File) error {
	deadline := time.Now().Add(s.lockWait)
	pause := time.Millisecond
	for {
		err := lockFile(f)
		if !errors.Is(err, errUploadBusy) || !time.Now().Add(pause).Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// resolve returns the real state st stands for: st itself, or for a
// pending state the one its background work stored, or if that was never
// stored, the one recover rebuilds.
func (u *upload) resolve(ctx context.Context, st blob.UploadState) (blob.UploadState, error) {
	if !isPending(st) {
		return st, nil
	}
	alg, token, err := parsePending(st)
	if err != nil {
		return st, err
	}
	h, err := os.ReadFile(filepath.Join(u.dir, pendingPrefixFile+token)) //nolint:gosec // token is hex
	if errors.Is(err, iofs.ErrNotExist) {
		return u.recover(ctx, st, alg)
	}
	if err != nil {
		return st, fmt.Errorf("blob fs: upload %s: read pending state: %w", u.id, err)
	}
	return blob.UploadState{Offset: st.Offset, Hash: h}, nil
}

// recover rebuilds the real state of a pending one whose own was never
// stored, because the process stopped (or persisting failed) first, by
// hashing the data file's first st.Offset bytes again. Whatever those bytes
// are, the state then describes them, so a commit still publishes only
// bytes that match their digest; if they are not what the client sent, its
// digest will not match. The log loses the records beyond st.Offset (they
// describe bytes about to be cut off) and gains the rebuilt state.
func (u *upload) recover(ctx context.Context, st blob.UploadState, alg digest.Algorithm) (blob.UploadState, error) {
	fi, err := u.data.Stat()
	if err != nil {
		return st, fmt.Errorf("blob fs: stat upload %s: %w", u.id, err)
	}
	if fi.Size() < st.Offset {
		return st, fmt.Errorf("%w: upload %s: the bytes up to offset %d never reached the disk (it has %d)", blob.ErrOffsetMismatch, u.id, st.Offset, fi.Size())
	}
	h, err := newHash(alg)
	if err != nil {
		return st, err
	}
	if err := rehash(ctx, u.data, st.Offset, h); err != nil {
		return st, err
	}
	real := blob.UploadState{Offset: st.Offset}
	if real.Hash, err = encodeState(alg, st.Offset, h); err != nil {
		return st, err
	}
	if err := u.relog(real); err != nil {
		return st, err
	}
	return real, u.storeResolved(st, real)
}

// relog cuts the state log before its first record beyond real.Offset and
// appends real's record; records are in increasing offset order.
func (u *upload) relog(real blob.UploadState) error {
	logFile, err := os.OpenFile(filepath.Join(u.dir, stateLogName), os.O_RDWR, 0)
	if err != nil {
		return notFound(err, "upload "+u.id)
	}
	defer func() { _ = logFile.Close() }() // written with WriteAt and synced below; close adds nothing
	logData, err := io.ReadAll(logFile)
	if err != nil {
		return fmt.Errorf("blob fs: read state log of upload %s: %w", u.id, err)
	}
	keep := 0
	for keep+recordLen <= len(logData) && binary.BigEndian.Uint64(logData[keep:keep+8]) <= uint64(real.Offset) { //nolint:gosec // offsets are never negative
		keep += recordLen
	}
	if err := logFile.Truncate(int64(keep)); err != nil {
		return fmt.Errorf("blob fs: drop superseded states of upload %s: %w", u.id, err)
	}
	if _, err := logFile.WriteAt(record(real), int64(keep)); err != nil {
		return fmt.Errorf("blob fs: log state of upload %s: %w", u.id, err)
	}
	// The records dropped must stay dropped before the bytes they describe
	// are cut off.
	if err := logFile.Sync(); err != nil {
		return fmt.Errorf("blob fs: drop superseded states of upload %s: %w", u.id, err)
	}
	return nil
}

// storeResolved writes the real state a pending one stands for. Like a log
// record it is not fsynced: if a crash loses it, the pending state is
// recovered again.
func (u *upload) storeResolved(pending, real blob.UploadState) error {
	_, token, err := parsePending(pending)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(u.dir, pendingPrefixFile+token), real.Hash, filePerm); err != nil {
		return fmt.Errorf("blob fs: upload %s: store pending state: %w", u.id, err)
	}
	return nil
}

func (u *upload) prepare(ctx context.Context, st blob.UploadState) error {
	var err error
	if st, err = u.resolve(ctx, st); err != nil {
		return err
	}
	u.state = st
	u.log, err = os.OpenFile(filepath.Join(u.dir, stateLogName), os.O_RDWR, 0)
	if err != nil {
		return notFound(err, "upload "+u.id)
	}
	logData, err := io.ReadAll(u.log)
	if err != nil {
		return fmt.Errorf("blob fs: read state log of upload %s: %w", u.id, err)
	}
	want := record(st)
	u.n = -1
	for i := 0; (i+1)*recordLen <= len(logData); i++ {
		if bytes.Equal(logData[i*recordLen:(i+1)*recordLen], want) {
			u.n = i + 1
		}
	}
	if u.n < 0 {
		return fmt.Errorf("%w: upload %s cannot continue from this state at offset %d (superseded by another request, or not from this upload)", blob.ErrOffsetMismatch, u.id, st.Offset)
	}
	if keep := int64(u.n) * recordLen; int64(len(logData)) > keep {
		// Forget the later states durably before the bytes they describe
		// are cut off.
		if err := u.log.Truncate(keep); err != nil {
			return fmt.Errorf("blob fs: drop superseded states of upload %s: %w", u.id, err)
		}
		if err := u.log.Sync(); err != nil {
			return fmt.Errorf("blob fs: drop superseded states of upload %s: %w", u.id, err)
		}
	}

	fi, err := u.data.Stat()
	if err != nil {
		return fmt.Errorf("blob fs: stat upload %s: %w", u.id, err)
	}
	switch {
	case fi.Size() < st.Offset:
		return fmt.Errorf("%w: upload %s has %d bytes, state expects %d", blob.ErrOffsetMismatch, u.id, fi.Size(), st.Offset)
	case fi.Size() > st.Offset:
		if err := u.data.Truncate(st.Offset); err != nil {
			return fmt.Errorf("blob fs: discard leftover bytes of upload %s: %w", u.id, err)
		}
	}
	return nil
}

// logState records st as a state the upload may continue from. The bytes it
// covers must already be fsynced.
func (u *upload) logState(st blob.UploadState) error {
	if _, err := u.log.WriteAt(record(st), int64(u.n)*recordLen); err != nil {
		return fmt.Errorf("blob fs: log state of upload %s: %w", u.id, err)
	}
	u.n++
	return nil
}

// close releases the upload (closing the data file drops the lock).
func (u *upload) close() error {
	var errs []error
	if u.log != nil {
		errs = append(errs, u.log.Close())
	}
	errs = append(errs, u.data.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("blob fs: close upload %s: %w", u.id, err)
	}
	return nil
}

// createStateLog starts the log of a new upload with its initial state.
func createStateLog(dir string, st blob.UploadState) error {
	f, err := os.OpenFile(filepath.Join(dir, stateLogName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm) //nolint:gosec // dir is built from a validated id
	if err != nil {
		return err
	}
	_, err = f.Write(record(st))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
