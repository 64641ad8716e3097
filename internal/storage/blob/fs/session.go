package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/atomicfile"
	"github.com/moat-registry/moat/internal/storage/blob"
)

// A session is an upload whose hash/write pipeline outlives the Append that
// started it. An Append of more than one hash slice returns as soon as it
// has read its body, with a pending state (hashstate.go); its bytes are
// hashed, written, fsynced and their real state logged in the background.
// An Append from that pending state that arrives meanwhile feeds the same
// pipeline, so a chunked push's next PATCH streams in while the previous
// one's bytes are still being written: neither the disk nor the hasher
// waits between requests. Waiting for each request's tail (hash and writes
// of the bytes still in the pipeline, then the fsync) cost a 512 MiB push
// in 16 MiB PATCHes about a fifth of its throughput on this project's test
// machine.
//
// The session holds the upload's lock (upload.go) until it is idle: no
// Append is feeding it and every mark is persisted. It then closes, and
// the next request opens the upload from disk, resolving the pending state
// through the file the session wrote. Commit and Abort wait for the session
// to close, so a blob becomes visible only once its every byte is durable,
// as before; what changed is that a PATCH's 202 no longer waits for that.
// If the process stops before a pending state is persisted, the next
// request from that state rebuilds it by hashing the data file again
// (upload.recover), so the upload resumes, if more slowly.
type session struct {
	s    *Store
	u    *upload
	alg  digest.Algorithm
	p    *pipe
	done chan struct{} // closed once the session has closed

	// Guarded by s.mu.
	tip     blob.UploadState // the state the next Append must continue from
	feeding bool             // an Append is reading into the pipeline
	broken  bool             // a failed Append left bytes in the pipeline that no state covers
	queued  int              // marks not yet persisted
	closing bool
	err     error // the first failure to persist a mark; later marks fail too

	// Used by the persisting goroutine only.
	synced int64 // bytes fsynced and dropped from the page cache
}

// startSession makes u (locked, opened from state st) a session fed by the
// calling Append, and starts its goroutines.
func (s *Store) startSession(u *upload, alg digest.Algorithm, h hash.Hash) *session {
	w := &fileWriter{f: u.data, path: filepath.Join(u.dir, dataName), off: u.state.Offset, flushed: u.state.Offset}
	w.openDirect()
	ss := &session{s: s, u: u, alg: alg, p: startPipe(w, h, alg), done: make(chan struct{}),
		tip: u.state, feeding: true, synced: u.state.Offset}
	s.mu.Lock()
	s.sessions[u.id] = ss
	s.mu.Unlock()
	go ss.persistMarks()
	return ss
}

// sameState reports whether a and b are the same state.
func sameState(a, b blob.UploadState) bool {
	return a.Offset == b.Offset && bytes.Equal(a.Hash, b.Hash)
}

// claim returns the session of upload id for an Append from st to feed,
// marked as fed, or nil when the Append must open the upload from disk. A
// session that st does not continue is waited for until it has closed; one
// that another Append is feeding makes this one busy.
func (s *Store) claim(ctx context.Context, id string, st blob.UploadState) (*session, error) {
	for {
		s.mu.Lock()
		ss := s.sessions[id]
		switch {
		case ss == nil:
			s.mu.Unlock()
			return nil, nil
		case ss.feeding:
			s.mu.Unlock()
			return nil, errUploadBusy
		case !ss.closing && !ss.broken && ss.err == nil && sameState(ss.tip, st):
			ss.feeding = true
			s.mu.Unlock()
			return ss, nil
		}
		done := ss.done
		s.mu.Unlock()
		if err := waitDone(ctx, done); err != nil {
			return nil, err
		}
	}
}

// waitDone waits until done is closed or ctx ends.
func waitDone(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settle waits until upload id has no session. A session that an Append is
// feeding makes the caller busy, unless busyOK.
func (s *Store) settle(ctx context.Context, id string, busyOK bool) error {
	for {
		s.mu.Lock()
		ss := s.sessions[id]
		if ss == nil || (ss.feeding && busyOK) {
			s.mu.Unlock()
			return nil
		}
		if ss.feeding {
			s.mu.Unlock()
			return errUploadBusy
		}
		done := ss.done
		s.mu.Unlock()
		if err := waitDone(ctx, done); err != nil {
			return err
		}
	}
}

// Settle waits until every upload's background work is done: every byte
// that an Append took is on disk and its state persisted, or has failed.
// A server calls it after its last request, before it exits.
func (s *Store) Settle(ctx context.Context) error {
	for {
		s.mu.Lock()
		var done chan struct{}
		for _, ss := range s.sessions {
			done = ss.done
			break
		}
		s.mu.Unlock()
		if done == nil {
			return nil
		}
		if err := waitDone(ctx, done); err != nil {
			return err
		}
	}
}

// append feeds r into the session, continuing from st (the session's tip,
// or for a new session the state it was opened from), and returns the
// pending state for the new end. first, if not nil, is a chunk buffer
// holding the body's first m bytes. On failure the caller keeps st.
func (ss *session) append(ctx context.Context, st blob.UploadState, r io.Reader, first *[]byte, m int) (blob.UploadState, error) {
	n, err := ss.p.feed(ctx, r, first, m)
	var next blob.UploadState
	if err == nil && n > 0 {
		next, err = newPending(ss.alg, st.Offset+n)
	}
	ss.s.mu.Lock()
	switch {
	case err != nil:
		// Bytes no state covers went into the pipeline: nothing may be fed
		// after them. The next request opens the upload from disk, which
		// cuts them off.
		ss.broken = true
	case n > 0:
		ss.tip = next
		ss.queued++
	}
	ss.s.mu.Unlock()
	if err == nil && n > 0 {
		// Marked while still feeding, so that the session cannot close
		// before the mark is in the pipeline.
		ss.p.mark(next.Offset, next)
	}
	ss.s.mu.Lock()
	ss.feeding = false
	shut := ss.idleLocked()
	ss.s.mu.Unlock()
	if shut {
		go ss.close()
	}
	switch {
	case err != nil:
		return st, fmt.Errorf("blob fs: append to upload %s: %w", ss.u.id, err)
	case n == 0:
		return st, nil
	}
	return next, nil
}

// idleLocked reports whether the session has nothing left to do, and if
// so marks it closing: the caller must then close it. s.mu is held.
func (ss *session) idleLocked() bool {
	if ss.feeding || ss.queued > 0 || ss.closing {
		return false
	}
	ss.closing = true
	return true
}

// persistMarks persists each mark once both the hasher and the writer have
// passed it: fsync, then the real state for the pending one, then its log
// record. It closes the session when it becomes idle.
func (ss *session) persistMarks() {
	for hm := range ss.p.hashed {
		werr, ok := <-ss.p.written
		if !ok {
			werr = errors.New("blob fs: the writer ended before a mark")
		}
		ss.s.mu.Lock()
		err := ss.err
		ss.s.mu.Unlock()
		if err == nil {
			err = errors.Join(hm.err, werr)
		}
		if err == nil {
			err = ss.persist(hm)
		}
		ss.s.mu.Lock()
		if err != nil && ss.err == nil {
			ss.err = fmt.Errorf("blob fs: upload %s: storing the bytes up to offset %d: %w", ss.u.id, hm.off, err)
		}
		ss.queued--
		shut := ss.idleLocked()
		ss.s.mu.Unlock()
		if shut {
			ss.close()
			return
		}
	}
}

// persist makes the bytes up to hm.off durable and records their real state
// for hm's pending one.
func (ss *session) persist(hm hashedMark) error {
	if hook := ss.s.beforePersist; hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	u := ss.u
	// The real state promises these bytes to whichever process continues
	// the upload, so they must be on disk before it is stored or logged.
	if err := u.data.Sync(); err != nil {
		return err
	}
	// Drop-behind: see the package doc.
	atomicfile.DropCache(u.data, ss.synced, hm.off-ss.synced)
	ss.synced = hm.off
	real := blob.UploadState{Offset: hm.off, Hash: hm.hash}
	if err := u.storeResolved(hm.pending, real); err != nil {
		return err
	}
	return u.logState(real)
}

// close stops the pipeline, releases the upload and forgets the session.
// A failure to persist is kept for the upload's next request to report.
func (ss *session) close() {
	ss.p.stop()
	ss.p.w.closeDirect()
	_ = ss.u.close() // every state this session returned is persisted or failed already
	s := ss.s
	s.mu.Lock()
	if s.sessions[ss.u.id] == ss {
		delete(s.sessions, ss.u.id)
	}
	// An Abort that did not wait for a feeding Append may have removed the
	// upload, which is what made persisting fail: nothing is left to
	// report to. Checked under s.mu because Abort forgets the upload's
	// failure under it after removing the directory, so either the failure
	// is never kept or Abort drops it.
	if ss.err != nil && !uploadGone(ss.u.dir) {
		s.failures[ss.u.id] = ss.err
	}
	s.mu.Unlock()
	close(ss.done)
}

// uploadGone reports whether an upload's directory has been removed.
func uploadGone(dir string) bool {
	_, err := os.Lstat(dir)
	return errors.Is(err, os.ErrNotExist)
}

// takeFailure returns, once, why a session could not store the bytes
// behind a pending state of upload id. The request after that recovers the
// state from the data file (upload.recover).
func (s *Store) takeFailure(id string, st blob.UploadState) error {
	if !isPending(st) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.failures[id]
	delete(s.failures, id)
	return err
}

// forget drops what the store remembers of upload id once it is gone.
func (s *Store) forget(id string) {
	s.mu.Lock()
	delete(s.failures, id)
	s.mu.Unlock()
}
