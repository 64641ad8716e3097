package fs

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
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
	// slower of the hasher and the writer, and so the memory one Append
	// holds: at most depth+2 chunks (queued, in work, and being read),
	// 16 MiB.
	pipelineDepth = 2
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

// Append implements blob.Store. The bytes are hashed and written at the same
// time by two goroutines while the caller's goroutine reads the next ones;
// a body that fits in one hash slice is handled inline.
func (s *Store) Append(ctx context.Context, id string, st blob.UploadState, r io.Reader) (blob.UploadState, error) {
	if _, err := s.uploadDir(id); err != nil {
		return st, err
	}
	alg, h, err := decodeState(st)
	if err != nil {
		return st, err
	}
	u, err := s.openUpload(id, st)
	if err != nil {
		return st, err
	}
	next, err := s.appendLocked(ctx, u, st, alg, h, r)
	if cerr := u.close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The caller keeps st; whatever reached the file is cut off by the
		// next Append or Commit.
		return st, fmt.Errorf("blob fs: append to upload %s: %w", id, err)
	}
	return next, nil
}

func (s *Store) appendLocked(ctx context.Context, u *upload, st blob.UploadState, alg digest.Algorithm, h hash.Hash, r io.Reader) (blob.UploadState, error) {
	w := &fileWriter{f: u.data, path: filepath.Join(u.dir, dataName), off: st.Offset, flushed: st.Offset}
	n, err := s.copyIn(ctx, w, h, r)
	if err != nil {
		return st, err
	}
	if n == 0 {
		return st, nil
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

// copyIn streams r into w and h and returns the number of bytes taken.
func (s *Store) copyIn(ctx context.Context, w *fileWriter, h hash.Hash, r io.Reader) (int64, error) {
	sp := sliceBufs.get()
	m, eof, err := fill(ctx, r, *sp)
	if err != nil {
		sliceBufs.put(sp)
		return 0, err
	}
	if eof || s.serial {
		return copySerial(ctx, w, h, r, sp, m, eof)
	}
	// A body of more than one slice: worth a chunk buffer, and a second
	// descriptor for direct writes (see fileWriter).
	bp := chunkBufs.get()
	copy(*bp, (*sp)[:m])
	sliceBufs.put(sp)
	w.openDirect()
	defer w.closeDirect()
	return copyPipelined(ctx, w, h, r, bp, m)
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

// span is the part [from, to) of a chunk, for the hasher or the writer.
type span struct {
	c        *chunk
	from, to int
}

func (s span) bytes() []byte { return (*s.c.buf)[s.from:s.to] }

// copyPipelined reads on the calling goroutine into chunks and hands what it
// read to a hasher and a writer goroutine, which run in parallel with each
// other and with the reading. first holds the first m bytes, already read.
//
// The hasher gets every slice as soon as it has arrived; the writer gets a
// chunk when it is full or the body ends, so that writes are large (one
// request to the disk each). Handing an idle writer whatever had arrived
// instead (to start the disk sooner on every PATCH) was measured: it
// tripled the writes of a chunked push and gained nothing.
//
// On any error it stops reading, lets both goroutines drain, and reports
// the first error.
func copyPipelined(ctx context.Context, w *fileWriter, h hash.Hash, r io.Reader, first *[]byte, m int) (int64, error) {
	// Chunks in use, whatever holds them, are what bounds the memory; the
	// queues are long enough for every span of every chunk in use.
	slots := make(chan struct{}, pipelineDepth+2)
	hashCh := make(chan span, (pipelineDepth+2)*chunkSize/hashSlice)
	writeCh := make(chan span, pipelineDepth+2)
	var (
		wg       sync.WaitGroup
		writeErr error
		failed   atomic.Bool
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for s := range hashCh {
			_, _ = h.Write(s.bytes()) // hash.Hash.Write never fails
			s.c.release()
		}
	}()
	go func() {
		defer wg.Done()
		for s := range writeCh {
			if writeErr == nil {
				if writeErr = w.write(s.bytes()); writeErr != nil {
					failed.Store(true)
				}
			}
			s.c.release()
		}
	}()

	var (
		n       int64
		readErr error
		eof     bool
		c       = newChunk(first, slots)
		filled  = m // bytes of c read
	)
	hand := func(ch chan<- span, from, to int) {
		c.refs.Add(1)
		ch <- span{c: c, from: from, to: to}
	}
	hand(hashCh, 0, m)
	for !failed.Load() {
		if !eof && filled < chunkSize {
			var k int
			k, eof, readErr = fill(ctx, r, (*c.buf)[filled:min(filled+hashSlice, chunkSize)])
			if readErr != nil {
				break
			}
			if k > 0 {
				hand(hashCh, filled, filled+k)
				filled += k
			}
		}
		if filled > 0 && (eof || filled == chunkSize) {
			hand(writeCh, 0, filled)
			n += int64(filled)
		}
		if eof {
			break
		}
		if filled == chunkSize {
			c.release()
			c, filled = newChunk(nil, slots), 0
		}
	}
	c.release()
	close(hashCh)
	close(writeCh)
	wg.Wait()
	if readErr != nil {
		return n, readErr
	}
	return n, writeErr
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
