package armtemplate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moat-registry/moat/internal/armtemplate/expr"
)

// fnFormat implements format(): .NET composite formatting with {index},
// {index,alignment} and {index:format}; "{{" and "}}" are literal braces.
// Supported format strings for integers: D[n], N[n], F[n], X[n]/x[n] and
// all-zero custom patterns ("000"); anything else is an error rather than a
// silently different result.
func fnFormat(c *ectx, n *expr.Call, a []any) (any, error) {
	f, err := asString(n, a, 0)
	if err != nil {
		return nil, err
	}
	args := a[1:]
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		ch := f[i]
		switch ch {
		case '{':
			if i+1 < len(f) && f[i+1] == '{' {
				b.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%w: format string has an unclosed '{' at %d", ErrInvalidArgument, i)
			}
			item := f[i+1 : i+end]
			i += end
			spec := ""
			if k := strings.IndexByte(item, ':'); k >= 0 {
				item, spec = item[:k], item[k+1:]
			}
			align := 0
			if k := strings.IndexByte(item, ','); k >= 0 {
				al, err := strconv.Atoi(strings.TrimSpace(item[k+1:]))
				if err != nil || al > 1000 || al < -1000 {
					return nil, fmt.Errorf("%w: bad alignment in format item {%s}", ErrInvalidArgument, item)
				}
				item, align = item[:k], al
			}
			idx, err := strconv.Atoi(strings.TrimSpace(item))
			if err != nil || idx < 0 {
				return nil, fmt.Errorf("%w: bad format item {%s}", ErrInvalidArgument, item)
			}
			if idx >= len(args) {
				return nil, fmt.Errorf("%w: format item {%d} but only %d argument(s)", ErrInvalidArgument, idx, len(args))
			}
			s, err := formatValue(args[idx], spec)
			if err != nil {
				return nil, err
			}
			if pad := abs(align) - len(s); pad > 0 {
				if align > 0 {
					s = strings.Repeat(" ", pad) + s
				} else {
					s += strings.Repeat(" ", pad)
				}
			}
			b.WriteString(s)
			if b.Len() > c.ev.opts.MaxStringLength {
				return nil, fmt.Errorf("%w: string longer than %d bytes", ErrLimit, c.ev.opts.MaxStringLength)
			}
		case '}':
			if i+1 < len(f) && f[i+1] == '}' {
				i++
			} else {
				return nil, fmt.Errorf("%w: format string has an unmatched '}' at %d", ErrInvalidArgument, i)
			}
			b.WriteByte('}')
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

func formatValue(v any, spec string) (string, error) {
	if spec == "" {
		return scalarText(v)
	}
	var i int64
	switch t := v.(type) {
	case int64:
		i = t
	case float64:
		if spec[0] == 'F' || spec[0] == 'f' || spec[0] == 'N' || spec[0] == 'n' {
			return formatFloat(t, spec)
		}
		i = int64(t)
	default:
		// .NET ignores numeric format strings for non-numbers.
		return scalarText(v)
	}
	digits := -1
	if len(spec) > 1 {
		d, err := strconv.Atoi(spec[1:])
		if err == nil && d >= 0 && d <= 99 {
			digits = d
		}
	}
	switch spec[0] {
	case 'D', 'd':
		s := strconv.FormatInt(absInt(i), 10)
		if digits > len(s) {
			s = strings.Repeat("0", digits-len(s)) + s
		}
		if i < 0 {
			s = "-" + s
		}
		return s, nil
	case 'X', 'x':
		s := strconv.FormatUint(uint64(i), 16) //nolint:gosec // .NET formats negative numbers as two's complement too
		if spec[0] == 'X' {
			s = strings.ToUpper(s)
		}
		if digits > len(s) {
			s = strings.Repeat("0", digits-len(s)) + s
		}
		return s, nil
	case 'N', 'n', 'F', 'f':
		return formatFloat(float64(i), spec)
	}
	if strings.Trim(spec, "0") == "" {
		s := strconv.FormatInt(absInt(i), 10)
		if len(spec) > len(s) {
			s = strings.Repeat("0", len(spec)-len(s)) + s
		}
		if i < 0 {
			s = "-" + s
		}
		return s, nil
	}
	return "", fmt.Errorf("%w: format specifier %q is not supported", ErrInvalidArgument, spec)
}

func absInt(i int64) int64 {
	if i < 0 {
		return -i
	}
	return i
}

func formatFloat(f float64, spec string) (string, error) {
	digits := 2
	if len(spec) > 1 {
		d, err := strconv.Atoi(spec[1:])
		if err != nil || d < 0 || d > 99 {
			return "", fmt.Errorf("%w: format specifier %q is not supported", ErrInvalidArgument, spec)
		}
		digits = d
	}
	s := strconv.FormatFloat(f, 'f', digits, 64)
	if spec[0] != 'N' && spec[0] != 'n' {
		return s, nil
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac := s, ""
	if k := strings.IndexByte(s, '.'); k >= 0 {
		intPart, frac = s[:k], s[k:]
	}
	var b strings.Builder
	for i, ch := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	out := b.String() + frac
	if neg {
		out = "-" + out
	}
	return out, nil
}

// formatDotNetTime renders t with the .NET custom date format tokens ARM
// templates use with utcNow(): yyyy, yy, MM, dd, HH, hh, mm, ss, fff, T, Z
// and the standard formats "u", "d", "o"/"O".
func formatDotNetTime(t time.Time, f string) (string, error) {
	switch f {
	case "u":
		return t.Format("2006-01-02 15:04:05Z"), nil
	case "d":
		return t.Format("1/2/2006"), nil
	case "o", "O":
		return t.Format("2006-01-02T15:04:05.0000000Z"), nil
	}
	repl := []struct{ tok, layout string }{
		{"yyyy", "2006"}, {"yy", "06"}, {"MM", "01"}, {"dd", "02"}, {"HH", "15"},
		{"hh", "03"}, {"mm", "04"}, {"ss", "05"}, {"fff", "000"},
	}
	var b strings.Builder
outer:
	for i := 0; i < len(f); {
		for _, r := range repl {
			if strings.HasPrefix(f[i:], r.tok) {
				b.WriteString(t.Format(r.layout))
				i += len(r.tok)
				continue outer
			}
		}
		b.WriteByte(f[i])
		i++
	}
	return b.String(), nil
}

// UniqueString computes ARM's uniqueString(): the inputs joined by "-",
// hashed with the 64-bit MurmurHash variant ARM uses (two 32-bit lanes,
// MurmurHash3-style mixing with ARM's constants), and the top 65 bits written
// as 13 characters of lower-case base32 (a-z, 2-7), most significant first.
func UniqueString(parts ...string) string {
	h := murmur64([]byte(strings.Join(parts, "-")))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var out [13]byte
	for i := range out {
		out[i] = alphabet[h>>59]
		h <<= 5
	}
	return string(out[:])
}

func rotl(x uint32, r uint) uint32 { return x<<r | x>>(32-r) }

func fmix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func le32(b []byte) uint32 {
	var v uint32
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint32(b[i])
	}
	return v
}

func murmur64(data []byte) uint64 {
	const (
		c1 = 0x239b961b
		c2 = 0xab0e9789
	)
	var h1, h2 uint32
	i := 0
	for ; i+8 <= len(data); i += 8 {
		k1 := le32(data[i : i+4])
		k2 := le32(data[i+4 : i+8])
		k1 *= c1
		k1 = rotl(k1, 15)
		k1 *= c2
		h1 ^= k1
		h1 = rotl(h1, 19)
		h1 += h2
		h1 = h1*5 + 0x561ccd1b
		k2 *= c2
		k2 = rotl(k2, 17)
		k2 *= c1
		h2 ^= k2
		h2 = rotl(h2, 13)
		h2 += h1
		h2 = h2*5 + 0x0bcaa747
	}
	if tail := data[i:]; len(tail) > 0 {
		k1 := le32(tail[:min(4, len(tail))])
		k1 *= c1
		k1 = rotl(k1, 15)
		k1 *= c2
		h1 ^= k1
		if len(tail) > 4 {
			k2 := le32(tail[4:])
			k2 *= c2
			k2 = rotl(k2, 17)
			k2 *= c1
			h2 ^= k2
		}
	}
	n := uint32(len(data)) //nolint:gosec // the length is folded into the hash modulo 2^32 by design
	h1 ^= n
	h2 ^= n
	h1 += h2
	h2 += h1
	h1 = fmix(h1)
	h2 = fmix(h2)
	h1 += h2
	h2 += h1
	return uint64(h2)<<32 | uint64(h1)
}
