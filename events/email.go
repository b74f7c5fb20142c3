package events

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"unicode/utf8"
)

// HashEmail returns the hex HMAC-SHA256, under key, of the email trimmed of
// surrounding white space and lower-cased. It is the only form in which an
// email address is stored: the same address under the same key always gives
// the same hash, so events join on it, while the address itself cannot be
// read back without the key.
func HashEmail(key []byte, email string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(normalizeEmail(email)))
	return hex.EncodeToString(mac.Sum(nil))
}

// normalizeEmail is the normal form of an email before hashing and
// checking.
func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// maxEmailLen is the longest email address accepted, in bytes (RFC 5321
// allows 254 in a path; some room is left for odd producers).
const maxEmailLen = 320

// emailHasher is a reusable HMAC with scratch space, pooled by the Decoder so
// that hashing allocates nothing.
type emailHasher struct {
	mac  hash.Hash
	norm []byte
	sum  []byte
}

// hashEmailTo checks the email in raw and writes its hex hash to dst. It
// reports false, without hashing, when the normalised email does not look
// like an address: a local part, an @ and a domain, without spaces.
func (d *Decoder) hashEmailTo(dst *[64]byte, raw []byte) bool {
	h := d.hashers.Get().(*emailHasher)
	defer d.hashers.Put(h)
	norm, ascii := h.norm[:0], true
	for _, c := range raw {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// Same result as normalizeEmail for ASCII input, without
		// allocating.
		start, end := 0, len(raw)
		for start < end && isASCIISpace(raw[start]) {
			start++
		}
		for end > start && isASCIISpace(raw[end-1]) {
			end--
		}
		for _, c := range raw[start:end] {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			norm = append(norm, c)
		}
	} else {
		norm = append(norm, normalizeEmail(string(raw))...)
	}
	h.norm = norm[:0]
	if !looksLikeEmail(norm) {
		return false
	}
	h.mac.Reset()
	h.mac.Write(norm)
	h.sum = h.mac.Sum(h.sum[:0])
	hex.Encode(dst[:], h.sum)
	return true
}

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// looksLikeEmail accepts local@domain with both parts non-empty, one @, and
// no white space or control characters. It is a sanity check, not RFC 5322.
func looksLikeEmail(e []byte) bool {
	if len(e) < 3 || len(e) > maxEmailLen {
		return false
	}
	at := -1
	for i, c := range e {
		switch {
		case c == '@':
			if at >= 0 {
				return false
			}
			at = i
		case c <= ' ' || c == 0x7f:
			return false
		}
	}
	return at > 0 && at < len(e)-1
}
