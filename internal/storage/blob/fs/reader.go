package fs

import (
	"io"
	"os"
	"syscall"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// Reader reads a committed blob from its file.
//
// Besides blob.Reader it implements syscall.Conn and io.WriterTo by handing
// out the *os.File. That is what makes zero-copy serving work: when
// http.ServeContent copies a (possibly range-limited) blob to a TCP
// connection, net/http passes an *io.LimitedReader wrapping this Reader to
// (*net.TCPConn).ReadFrom, and net uses sendfile(2) for any source that
// implements syscall.Conn (see net/sendfile.go). io.Copy to a socket without a
// LimitedReader goes through WriteTo, where *os.File does the same.
type Reader struct {
	f    *os.File
	size int64
}

var (
	_ blob.Reader  = (*Reader)(nil)
	_ syscall.Conn = (*Reader)(nil)
	_ io.WriterTo  = (*Reader)(nil)
	_ io.ReaderAt  = (*Reader)(nil)
)

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) { return r.f.Read(p) }

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) { return r.f.Seek(offset, whence) }

// Close implements io.Closer.
func (r *Reader) Close() error { return r.f.Close() }

// Size is the blob's length in bytes.
func (r *Reader) Size() int64 { return r.size }

// WriteTo implements io.WriterTo from the current offset; *os.File uses
// sendfile or splice when w is a socket or pipe.
func (r *Reader) WriteTo(w io.Writer) (int64, error) { return r.f.WriteTo(w) }

// SyscallConn implements syscall.Conn, the interface net checks before it
// uses sendfile.
func (r *Reader) SyscallConn() (syscall.RawConn, error) { return r.f.SyscallConn() }

// File returns the underlying file, for callers that want it directly. It
// stays owned by the Reader: Close the Reader, not the file.
func (r *Reader) File() *os.File { return r.f }
