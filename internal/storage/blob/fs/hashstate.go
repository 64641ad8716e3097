package fs

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/binary"
	"encoding/hex"
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
	if isPending(st) {
		// Resolved by openUpload before any hash is restored.
		return "", nil, fmt.Errorf("%w: unresolved pending state", errBadState)
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

// A pending state is what Append returns when the bytes it took are still
// being hashed and written in the background (see session.go):
//
//	"pending:" <algorithm> ':' <offset, 8 bytes big-endian> <token, 16 random bytes>
//
// It stands for the real state at that offset, which the background work
// stores in the upload directory (a pending- file named by the token) and
// in the state log once the bytes are on disk. The token, being random,
// cannot name another request's state, and the state log decides, as for
// any state, whether the real state still describes the data file. The
// algorithm is there for when the real state was never stored (see
// upload.recover).
const (
	pendingPrefix = "pending:"
	tokenLen      = 16
)

// newPending returns a pending state for offset of an upload hashed with alg.
func newPending(alg digest.Algorithm, offset int64) (blob.UploadState, error) {
	h := make([]byte, 0, len(pendingPrefix)+len(alg)+1+offsetLen+tokenLen)
	h = append(h, pendingPrefix...)
	h = append(h, alg...)
	h = append(h, ':')
	h = binary.BigEndian.AppendUint64(h, uint64(offset)) //nolint:gosec // offsets are never negative
	var token [tokenLen]byte
	if _, err := rand.Read(token[:]); err != nil {
		return blob.UploadState{}, fmt.Errorf("blob fs: pending state token: %w", err)
	}
	return blob.UploadState{Offset: offset, Hash: append(h, token[:]...)}, nil
}

// isPending reports whether st is a pending state (well formed or not).
func isPending(st blob.UploadState) bool {
	return bytes.HasPrefix(st.Hash, []byte(pendingPrefix))
}

// parsePending checks a pending state and returns its algorithm and its
// token in hex, the name of the file that holds the real state. A pending
// state whose Offset disagrees with its own is ErrOffsetMismatch, as for a
// real state.
func parsePending(st blob.UploadState) (digest.Algorithm, string, error) {
	if !isPending(st) {
		return "", "", fmt.Errorf("%w: not a pending state", errBadState)
	}
	rest := st.Hash[len(pendingPrefix):]
	i := bytes.IndexByte(rest[:min(len(rest), 16)], ':')
	if i <= 0 || len(rest) != i+1+offsetLen+tokenLen {
		return "", "", fmt.Errorf("%w: malformed pending state", errBadState)
	}
	alg := digest.Algorithm(rest[:i])
	if _, err := newHash(alg); err != nil {
		return "", "", err
	}
	rest = rest[i+1:]
	if off := binary.BigEndian.Uint64(rest[:offsetLen]); st.Offset < 0 || off != uint64(st.Offset) {
		return "", "", fmt.Errorf("%w: state offset %d, pending offset %d", blob.ErrOffsetMismatch, st.Offset, off)
	}
	return alg, hex.EncodeToString(rest[offsetLen:]), nil
}
