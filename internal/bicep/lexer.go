package bicep

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is a token kind.
type Kind int

// Token kinds. String tokens come in four shapes so interpolation can be
// lexed without a second pass: 'abc' is StringComplete; 'a${x}b${y}c' is
// StringLeft("a"), x, StringMiddle("b"), y, StringRight("c").
const (
	EOF Kind = iota
	Newline
	IdentTok
	IntTok
	StringComplete
	StringLeft
	StringMiddle
	StringRight
	MultilineString
	At          // @
	Comma       // ,
	Colon       // :
	DoubleColon // ::
	Dot         // .
	SafeDot     // .?
	Question    // ?
	Coalesce    // ??
	LParen      // (
	RParen      // )
	LBrack      // [
	RBrack      // ]
	LBrace      // {
	RBrace      // }
	Assign      // =
	Arrow       // =>
	Not         // !
	Minus       // -
	Plus        // +
	Star        // *
	Slash       // /
	Percent     // %
	Less        // <
	LessEq      // <=
	Greater     // >
	GreaterEq   // >=
	Eq          // ==
	NotEq       // !=
	EqI         // =~
	NotEqI      // !~
	And         // &&
	Or          // ||
	Pipe        // |
	Ellipsis    // ...
)

var kindNames = [...]string{
	EOF: "end of file", Newline: "newline", IdentTok: "identifier", IntTok: "integer",
	StringComplete: "string", StringLeft: "string", StringMiddle: "string", StringRight: "string",
	MultilineString: "multi-line string", At: "'@'", Comma: "','", Colon: "':'", DoubleColon: "'::'",
	Dot: "'.'", SafeDot: "'.?'", Question: "'?'", Coalesce: "'??'", LParen: "'('", RParen: "')'",
	LBrack: "'['", RBrack: "']'", LBrace: "'{'", RBrace: "'}'", Assign: "'='", Arrow: "'=>'",
	Not: "'!'", Minus: "'-'", Plus: "'+'", Star: "'*'", Slash: "'/'", Percent: "'%'",
	Less: "'<'", LessEq: "'<='", Greater: "'>'", GreaterEq: "'>='", Eq: "'=='", NotEq: "'!='",
	EqI: "'=~'", NotEqI: "'!~'", And: "'&&'", Or: "'||'", Pipe: "'|'", Ellipsis: "'...'",
}

func (k Kind) String() string {
	if int(k) >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "token " + strconv.Itoa(int(k))
}

// Pos is a 1-based line and column (in bytes) in a file.
type Pos struct {
	Line, Col int
}

// Token is one lexed token. Text is the identifier, the integer's digits or
// the decoded string piece.
type Token struct {
	Kind Kind
	Text string
	Pos  Pos
}

// Error is a located syntax or lowering error.
type Error struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// MaxTokens bounds the tokens of one file so a hostile input cannot make the
// lexer allocate without limit (a 10 MiB file has far fewer).
const MaxTokens = 10_000_000

type lexer struct {
	file      string
	src       string
	off       int
	line, col int
	toks      []Token
	// interp holds, for each string interpolation being lexed, how many
	// '{' are open inside it; a '}' at zero resumes the string.
	interp []int
}

// Lex splits src into tokens. Newlines are tokens, as Bicep is
// line-oriented; comments and other white space are dropped.
func Lex(src []byte, file string) ([]Token, error) {
	lx := &lexer{file: file, src: string(src), line: 1, col: 1}
	// Typical Bicep has a token every five or so bytes; sizing up front
	// avoids most of the copying of a growing slice.
	lx.toks = make([]Token, 0, min(len(src)/5+16, MaxTokens))
	if strings.HasPrefix(lx.src, "\uFEFF") {
		lx.off = 3
	}
	if err := lx.run(); err != nil {
		return nil, err
	}
	return lx.toks, nil
}

func (lx *lexer) errf(p Pos, format string, args ...any) error {
	return &Error{File: lx.file, Pos: p, Msg: fmt.Sprintf(format, args...)}
}

func (lx *lexer) pos() Pos { return Pos{lx.line, lx.col} }

// adv moves over n bytes that contain no newline.
func (lx *lexer) adv(n int) {
	lx.off += n
	lx.col += n
}

func (lx *lexer) newline() {
	lx.off++
	lx.line++
	lx.col = 1
}

func (lx *lexer) emit(k Kind, text string, p Pos) error {
	if len(lx.toks) >= MaxTokens {
		return lx.errf(p, "too many tokens (more than %d)", MaxTokens)
	}
	lx.toks = append(lx.toks, Token{Kind: k, Text: text, Pos: p})
	return nil
}

// opAt returns the operator or punctuation token at the start of s and its
// length, or 0 when there is none.
func opAt(s string) (Kind, int) {
	var n byte
	if len(s) > 1 {
		n = s[1]
	}
	switch s[0] {
	case '@':
		return At, 1
	case ',':
		return Comma, 1
	case ':':
		if n == ':' {
			return DoubleColon, 2
		}
		return Colon, 1
	case '.':
		if strings.HasPrefix(s, "...") {
			return Ellipsis, 3
		}
		if n == '?' {
			return SafeDot, 2
		}
		return Dot, 1
	case '?':
		if n == '?' {
			return Coalesce, 2
		}
		return Question, 1
	case '(':
		return LParen, 1
	case ')':
		return RParen, 1
	case '[':
		return LBrack, 1
	case ']':
		return RBrack, 1
	case '=':
		switch n {
		case '>':
			return Arrow, 2
		case '=':
			return Eq, 2
		case '~':
			return EqI, 2
		}
		return Assign, 1
	case '!':
		switch n {
		case '=':
			return NotEq, 2
		case '~':
			return NotEqI, 2
		}
		return Not, 1
	case '-':
		return Minus, 1
	case '+':
		return Plus, 1
	case '*':
		return Star, 1
	case '/':
		return Slash, 1
	case '%':
		return Percent, 1
	case '<':
		if n == '=' {
			return LessEq, 2
		}
		return Less, 1
	case '>':
		if n == '=' {
			return GreaterEq, 2
		}
		return Greater, 1
	case '&':
		if n == '&' {
			return And, 2
		}
	case '|':
		if n == '|' {
			return Or, 2
		}
		return Pipe, 1
	}
	return 0, 0
}

func (lx *lexer) run() error {
	for lx.off < len(lx.src) {
		c := lx.src[lx.off]
		p := lx.pos()
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			lx.adv(1)
		case c == '\n':
			if err := lx.emit(Newline, "", p); err != nil {
				return err
			}
			lx.newline()
		case strings.HasPrefix(lx.src[lx.off:], "//"):
			for lx.off < len(lx.src) && lx.src[lx.off] != '\n' {
				lx.adv(1)
			}
		case strings.HasPrefix(lx.src[lx.off:], "/*"):
			lx.adv(2)
			for {
				if lx.off >= len(lx.src) {
					return lx.errf(p, "unterminated /* comment")
				}
				if strings.HasPrefix(lx.src[lx.off:], "*/") {
					lx.adv(2)
					break
				}
				if lx.src[lx.off] == '\n' {
					lx.newline()
				} else {
					lx.adv(1)
				}
			}
		case isIdentStart(c):
			start := lx.off
			for lx.off < len(lx.src) && isIdentPart(lx.src[lx.off]) {
				lx.adv(1)
			}
			if err := lx.emit(IdentTok, lx.src[start:lx.off], p); err != nil {
				return err
			}
		case c >= '0' && c <= '9':
			start := lx.off
			for lx.off < len(lx.src) && lx.src[lx.off] >= '0' && lx.src[lx.off] <= '9' {
				lx.adv(1)
			}
			if lx.off < len(lx.src) && (lx.src[lx.off] == '.' && lx.off+1 < len(lx.src) && lx.src[lx.off+1] >= '0' && lx.src[lx.off+1] <= '9') {
				return lx.errf(p, "decimal numbers are not supported in Bicep")
			}
			if err := lx.emit(IntTok, lx.src[start:lx.off], p); err != nil {
				return err
			}
		case strings.HasPrefix(lx.src[lx.off:], "'''"):
			if err := lx.multiline(p); err != nil {
				return err
			}
		case c == '\'':
			lx.adv(1)
			if err := lx.str(p, true); err != nil {
				return err
			}
		case c == '{':
			if n := len(lx.interp); n > 0 {
				lx.interp[n-1]++
			}
			lx.adv(1)
			if err := lx.emit(LBrace, "", p); err != nil {
				return err
			}
		case c == '}':
			lx.adv(1)
			if n := len(lx.interp); n > 0 {
				if lx.interp[n-1] == 0 {
					lx.interp = lx.interp[:n-1]
					if err := lx.str(p, false); err != nil {
						return err
					}
					continue
				}
				lx.interp[n-1]--
			}
			if err := lx.emit(RBrace, "", p); err != nil {
				return err
			}
		default:
			k, n := opAt(lx.src[lx.off:])
			if n == 0 {
				r, _ := utf8.DecodeRuneInString(lx.src[lx.off:])
				return lx.errf(p, "unexpected character %q", r)
			}
			lx.adv(n)
			if err := lx.emit(k, "", p); err != nil {
				return err
			}
		}
	}
	if len(lx.interp) > 0 {
		return lx.errf(lx.pos(), "unterminated string interpolation: missing '}'")
	}
	return lx.emit(EOF, "", lx.pos())
}

// str lexes a string piece up to its closing quote or the next "${". first
// tells whether the piece opened the string (after ') or resumes it after
// an interpolation's closing '}'.
func (lx *lexer) str(start Pos, first bool) error {
	// Fast path: most strings have no escapes or interpolation.
	if i := strings.IndexAny(lx.src[lx.off:], "'\\$\n"); i >= 0 && lx.src[lx.off+i] == '\'' {
		text := lx.src[lx.off : lx.off+i]
		lx.adv(i + 1)
		k := StringComplete
		if !first {
			k = StringRight
		}
		return lx.emit(k, text, start)
	}
	var b strings.Builder
	for {
		if lx.off >= len(lx.src) || lx.src[lx.off] == '\n' {
			return lx.errf(start, "unterminated string")
		}
		c := lx.src[lx.off]
		switch {
		case c == '\'':
			lx.adv(1)
			k := StringComplete
			if !first {
				k = StringRight
			}
			return lx.emit(k, b.String(), start)
		case c == '$' && lx.off+1 < len(lx.src) && lx.src[lx.off+1] == '{':
			lx.adv(2)
			k := StringLeft
			if !first {
				k = StringMiddle
			}
			lx.interp = append(lx.interp, 0)
			if len(lx.interp) > maxDepth {
				return lx.errf(start, "string interpolation nested more than %d deep", maxDepth)
			}
			return lx.emit(k, b.String(), start)
		case c == '\\':
			ep := lx.pos()
			if lx.off+1 >= len(lx.src) {
				return lx.errf(start, "unterminated string")
			}
			e := lx.src[lx.off+1]
			lx.adv(2)
			switch e {
			case '\\':
				b.WriteByte('\\')
			case '\'':
				b.WriteByte('\'')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '$':
				b.WriteByte('$')
			case 'u':
				end := strings.IndexByte(lx.src[lx.off:], '}')
				if !strings.HasPrefix(lx.src[lx.off:], "{") || end < 2 || end > 7 {
					return lx.errf(ep, `bad \u escape: want \u{hex}`)
				}
				v, err := strconv.ParseUint(lx.src[lx.off+1:lx.off+end], 16, 32)
				if err != nil || v > utf8.MaxRune {
					return lx.errf(ep, `bad \u escape: want \u{hex}`)
				}
				b.WriteRune(rune(v))
				lx.adv(end + 1)
			default:
				return lx.errf(ep, "unknown escape sequence \\%c", e)
			}
		default:
			lx.adv(1)
			b.WriteByte(c)
		}
	}
}

// multiline lexes ”'...”': no escapes and no interpolation; a newline
// right after the opening quotes is not part of the value.
func (lx *lexer) multiline(start Pos) error {
	lx.adv(3)
	if strings.HasPrefix(lx.src[lx.off:], "\r\n") {
		lx.adv(1)
		lx.newline()
	} else if strings.HasPrefix(lx.src[lx.off:], "\n") {
		lx.newline()
	}
	begin := lx.off
	for {
		if lx.off >= len(lx.src) {
			return lx.errf(start, "unterminated multi-line string")
		}
		if strings.HasPrefix(lx.src[lx.off:], "'''") {
			// Extra quotes before the closing ''' belong to the value.
			for strings.HasPrefix(lx.src[lx.off+1:], "'''") {
				lx.adv(1)
			}
			text := lx.src[begin:lx.off]
			lx.adv(3)
			return lx.emit(MultilineString, text, start)
		}
		if lx.src[lx.off] == '\n' {
			lx.newline()
		} else {
			lx.adv(1)
		}
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }
