package azblob

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// Reader reads a committed blob with ranged GETs issued on demand: the first
// Read after Open or a Seek streams from the position to the end, and a Seek
// elsewhere drops that stream. Every GET is conditional on the ETag seen at
// Open, so a reader never mixes two versions of a name (a blob deleted and
// pushed again reads as an error, not as spliced content).
type Reader struct {
	ctx  context.Context //nolint:containedctx // reads issued by Read belong to the request that opened the blob
	bc   *azb.Client
	name string
	size int64
	etag azcore.ETag
	pos  int64
	body io.ReadCloser
}

var _ blob.Reader = (*Reader)(nil)

// Size is the blob's length in bytes.
func (r *Reader) Size() int64 { return r.size }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.body == nil {
		resp, err := r.bc.DownloadStream(r.ctx, &azb.DownloadStreamOptions{
			Range:            azb.HTTPRange{Offset: r.pos, Count: r.size - r.pos},
			AccessConditions: ifMatch(r.etag),
		})
		if err != nil {
			return 0, notFound(err, "blob "+r.name)
		}
		r.body = resp.NewRetryReader(r.ctx, &azb.RetryReaderOptions{})
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) {
		r.closeBody()
		if r.pos < r.size {
			return n, fmt.Errorf("blob azblob: blob %s ended at %d of %d bytes: %w", r.name, r.pos, r.size, io.ErrUnexpectedEOF)
		}
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	}
	if err != nil {
		r.closeBody()
		return n, fmt.Errorf("blob azblob: read blob %s: %w", r.name, err)
	}
	return n, nil
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = r.pos + offset
	case io.SeekEnd:
		pos = r.size + offset
	default:
		return r.pos, fmt.Errorf("blob azblob: seek: invalid whence %d", whence)
	}
	if pos < 0 {
		return r.pos, fmt.Errorf("blob azblob: seek to negative offset %d", pos)
	}
	if pos != r.pos {
		r.closeBody()
		r.pos = pos
	}
	return pos, nil
}

// Close implements io.Closer.
func (r *Reader) Close() error {
	r.closeBody()
	return nil
}

func (r *Reader) closeBody() {
	if r.body != nil {
		_ = r.body.Close() // a read-only response body; dropping it mid-way is the point
		r.body = nil
	}
}
