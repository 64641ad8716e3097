package azblob

import (
	"crypto/sha256"
	"errors"
	"hash"
	"testing"

	azb "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/opencontainers/go-digest"

	"github.com/moat-registry/moat/internal/storage/blob"
)

func TestStateRoundTrip(t *testing.T) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		h, err := newHash(alg)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = h.Write([]byte("hello"))
		in := &state{alg: alg, offset: 5, tip: nonce{1, 2, 3, 4, 5, 6, 7, 8}, h: h}
		st, err := in.encode()
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeState(st)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if out.alg != alg || out.offset != 5 || out.tip != in.tip {
			t.Fatalf("decoded %+v, want %+v", out, in)
		}
		if got, want := digest.NewDigest(alg, out.h), alg.FromString("hello"); got != want {
			t.Fatalf("resumed hash %s, want %s", got, want)
		}
	}
}

func TestDecodeStateRejects(t *testing.T) {
	good, err := (&state{alg: digest.SHA256, offset: 0, h: sha256.New()}).encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		st   blob.UploadState
		want error
	}{
		{"negative offset", blob.UploadState{Offset: -1, Hash: good.Hash}, blob.ErrOffsetMismatch},
		{"offset differs from hash", blob.UploadState{Offset: 1, Hash: good.Hash}, blob.ErrOffsetMismatch},
		{"empty", blob.UploadState{}, errBadState},
		{"no prefix", blob.UploadState{Hash: []byte("garbage")}, errBadState},
		{"unknown algorithm", blob.UploadState{Hash: []byte("md5:xxxxxxxxxxxxxxxx")}, blob.ErrUnsupportedAlgorithm},
		{"truncated", blob.UploadState{Hash: good.Hash[:10]}, errBadState},
		{"bad hash state", blob.UploadState{Hash: append(append([]byte{}, good.Hash[:len("sha256:")+16]...), "junk"...)}, errBadState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeState(tc.st); !errors.Is(err, tc.want) {
				t.Fatalf("decodeState: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBlockIDRoundTrip(t *testing.T) {
	in := blockID{nonce: nonce{9, 8, 7, 6, 5, 4, 3, 2}, offset: 1 << 40, length: 8 << 20}
	out, err := parseBlockID(in.String())
	if err != nil || out != in {
		t.Fatalf("parseBlockID(%q) = %+v, %v; want %+v", in.String(), out, err, in)
	}
	for _, bad := range []string{"", "AAAA", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", in.String() + "AAAA", "//////////////////////////////////////////8="} {
		if _, err := parseBlockID(bad); err == nil {
			t.Errorf("parseBlockID(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	good, err := (&state{alg: digest.SHA512, offset: 0, h: mustHash(f, digest.SHA512)}).encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(int64(0), good.Hash)
	f.Add(int64(3), []byte("sha256:"))
	f.Add(int64(-1), []byte{})
	f.Fuzz(func(t *testing.T, off int64, raw []byte) {
		s, err := decodeState(blob.UploadState{Offset: off, Hash: raw})
		if err != nil {
			return
		}
		st, err := s.encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if st.Offset != off {
			t.Fatalf("offset %d became %d", off, st.Offset)
		}
	})
}

func FuzzParseBlockID(f *testing.F) {
	f.Add(blockID{offset: 3, length: 4}.String())
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseBlockID(s)
		if err != nil {
			return
		}
		if b.String() != s {
			t.Fatalf("parseBlockID(%q) does not round-trip: %q", s, b.String())
		}
	})
}

func mustHash(tb testing.TB, alg digest.Algorithm) hash.Hash {
	h, err := newHash(alg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func TestCompleteCopyStatus(t *testing.T) {
	for _, tc := range []struct {
		cs   *azb.CopyStatusType
		want bool
	}{
		{nil, true}, // not made by a copy
		{ptr(azb.CopyStatusTypeSuccess), true},
		{ptr(azb.CopyStatusTypePending), false},
		{ptr(azb.CopyStatusTypeFailed), false},
		{ptr(azb.CopyStatusTypeAborted), false},
	} {
		if got := complete(tc.cs); got != tc.want {
			t.Errorf("complete(%v) = %v, want %v", tc.cs, got, tc.want)
		}
	}
}
