package dataplane

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-0", 0, 0, true},
		{"0-1023", 0, 1023, true},
		{"1024-2047", 1024, 2047, true},
		{"bytes 0-99", 0, 99, true},
		{"bytes=5-9", 5, 9, true},
		{"Bytes 5-9", 5, 9, true},
		{"bytes 0-99/100", 0, 99, true},
		{"bytes 0-99/*", 0, 99, true},
		{" 3-4 ", 3, 4, true},
		{"", 0, 0, false},
		{"-", 0, 0, false},
		{"5-", 0, 0, false},
		{"-5", 0, 0, false},
		{"5-4", 0, 0, false},
		{"a-b", 0, 0, false},
		{"+1-2", 0, 0, false},
		{"1--2", 0, 0, false},
		{"bytes", 0, 0, false},
		{"bytesx 0-1", 0, 0, false},
		{"bytes */100", 0, 0, false},
		{"0-1/x", 0, 0, false},
		{"0-99999999999999999999", 0, 0, false},
		{"0x1-2", 0, 0, false},
	}
	for _, tt := range tests {
		start, end, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && (start != tt.start || end != tt.end)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, start, end, ok, tt.start, tt.end, tt.ok)
		}
	}
}

func TestUploadRange(t *testing.T) {
	for offset, want := range map[int64]string{0: "0-0", 1: "0-0", 2: "0-1", 1024: "0-1023"} {
		if got := uploadRange(offset); got != want {
			t.Errorf("uploadRange(%d) = %q, want %q", offset, got, want)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "bytes 1-2/3", "bytes=4-5", "9-8", "", "-", "bytes */1", "1-2/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || end < start {
			t.Fatalf("parseContentRange(%q) = %d-%d", s, start, end)
		}
		// The canonical form of what was accepted parses to the same range.
		canon := strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10)
		if s2, e2, ok2 := parseContentRange(canon); !ok2 || s2 != start || e2 != end {
			t.Fatalf("parseContentRange(%q) = %d-%d, but %q parses to %d-%d (%v)", s, start, end, canon, s2, e2, ok2)
		}
	})
}

func TestExactReader(t *testing.T) {
	tests := []struct {
		body    string
		n       int64
		wantErr error
	}{
		{"hello", 5, nil},
		{"hell", 5, errBodyTooShort},
		{"hello!", 5, errBodyTooLong},
		{"", 0, nil},
		{"x", 0, errBodyTooLong},
	}
	for _, tt := range tests {
		got, err := io.ReadAll(&exactReader{r: strings.NewReader(tt.body), n: tt.n})
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("exactReader(%q, %d): err %v, want %v", tt.body, tt.n, err, tt.wantErr)
		}
		if tt.wantErr == nil && string(got) != tt.body {
			t.Errorf("exactReader(%q, %d) read %q", tt.body, tt.n, got)
		}
	}
}

func TestOnlyZeroSuffixRanges(t *testing.T) {
	for h, want := range map[string]bool{
		"bytes=-0": true, "bytes=-000": true, "bytes=-0, -0": true, "bytes=- 0": true, "bytes= -\t0 ": true, "bytes=,-0": true, "bytes=,": false,
		"bytes=-1": false, "bytes=0-0": false, "bytes=-0,0-1": false, "bytes=-": false,
		"items=-0": false, "": false, "bytes=": false,
	} {
		if got := onlyZeroSuffixRanges(h); got != want {
			t.Errorf("onlyZeroSuffixRanges(%q) = %v, want %v", h, got, want)
		}
	}
}
