package blobtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// Bench runs the push and read benchmarks against a store newStore makes.
// Throughput (b.SetBytes) counts blob bytes. A push is StartUpload, Append
// (or several) and Commit of content the store has not seen, so every
// iteration pays for hashing, writing, durability and the rename; the
// client's own digest computation and the cleanup are not timed.
func Bench(b *testing.B, newStore func(b *testing.B) blob.Store) {
	for _, size := range []int{1 << 20, 64 << 20} {
		b.Run("Push/"+sizeName(size), func(b *testing.B) {
			BenchPush(b, newStore(b), size, size, digest.SHA256)
		})
	}
	b.Run("PushChunked/64MiB-in-4MiB", func(b *testing.B) {
		BenchPush(b, newStore(b), 64<<20, 4<<20, digest.SHA256)
	})
	b.Run("PushSHA512/64MiB", func(b *testing.B) {
		BenchPush(b, newStore(b), 64<<20, 64<<20, digest.SHA512)
	})
	for _, size := range []int{1 << 20, 64 << 20} {
		b.Run("Read/"+sizeName(size), func(b *testing.B) {
			benchRead(b, newStore(b), size)
		})
	}
	b.Run("ReadRange/1MiB-of-64MiB", func(b *testing.B) {
		benchReadRange(b, newStore(b))
	})
	b.Run("Stat", func(b *testing.B) {
		s := newStore(b)
		d := push(b, s, "stat", randomBytes(b, 1000), digest.SHA256)
		for b.Loop() {
			if _, err := s.Stat(b.Context(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func sizeName(n int) string {
	return fmt.Sprintf("%dMiB", n>>20)
}

// push stores p through s in one Append and returns its digest.
func push(b *testing.B, s blob.Store, id string, p []byte, alg digest.Algorithm) digest.Digest {
	b.Helper()
	ctx := b.Context()
	st, err := s.StartUpload(ctx, id, alg)
	if err != nil {
		b.Fatal(err)
	}
	if st, err = s.Append(ctx, id, st, bytes.NewReader(p)); err != nil {
		b.Fatal(err)
	}
	d := alg.FromBytes(p)
	if _, err := s.Commit(ctx, id, st, d); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchPush measures pushes of size-byte blobs of algorithm alg into s, each
// sent in Appends of chunk bytes. Implementations use it to compare variants
// of themselves.
func BenchPush(b *testing.B, s blob.Store, size, chunk int, alg digest.Algorithm) {
	ctx := b.Context()
	p := randomBytes(b, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Fresh content each time, so Commit never finds the blob present.
		binary.BigEndian.PutUint64(p, uint64(i))
		d := alg.FromBytes(p)
		id := fmt.Sprintf("bench-%d", i)
		b.StartTimer()

		st, err := s.StartUpload(ctx, id, alg)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < size; off += chunk {
			if st, err = s.Append(ctx, id, st, bytes.NewReader(p[off:min(off+chunk, size)])); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.Commit(ctx, id, st, d); err != nil {
			b.Fatal(err)
		}

		b.StopTimer()
		if err := s.Delete(ctx, d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func benchRead(b *testing.B, s blob.Store, size int) {
	ctx := b.Context()
	d := push(b, s, "read", randomBytes(b, size), digest.SHA256)
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(size))
	for b.Loop() {
		r, err := s.Open(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		n, err := readAll(r, buf)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		if n != int64(size) {
			b.Fatalf("read %d bytes, want %d", n, size)
		}
	}
}

func benchReadRange(b *testing.B, s blob.Store) {
	const size, span = 64 << 20, 1 << 20
	ctx := b.Context()
	d := push(b, s, "range", randomBytes(b, size), digest.SHA256)
	buf := make([]byte, span)
	b.SetBytes(span)
	i := 0
	for b.Loop() {
		r, err := s.Open(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		off := int64(i%63)*span + 12345
		i++
		if _, err = r.Seek(off, io.SeekStart); err == nil {
			_, err = io.ReadFull(r, buf)
		}
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// readAll reads r to its end through buf with plain Reads, so what is measured
// is the store's reader and not a shortcut such as WriteTo.
func readAll(r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
