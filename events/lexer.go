package events

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// The decoder reads JSON with its own small lexer instead of a general
// library: it visits each byte once, allocates nothing for well-formed
// messages, and keeps the raw properties span so that Event.Properties is a
// copy rather than a re-encoding. decode_bench_test.go has the measurements
// that led to this choice.

// kind is the JSON type of a value as the lexer saw it.
type kind uint8

const (
	kindAbsent kind = iota
	kindNull
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// String names the kind as an error detail shows it.
func (k kind) String() string {
	switch k {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	}
	return "nothing"
}

// maxDepth is the deepest nesting of objects and arrays a message may have.
const maxDepth = 64

// val is one field value as parsed: its kind and, for strings and numbers,
// its bytes (unescaped string contents, or the number literal). The bytes
// alias the message unless the string held escapes.
type val struct {
	kind kind
	dup  bool // the key appeared more than once in its object
	b    []byte
}

// lexer walks one JSON message. Methods report failure by returning false
// after recording the first syntax error in err.
type lexer struct {
	data []byte
	pos  int
	// ws counts whitespace bytes skipped between tokens; a span whose count
	// did not change is already compact.
	ws int
	// inProps is set while the lexer is inside properties, where every
	// object key is checked for being an email.
	inProps bool
	// sawEmail is set when a key named email (any case) was seen in
	// properties.
	sawEmail bool
	err      *Error
}

// fail records a syntax error at the current offset and returns false.
func (l *lexer) fail(format string, args ...any) bool {
	if l.err == nil {
		l.err = &Error{
			Reason: ReasonInvalidJSON,
			Detail: fmt.Sprintf("offset %d: ", l.pos) + fmt.Sprintf(format, args...),
		}
	}
	return false
}

// failAt describes what the lexer found where it expected something else.
func (l *lexer) failAt(expected string) bool {
	if l.pos >= len(l.data) {
		return l.fail("unexpected end of message, expected %s", expected)
	}
	return l.fail("unexpected %q, expected %s", l.data[l.pos], expected)
}

func (l *lexer) skipWS() {
	for l.pos < len(l.data) {
		switch l.data[l.pos] {
		case ' ', '\t', '\n', '\r':
			l.pos++
			l.ws++
		default:
			return
		}
	}
}

// peek returns the byte at the current position, or 0 at the end.
func (l *lexer) peek() byte {
	if l.pos < len(l.data) {
		return l.data[l.pos]
	}
	return 0
}

// members walks the object that starts at the current position, calling
// each with every key; each must consume the value that follows the colon.
// depth is the nesting depth of the object itself.
func (l *lexer) members(depth int, each func(key []byte) bool) bool {
	if depth > maxDepth {
		return l.fail("nesting deeper than %d levels", maxDepth)
	}
	l.pos++ // '{'
	l.skipWS()
	if l.peek() == '}' {
		l.pos++
		return true
	}
	for {
		if l.peek() != '"' {
			return l.failAt("a string key")
		}
		key, ok := l.readString()
		if !ok {
			return false
		}
		l.skipWS()
		if l.peek() != ':' {
			return l.failAt("':' after an object key")
		}
		l.pos++
		l.skipWS()
		if !each(key) {
			return false
		}
		l.skipWS()
		switch l.peek() {
		case ',':
			l.pos++
			l.skipWS()
		case '}':
			l.pos++
			return true
		default:
			return l.failAt("',' or '}' in an object")
		}
	}
}

// readVal parses the value at the current position into v, keeping the
// bytes of strings and numbers and only the kind of anything else.
func (l *lexer) readVal(v *val, depth int) bool {
	if v.kind != kindAbsent {
		v.dup = true
	}
	switch c := l.peek(); {
	case c == '"':
		b, ok := l.readString()
		v.kind, v.b = kindString, b
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		b, ok := l.readNumber()
		v.kind, v.b = kindNumber, b
		return ok
	default:
		k, ok := l.skipValue(depth)
		v.kind, v.b = k, nil
		return ok
	}
}

// skipValue checks the syntax of the value at the current position and
// moves past it. depth is the nesting depth of the enclosing container.
func (l *lexer) skipValue(depth int) (kind, bool) {
	switch c := l.peek(); {
	case c == '{':
		return kindObject, l.skipObject(depth + 1)
	case c == '[':
		return kindArray, l.skipArray(depth + 1)
	case c == '"':
		return kindString, l.skipString()
	case c == 't':
		return kindBool, l.literal("true")
	case c == 'f':
		return kindBool, l.literal("false")
	case c == 'n':
		return kindNull, l.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := l.readNumber()
		return kindNumber, ok
	}
	return kindAbsent, l.failAt("a JSON value")
}

func (l *lexer) skipObject(depth int) bool {
	return l.members(depth, func(key []byte) bool {
		if l.inProps && isEmailKey(key) {
			l.sawEmail = true
		}
		_, ok := l.skipValue(depth)
		return ok
	})
}

func (l *lexer) skipArray(depth int) bool {
	if depth > maxDepth {
		return l.fail("nesting deeper than %d levels", maxDepth)
	}
	l.pos++ // '['
	l.skipWS()
	if l.peek() == ']' {
		l.pos++
		return true
	}
	for {
		if _, ok := l.skipValue(depth); !ok {
			return false
		}
		l.skipWS()
		switch l.peek() {
		case ',':
			l.pos++
			l.skipWS()
		case ']':
			l.pos++
			return true
		default:
			return l.failAt("',' or ']' in an array")
		}
	}
}

func (l *lexer) literal(word string) bool {
	if len(l.data)-l.pos >= len(word) && string(l.data[l.pos:l.pos+len(word)]) == word {
		l.pos += len(word)
		return true
	}
	return l.failAt(word)
}

// readNumber checks the JSON number grammar and returns the literal.
func (l *lexer) readNumber() ([]byte, bool) {
	data, start := l.data, l.pos
	i := start
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		l.pos = i
		return nil, l.failAt("a digit")
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			l.pos = i
			return nil, l.failAt("a digit after the decimal point")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			l.pos = i
			return nil, l.failAt("a digit in the exponent")
		}
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	}
	l.pos = i
	return data[start:i], true
}

// readString returns the contents of the string at the current position.
// Without escapes the result aliases the message; with escapes it is a new
// slice holding the unescaped text.
func (l *lexer) readString() ([]byte, bool) {
	data := l.data
	start := l.pos + 1
	nonASCII := false
	i := start
	for {
		for i+8 <= len(data) {
			if m := special8(binary.LittleEndian.Uint64(data[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(data) {
			break
		}
		c := data[i]
		switch {
		case c == '"':
			b := data[start:i]
			l.pos = i + 1
			if nonASCII && !utf8.Valid(b) {
				l.pos = start
				return nil, l.fail("string is not valid UTF-8")
			}
			return b, true
		case c == '\\':
			return l.readEscaped(start, i)
		case c < 0x20:
			l.pos = i
			return nil, l.fail("control character %q in a string", c)
		case c >= 0x80:
			nonASCII = true
		}
		i++
	}
	l.pos = len(data)
	return nil, l.fail("unterminated string")
}

// special8 is non-zero when one of the 8 bytes in x is a quote, a
// backslash, a control character or not ASCII: the bytes a string scan must
// look at one by one. The lowest flagged byte is always a special one; bytes
// above it may be flagged wrongly, which does not matter.
func special8(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (bs-lsb)&^bs | (x - lsb*0x20) | x) & msb
}

// readEscaped is readString's slow path from the first backslash at i.
func (l *lexer) readEscaped(start, i int) ([]byte, bool) {
	data := l.data
	out := make([]byte, 0, len(data)-start)
	out = append(out, data[start:i]...)
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			l.pos = i + 1
			if !utf8.Valid(out) {
				l.pos = start
				return nil, l.fail("string is not valid UTF-8")
			}
			return out, true
		case c < 0x20:
			l.pos = i
			return nil, l.fail("control character %q in a string", c)
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		// An escape sequence.
		if i+1 >= len(data) {
			break
		}
		switch data[i+1] {
		case '"', '\\', '/':
			out = append(out, data[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(data, i+2)
			if !ok {
				l.pos = i
				return nil, l.fail(`bad \u escape in a string`)
			}
			i += 6
			if r >= 0xD800 && r < 0xDC00 {
				// A high surrogate must be followed by a low one to name a
				// character; a lone surrogate becomes U+FFFD as in
				// encoding/json.
				if lo, ok := hex4(data, i+2); ok && i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' &&
					lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			l.pos = i
			return nil, l.fail("bad escape %q in a string", data[i:i+2])
		}
		i += 2
	}
	l.pos = len(data)
	return nil, l.fail("unterminated string")
}

// skipString checks the string at the current position and moves past it
// without unescaping.
func (l *lexer) skipString() bool {
	data := l.data
	start := l.pos + 1
	nonASCII := false
	i := start
	for {
		for i+8 <= len(data) {
			if m := special8(binary.LittleEndian.Uint64(data[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(data) {
			break
		}
		c := data[i]
		switch {
		case c == '"':
			l.pos = i + 1
			if nonASCII && !utf8.Valid(data[start:i]) {
				l.pos = start
				return l.fail("string is not valid UTF-8")
			}
			return true
		case c == '\\':
			if i+1 >= len(data) {
				l.pos = len(data)
				return l.fail("unterminated string")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(data, i+2); !ok {
					l.pos = i
					return l.fail(`bad \u escape in a string`)
				}
				i += 5
			default:
				l.pos = i
				return l.fail("bad escape %q in a string", data[i:i+2])
			}
		case c < 0x20:
			l.pos = i
			return l.fail("control character %q in a string", c)
		case c >= 0x80:
			nonASCII = true
		}
		i++
	}
	l.pos = len(data)
	return l.fail("unterminated string")
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// isEmailKey reports whether an object key names an email, in any case.
func isEmailKey(key []byte) bool {
	return len(key) == 5 &&
		key[0]|0x20 == 'e' && key[1]|0x20 == 'm' && key[2]|0x20 == 'a' &&
		key[3]|0x20 == 'i' && key[4]|0x20 == 'l'
}
