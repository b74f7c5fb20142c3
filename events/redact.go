package events

import (
	"bytes"
	"unicode/utf8"
)

// RedactedEmailPrefix starts the form an email address takes everywhere
// kpibridge writes text that came from a producer (dead letters, the DLQ
// topics, the properties and string columns of events): the prefix and the
// 64 hex digits of HashEmail, such as
// "hmac-sha256:43c915a5fb2a55c3ccab3ef8b4ceec305b515df308878ece0d42526f5e24484a".
// Given as identity.email, the decoder takes that form as the hash itself,
// so a redacted message replayed from the dead letters resolves to the same
// customer as the original would have.
const RedactedEmailPrefix = "hmac-sha256:"

// RedactEmail returns the redacted form of an email address under key.
func RedactEmail(key []byte, email string) string {
	return RedactedEmailPrefix + HashEmail(key, email)
}

// Redact returns data with every email address in it replaced by its
// redacted form (RedactedEmailPrefix and the keyed hash), for a message
// that is stored or forwarded as received: a dead letter, or a message key.
// It works on any bytes, JSON or not. In JSON it reads strings with their
// escapes, and the value of a member named email (any letter case) that
// holds an address is replaced whole, trimmed and lower-cased as the
// decoder hashes it. Everything else is left byte for byte; a message
// without an address comes back as the same slice.
func (d *Decoder) Redact(data []byte) []byte {
	if bytes.IndexByte(data, '@') < 0 && !bytes.Contains(data, []byte(`\u0040`)) {
		return data // no @, not even escaped: no address
	}
	r := rewriter{data: data}
	key := []byte(nil) // the last object key, unescaped
	text := 0          // start of the stretch outside strings not yet scanned
	for i := 0; i < len(data); {
		if data[i] != '"' {
			i++
			continue
		}
		d.redactSpan(&r, text, i)
		member := lastSignificant(data[text:i]) == ':'
		l := lexer{data: data, pos: i}
		dec, ok := l.readString()
		end, closed := l.pos, ok
		if !ok {
			end, closed = stringEnd(data, i)
		}
		if isKeyAt(data, end) {
			if ok {
				key = dec
			} else {
				key = nil
			}
		}
		emailValue := member && isEmailKey(key) && ok && !isKeyAt(data, end)
		switch {
		case emailValue && looksLikeEmail([]byte(normalizeEmail(string(dec)))):
			var h [64]byte
			d.hashAny(&h, dec)
			q := append([]byte{'"'}, RedactedEmailPrefix...)
			q = append(q, h[:]...)
			if closed {
				q = append(q, '"')
			}
			r.replace(i, end, q)
		case emailValue && hasEmail(dec):
			// Holds an address but is not one ("Jane <jane@example.com>",
			// "a@b@c"): a hashed part could pass for an address on replay,
			// so the value is replaced whole by one the decoder refuses too.
			q := []byte(`"` + notAnEmail)
			if closed {
				q = append(q, '"')
			}
			r.replace(i, end, q)
		case ok && bytes.IndexByte(data[i:end], '\\') >= 0:
			// Escapes: find addresses in the text the string stands for
			// (an @ may be written \u0040) and write it again if one was.
			if red, changed := d.redactText(dec); changed {
				r.replace(i, end, appendJSONString(nil, red))
			}
		default:
			d.redactStringSpan(&r, i+1, end)
		}
		i, text = end, end
	}
	d.redactSpan(&r, text, len(data))
	return r.result()
}

// notAnEmail replaces the value of an email member that holds an address
// but is not one.
const notAnEmail = "(redacted: not an email address)"

// hasEmail reports whether b holds an email address.
func hasEmail(b []byte) bool {
	found := false
	forEachEmail(b, func(int, int) { found = true })
	return found
}

// redactText returns b with every address in it redacted, and whether it
// held one (b itself is returned when not).
func (d *Decoder) redactText(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '@') < 0 {
		return b, false
	}
	r := rewriter{data: b}
	d.redactSpan(&r, 0, len(b))
	return r.result(), r.dirty
}

// redactSpan replaces every address found in r.data[from:to].
func (d *Decoder) redactSpan(r *rewriter, from, to int) {
	forEachEmail(r.data[from:to], func(start, end int) {
		var h [64]byte
		d.hashAny(&h, r.data[from+start:from+end])
		r.replace(from+start, from+end, append([]byte(RedactedEmailPrefix), h[:]...))
	})
}

// redactStringSpan is redactSpan over the raw contents of a JSON string
// without escapes, or one that could not be read: only the stretches
// between escape sequences, which stay as they are.
func (d *Decoder) redactStringSpan(r *rewriter, from, to int) {
	for from < to {
		esc := bytes.IndexByte(r.data[from:to], '\\')
		if esc < 0 {
			d.redactSpan(r, from, to)
			return
		}
		d.redactSpan(r, from, from+esc)
		from += esc + 2
		if from <= to && r.data[from-1] == 'u' {
			from += 4
		}
	}
}

// hashAny writes the hex hash of b to dst, as HashEmail would, whether or
// not b passes the decoder's email check (an address longer than allowed is
// still an address).
func (d *Decoder) hashAny(dst *[64]byte, b []byte) {
	if !d.hashEmailTo(dst, b) {
		copy(dst[:], HashEmail(d.key, string(b)))
	}
}

// maskEmails returns b with every address in it replaced by "<email>", for
// error details, which are written without the key.
func maskEmails(b []byte) []byte {
	if bytes.IndexByte(b, '@') < 0 {
		return b
	}
	r := rewriter{data: b}
	forEachEmail(b, func(start, end int) { r.replace(start, end, []byte("<email>")) })
	return r.result()
}

// redactedSurplus is how many characters of b the redacted addresses in it
// (RedactedEmailPrefix and 64 hex digits) add at most to the text they
// replaced: each counts as the shortest address, "a@b". A message replayed
// from the dead letters then passes the length limits its original passed;
// the original's own lengths are not known. Only the first
// maxRedactedCounted forms count, so a value made of forms cannot pass a
// limit by more than that.
func redactedSurplus(b []byte) int {
	const form, shortest = len(RedactedEmailPrefix) + 64, len("a@b")
	n := 0
	for k := 0; k < maxRedactedCounted; {
		i := bytes.Index(b, []byte(RedactedEmailPrefix))
		if i < 0 || len(b)-i < form {
			return n
		}
		if _, ok := redactedHash(b[i : i+form]); ok {
			n += form - shortest
			k++
			b = b[i+form:]
		} else {
			b = b[i+len(RedactedEmailPrefix):]
		}
	}
	return n
}

// maxRedactedCounted is how many redacted addresses in one value count as
// short addresses toward its length limit: an id holding more than two
// addresses is not one the limits need to let through.
const maxRedactedCounted = 2

// redactedHash returns the hash held by a value in the redacted form (white
// space around it and upper-case hex digits allowed).
func redactedHash(b []byte) (h [64]byte, ok bool) {
	b = bytes.TrimFunc(b, func(r rune) bool { return r < utf8.RuneSelf && isASCIISpace(byte(r)) })
	if len(b) != len(RedactedEmailPrefix)+len(h) || !bytes.EqualFold(b[:len(RedactedEmailPrefix)], []byte(RedactedEmailPrefix)) {
		return h, false
	}
	for i, c := range b[len(RedactedEmailPrefix):] {
		switch {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		default:
			return h, false
		}
		h[i] = c
	}
	return h, true
}

// forEachEmail calls fn with the bounds of every email address in b, in
// order. An address is a run of letters, digits, non-ASCII characters and
// . _ % + - @ that holds an @ with something before it and a letter, digit
// or non-ASCII character after it; the whole run is the address, less dots
// at its start and dots and hyphens at its end. Replacing whole runs means
// that no hash put in place of an address can be part of another
// ("a@b@c" is one). Bytes that are not UTF-8 end a run, so that replacing
// one never mends a message.
func forEachEmail(b []byte, fn func(start, end int)) {
	for i := 0; i < len(b); {
		at := bytes.IndexByte(b[i:], '@')
		if at < 0 {
			return
		}
		at += i
		start := at
		for start > i {
			if c := b[start-1]; c < utf8.RuneSelf {
				if !isRunByte(c) {
					break
				}
				start--
			} else if r, size := utf8.DecodeLastRune(b[i:start]); r != utf8.RuneError || size > 1 {
				start -= size
			} else {
				break
			}
		}
		end := at + 1
		for end < len(b) {
			if c := b[end]; c < utf8.RuneSelf {
				if !isRunByte(c) {
					break
				}
				end++
			} else if r, size := utf8.DecodeRune(b[end:]); r != utf8.RuneError || size > 1 {
				end += size
			} else {
				break
			}
		}
		i = end
		for start < end && b[start] == '.' {
			start++
		}
		for end > start && (b[end-1] == '.' || b[end-1] == '-') {
			end--
		}
		for j := start + 1; j < end-1; j++ {
			if b[j] == '@' && b[j-1] != '@' && (isDomainByte(b[j+1]) || b[j+1] >= utf8.RuneSelf) {
				fn(start, end)
				break
			}
		}
	}
}

// isRunByte is an ASCII byte an address is made of.
func isRunByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '@'
}

// isDomainByte is an ASCII letter or digit, with which a domain starts.
func isDomainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// stringEnd returns the offset after the string that starts with the quote
// at i, skipping escapes, and whether it was closed; an unclosed string
// runs to the end of data.
func stringEnd(data []byte, i int) (end int, closed bool) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(data), false
}

// isKeyAt reports whether the next byte after white space at i is a colon:
// the string that ends at i is an object key.
func isKeyAt(data []byte, i int) bool {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

// lastSignificant returns the last byte of b that is not JSON white space, or 0.
func lastSignificant(b []byte) byte {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return b[i]
		}
	}
	return 0
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(out, s []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

// rewriter builds a copy of data with spans replaced, in increasing order;
// it copies nothing until the first replacement.
type rewriter struct {
	data   []byte
	out    []byte
	copied int // data[:copied] is in out
	dirty  bool
}

func (r *rewriter) replace(from, to int, with []byte) {
	if !r.dirty {
		r.out = make([]byte, 0, len(r.data)+64)
		r.dirty = true
	}
	r.out = append(r.out, r.data[r.copied:from]...)
	r.out = append(r.out, with...)
	r.copied = to
}

func (r *rewriter) result() []byte {
	if !r.dirty {
		return r.data
	}
	return append(r.out, r.data[r.copied:]...)
}
