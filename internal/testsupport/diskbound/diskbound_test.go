package diskbound

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// Every byte reaches the file and the hash, with and without the hint.
func TestWrite(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (17<<20)/16+3)
	for _, hint := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "f")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if err := Write(f, data, h, hint); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); !bytes.Equal(got, data) || !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Errorf("hint=%v: the file or the hash differs from the data", hint)
		}
	}
}
