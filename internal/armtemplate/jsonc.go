package armtemplate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrJSON is wrapped by every *JSONError.
var ErrJSON = errors.New("invalid JSON")

// maxJSONDepth bounds object/array nesting in template files; ARM's own
// limit is lower, this one only protects the stack.
const maxJSONDepth = 512

// Pos is a 1-based line and column (columns count bytes) in a source file.
type Pos struct {
	Line, Col int
}

// IsValid reports whether p was set.
func (p Pos) IsValid() bool { return p.Line > 0 }

func (p Pos) String() string {
	if !p.IsValid() {
		return "-"
	}
	return fmt.Sprintf("%d:%d", p.Line, p.Col)
}

// JSONError is a located error in JSON or JSONC text.
type JSONError struct {
	Pos Pos
	Msg string
}

func (e *JSONError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
}

// Unwrap lets errors.Is(err, ErrJSON) match.
func (e *JSONError) Unwrap() error { return ErrJSON }

// Positions records where every value of a document starts, addressed by
// JSON path (see JoinKey and JoinIndex). It is a tree of nodes appended in
// document order, so building it for a 10 MB template is one append per
// value and no hashing; lookups walk the path. A nil *Positions knows
// nothing.
type Positions struct {
	nodes []posNode
}

type posNode struct {
	at          Pos
	key         string // object key; "" for array elements and the root
	first, last int32  // children, in document order; -1 when none
	next        int32  // next sibling; -1 at the end
}

func (p *Positions) add(parent int32, key string, at Pos) int32 {
	id := int32(len(p.nodes)) //nolint:gosec // bounded by the document size, far below 2^31 values
	p.nodes = append(p.nodes, posNode{at: at, key: key, first: -1, last: -1, next: -1})
	if parent >= 0 {
		par := &p.nodes[parent]
		if par.first < 0 {
			par.first = id
		} else {
			p.nodes[par.last].next = id
		}
		par.last = id
	}
	return id
}

// child finds parent's element number index (index >= 0) or, for a key,
// its last property of that name (the one that wins), matching the case
// exactly if it can and case-insensitively otherwise, as ARM reads names.
func (p *Positions) child(parent int32, index int, key string) int32 {
	found, folded := int32(-1), int32(-1)
	i := 0
	for c := p.nodes[parent].first; c >= 0; c = p.nodes[c].next {
		if index >= 0 {
			if i == index {
				return c
			}
			i++
			continue
		}
		if p.nodes[c].key == key {
			found = c
		} else if strings.EqualFold(p.nodes[c].key, key) {
			folded = c
		}
	}
	if found < 0 {
		return folded
	}
	return found
}

// Nearest returns the position of path or, when the path has no source
// (an element produced by a copy loop, a property added by evaluation), of
// its closest ancestor that has one, with that ancestor's path.
func (p *Positions) Nearest(path string) (Pos, string) {
	for {
		if at, ok := p.Lookup(path); ok {
			return at, path
		}
		if path == "" {
			return Pos{}, ""
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			path = ""
		} else {
			path = path[:cut]
		}
	}
}

// Lookup returns where the value at path starts.
func (p *Positions) Lookup(path string) (Pos, bool) {
	if p == nil || len(p.nodes) == 0 {
		return Pos{}, false
	}
	id := int32(0)
	for i := 0; i < len(path); {
		index, key := -1, ""
		switch path[i] {
		case '.':
			i++
			continue
		case '[':
			if i+1 < len(path) && path[i+1] == '\'' {
				var b strings.Builder
				j := i + 2
				for ; j < len(path); j++ {
					if path[j] == '\'' {
						if j+1 < len(path) && path[j+1] == '\'' {
							b.WriteByte('\'')
							j++
							continue
						}
						break
					}
					b.WriteByte(path[j])
				}
				if j+1 >= len(path) || path[j+1] != ']' {
					return Pos{}, false
				}
				key = b.String()
				i = j + 2
			} else {
				end := strings.IndexByte(path[i:], ']')
				if end < 0 {
					return Pos{}, false
				}
				n, err := strconv.Atoi(path[i+1 : i+end])
				if err != nil || n < 0 {
					return Pos{}, false
				}
				index = n
				i += end + 1
			}
		default:
			j := i
			for j < len(path) && path[j] != '.' && path[j] != '[' {
				j++
			}
			key = path[i:j]
			i = j
		}
		id = p.child(id, index, key)
		if id < 0 {
			return Pos{}, false
		}
	}
	return p.nodes[id].at, true
}

// Of returns where the value at path starts, or the zero Pos.
func (p *Positions) Of(path string) Pos {
	at, _ := p.Lookup(path)
	return at
}

// ReadJSONC parses JSON with the extensions ARM accepts: // and /* */
// comments, trailing commas in objects and arrays, and a leading UTF-8 BOM.
// Duplicate object keys: the last one wins. Numbers that are integers and fit
// int64 come back as int64, others as float64; objects as map[string]any,
// arrays as []any. It also returns where every value starts, keyed by path.
func ReadJSONC(data []byte) (any, *Positions, error) {
	r := &jreader{src: data, pos: 0, line: 1, lineStart: 0, locs: &Positions{nodes: make([]posNode, 0, len(data)/16+1)}}
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		r.pos = 3
		r.lineStart = 3
	}
	if err := r.space(); err != nil {
		return nil, nil, err
	}
	if r.pos >= len(r.src) {
		return nil, nil, r.errf("empty document")
	}
	v, err := r.value(r.locs.add(-1, "", r.here()), 0)
	if err != nil {
		return nil, nil, err
	}
	if err := r.space(); err != nil {
		return nil, nil, err
	}
	if r.pos < len(r.src) {
		return nil, nil, r.errf("unexpected %s after the top-level value", r.describe())
	}
	return v, r.locs, nil
}

type jreader struct {
	src       []byte
	pos       int
	line      int
	lineStart int
	locs      *Positions
}

func (r *jreader) here() Pos { return Pos{Line: r.line, Col: r.pos - r.lineStart + 1} }

func (r *jreader) errf(format string, args ...any) error {
	return &JSONError{Pos: r.here(), Msg: fmt.Sprintf(format, args...)}
}

func (r *jreader) describe() string {
	if r.pos >= len(r.src) {
		return "end of input"
	}
	c, _ := utf8.DecodeRune(r.src[r.pos:])
	return strconv.QuoteRune(c)
}

// space skips whitespace and comments.
func (r *jreader) space() error {
	for r.pos < len(r.src) {
		switch c := r.src[r.pos]; c {
		case '\n':
			r.pos++
			r.line++
			r.lineStart = r.pos
		case ' ', '\t', '\r':
			r.pos++
		case '/':
			if r.pos+1 >= len(r.src) {
				return r.errf("unexpected '/'")
			}
			switch r.src[r.pos+1] {
			case '/':
				for r.pos < len(r.src) && r.src[r.pos] != '\n' {
					r.pos++
				}
			case '*':
				start := r.here()
				r.pos += 2
				for {
					if r.pos+1 >= len(r.src) {
						return &JSONError{Pos: start, Msg: "unterminated /* comment"}
					}
					if r.src[r.pos] == '*' && r.src[r.pos+1] == '/' {
						r.pos += 2
						break
					}
					if r.src[r.pos] == '\n' {
						r.line++
						r.lineStart = r.pos + 1
					}
					r.pos++
				}
			default:
				return r.errf("unexpected '/'")
			}
		default:
			return nil
		}
	}
	return nil
}

// value reads the value whose position was recorded as id.
func (r *jreader) value(id int32, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, r.errf("nesting deeper than %d", maxJSONDepth)
	}
	if r.pos >= len(r.src) {
		return nil, r.errf("unexpected end of input, expected a value")
	}
	switch c := r.src[r.pos]; {
	case c == '{':
		return r.object(id, depth)
	case c == '[':
		return r.array(id, depth)
	case c == '"':
		return r.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return r.number()
	case r.lit("true"):
		return true, nil
	case r.lit("false"):
		return false, nil
	case r.lit("null"):
		return nil, nil
	default:
		return nil, r.errf("unexpected %s, expected a value", r.describe())
	}
}

func (r *jreader) lit(word string) bool {
	if !strings.HasPrefix(string(r.src[r.pos:min(len(r.src), r.pos+len(word))]), word) {
		return false
	}
	end := r.pos + len(word)
	if end < len(r.src) && isWordByte(r.src[end]) {
		return false
	}
	r.pos = end
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func (r *jreader) object(id int32, depth int) (any, error) {
	open := r.here()
	r.pos++
	m := map[string]any{}
	for {
		if err := r.space(); err != nil {
			return nil, err
		}
		if r.pos >= len(r.src) {
			return nil, &JSONError{Pos: open, Msg: "unterminated object"}
		}
		if r.src[r.pos] == '}' {
			r.pos++
			return m, nil
		}
		if r.src[r.pos] != '"' {
			return nil, r.errf("expected a property name in double quotes, found %s", r.describe())
		}
		key, err := r.str()
		if err != nil {
			return nil, err
		}
		if err := r.space(); err != nil {
			return nil, err
		}
		if r.pos >= len(r.src) || r.src[r.pos] != ':' {
			return nil, r.errf("expected ':' after property name %q, found %s", key, r.describe())
		}
		r.pos++
		if err := r.space(); err != nil {
			return nil, err
		}
		v, err := r.value(r.locs.add(id, key, r.here()), depth+1)
		if err != nil {
			return nil, err
		}
		m[key] = v
		if err := r.space(); err != nil {
			return nil, err
		}
		if r.pos >= len(r.src) {
			return nil, &JSONError{Pos: open, Msg: "unterminated object"}
		}
		switch r.src[r.pos] {
		case ',':
			r.pos++
		case '}':
			r.pos++
			return m, nil
		default:
			return nil, r.errf("expected ',' or '}' in object, found %s", r.describe())
		}
	}
}

func (r *jreader) array(id int32, depth int) (any, error) {
	open := r.here()
	r.pos++
	a := []any{}
	for {
		if err := r.space(); err != nil {
			return nil, err
		}
		if r.pos >= len(r.src) {
			return nil, &JSONError{Pos: open, Msg: "unterminated array"}
		}
		if r.src[r.pos] == ']' {
			r.pos++
			return a, nil
		}
		v, err := r.value(r.locs.add(id, "", r.here()), depth+1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if err := r.space(); err != nil {
			return nil, err
		}
		if r.pos >= len(r.src) {
			return nil, &JSONError{Pos: open, Msg: "unterminated array"}
		}
		switch r.src[r.pos] {
		case ',':
			r.pos++
		case ']':
			r.pos++
			return a, nil
		default:
			return nil, r.errf("expected ',' or ']' in array, found %s", r.describe())
		}
	}
}

func (r *jreader) str() (string, error) {
	open := r.here()
	r.pos++
	start := r.pos
	// Fast path: no escapes.
	for r.pos < len(r.src) {
		c := r.src[r.pos]
		if c == '"' {
			s := r.src[start:r.pos]
			r.pos++
			if !utf8.Valid(s) {
				return fixUTF8(string(s)), nil
			}
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			if c == '\n' {
				return "", &JSONError{Pos: open, Msg: "unterminated string"}
			}
			return "", r.errf("control character %#02x in string", c)
		}
		r.pos++
	}
	var b strings.Builder
	b.Write(r.src[start:r.pos])
	for {
		if r.pos >= len(r.src) {
			return "", &JSONError{Pos: open, Msg: "unterminated string"}
		}
		c := r.src[r.pos]
		switch {
		case c == '"':
			r.pos++
			return fixUTF8(b.String()), nil
		case c == '\\':
			if r.pos+1 >= len(r.src) {
				return "", &JSONError{Pos: open, Msg: "unterminated string"}
			}
			e := r.src[r.pos+1]
			r.pos += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r1, err := r.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r1) && r.pos+6 <= len(r.src) && r.src[r.pos] == '\\' && r.src[r.pos+1] == 'u' {
					save := r.pos
					r.pos += 2
					r2, err := r.hex4()
					if err == nil {
						if d := utf16.DecodeRune(r1, r2); d != utf8.RuneError {
							b.WriteRune(d)
							continue
						}
					}
					r.pos = save
				}
				b.WriteRune(r1)
			default:
				r.pos -= 2
				return "", r.errf("invalid escape '\\%c' in string", e)
			}
		case c < 0x20:
			if c == '\n' {
				return "", &JSONError{Pos: open, Msg: "unterminated string"}
			}
			return "", r.errf("control character %#02x in string", c)
		default:
			b.WriteByte(c)
			r.pos++
		}
	}
}

func (r *jreader) hex4() (rune, error) {
	if r.pos+4 > len(r.src) {
		return 0, r.errf("truncated \\u escape")
	}
	v, err := strconv.ParseUint(string(r.src[r.pos:r.pos+4]), 16, 16)
	if err != nil {
		return 0, r.errf("invalid \\u escape %q", r.src[r.pos:r.pos+4])
	}
	r.pos += 4
	return rune(v), nil
}

func (r *jreader) number() (any, error) {
	start := r.pos
	if r.src[r.pos] == '-' {
		r.pos++
	}
	digits := r.pos
	for r.pos < len(r.src) && r.src[r.pos] >= '0' && r.src[r.pos] <= '9' {
		r.pos++
	}
	if r.pos == digits {
		return nil, r.errf("invalid number: expected a digit")
	}
	isFloat := false
	if r.pos < len(r.src) && r.src[r.pos] == '.' {
		isFloat = true
		r.pos++
		d := r.pos
		for r.pos < len(r.src) && r.src[r.pos] >= '0' && r.src[r.pos] <= '9' {
			r.pos++
		}
		if r.pos == d {
			return nil, r.errf("invalid number: expected a digit after '.'")
		}
	}
	if r.pos < len(r.src) && (r.src[r.pos] == 'e' || r.src[r.pos] == 'E') {
		isFloat = true
		r.pos++
		if r.pos < len(r.src) && (r.src[r.pos] == '+' || r.src[r.pos] == '-') {
			r.pos++
		}
		d := r.pos
		for r.pos < len(r.src) && r.src[r.pos] >= '0' && r.src[r.pos] <= '9' {
			r.pos++
		}
		if r.pos == d {
			return nil, r.errf("invalid number: expected a digit in the exponent")
		}
	}
	text := string(r.src[start:r.pos])
	if !isFloat {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return i, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, &JSONError{Pos: Pos{Line: r.line, Col: start - r.lineStart + 1}, Msg: fmt.Sprintf("number %s out of range", text)}
	}
	return f, nil
}

// JoinKey appends an object key to a JSON path: a.b, or a['x y'] when the key
// is not a plain identifier.
func JoinKey(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		if !isWordByte(key[i]) && key[i] != '$' && key[i] != '-' {
			plain = false
			break
		}
	}
	if !plain {
		return path + "['" + strings.ReplaceAll(key, "'", "''") + "']"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// JoinIndex appends an array index to a JSON path: a[3].
func JoinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// fixUTF8 replaces each invalid byte with U+FFFD, as encoding/json does.
func fixUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
