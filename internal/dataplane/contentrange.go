package dataplane

import (
	"strconv"
	"strings"
)

// parseContentRange reads the Content-Range of an upload chunk: the inclusive
// byte range "start-end" that the spec prescribes. Clients also send it in
// the RFC 9110 shape, so a "bytes " (or "bytes=") prefix and a "/total" or
// "/*" suffix are accepted and ignored. end must not be below start.
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimSpace(s)
	if rest, found := cutPrefixFold(s, "bytes"); found {
		if rest == "" || (rest[0] != ' ' && rest[0] != '=') {
			return 0, 0, false
		}
		s = strings.TrimLeft(rest[1:], " ")
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		total := s[i+1:]
		if total != "*" && !allDigits(total) {
			return 0, 0, false
		}
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found || !allDigits(a) || !allDigits(b) {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	end, err = strconv.ParseInt(b, 10, 64)
	if err != nil || end < start {
		return 0, 0, false
	}
	return start, end, true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cutPrefixFold is strings.CutPrefix with an ASCII case-insensitive prefix.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// uploadRange is the Range header value reporting an upload's progress:
// "0-<last byte received>". With nothing received it is "0-0", as CNCF
// Distribution answers and clients expect; the offset itself is exact in the
// upload's state.
func uploadRange(offset int64) string {
	end := offset - 1
	if end < 0 {
		end = 0
	}
	return "0-" + strconv.FormatInt(end, 10)
}
