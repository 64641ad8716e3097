package fs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// errBadState reports an UploadState.Hash that cannot be decoded. It is a
// caller error (the state was not produced by this store, or was corrupted
// while persisted), so it is not one of blob's sentinel errors.
var errBadState = errors.New("blob fs: malformed upload hash state")

// The persisted hash state is
//
//	<algorithm> ':' <offset, 8 bytes big-endian> <hash.MarshalBinary()>
//
// The algorithm makes the state self-describing, so Commit knows whether the
// running sum can be compared with the wanted digest. The offset is the number
// of bytes the hash has consumed; Append and Commit refuse a state whose Offset
// disagrees with it, because committing a file prefix of one length with the
// sum of another would make a blob visible under a digest it does not have.
const offsetLen = 8

// newHash returns a fresh hash for alg, or ErrUnsupportedAlgorithm.
func newHash(alg digest.Algorithm) (hash.Hash, error) {
	switch alg {
	case digest.SHA256:
		return sha256.New(), nil
	case digest.SHA512:
		return sha512.New(), nil
	default:
		return nil, fmt.Errorf("%w: %q", blob.ErrUnsupportedAlgorithm, string(alg))
	}
}

// encodeState marshals h (of algorithm alg, having consumed offset bytes).
func encodeState(alg digest.Algorithm, offset int64, h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryAppender)
	if !ok {
		return nil, fmt.Errorf("blob fs: %s hash state cannot be saved", alg)
	}
	out := make([]byte, 0, len(alg)+1+offsetLen+256)
	out = append(out, alg...)
	out = append(out, ':')
	out = binary.BigEndian.AppendUint64(out, uint64(offset)) //nolint:gosec // offset is never negative here (checked by callers)
	out, err := m.AppendBinary(out)
	if err != nil {
		return nil, fmt.Errorf("blob fs: save %s hash state: %w", alg, err)
	}
	return out, nil
}

// decodeState restores the running hash from st. It fails with
// ErrOffsetMismatch when st.Offset is not the number of bytes the hash state
// has consumed, and with errBadState or ErrUnsupportedAlgorithm when the state
// cannot be used at all.
func decodeState(st blob.UploadState) (digest.Algorithm, hash.Hash, error) {
	if st.Offset < 0 {
		return "", nil, fmt.Errorf("%w: negative offset %d", blob.ErrOffsetMismatch, st.Offset)
	}
	// Algorithm names are short; bounding the search keeps a garbage state
	// from being scanned in full.
	i := bytes.IndexByte(st.Hash[:min(len(st.Hash), 16)], ':')
	if i <= 0 {
		return "", nil, fmt.Errorf("%w: no algorithm prefix", errBadState)
	}
	alg := digest.Algorithm(st.Hash[:i])
	h, err := newHash(alg)
	if err != nil {
		return "", nil, err
	}
	rest := st.Hash[i+1:]
	if len(rest) < offsetLen {
		return "", nil, fmt.Errorf("%w: truncated", errBadState)
	}
	hashed := binary.BigEndian.Uint64(rest[:offsetLen])
	if hashed != uint64(st.Offset) {
		return "", nil, fmt.Errorf("%w: state offset %d, hash consumed %d bytes", blob.ErrOffsetMismatch, st.Offset, hashed)
	}
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return "", nil, fmt.Errorf("blob fs: %s hash state cannot be restored", alg)
	}
	if err := u.UnmarshalBinary(rest[offsetLen:]); err != nil {
		return "", nil, fmt.Errorf("%w: %s: %w", errBadState, alg, err)
	}
	return alg, h, nil
}
