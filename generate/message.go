package generate

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/kpibridge/kpibridge/events"
)

// msg is one event before encoding: contract v1 fields in a form that costs
// no allocation to build, and that invalid.go can break one rule at a time.
type msg struct {
	typ   events.Type
	id    uint64 // event number; the event_id is its hex form
	at    int64  // occurred_at, Unix seconds
	ms    int16  // milliseconds, or -1 to write whole seconds
	off   int32  // UTC offset to write occurred_at in, seconds
	src   string
	ident identity
	camp  int // index into gen.camps, -1 for none

	props [maxProps]prop
	np    int

	// over replaces (vRaw) or drops (vDrop) an envelope field; it is how
	// invalid messages are made.
	over [numFields]val
}

// Envelope fields, in the order they are written.
const (
	fEventID = iota
	fType
	fOccurredAt
	fSource
	fIdentity
	fCampaign
	fProperties
	numFields
)

const maxProps = 8

type identity struct {
	crm, anon, email val
}

type prop struct {
	key string
	v   val
}

// val is a JSON value to be written; kind says how.
type val struct {
	kind  uint8
	style uint8 // vEmail: emailLower, emailAsTyped
	s     string
	n     int64
}

const (
	vNone  uint8 = iota // absent
	vStr                // s as a JSON string
	vInt                // n as a JSON integer
	vCents              // n cents as a decimal number with two digits
	vID                 // s followed by the 16 hex digits of uint64(n), as a string
	vEmail              // the email of customer n, as a string
	vRaw                // s, already JSON
	vDate               // Unix day n as "YYYY-MM-DD"
	vMonth              // Unix day n as "YYYY-MM"
	vDrop               // in msg.over: leave the field out
)

// Email styles: how a system writes a person's address.
const (
	emailLower   uint8 = iota // as a CRM or ESP stores it
	emailAsTyped              // as the person typed it into a form
)

func str(s string) val             { return val{kind: vStr, s: s} }
func num(n int64) val              { return val{kind: vInt, n: n} }
func cents(n int64) val            { return val{kind: vCents, n: n} }
func hexID(p string, n uint64) val { return val{kind: vID, s: p, n: int64(n)} }
func raw(s string) val             { return val{kind: vRaw, s: s} }

func (m *msg) reset(typ events.Type, at int64, src string) {
	*m = msg{typ: typ, id: m.id, at: at, ms: -1, src: src, camp: -1}
}

func (m *msg) add(key string, v val) {
	m.props[m.np] = prop{key, v}
	m.np++
}

// find returns the index of the property key, or -1.
func (m *msg) find(key string) int {
	for i := 0; i < m.np; i++ {
		if m.props[i].key == key {
			return i
		}
	}
	return -1
}

// drop removes the property at index i.
func (m *msg) drop(i int) {
	copy(m.props[i:m.np], m.props[i+1:m.np])
	m.np--
}

// encode appends the message as one compact JSON object.
func (g *gen) encode(b []byte, m *msg) []byte {
	b = append(b, '{')
	first := true
	field := func(f int, key string) bool {
		if m.over[f].kind == vDrop {
			return false
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		if m.over[f].kind != vNone {
			b = g.appendVal(b, m.over[f])
			return false
		}
		return true
	}
	if field(fEventID, "event_id") {
		b = g.appendVal(b, hexID("evt_", m.id))
	}
	if field(fType, "type") {
		b = append(b, '"')
		b = append(b, m.typ...)
		b = append(b, '"')
	}
	if field(fOccurredAt, "occurred_at") {
		b = append(b, '"')
		b = appendTime(b, m.at, m.ms, m.off)
		b = append(b, '"')
	}
	if field(fSource, "source") {
		b = appendString(b, m.src)
	}
	if field(fIdentity, "identity") {
		b = append(b, '{')
		n := 0
		for _, kv := range [...]struct {
			key string
			v   val
		}{{"crm_contact_id", m.ident.crm}, {"anonymous_id", m.ident.anon}, {"email", m.ident.email}} {
			if kv.v.kind == vNone {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = append(b, '"')
			b = append(b, kv.key...)
			b = append(b, '"', ':')
			b = g.appendVal(b, kv.v)
		}
		b = append(b, '}')
	}
	if m.camp >= 0 || m.over[fCampaign].kind != vNone {
		if field(fCampaign, "campaign") {
			c := &g.camps[m.camp]
			b = append(b, `{"campaign_id":`...)
			b = appendString(b, c.id)
			b = append(b, `,"channel":`...)
			b = appendString(b, c.channel)
			b = append(b, '}')
		}
	}
	if m.np > 0 || m.over[fProperties].kind != vNone {
		if field(fProperties, "properties") {
			b = append(b, '{')
			for i := 0; i < m.np; i++ {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = append(b, m.props[i].key...)
				b = append(b, '"', ':')
				b = g.appendVal(b, m.props[i].v)
			}
			b = append(b, '}')
		}
	}
	return append(b, '}')
}

// appendKey appends the Kafka key of m: the best customer key it carries,
// as events.Identity.Key picks it.
func (g *gen) appendKey(b []byte, id *identity) []byte {
	v := id.crm
	if v.kind == vNone {
		v = id.anon
	}
	if v.kind == vNone {
		v = id.email
	}
	if v.kind == vNone {
		return b
	}
	start := len(b)
	b = g.appendVal(b, v)
	// Strip the quotes of the JSON string: keys are raw bytes.
	copy(b[start:], b[start+1:len(b)-1])
	return b[:len(b)-2]
}

func (g *gen) appendVal(b []byte, v val) []byte {
	switch v.kind {
	case vStr:
		return appendString(b, v.s)
	case vInt:
		return strconv.AppendInt(b, v.n, 10)
	case vCents:
		return appendCents(b, v.n)
	case vID:
		b = append(b, '"')
		b = append(b, v.s...)
		b = appendHex16(b, uint64(v.n))
		return append(b, '"')
	case vEmail:
		b = append(b, '"')
		b = g.appendEmail(b, int(v.n), v.style)
		return append(b, '"')
	case vRaw:
		return append(b, v.s...)
	case vDate, vMonth:
		y, mo, d := time.Unix(v.n*86400, 0).UTC().Date()
		b = append(b, '"')
		b = append4(b, y)
		b = append(b, '-')
		b = append2(b, int(mo))
		if v.kind == vDate {
			b = append(b, '-')
			b = append2(b, d)
		}
		return append(b, '"')
	}
	return append(b, "null"...)
}

// appendTime writes Unix second at (plus ms milliseconds when ms >= 0) as
// RFC 3339 in the UTC offset off.
func appendTime(b []byte, at int64, ms int16, off int32) []byte {
	t := time.Unix(at+int64(off), 0).UTC()
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	b = append4(b, y)
	b = append(b, '-')
	b = append2(b, int(mo))
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, 'T')
	b = append2(b, hh)
	b = append(b, ':')
	b = append2(b, mm)
	b = append(b, ':')
	b = append2(b, ss)
	if ms >= 0 {
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	}
	if off == 0 {
		return append(b, 'Z')
	}
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	b = append(b, sign)
	b = append2(b, int(off/3600))
	b = append(b, ':')
	return append2(b, int(off%3600/60))
}

func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10%10), byte('0'+n%10))
}

func append4(b []byte, n int) []byte {
	return append(b, byte('0'+n/1000%10), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}

func appendCents(b []byte, c int64) []byte {
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, c/100, 10)
	return append(b, '.', byte('0'+c/10%10), byte('0'+c%10))
}

const hexDigits = "0123456789abcdef"

func appendHex16(b []byte, n uint64) []byte {
	var buf [16]byte
	for i := 15; i >= 0; i-- {
		buf[i] = hexDigits[n&0xf]
		n >>= 4
	}
	return append(b, buf[:]...)
}

// appendString appends s as a JSON string, escaping what JSON requires and
// nothing more: non-ASCII UTF-8 is kept as is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			continue
		}
		if c >= utf8.RuneSelf {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
