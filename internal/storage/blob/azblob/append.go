package azblob

import (
	"bytes"
	"context"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
)

// chunk is one block travelling through the Append pipeline. The hasher and
// a stager both read it; the last to finish returns the buffer to the pool.
type chunk struct {
	buf  *[]byte
	n    int
	id   string
	refs atomic.Int32
}

func (s *Store) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		s.bufs.Put(c.buf)
	}
}

// stageAll reads r to its end in blocks, staging each on u's blob (up to
// s.concurrency at a time) while one goroutine hashes them in order, and
// returns the ids of the staged blocks and the bytes taken. The round trips
// dominate, so overlapping them with each other, with hashing and with
// reading the request body is where the throughput comes from.
func (s *Store) stageAll(ctx context.Context, u *upload, n nonce, off int64, h hash.Hash, r io.Reader) ([]string, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hashCh := make(chan *chunk, 2)
	stageCh := make(chan *chunk, s.concurrency)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		stageErr error
	)
	wg.Go(func() {
		for c := range hashCh {
			_, _ = h.Write((*c.buf)[:c.n]) // hash.Hash.Write never fails
			s.release(c)
		}
	})
	for range s.concurrency {
		wg.Go(func() {
			for c := range stageCh {
				if ctx.Err() == nil {
					body := streaming.NopCloser(bytes.NewReader((*c.buf)[:c.n]))
					if _, err := u.bb.StageBlock(ctx, c.id, body, nil); err != nil {
						errOnce.Do(func() { stageErr = err })
						cancel()
					}
				}
				s.release(c)
			}
		})
	}

	var (
		ids     []string
		taken   int64
		readErr error
	)
	for {
		bp := s.bufs.Get().(*[]byte)
		m, eof, err := fill(ctx, r, *bp)
		if err != nil || m == 0 {
			s.bufs.Put(bp)
			readErr = err
			break
		}
		c := &chunk{buf: bp, n: m, id: blockID{nonce: n, offset: off + taken, length: int64(m)}.String()}
		c.refs.Store(2)
		ids = append(ids, c.id)
		taken += int64(m)
		hashCh <- c
		stageCh <- c
		if eof {
			break
		}
	}
	close(hashCh)
	close(stageCh)
	wg.Wait()
	// A failed stage cancels the reading, so its error is the cause.
	if stageErr != nil {
		return nil, 0, stageErr
	}
	if readErr != nil {
		return nil, 0, readErr
	}
	return ids, taken, nil
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
