package fs

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// Full chunks at aligned offsets go through the O_DIRECT descriptor, the
// short last chunk and anything at an odd offset through the page cache,
// and either way the file and the hash hold exactly the body.
func TestAppendWritesAlignedChunksDirect(t *testing.T) {
	body := make([]byte, 3*chunkSize+100)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		start      int64 // bytes already in the file
		wantDirect int64
	}{
		{"aligned", 0, 3 * chunkSize},
		{"resumed at an aligned offset", 2 * directAlign, 3 * chunkSize},
		{"resumed at an odd offset", 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), dataName)
			prefix := bytes.Repeat([]byte{'p'}, int(tc.start))
			if err := os.WriteFile(path, prefix, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			w := &fileWriter{f: f, path: path, off: tc.start, flushed: tc.start}
			h := sha256.New()
			n, err := pipeCopy(t.Context(), w, h, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(body)) {
				t.Fatalf("copied %d bytes, want %d", n, len(body))
			}
			if w.directBytes != tc.wantDirect {
				t.Errorf("%d bytes written direct, want %d", w.directBytes, tc.wantDirect)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(prefix, body...)) {
				t.Error("the file does not hold the prefix and the body")
			}
			if sum := sha256.Sum256(body); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Error("the hash is not the body's")
			}
		})
	}
}
