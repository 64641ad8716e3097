package azblob

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// upload is an upload blob as one request found it.
type upload struct {
	id     string
	bb     *blockblob.Client
	etag   azcore.ETag
	prefix []string // committed block ids covering [0, st.Offset)
	extra  bool     // more blocks are committed after the prefix
}

// openUpload reads upload id's committed block list and checks that st may
// continue it: the blocks must tile [0, n) from offset 0, and the block
// ending at st.Offset must be the one st's Append committed (st.Offset 0, the
// initial state, always qualifies). A state overtaken by a later Append from
// an earlier point fails that check: its block was dropped.
func (s *Store) openUpload(ctx context.Context, id string, st *state) (*upload, error) {
	name, err := uploadName(id)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := &upload{id: id, bb: s.c.NewBlockBlobClient(name)}
	list, err := u.bb.GetBlockList(ctx, blockblob.BlockListTypeCommitted, nil)
	if err != nil {
		return nil, notFound(err, "upload "+id)
	}
	if list.ETag == nil {
		// Azure sends no ETag for a blob without committed blocks; fetch it
		// and read the list again under it so the two agree.
		p, err := u.bb.GetProperties(ctx, nil)
		if err != nil {
			return nil, notFound(err, "upload "+id)
		}
		if p.ETag == nil {
			return nil, fmt.Errorf("blob azblob: upload %s: no ETag", id)
		}
		list, err = u.bb.GetBlockList(ctx, blockblob.BlockListTypeCommitted, &blockblob.GetBlockListOptions{AccessConditions: ifMatch(*p.ETag)})
		if err != nil {
			return nil, s.condErr(err, "upload "+id)
		}
		u.etag = *p.ETag
	} else {
		u.etag = *list.ETag
	}

	var off int64
	found := st.offset == 0
	for i, b := range list.CommittedBlocks {
		if b == nil || b.Name == nil {
			return nil, fmt.Errorf("blob azblob: upload %s: unnamed block", id)
		}
		bid, err := parseBlockID(*b.Name)
		if err != nil {
			return nil, err
		}
		if bid.offset != off || bid.length <= 0 || (b.Size != nil && *b.Size != bid.length) {
			return nil, fmt.Errorf("blob azblob: upload %s: block %d does not continue at offset %d", id, i, off)
		}
		off += bid.length
		if found {
			if bid.offset < st.offset {
				u.prefix = append(u.prefix, *b.Name)
			} else {
				u.extra = true
			}
			continue
		}
		u.prefix = append(u.prefix, *b.Name)
		if off == st.offset {
			if bid.nonce != st.tip {
				break
			}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: upload %s cannot continue from this state at offset %d (overtaken by another request, or not from this upload)", blob.ErrOffsetMismatch, id, st.offset)
	}
	return u, nil
}

// condErr maps a failed condition (the upload changed under the request) to
// ErrOffsetMismatch: the caller should re-read the state, as after any
// offset disagreement.
func (s *Store) condErr(err error, what string) error {
	switch {
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.InvalidBlockList) || status(err) == http.StatusPreconditionFailed:
		return fmt.Errorf("%w: %s changed during the request (a concurrent request on the same upload?)", blob.ErrOffsetMismatch, what)
	default:
		return notFound(err, what)
	}
}

func ifMatch(etag azcore.ETag) *azb.AccessConditions {
	return &azb.AccessConditions{ModifiedAccessConditions: &azb.ModifiedAccessConditions{IfMatch: &etag}}
}

// commitList commits ids as the upload's content, if nobody changed it since
// it was read.
func (u *upload) commitList(ctx context.Context, s *Store, ids []string) error {
	resp, err := u.bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: ifMatch(u.etag)})
	if err != nil {
		return s.condErr(err, "upload "+u.id)
	}
	if resp.ETag == nil {
		return fmt.Errorf("blob azblob: upload %s: commit returned no ETag", u.id)
	}
	u.etag = *resp.ETag
	return nil
}

// Append implements blob.Store.
func (s *Store) Append(ctx context.Context, id string, st blob.UploadState, r io.Reader) (blob.UploadState, error) {
	if _, err := uploadName(id); err != nil {
		return st, err
	}
	cur, err := decodeState(st)
	if err != nil {
		return st, err
	}
	u, err := s.openUpload(ctx, id, cur)
	if err != nil {
		return st, err
	}
	var n nonce
	if _, err := rand.Read(n[:]); err != nil {
		return st, fmt.Errorf("blob azblob: nonce: %w", err)
	}
	ids, written, err := s.stageAll(ctx, u, n, cur.offset, cur.h, r)
	if err != nil {
		// The caller keeps st; staged blocks stay uncommitted and go with
		// the next commit.
		return st, fmt.Errorf("blob azblob: append to upload %s: %w", id, err)
	}
	if written == 0 && !u.extra {
		return st, nil
	}
	if err := u.commitList(ctx, s, append(u.prefix, ids...)); err != nil {
		return st, fmt.Errorf("blob azblob: append to upload %s: %w", id, err)
	}
	if written == 0 {
		return st, nil // only dropped what an older state overtook
	}
	next := &state{alg: cur.alg, offset: cur.offset + written, tip: n, h: cur.h}
	return next.encode()
}

// Commit implements blob.Store.
func (s *Store) Commit(ctx context.Context, id string, st blob.UploadState, want digest.Digest) (int64, error) {
	target, err := blobName(want)
	if err != nil {
		return 0, err
	}
	if _, err := uploadName(id); err != nil {
		return 0, err
	}
	cur, err := decodeState(st)
	if err != nil {
		return 0, err
	}
	u, err := s.openUpload(ctx, id, cur)
	if err != nil {
		return 0, err
	}
	if u.extra {
		// Cut the upload to st's bytes, so what is verified and copied is
		// exactly them.
		if err := u.commitList(ctx, s, u.prefix); err != nil {
			return 0, fmt.Errorf("blob azblob: commit upload %s: %w", id, err)
		}
	}
	if err := s.verify(ctx, u, cur, want); err != nil {
		// The upload stays: the client may retry or cancel.
		return 0, fmt.Errorf("blob azblob: commit upload %s: %w", id, err)
	}
	if err := s.publish(ctx, u, target); err != nil {
		return 0, fmt.Errorf("blob azblob: commit upload %s as %s: %w", id, want, err)
	}
	if _, err := u.bb.Delete(ctx, nil); err != nil && !isNotFound(err) {
		return 0, fmt.Errorf("blob azblob: remove committed upload %s: %w", id, err)
	}
	return cur.offset, nil
}

// verify checks that the upload's content hashes to want: by the running sum
// when the algorithms match, else by reading the upload back under If-Match.
func (s *Store) verify(ctx context.Context, u *upload, cur *state, want digest.Digest) error {
	var sum []byte
	if want.Algorithm() == cur.alg {
		sum = cur.h.Sum(nil)
	} else {
		h, err := newHash(want.Algorithm())
		if err != nil {
			return err
		}
		if err := s.rehash(ctx, u, cur.offset, h); err != nil {
			return err
		}
		sum = h.Sum(nil)
	}
	wantSum, err := hex.DecodeString(want.Encoded())
	if err != nil {
		return fmt.Errorf("digest %s: %w", want, err)
	}
	if subtle.ConstantTimeCompare(sum, wantSum) != 1 {
		return fmt.Errorf("%w: content is %s:%x, want %s", blob.ErrDigestMismatch, want.Algorithm(), sum, want)
	}
	return nil
}

func (s *Store) rehash(ctx context.Context, u *upload, n int64, h hash.Hash) error {
	if n == 0 {
		return nil
	}
	resp, err := u.bb.DownloadStream(ctx, &azb.DownloadStreamOptions{
		Range:            azb.HTTPRange{Offset: 0, Count: n},
		AccessConditions: ifMatch(u.etag),
	})
	if err != nil {
		return s.condErr(err, "upload "+u.id)
	}
	body := resp.NewRetryReader(ctx, &azb.RetryReaderOptions{})
	got, err := io.Copy(h, body)
	if cerr := body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("re-read upload for hashing: %w", err)
	}
	if got != n {
		return fmt.Errorf("%w: upload holds %d bytes, state expects %d", blob.ErrOffsetMismatch, got, n)
	}
	return nil
}

// publish copies the verified upload to target unless a complete blob is
// there already. The copy is conditional on both sides: the source must still
// be the verified version, and the target must not exist, so an existing blob
// is never overwritten and a new one appears whole.
func (s *Store) publish(ctx context.Context, u *upload, target string) error {
	dst := s.c.NewBlobClient(target)
	changed := fmt.Errorf("%w: upload %s changed during the commit", blob.ErrOffsetMismatch, u.id)
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := dst.StartCopyFromURL(ctx, u.bb.URL(), &azb.StartCopyFromURLOptions{
			SourceModifiedAccessConditions: &azb.SourceModifiedAccessConditions{SourceIfMatch: &u.etag},
			AccessConditions:               &azb.AccessConditions{ModifiedAccessConditions: &azb.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}},
		})
		switch {
		case err == nil:
			if resp.CopyStatus != nil && *resp.CopyStatus == azb.CopyStatusTypeSuccess {
				return nil
			}
		case bloberror.HasCode(err, bloberror.SourceConditionNotMet):
			return changed
		case status(err) != http.StatusConflict && status(err) != http.StatusPreconditionFailed:
			return err
		}
		// Our copy is pending, or a condition failed: the target exists
		// (someone else's copy, or an old failed one) or, as Azurite reports
		// it with the same code, the source changed.
		exists, done, werr := s.awaitCopy(ctx, dst)
		switch {
		case werr != nil:
			return werr
		case done:
			return nil
		case !exists && err != nil && status(err) == http.StatusPreconditionFailed:
			return changed
		}
	}
	return errors.New("copy did not complete after 3 attempts")
}

// awaitCopy waits for the copy into dst to finish and reports whether dst
// existed and whether it now holds complete content. A failed or aborted copy
// is deleted (conditionally, so only that one) so the caller can try again.
func (s *Store) awaitCopy(ctx context.Context, dst *azb.Client) (exists, done bool, err error) {
	for {
		p, err := dst.GetProperties(ctx, nil)
		if isNotFound(err) {
			return false, false, nil
		}
		if err != nil {
			return true, false, err
		}
		if complete(p.CopyStatus) {
			return true, true, nil
		}
		if *p.CopyStatus != azb.CopyStatusTypePending {
			if p.ETag == nil {
				return true, false, errors.New("failed copy without ETag")
			}
			if _, err := dst.Delete(ctx, &azb.DeleteOptions{AccessConditions: ifMatch(*p.ETag)}); err != nil && !isNotFound(err) && status(err) != http.StatusPreconditionFailed {
				return true, false, fmt.Errorf("remove failed copy: %w", err)
			}
			return true, false, nil
		}
		select {
		case <-ctx.Done():
			return true, false, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}
