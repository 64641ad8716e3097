// Package diskbound owns the reference write that moat's benchmarks
// compare a push or an export with: data written to a file in 1 MiB writes,
// as `dd bs=1M conv=fsync` does, then fsynced. Optionally each chunk is
// hashed first (the one-pass work a push must do), and optionally writeback
// is started every 8 MiB, the hint moat's own writers give
// (atomicfile.StartWriteback), so a bound can be the disk at its best.
package diskbound

import (
	"hash"
	"os"

	"github.com/moat-registry/moat/internal/atomicfile"
)

const (
	// Chunk is the size of one write.
	Chunk = 1 << 20
	// WritebackEvery is how many written bytes start their writeback when
	// hinting.
	WritebackEvery = 8 << 20
)

// Write writes data to f from its current offset in Chunk-sized writes,
// hashing each chunk into h first when h is not nil and starting writeback
// every WritebackEvery bytes when hint, then fsyncs f. It does not close f.
func Write(f *os.File, data []byte, h hash.Hash, hint bool) error {
	var flushed int64
	for off := 0; off < len(data); off += Chunk {
		chunk := data[off:min(off+Chunk, len(data))]
		if h != nil {
			_, _ = h.Write(chunk) // hash.Hash.Write never fails
		}
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		if end := int64(off + len(chunk)); hint && end-flushed >= WritebackEvery {
			atomicfile.StartWriteback(f, flushed, end-flushed)
			flushed = end
		}
	}
	return f.Sync()
}
