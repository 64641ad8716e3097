package azblob

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

// errBadState reports an UploadState.Hash that cannot be decoded: the state
// was not produced by this store or was damaged while persisted.
var errBadState = errors.New("blob azblob: malformed upload hash state")

// The persisted hash state is
//
//	<algorithm> ':' <offset, 8 bytes BE> <tip, 8 bytes> <hash.MarshalBinary()>
//
// The algorithm makes it self-describing, so Commit knows whether the running
// sum can be compared with the wanted digest. The offset is what the hash has
// consumed: a state whose Offset disagrees is refused. The tip is the nonce of
// the Append that produced the state (zero for the initial state); the block
// ending at Offset in the upload's committed block list must carry it, which
// is how a state overtaken by a later Append is recognised (see upload.go).
const (
	offsetLen = 8
	nonceLen  = 8
)

type nonce [nonceLen]byte

// state is a decoded UploadState.
type state struct {
	alg    digest.Algorithm
	offset int64
	tip    nonce
	h      hash.Hash
}

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

// encode returns the UploadState for s.
func (s *state) encode() (blob.UploadState, error) {
	m, ok := s.h.(encoding.BinaryAppender)
	if !ok {
		return blob.UploadState{}, fmt.Errorf("blob azblob: %s hash state cannot be saved", s.alg)
	}
	out := make([]byte, 0, len(s.alg)+1+offsetLen+nonceLen+256)
	out = append(out, s.alg...)
	out = append(out, ':')
	out = binary.BigEndian.AppendUint64(out, uint64(s.offset)) //nolint:gosec // offsets are never negative (decodeState checks)
	out = append(out, s.tip[:]...)
	out, err := m.AppendBinary(out)
	if err != nil {
		return blob.UploadState{}, fmt.Errorf("blob azblob: save %s hash state: %w", s.alg, err)
	}
	return blob.UploadState{Offset: s.offset, Hash: out}, nil
}

// decodeState restores st. It fails with ErrOffsetMismatch when st.Offset is
// not what the hash consumed, and with errBadState or ErrUnsupportedAlgorithm
// when the state cannot be used at all.
func decodeState(st blob.UploadState) (*state, error) {
	if st.Offset < 0 {
		return nil, fmt.Errorf("%w: negative offset %d", blob.ErrOffsetMismatch, st.Offset)
	}
	// Algorithm names are short; bounding the search keeps a garbage state
	// from being scanned in full.
	i := bytes.IndexByte(st.Hash[:min(len(st.Hash), 16)], ':')
	if i <= 0 {
		return nil, fmt.Errorf("%w: no algorithm prefix", errBadState)
	}
	s := &state{alg: digest.Algorithm(st.Hash[:i])}
	h, err := newHash(s.alg)
	if err != nil {
		return nil, err
	}
	rest := st.Hash[i+1:]
	if len(rest) < offsetLen+nonceLen {
		return nil, fmt.Errorf("%w: truncated", errBadState)
	}
	if hashed := binary.BigEndian.Uint64(rest); hashed != uint64(st.Offset) {
		return nil, fmt.Errorf("%w: state offset %d, hash consumed %d bytes", blob.ErrOffsetMismatch, st.Offset, hashed)
	}
	s.offset = st.Offset
	copy(s.tip[:], rest[offsetLen:])
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, fmt.Errorf("blob azblob: %s hash state cannot be restored", s.alg)
	}
	if err := u.UnmarshalBinary(rest[offsetLen+nonceLen:]); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBadState, s.alg, err)
	}
	s.h = h
	return s, nil
}

// A block id names the Append that staged the block (its nonce) and the
// block's place in the upload:
//
//	<nonce, 8 bytes> <offset, 8 bytes BE> <length, 8 bytes BE>
//
// base64-encoded (Azure wants base64 ids of one length per blob). The nonce is
// random per Append, so two Appends racing from one state never overwrite
// each other's blocks, and a committed block list tells which Append wrote
// which bytes.
const blockIDLen = nonceLen + 16

type blockID struct {
	nonce  nonce
	offset int64
	length int64
}

func (b blockID) String() string {
	var raw [blockIDLen]byte
	copy(raw[:], b.nonce[:])
	binary.BigEndian.PutUint64(raw[nonceLen:], uint64(b.offset))   //nolint:gosec // never negative
	binary.BigEndian.PutUint64(raw[nonceLen+8:], uint64(b.length)) //nolint:gosec // never negative
	return base64.StdEncoding.EncodeToString(raw[:])
}

func parseBlockID(s string) (blockID, error) {
	var raw [blockIDLen]byte
	if len(s) != base64.StdEncoding.EncodedLen(blockIDLen) {
		return blockID{}, fmt.Errorf("blob azblob: foreign block id %q in upload", s)
	}
	n, err := base64.StdEncoding.Decode(raw[:], []byte(s))
	if err != nil || n != blockIDLen {
		return blockID{}, fmt.Errorf("blob azblob: foreign block id %q in upload", s)
	}
	var b blockID
	copy(b.nonce[:], raw[:nonceLen])
	off, length := binary.BigEndian.Uint64(raw[nonceLen:]), binary.BigEndian.Uint64(raw[nonceLen+8:])
	if off > 1<<62 || length > 1<<62 {
		return blockID{}, fmt.Errorf("blob azblob: block id %q out of range", s)
	}
	b.offset, b.length = int64(off), int64(length)
	return b, nil
}
