package fs

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/atomicfile"
	"github.com/moat-registry/moat/internal/storage/blob"
)

const (
	// chunkSize is the unit the Append pipeline writes, and the size of its
	// buffers. On this project's test machine
	// 4 MiB is the largest request the (virtio) disk takes whole
	// (max_sectors_kb), and going from 1 MiB to 4 MiB cut the server's CPU
	// time per 512 MiB push from ~800 to ~720 ms: a quarter of the direct
	// writes, each a blocking syscall whose P the Go scheduler hands to
	// another thread, and a quarter of the disk requests and interrupts.
	chunkSize = 4 << 20
	// hashSlice is the unit the hasher gets. The reader hands each slice
	// on as soon as it has arrived, so the hasher starts after the first
	// slice rather than the first chunk, and has at most a slice left to
	// hash after the body's last byte. Both ends of the pipeline are paid
	// on every request; a chunked push pays them on every PATCH.
	hashSlice = 512 << 10
	// pipelineDepth bounds how many chunks reading may run ahead of the
	// slower of the hasher and the writer, and so the memory one upload
	// holds: at most depth+2 chunks (queued, in work, and being read),
	// 24 MiB. On this project's 2-core test machine, with Go's default HTTP
	// client, 4 beat 2 by 8–12% in 512 MiB pushes, chunked and monolithic;
	// 3 and 6 fell between. The benchmark's own driver saw no difference
	// (BENCHMARKS.md, Large pushes), so 4 is kept as nowhere slower. The
	// deeper backlog gives the hasher work while the reader waits: for a
	// CPU, or for the next PATCH.
	pipelineDepth = 4
	// writebackEvery is how many written bytes make the writer ask the kernel
	// to start writing them back (see startWriteback), so the fsync that ends
	// an Append finds little left to flush. On this project's test machine it
	// cut a 64 MiB Append from ~90 ms to ~55 ms.
	writebackEvery = 8 << 20
)

// bufPool recycles buffers of one size.
type bufPool struct {
	size int
	pool sync.Pool
	// made counts the buffers allocated, for tests of who takes which.
	made atomic.Int64
}

func (p *bufPool) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	p.made.Add(1)
	b := make([]byte, p.size)
	return &b
}

func (p *bufPool) put(b *[]byte) { p.pool.Put(b) }

// chunkBufs serve the pipeline and rehash; sliceBufs the first read of
// every Append, so that a small body (most of a push's requests) holds
// 512 KiB while it is copied, not a whole chunk.
var (
	chunkBufs = &bufPool{size: chunkSize}
	sliceBufs = &bufPool{size: hashSlice}
)

// Append implements blob.Store. A body that fits in one hash slice is
// hashed, written and fsynced before Append returns its (real) state. A
// larger one goes through a session's pipeline (session.go): Append returns
// once it has read the body, with a pending state, and an Append from that
// state continues the same pipeline.
func (s *Store) Append(ctx context.Context, id string, st blob.UploadState, r io.Reader) (blob.UploadState, error) {
	if _, err := s.uploadDir(id); err != nil {
		return st, err
	}
	if err := checkState(st); err != nil {
		return st, err
	}
	ss, err := s.claim(ctx, id, st)
	if err != nil {
		return st, fmt.Errorf("blob fs: append to upload %s: %w", id, err)
	}
	if ss != nil {
		return ss.append(ctx, st, r, nil, 0)
	}
	if err := s.takeFailure(id, st); err != nil {
		return st, err
	}
	u, err := s.openUpload(ctx, id, st)
	if err != nil {
		return st, err
	}
	alg, h, err := decodeState(u.state)
	if err != nil {
		_ = u.close() // nothing written; the state error is the one to report
		return st, err
	}
	sp := sliceBufs.get()
	m, eof, err := fill(ctx, r, *sp)
	if err == nil && !eof && !s.serial {
		// A body of more than one slice: worth a chunk buffer and a session.
		bp := chunkBufs.get()
		copy(*bp, (*sp)[:m])
		sliceBufs.put(sp)
		return s.startSession(u, alg, h).append(ctx, st, r, bp, m)
	}
	next := st
	if err == nil {
		next, err = appendSerial(ctx, u, alg, h, r, sp, m, eof)
	} else {
		sliceBufs.put(sp)
	}
	if cerr := u.close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The caller keeps st; whatever reached the file is cut off by the
		// next Append or Commit.
		return st, fmt.Errorf("blob fs: append to upload %s: %w", id, err)
	}
	if next.Offset == st.Offset {
		return st, nil
	}
	return next, nil
}

// checkState refuses a state that cannot be continued from before any file
// is touched.
func checkState(st blob.UploadState) error {
	if isPending(st) {
		_, _, err := parsePending(st)
		return err
	}
	_, _, err := decodeState(st)
	return err
}

// appendSerial hashes and writes r's bytes on the calling goroutine (sp
// holds the first m of them; eof says whether r is exhausted), makes them
// durable and logs the new state.
func appendSerial(ctx context.Context, u *upload, alg digest.Algorithm, h hash.Hash, r io.Reader, sp *[]byte, m int, eof bool) (blob.UploadState, error) {
	st := u.state
	w := &fileWriter{f: u.data, off: st.Offset, flushed: st.Offset}
	n, err := copySerial(ctx, w, h, r, sp, m, eof)
	if err != nil || n == 0 {
		return st, err
	}
	// The new state promises these bytes to whichever process continues
	// the upload, so they must be on disk before it is logged or returned.
	if err := u.data.Sync(); err != nil {
		return st, err
	}
	// Drop-behind: see the package doc.
	atomicfile.DropCache(u.data, st.Offset, n)
	next := blob.UploadState{Offset: st.Offset + n}
	if next.Hash, err = encodeState(alg, next.Offset, h); err != nil {
		return st, err
	}
	if err := u.logState(next); err != nil {
		return st, err
	}
	return next, nil
}

// fill reads from r until buf is full or r is exhausted. Unlike io.ReadFull
// it reports only io.EOF as the end: io.ErrUnexpectedEOF from r (net/http's
// answer to a body shorter than its Content-Length) is a failure.
func fill(ctx context.Context, r io.Reader, buf []byte) (n int, eof bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// copySerial hashes and writes each slice in turn. sp, from sliceBufs,
// holds the first m bytes already read; eof says whether r is exhausted.
func copySerial(ctx context.Context, w *fileWriter, h hash.Hash, r io.Reader, sp *[]byte, m int, eof bool) (int64, error) {
	defer sliceBufs.put(sp)
	var n int64
	for {
		chunk := (*sp)[:m]
		_, _ = h.Write(chunk) // hash.Hash.Write never fails
		if err := w.write(chunk); err != nil {
			return n, err
		}
		n += int64(m)
		if eof {
			return n, nil
		}
		var err error
		if m, eof, err = fill(ctx, r, *sp); err != nil {
			return n, err
		}
	}
}

// chunk is one buffer travelling through the pipeline; the hasher gets it
// slice by slice, the writer whole, each as a span. Every span handed on holds a
// reference, and so does the reader while it fills the chunk; the last to
// let go returns the buffer to the pool and its slot to the pipeline.
type chunk struct {
	buf   *[]byte
	refs  atomic.Int32
	slots chan struct{}
}

// newChunk takes one of the pipeline's slots, waiting for one to be free,
// and wraps bp (a new buffer if nil) in a chunk that holds it.
func newChunk(bp *[]byte, slots chan struct{}) *chunk {
	slots <- struct{}{}
	if bp == nil {
		bp = chunkBufs.get()
	}
	c := &chunk{buf: bp, slots: slots}
	c.refs.Store(1)
	return c
}

func (c *chunk) release() {
	if c.refs.Add(-1) == 0 {
		chunkBufs.put(c.buf)
		<-c.slots
	}
}

// span is the part [from, to) of a chunk, for the hasher or the writer,
// or, with no chunk, a mark at off (see pipe).
type span struct {
	c        *chunk
	from, to int
	off      int64
	pending  blob.UploadState
}

func (s span) bytes() []byte { return (*s.c.buf)[s.from:s.to] }

// pipe is a session's hash/write pipeline: the goroutine that feeds it
// reads a request body into chunks and hands what it read to a hasher and
// a writer goroutine, which run in parallel with each other and with the
// reading, and outlive the request (see session.go).
//
// The hasher gets every slice as soon as it has arrived; the writer gets a
// chunk when it is full or the body ends, so that writes are large (one
// request to the disk each). Handing an idle writer whatever had arrived
// instead (to start the disk sooner on every PATCH) was measured: it
// tripled the writes of a chunked push and gained nothing.
//
// A mark, sent after a body, makes each goroutine report where it stands
// once it has taken every byte before it: the hasher the marshalled hash
// state, the writer its first error. Chunks in use, whatever holds them,
// are bounded by slots; that bound is the memory one upload holds,
// however many requests feed it.
type pipe struct {
	w       *fileWriter
	slots   chan struct{}
	hashCh  chan span
	writeCh chan span
	hashed  chan hashedMark // one per mark, in order; closed when the hasher ends
	written chan error      // one per mark, in order; closed when the writer ends
	bg      sync.WaitGroup

	// failed is set once a write has failed, after writeErr: feeding stops.
	failed   atomic.Bool
	writeErr error
}

// hashedMark is the hasher's report at a mark.
type hashedMark struct {
	off     int64
	pending blob.UploadState // the state the mark resolves
	hash    []byte           // the real state's Hash
	err     error
}

// marksAhead is how many marks the hasher and the writer may report ahead
// of the session persisting them; beyond it they wait, and so does feeding.
const marksAhead = 8

// startPipe starts the hasher and the writer of a pipeline that continues
// an upload at w.off, with h (of algorithm alg) having hashed that much.
func startPipe(w *fileWriter, h hash.Hash, alg digest.Algorithm) *pipe {
	p := &pipe{
		w:     w,
		slots: make(chan struct{}, pipelineDepth+2),
		// Long enough for every span of every chunk in use, and the marks.
		hashCh:  make(chan span, (pipelineDepth+2)*chunkSize/hashSlice+marksAhead),
		writeCh: make(chan span, pipelineDepth+2+marksAhead),
		hashed:  make(chan hashedMark, marksAhead),
		written: make(chan error, marksAhead),
	}
	p.bg.Add(2)
	go p.hash(h, alg, w.off)
	go p.write()
	return p
}

func (p *pipe) hash(h hash.Hash, alg digest.Algorithm, off int64) {
	defer p.bg.Done()
	defer close(p.hashed)
	for s := range p.hashCh {
		if s.c == nil {
			hm := hashedMark{off: s.off, pending: s.pending}
			if off != s.off {
				hm.err = fmt.Errorf("blob fs: hashed %d bytes at a mark for %d", off, s.off)
			} else {
				hm.hash, hm.err = encodeState(alg, off, h)
			}
			p.hashed <- hm
			continue
		}
		_, _ = h.Write(s.bytes()) // hash.Hash.Write never fails
		off += int64(s.to - s.from)
		s.c.release()
	}
}

func (p *pipe) write() {
	defer p.bg.Done()
	defer close(p.written)
	var err error
	for s := range p.writeCh {
		if s.c == nil {
			if err == nil && p.w.off != s.off {
				err = fmt.Errorf("blob fs: wrote %d bytes at a mark for %d", p.w.off, s.off)
			}
			p.written <- err
			continue
		}
		if err == nil {
			if err = p.w.write(s.bytes()); err != nil {
				p.writeErr = err
				p.failed.Store(true)
			}
		}
		s.c.release()
	}
}

// feed reads r to its end into the pipeline and returns the number of bytes
// it took. first, if not nil, is a chunk buffer holding the first m bytes
// of the body, already read. On a read or write error it stops reading and
// returns the error; what it handed on still goes through the pipeline.
func (p *pipe) feed(ctx context.Context, r io.Reader, first *[]byte, m int) (int64, error) {
	var (
		n       int64
		readErr error
		eof     bool
		c       = newChunk(first, p.slots)
		filled  = m // bytes of c read
	)
	hand := func(ch chan<- span, from, to int) {
		c.refs.Add(1)
		ch <- span{c: c, from: from, to: to}
	}
	if m > 0 {
		hand(p.hashCh, 0, m)
	}
	for !p.failed.Load() {
		if !eof && filled < chunkSize {
			var k int
			k, eof, readErr = fill(ctx, r, (*c.buf)[filled:min(filled+hashSlice, chunkSize)])
			if readErr != nil {
				break
			}
			if k > 0 {
				hand(p.hashCh, filled, filled+k)
				filled += k
			}
		}
		if filled > 0 && (eof || filled == chunkSize) {
			hand(p.writeCh, 0, filled)
			n += int64(filled)
		}
		if eof {
			break
		}
		if filled == chunkSize {
			c.release()
			c, filled = newChunk(nil, p.slots), 0
		}
	}
	c.release()
	if readErr != nil {
		return n, readErr
	}
	if p.failed.Load() {
		return n, p.writeErr
	}
	return n, nil
}

// mark asks the hasher and the writer to report once they have taken the
// bytes up to off, which pending stands for.
func (p *pipe) mark(off int64, pending blob.UploadState) {
	p.hashCh <- span{off: off, pending: pending}
	p.writeCh <- span{off: off}
}

// stop ends the pipeline once everything handed on has been hashed and
// written (or dropped after a failed write).
func (p *pipe) stop() {
	close(p.hashCh)
	close(p.writeCh)
	p.bg.Wait()
}

// fileWriter writes sequentially at an offset with pwrite, so one open file
// needs no seek, and starts writeback of every writebackEvery bytes.
//
// Where the platform and file system allow, chunks whose offset, length and
// buffer address are all multiples of directAlign (every full chunk of an
// upload that started at an aligned offset) go through a second descriptor
// opened with O_DIRECT: the disk reads them straight from the chunk buffer,
// so the kernel neither copies them into the page cache nor writes them back
// later. On a 2-core machine that copy and writeback took a third of the CPU
// a large push uses, competing with the hash. The rest (a short last chunk,
// an upload resumed at an odd offset) goes through the page cache as
// before; the fsync that ends an Append covers both.
type fileWriter struct {
	f       *os.File
	path    string   // f's path, for opening direct
	direct  *os.File // f opened again with O_DIRECT; nil when not in use
	off     int64    // next byte to write
	flushed int64    // writeback requested up to here
	// directBytes counts the bytes written through direct.
	directBytes int64
}

// directAlign is the alignment O_DIRECT needs of offsets, lengths and
// buffer addresses: the largest logical block size of the disks moat is
// meant for.
const directAlign = 4096

func (w *fileWriter) openDirect() {
	w.direct = openDirect(w.path)
}

func (w *fileWriter) closeDirect() {
	if w.direct != nil {
		_ = w.direct.Close() // nothing buffered: the data went to the disk or failed at write
		w.direct = nil
	}
}

func (w *fileWriter) write(p []byte) error {
	if w.direct != nil && len(p) > 0 && w.off%directAlign == 0 && len(p)%directAlign == 0 && addrAligned(p, directAlign) {
		n, err := w.direct.WriteAt(p, w.off)
		if err == nil {
			w.off += int64(n)
			w.directBytes += int64(n)
			w.flushed = w.off // nothing of it waits in the page cache
			return nil
		}
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		// The file system refuses direct writes after all: write through
		// the page cache from now on. Whatever part of p was written is
		// written again below.
		w.closeDirect()
	}
	if _, err := w.f.WriteAt(p, w.off); err != nil {
		return err
	}
	w.off += int64(len(p))
	if w.off-w.flushed >= writebackEvery {
		atomicfile.StartWriteback(w.f, w.flushed, w.off-w.flushed)
		w.flushed = w.off
	}
	return nil
}
