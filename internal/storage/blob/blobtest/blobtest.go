// Package blobtest owns the conformance suite and benchmarks that every
// blob.Store implementation runs (fs today, Azure Blob Storage later), so all
// of them keep the invariants documented in package blob.
//
// An implementation's test file is a few lines:
//
//	func TestConformance(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) (blob.Store, func() blob.Store) {
//			root := t.TempDir()
//			open := func() blob.Store { s, err := fs.New(root); ...; return s }
//			return open(), open
//		})
//	}
//
// Beyond the contract in package blob, the suite requires:
//
//   - Digests other than sha256/sha512 fail with ErrUnsupportedAlgorithm, and
//     malformed digests and upload ids (anything outside [A-Za-z0-9_-]{1,128})
//     fail with an error, never a panic.
//   - Append refuses with ErrOffsetMismatch a state whose Offset disagrees with
//     its own hash state, so a blob can never be committed under a digest of
//     different bytes.
//   - Commit verifies the upload even when the blob already exists: naming an
//     existing digest does not let a client claim it without the content.
//   - Overlapping Appends on one upload, or a state superseded by a later
//     Append from the same starting point, never let Commit publish bytes
//     that do not hash to the digest (refusing such a Commit is fine).
//   - StartUpload refuses an id that is already in use.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// Factory returns an empty store for one (sub)test. reopen returns another
// instance over the same storage, standing for another process or replica;
// a nil reopen means the suite keeps using the first instance.
type Factory func(t *testing.T) (store blob.Store, reopen func() blob.Store)

// Run runs the conformance suite against the stores newStore makes. Every
// subtest gets its own store and runs in parallel with the others.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"PutAndRead", testPutAndRead},
		{"NotFound", testNotFound},
		{"NotVisibleBeforeCommit", testNotVisibleBeforeCommit},
		{"SeekAndPartialReads", testSeekAndPartialReads},
		{"ChunkedUploadResumesOnAnotherInstance", testChunkedResume},
		{"LargeMultiChunkAppendWithShortReads", testLargeShortReads},
		{"FailedAppendLeftoversAreDiscarded", testFailedAppend},
		{"FailedLargeAppendLeftoversAreDiscarded", testFailedLargeAppend},
		{"FailedAppendAfterALargeOne", testFailedAppendAfterLarge},
		{"TruncatedBodyIsAFailure", testTruncatedBody},
		{"ReplayedOlderStateContinuesFromIt", testReplayOlderState},
		{"SupersededStateNeverCommitsWrongBytes", testSupersededState},
		{"OverlappingAppendsNeverCommitWrongBytes", testOverlappingAppends},
		{"OffsetMismatch", testOffsetMismatch},
		{"DigestMismatchKeepsUpload", testDigestMismatchKeepsUpload},
		{"SHA512", testSHA512},
		{"DeclaredAlgorithmDiffersAtCommit", testDeclaredAlgMismatch},
		{"CommitExistingBlob", testCommitExisting},
		{"CommitExistingBlobStillVerifies", testCommitExistingVerifies},
		{"ConcurrentUploadsOfSameContent", testConcurrentSameContent},
		{"ConcurrentDistinctUploads", testConcurrentDistinct},
		{"Abort", testAbort},
		{"Delete", testDelete},
		{"DuplicateUploadID", testDuplicateUploadID},
		{"InvalidDigestsRejected", testInvalidDigests},
		{"InvalidUploadIDsRejected", testInvalidUploadIDs},
		{"UnsupportedUploadAlgorithm", testUnsupportedUploadAlg},
		{"ZeroLengthBlob", testZeroLength},
		{"EmptyAppend", testEmptyAppend},
		{"CanceledContext", testCanceledContext},
		{"CommitTwice", testCommitTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, reopen := newStore(t)
			if reopen == nil {
				reopen = func() blob.Store { return s }
			}
			tc.fn(t, &env{Store: s, reopen: reopen, ctx: t.Context()})
		})
	}
}

// env is one subtest's store plus helpers.
type env struct {
	blob.Store
	reopen func() blob.Store
	ctx    context.Context
	ids    int
}

// id returns a fresh upload id.
func (e *env) id() string {
	e.ids++
	return fmt.Sprintf("upload-%d", e.ids)
}

// start begins an upload and fails the test on error.
func (e *env) start(t *testing.T, s blob.Store, alg digest.Algorithm) (string, blob.UploadState) {
	t.Helper()
	id := e.id()
	st, err := s.StartUpload(e.ctx, id, alg)
	if err != nil {
		t.Fatalf("StartUpload(%q, %q): %v", id, alg, err)
	}
	if st.Offset != 0 {
		t.Fatalf("StartUpload: offset %d, want 0", st.Offset)
	}
	return id, st
}

func (e *env) appendBytes(t *testing.T, s blob.Store, id string, st blob.UploadState, p []byte) blob.UploadState {
	t.Helper()
	next, err := s.Append(e.ctx, id, st, bytes.NewReader(p))
	if err != nil {
		t.Fatalf("Append(%q, offset %d, %d bytes): %v", id, st.Offset, len(p), err)
	}
	if want := st.Offset + int64(len(p)); next.Offset != want {
		t.Fatalf("Append: offset %d, want %d", next.Offset, want)
	}
	return next
}

func (e *env) commit(t *testing.T, s blob.Store, id string, st blob.UploadState, d digest.Digest) {
	t.Helper()
	size, err := s.Commit(e.ctx, id, st, d)
	if err != nil {
		t.Fatalf("Commit(%q, %s): %v", id, d, err)
	}
	if size != st.Offset {
		t.Fatalf("Commit size %d, want %d", size, st.Offset)
	}
}

// put stores p with one Append and returns its digest.
func (e *env) put(t *testing.T, p []byte, alg digest.Algorithm) digest.Digest {
	t.Helper()
	id, st := e.start(t, e.Store, alg)
	st = e.appendBytes(t, e.Store, id, st, p)
	if alg == "" {
		alg = digest.SHA256
	}
	d := alg.FromBytes(p)
	e.commit(t, e.Store, id, st, d)
	return d
}

// checkContent reads blob d on s and compares it with want.
func (e *env) checkContent(t *testing.T, s blob.Store, d digest.Digest, want []byte) {
	t.Helper()
	size, err := s.Stat(e.ctx, d)
	if err != nil {
		t.Fatalf("Stat(%s): %v", d, err)
	}
	if size != int64(len(want)) {
		t.Fatalf("Stat(%s) = %d, want %d", d, size, len(want))
	}
	r, err := s.Open(e.ctx, d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer closeReader(t, r)
	if r.Size() != int64(len(want)) {
		t.Fatalf("Reader.Size() = %d, want %d", r.Size(), len(want))
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("blob %s: content differs (got %d bytes, want %d)", d, len(got), len(want))
	}
}

func closeReader(t *testing.T, r io.Closer) {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Errorf("close reader: %v", err)
	}
}

// persist round-trips a state through JSON, as the metadata store keeps it.
func persist(t *testing.T, st blob.UploadState) blob.UploadState {
	t.Helper()
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal state: %v", err)
	}
	var out blob.UploadState
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("unmarshal state: %v", err)
	}
	return out
}

func wantErr(t *testing.T, op string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", op, err, target)
	}
}

// randomBytes returns n random bytes, so no two tests share content.
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatalf("random: %v", err)
	}
	return p
}

// failingReader yields p and then fails with errBody.
type failingReader struct {
	r io.Reader
}

var errBody = errors.New("blobtest: request body broke")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBody
	}
	return n, err
}

func testPutAndRead(t *testing.T, e *env) {
	p := randomBytes(t, 100_000)
	d := e.put(t, p, "")
	if d.Algorithm() != digest.SHA256 {
		t.Fatalf("default algorithm %s", d.Algorithm())
	}
	e.checkContent(t, e.Store, d, p)
	e.checkContent(t, e.reopen(), d, p)
}

func testNotFound(t *testing.T, e *env) {
	d := digest.FromString("never stored")
	_, err := e.Stat(e.ctx, d)
	wantErr(t, "Stat", err, blob.ErrNotFound)
	_, err = e.Open(e.ctx, d)
	wantErr(t, "Open", err, blob.ErrNotFound)
	wantErr(t, "Delete", e.Delete(e.ctx, d), blob.ErrNotFound)
	_, err = e.Open(e.ctx, digest.SHA512.FromString("never stored"))
	wantErr(t, "Open sha512", err, blob.ErrNotFound)

	// An upload that was never started. The state is a real one from
	// another upload so only the id is wrong.
	_, st := e.start(t, e.Store, "")
	_, err = e.Append(e.ctx, "no-such-upload", st, strings.NewReader("x"))
	wantErr(t, "Append", err, blob.ErrNotFound)
	_, err = e.Commit(e.ctx, "no-such-upload", st, digest.FromString(""))
	wantErr(t, "Commit", err, blob.ErrNotFound)
	wantErr(t, "Abort", e.Abort(e.ctx, "no-such-upload"), blob.ErrNotFound)
}

func testNotVisibleBeforeCommit(t *testing.T, e *env) {
	p := randomBytes(t, 4096)
	d := digest.FromBytes(p)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, p)
	_, err := e.Stat(e.ctx, d)
	wantErr(t, "Stat before Commit", err, blob.ErrNotFound)
	_, err = e.Open(e.ctx, d)
	wantErr(t, "Open before Commit", err, blob.ErrNotFound)
	e.commit(t, e.Store, id, st, d)
	e.checkContent(t, e.Store, d, p)
}

func testSeekAndPartialReads(t *testing.T, e *env) {
	p := randomBytes(t, 10_000)
	d := e.put(t, p, "")
	r, err := e.Open(e.ctx, d)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer closeReader(t, r)

	read := func(n int) []byte {
		t.Helper()
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
		return buf
	}
	seek := func(off int64, whence int, want int64) {
		t.Helper()
		pos, err := r.Seek(off, whence)
		if err != nil {
			t.Fatalf("Seek(%d, %d): %v", off, whence, err)
		}
		if pos != want {
			t.Fatalf("Seek(%d, %d) = %d, want %d", off, whence, pos, want)
		}
	}

	if got := read(10); !bytes.Equal(got, p[:10]) {
		t.Fatal("first 10 bytes differ")
	}
	seek(5000, io.SeekStart, 5000)
	if got := read(100); !bytes.Equal(got, p[5000:5100]) {
		t.Fatal("bytes at 5000 differ")
	}
	seek(100, io.SeekCurrent, 5200)
	if got := read(50); !bytes.Equal(got, p[5200:5250]) {
		t.Fatal("bytes at 5200 differ")
	}
	seek(-10, io.SeekEnd, int64(len(p))-10)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read tail: %v", err)
	}
	if !bytes.Equal(rest, p[len(p)-10:]) {
		t.Fatal("last 10 bytes differ")
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read at end = %d, %v; want 0, EOF", n, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("Seek to a negative offset succeeded")
	}
	seek(0, io.SeekStart, 0)
	all, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(all, p) {
		t.Fatalf("re-read after seek to start: %v", err)
	}
}

func testChunkedResume(t *testing.T, e *env) {
	// Uneven chunk sizes, each Append on a new instance with the state
	// round-tripped through JSON: another replica continues the upload.
	sizes := []int{1, 4095, 1 << 20, 3, (1 << 20) + 17, 65536}
	var all []byte
	id, st := e.start(t, e.reopen(), "")
	for _, n := range sizes {
		p := randomBytes(t, n)
		all = append(all, p...)
		st = persist(t, e.appendBytes(t, e.reopen(), id, persist(t, st), p))
	}
	d := digest.FromBytes(all)
	e.commit(t, e.reopen(), id, st, d)
	e.checkContent(t, e.reopen(), d, all)
}

func testLargeShortReads(t *testing.T, e *env) {
	// Several MiB through a reader that returns odd, short reads exercises
	// any buffering and chunking inside Append (9 MiB: more than two of the
	// fs store's 4 MiB chunks).
	p := randomBytes(t, 9<<20+12345)
	id, st := e.start(t, e.Store, "")
	next, err := e.Append(e.ctx, id, st, iotest.HalfReader(bytes.NewReader(p)))
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if next.Offset != int64(len(p)) {
		t.Fatalf("offset %d, want %d", next.Offset, len(p))
	}
	d := digest.FromBytes(p)
	e.commit(t, e.Store, id, next, d)
	e.checkContent(t, e.Store, d, p)
}

func testFailedAppend(t *testing.T, e *env) {
	a, junk, b := randomBytes(t, 1000), randomBytes(t, 500), randomBytes(t, 2000)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, a)

	_, err := e.Append(e.ctx, id, st, &failingReader{r: bytes.NewReader(junk)})
	wantErr(t, "Append with a failing body", err, errBody)

	// The caller kept st; the junk that may have reached storage is
	// discarded and the upload continues from st on another instance.
	st = e.appendBytes(t, e.reopen(), id, persist(t, st), b)
	want := append(append([]byte{}, a...), b...)
	d := digest.FromBytes(want)
	e.commit(t, e.reopen(), id, st, d)
	e.checkContent(t, e.Store, d, want)
}

func testFailedLargeAppend(t *testing.T, e *env) {
	// The body breaks after several MiB, past the fs store's first 4 MiB
	// chunk and mid-chunk.
	failAfter(t, e, 100, 5<<20+777, 1<<20+5)
}

func testFailedAppendAfterLarge(t *testing.T, e *env) {
	// Large requests one after the other, as a chunked push makes them; the
	// second breaks mid-body and is retried from the first one's state.
	failAfter(t, e, 6<<20+3, 5<<20, 2<<20)
}

// failAfter appends a bytes, then a body of junk bytes that breaks at its
// end, then b from the state after a, and checks that the blob is a+b.
func failAfter(t *testing.T, e *env, a, junk, b int) {
	t.Helper()
	pa, pb := randomBytes(t, a), randomBytes(t, b)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, pa)
	_, err := e.Append(e.ctx, id, st, &failingReader{r: bytes.NewReader(randomBytes(t, junk))})
	wantErr(t, "Append with a failing body", err, errBody)
	st = e.appendBytes(t, e.Store, id, st, pb)
	want := append(append([]byte{}, pa...), pb...)
	d := digest.FromBytes(want)
	e.commit(t, e.reopen(), id, st, d)
	e.checkContent(t, e.Store, d, want)
}

func testTruncatedBody(t *testing.T, e *env) {
	// net/http reports a body shorter than its Content-Length with
	// io.ErrUnexpectedEOF; that is a failed request, not the end of data.
	p := randomBytes(t, 3000)
	id, st := e.start(t, e.Store, "")
	r := io.MultiReader(bytes.NewReader(p[:1000]), iotest.ErrReader(io.ErrUnexpectedEOF))
	_, err := e.Append(e.ctx, id, st, r)
	wantErr(t, "Append with a truncated body", err, io.ErrUnexpectedEOF)
	st = e.appendBytes(t, e.Store, id, st, p)
	d := digest.FromBytes(p)
	e.commit(t, e.Store, id, st, d)
	e.checkContent(t, e.Store, d, p)
}

func testReplayOlderState(t *testing.T, e *env) {
	// The persisted state is the source of truth: continuing from an older
	// state (its later Append's success was never recorded) drops what
	// came after it.
	a, lost, c := randomBytes(t, 700), randomBytes(t, 900), randomBytes(t, 300)
	id, st := e.start(t, e.Store, "")
	st1 := e.appendBytes(t, e.Store, id, st, a)
	_ = e.appendBytes(t, e.Store, id, st1, lost)
	st3 := e.appendBytes(t, e.reopen(), id, persist(t, st1), c)
	want := append(append([]byte{}, a...), c...)
	d := digest.FromBytes(want)
	e.commit(t, e.Store, id, st3, d)
	e.checkContent(t, e.Store, d, want)
}

// commitIsHonest commits upload id as d; a store may refuse, but if it
// accepts, blob d must hold exactly bytes that hash to d.
func (e *env) commitIsHonest(t *testing.T, id string, st blob.UploadState, d digest.Digest) error {
	t.Helper()
	_, err := e.Commit(e.ctx, id, st, d)
	if err != nil {
		return err
	}
	r, err := e.Open(e.ctx, d)
	if err != nil {
		t.Fatalf("Open after Commit: %v", err)
	}
	defer closeReader(t, r)
	got, err := d.Algorithm().FromReader(r)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if got != d {
		t.Fatalf("blob %s holds bytes that hash to %s", d, got)
	}
	return nil
}

func testSupersededState(t *testing.T, e *env) {
	// Two Appends from the same state, one after the other (a retry of a
	// request that had in fact succeeded). Only one of the two results can
	// describe the stored bytes; committing the other must not publish the
	// wrong bytes under its digest.
	a, x, y := randomBytes(t, 500), randomBytes(t, 3000), randomBytes(t, 3000)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, a)
	stX := e.appendBytes(t, e.Store, id, st, x)
	stY := e.appendBytes(t, e.reopen(), id, st, y)
	dX := digest.FromBytes(append(append([]byte{}, a...), x...))
	dY := digest.FromBytes(append(append([]byte{}, a...), y...))
	if err := e.commitIsHonest(t, id, stX, dX); err == nil {
		t.Fatal("Commit of the superseded state succeeded")
	}
	if err := e.commitIsHonest(t, id, stY, dY); err != nil {
		t.Fatalf("Commit of the latest state: %v", err)
	}
}

func testOverlappingAppends(t *testing.T, e *env) {
	// Appends from one state racing each other: whatever each returns,
	// no Commit may publish bytes that do not match their digest.
	const rounds, racers = 5, 3
	for round := 0; round < rounds; round++ {
		id, st := e.start(t, e.Store, "")
		contents := make([][]byte, racers)
		states := make([]blob.UploadState, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range contents {
			contents[i] = randomBytes(t, 1<<20+1000*i)
			wg.Go(func() {
				states[i], errs[i] = e.reopen().Append(e.ctx, id, st, bytes.NewReader(contents[i]))
			})
		}
		wg.Wait()
		for i := range contents {
			if errs[i] != nil {
				continue
			}
			_ = e.commitIsHonest(t, id, states[i], digest.FromBytes(contents[i]))
		}
	}
}

func testOffsetMismatch(t *testing.T, e *env) {
	p := randomBytes(t, 1000)

	// Ahead: a state from an upload with more bytes than this one has.
	bigID, big := e.start(t, e.Store, "")
	big = e.appendBytes(t, e.Store, bigID, big, p)
	small, _ := e.start(t, e.Store, "")
	_, err := e.Append(e.ctx, small, big, strings.NewReader("x"))
	wantErr(t, "Append ahead of the stored bytes", err, blob.ErrOffsetMismatch)
	_, err = e.Commit(e.ctx, small, big, digest.FromBytes(p))
	wantErr(t, "Commit ahead of the stored bytes", err, blob.ErrOffsetMismatch)

	// An Offset that disagrees with the state's own hash, either way.
	for _, delta := range []int64{-1, 1, -1000, 5000} {
		bad := big
		bad.Offset += delta
		_, err := e.Append(e.ctx, bigID, bad, strings.NewReader("x"))
		wantErr(t, fmt.Sprintf("Append with Offset%+d", delta), err, blob.ErrOffsetMismatch)
		_, err = e.Commit(e.ctx, bigID, bad, digest.FromBytes(p[:max(0, min(len(p), int(bad.Offset)))]))
		wantErr(t, fmt.Sprintf("Commit with Offset%+d", delta), err, blob.ErrOffsetMismatch)
	}

	// None of that harmed the upload.
	d := digest.FromBytes(p)
	e.commit(t, e.Store, bigID, big, d)
	e.checkContent(t, e.Store, d, p)
}

func testDigestMismatchKeepsUpload(t *testing.T, e *env) {
	p := randomBytes(t, 5000)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, p)
	for _, wrong := range []digest.Digest{
		digest.FromString("something else"),               // same algorithm
		digest.SHA512.FromString("something else either"), // other algorithm
	} {
		_, err := e.Commit(e.ctx, id, st, wrong)
		wantErr(t, "Commit with a wrong "+string(wrong.Algorithm()), err, blob.ErrDigestMismatch)
		_, err = e.Stat(e.ctx, wrong)
		wantErr(t, "Stat of the wrong digest", err, blob.ErrNotFound)
	}
	// The upload is still there: it can grow and commit.
	more := randomBytes(t, 10)
	st = e.appendBytes(t, e.reopen(), id, st, more)
	all := append(append([]byte{}, p...), more...)
	d := digest.FromBytes(all)
	e.commit(t, e.Store, id, st, d)
	e.checkContent(t, e.Store, d, all)
}

func testSHA512(t *testing.T, e *env) {
	p := randomBytes(t, 1<<20+99)
	id, st := e.start(t, e.Store, digest.SHA512)
	st = e.appendBytes(t, e.reopen(), id, persist(t, st), p[:1000])
	st = e.appendBytes(t, e.reopen(), id, persist(t, st), p[1000:])
	d := digest.SHA512.FromBytes(p)
	e.commit(t, e.reopen(), id, persist(t, st), d)
	e.checkContent(t, e.Store, d, p)
	if _, err := e.Stat(e.ctx, digest.FromBytes(p)); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("sha256 of a sha512 blob: %v, want ErrNotFound", err)
	}
}

func testDeclaredAlgMismatch(t *testing.T, e *env) {
	for _, tc := range []struct{ declared, committed digest.Algorithm }{
		{"", digest.SHA512},
		{digest.SHA256, digest.SHA512},
		{digest.SHA512, digest.SHA256},
	} {
		p := randomBytes(t, 2<<20+3)
		id, st := e.start(t, e.Store, tc.declared)
		st = e.appendBytes(t, e.Store, id, st, p[:100])
		st = e.appendBytes(t, e.Store, id, st, p[100:])
		d := tc.committed.FromBytes(p)
		e.commit(t, e.reopen(), id, st, d)
		e.checkContent(t, e.Store, d, p)
	}
}

func testCommitExisting(t *testing.T, e *env) {
	p := randomBytes(t, 3000)
	d := e.put(t, p, "")
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, p)
	e.commit(t, e.Store, id, st, d)
	e.checkContent(t, e.Store, d, p)
	// The second upload is gone.
	wantErr(t, "Abort after Commit", e.Abort(e.ctx, id), blob.ErrNotFound)
	_, err := e.Append(e.ctx, id, st, strings.NewReader("x"))
	wantErr(t, "Append after Commit", err, blob.ErrNotFound)
}

func testCommitExistingVerifies(t *testing.T, e *env) {
	p := randomBytes(t, 3000)
	d := e.put(t, p, "")
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		id, st := e.start(t, e.Store, alg)
		st = e.appendBytes(t, e.Store, id, st, randomBytes(t, 3000))
		_, err := e.Commit(e.ctx, id, st, d)
		wantErr(t, "Commit of other bytes as an existing digest", err, blob.ErrDigestMismatch)
		if err := e.Abort(e.ctx, id); err != nil {
			t.Fatalf("Abort after mismatch: %v", err)
		}
	}
	e.checkContent(t, e.Store, d, p)
}

func testConcurrentSameContent(t *testing.T, e *env) {
	const n = 8
	p := randomBytes(t, 1<<20+4321)
	d := digest.FromBytes(p)
	type upload struct {
		id string
		st blob.UploadState
	}
	ups := make([]upload, n)
	for i := range ups {
		ups[i].id, ups[i].st = e.start(t, e.Store, "")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range ups {
		wg.Go(func() {
			s := e.reopen()
			st, err := s.Append(e.ctx, ups[i].id, ups[i].st, bytes.NewReader(p))
			if err == nil {
				_, err = s.Commit(e.ctx, ups[i].id, st, d)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
	e.checkContent(t, e.Store, d, p)
}

func testConcurrentDistinct(t *testing.T, e *env) {
	const n = 8
	contents := make([][]byte, n)
	ids := make([]string, n)
	states := make([]blob.UploadState, n)
	for i := range contents {
		contents[i] = randomBytes(t, 200_000+i)
		ids[i], states[i] = e.start(t, e.Store, "")
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range contents {
		wg.Go(func() {
			st, err := e.Append(e.ctx, ids[i], states[i], bytes.NewReader(contents[i]))
			if err == nil {
				_, err = e.Commit(e.ctx, ids[i], st, digest.FromBytes(contents[i]))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		e.checkContent(t, e.Store, digest.FromBytes(contents[i]), contents[i])
	}
}

func testAbort(t *testing.T, e *env) {
	p := randomBytes(t, 100)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, p)
	if err := e.reopen().Abort(e.ctx, id); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	_, err := e.Append(e.ctx, id, st, strings.NewReader("x"))
	wantErr(t, "Append after Abort", err, blob.ErrNotFound)
	_, err = e.Commit(e.ctx, id, st, digest.FromBytes(p))
	wantErr(t, "Commit after Abort", err, blob.ErrNotFound)
	wantErr(t, "second Abort", e.Abort(e.ctx, id), blob.ErrNotFound)
	_, err = e.Stat(e.ctx, digest.FromBytes(p))
	wantErr(t, "Stat of aborted content", err, blob.ErrNotFound)

	// An aborted id can be used again.
	st, err = e.StartUpload(e.ctx, id, "")
	if err != nil {
		t.Fatalf("StartUpload of an aborted id: %v", err)
	}
	st = e.appendBytes(t, e.Store, id, st, p)
	e.commit(t, e.Store, id, st, digest.FromBytes(p))
}

func testDelete(t *testing.T, e *env) {
	p, other := randomBytes(t, 1234), randomBytes(t, 99)
	d := e.put(t, p, "")
	keep := e.put(t, other, "")
	if err := e.reopen().Delete(e.ctx, d); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := e.Stat(e.ctx, d)
	wantErr(t, "Stat after Delete", err, blob.ErrNotFound)
	_, err = e.Open(e.ctx, d)
	wantErr(t, "Open after Delete", err, blob.ErrNotFound)
	wantErr(t, "second Delete", e.Delete(e.ctx, d), blob.ErrNotFound)
	e.checkContent(t, e.Store, keep, other)
	// The digest can be pushed again.
	e.put(t, p, "")
	e.checkContent(t, e.Store, d, p)
}

func testDuplicateUploadID(t *testing.T, e *env) {
	p := randomBytes(t, 10)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, p)
	if _, err := e.reopen().StartUpload(e.ctx, id, ""); err == nil {
		t.Fatal("StartUpload with an id in use succeeded")
	}
	// The first upload is untouched.
	e.commit(t, e.Store, id, st, digest.FromBytes(p))
	e.checkContent(t, e.Store, digest.FromBytes(p), p)
}

// InvalidDigests are digests no store may accept; exported so
// implementations can reuse them in their own tests (e.g. of paths).
var InvalidDigests = []digest.Digest{
	"",
	"sha256",
	"sha256:",
	":" + digest.Digest(strings.Repeat("a", 64)),
	"sha256:abc",
	"sha256:" + digest.Digest(strings.Repeat("A", 64)),
	"sha256:" + digest.Digest(strings.Repeat("g", 64)),
	"sha256:" + digest.Digest(strings.Repeat("a", 63)) + "/",
	"sha256:" + digest.Digest(strings.Repeat("a", 65)),
	"sha256:../../../../../../../../../../../../../../../../../../etc/passwd",
	"sha256:" + digest.Digest(strings.Repeat(".", 64)),
	"../sha256:" + digest.Digest(strings.Repeat("a", 64)),
	"sha256/../../x:" + digest.Digest(strings.Repeat("a", 64)),
	"sha512:" + digest.Digest(strings.Repeat("a", 64)),
	"sha256:" + digest.Digest(strings.Repeat("a", 64)) + "\x00",
	"SHA256:" + digest.Digest(strings.Repeat("a", 64)),
}

// UnsupportedDigests are well-formed digests of algorithms no store supports.
var UnsupportedDigests = []digest.Digest{
	"sha384:" + digest.Digest(strings.Repeat("a", 96)),
	"md5:" + digest.Digest(strings.Repeat("a", 32)),
	"blake3:" + digest.Digest(strings.Repeat("a", 64)),
}

func testInvalidDigests(t *testing.T, e *env) {
	p := randomBytes(t, 64)
	for _, d := range append(append([]digest.Digest{}, InvalidDigests...), UnsupportedDigests...) {
		unsupported := false
		for _, u := range UnsupportedDigests {
			unsupported = unsupported || u == d
		}
		check := func(op string, err error) {
			t.Helper()
			switch {
			case err == nil:
				t.Errorf("%s(%q) succeeded", op, d)
			case unsupported && !errors.Is(err, blob.ErrUnsupportedAlgorithm):
				t.Errorf("%s(%q): %v, want ErrUnsupportedAlgorithm", op, d, err)
			}
		}
		_, err := e.Stat(e.ctx, d)
		check("Stat", err)
		_, err = e.Open(e.ctx, d)
		check("Open", err)
		check("Delete", e.Delete(e.ctx, d))

		id, st := e.start(t, e.Store, "")
		st = e.appendBytes(t, e.Store, id, st, p)
		_, err = e.Commit(e.ctx, id, st, d)
		check("Commit", err)
		// The upload survives a rejected Commit.
		e.commit(t, e.Store, id, st, digest.FromBytes(p))
	}
}

// InvalidUploadIDs are upload ids no store may accept.
var InvalidUploadIDs = []string{
	"",
	".",
	"..",
	"../x",
	"a/b",
	"/abs",
	`a\b`,
	"a b",
	"a.b",
	"a\x00b",
	"ü",
	"a\n",
	strings.Repeat("a", 129),
}

func testInvalidUploadIDs(t *testing.T, e *env) {
	_, st := e.start(t, e.Store, "")
	for _, id := range InvalidUploadIDs {
		if _, err := e.StartUpload(e.ctx, id, ""); err == nil {
			t.Errorf("StartUpload(%q) succeeded", id)
		}
		if _, err := e.Append(e.ctx, id, st, strings.NewReader("x")); err == nil {
			t.Errorf("Append(%q) succeeded", id)
		}
		if _, err := e.Commit(e.ctx, id, st, digest.FromString("")); err == nil {
			t.Errorf("Commit(%q) succeeded", id)
		}
		if err := e.Abort(e.ctx, id); err == nil {
			t.Errorf("Abort(%q) succeeded", id)
		}
	}
	// The longest valid id, and every allowed character, work.
	for _, id := range []string{strings.Repeat("z", 128), "AZaz09_-"} {
		st, err := e.StartUpload(e.ctx, id, "")
		if err != nil {
			t.Fatalf("StartUpload(%q): %v", id, err)
		}
		st = e.appendBytes(t, e.Store, id, st, []byte(id))
		e.commit(t, e.Store, id, st, digest.FromString(id))
	}
}

func testUnsupportedUploadAlg(t *testing.T, e *env) {
	for _, alg := range []digest.Algorithm{"sha384", "md5", "SHA256", "bogus", "sha256/../x"} {
		_, err := e.StartUpload(e.ctx, e.id(), alg)
		wantErr(t, fmt.Sprintf("StartUpload(alg %q)", alg), err, blob.ErrUnsupportedAlgorithm)
	}
}

func testZeroLength(t *testing.T, e *env) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		id, st := e.start(t, e.Store, alg)
		d := alg.FromBytes(nil)
		e.commit(t, e.reopen(), id, persist(t, st), d)
		e.checkContent(t, e.Store, d, []byte{})
	}
}

func testEmptyAppend(t *testing.T, e *env) {
	p := randomBytes(t, 77)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, nil)
	st = e.appendBytes(t, e.Store, id, st, p)
	st = e.appendBytes(t, e.Store, id, st, nil)
	e.commit(t, e.Store, id, st, digest.FromBytes(p))
	e.checkContent(t, e.Store, digest.FromBytes(p), p)
}

func testCanceledContext(t *testing.T, e *env) {
	p := randomBytes(t, 2<<20)
	id, st := e.start(t, e.Store, "")
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.Append(ctx, id, st, bytes.NewReader(p)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context: %v, want context.Canceled", err)
	}
	// The upload is usable with the old state.
	st = e.appendBytes(t, e.Store, id, st, p)
	e.commit(t, e.Store, id, st, digest.FromBytes(p))
}

func testCommitTwice(t *testing.T, e *env) {
	p := randomBytes(t, 10)
	id, st := e.start(t, e.Store, "")
	st = e.appendBytes(t, e.Store, id, st, p)
	e.commit(t, e.Store, id, st, digest.FromBytes(p))
	_, err := e.Commit(e.ctx, id, st, digest.FromBytes(p))
	wantErr(t, "second Commit", err, blob.ErrNotFound)
	e.checkContent(t, e.Store, digest.FromBytes(p), p)
}
