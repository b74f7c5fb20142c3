package events

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Reason says, in a word a machine can branch on, why a message was refused.
// The values are stable: ingest uses them as a Prometheus label value and
// stores them in the dead_letters table, so a rename is a breaking change.
type Reason string

// Reasons a message is refused; docs/EVENTS.md says what triggers each.
const (
	// ReasonInvalidJSON means the message is not one well-formed JSON object.
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonMissingField means a required field is absent, null or empty.
	ReasonMissingField Reason = "missing_field"
	// ReasonInvalidField means a field has the wrong JSON type, is out of its
	// enum, too long, negative, or not a valid date.
	ReasonInvalidField Reason = "invalid_field"
	// ReasonUnknownType means type is not one of the types of contract v1.
	ReasonUnknownType Reason = "unknown_type"
	// ReasonBadTimestamp means occurred_at is not RFC 3339 with an offset, is
	// before 1970, or is more than the allowed skew in the future.
	ReasonBadTimestamp Reason = "bad_timestamp"
	// ReasonUnknownCurrency means a currency is neither the reporting currency
	// nor in the configured rates.
	ReasonUnknownCurrency Reason = "unknown_currency"
	// ReasonMissingIdentity means identity carries none of crm_contact_id,
	// anonymous_id and email.
	ReasonMissingIdentity Reason = "missing_identity"
)

// Reasons returns every Reason in declaration order, so that metrics can be
// initialised for each label value before the first refusal.
func Reasons() []Reason {
	return []Reason{
		ReasonInvalidJSON, ReasonMissingField, ReasonInvalidField, ReasonUnknownType,
		ReasonBadTimestamp, ReasonUnknownCurrency, ReasonMissingIdentity,
	}
}

// ErrInvalid matches every *Error with errors.Is, for callers that only need
// to know that a message can never succeed and belongs in the dead letters.
var ErrInvalid = errors.New("invalid event")

// Error is why Decode refused a message: the first rule the message broke.
type Error struct {
	// Reason is the machine-readable class of the failure.
	Reason Reason
	// Field is the JSON path of the offending field, such as
	// "properties.amount" or "identity.email"; empty when no field applies.
	Field string
	// Detail says what was wrong in words for a person. It never holds a raw
	// email address.
	Detail string
}

// Error formats the error as "reason: field: detail", leaving out the field
// when there is none.
func (e *Error) Error() string {
	if e.Field == "" {
		return string(e.Reason) + ": " + e.Detail
	}
	return string(e.Reason) + ": " + e.Field + ": " + e.Detail
}

// Is reports whether target is ErrInvalid, so errors.Is(err, ErrInvalid)
// holds for every decoding error.
func (e *Error) Is(target error) bool {
	return target == ErrInvalid
}

// maxQuoted is how many characters of a refused value an error repeats.
const maxQuoted = 64

// quote returns b as a Go-quoted string, cut to maxQuoted characters so that
// one huge field cannot blow up logs and dead-letter rows, with any email
// address in it shown as <email>.
func quote(b []byte) string {
	b = maskEmails(b)
	if utf8.RuneCount(b) <= maxQuoted {
		return strconv.Quote(string(b))
	}
	n, i := 0, 0
	for i < len(b) && n < maxQuoted {
		_, size := utf8.DecodeRune(b[i:])
		i += size
		n++
	}
	return strconv.Quote(string(b[:i])) + "…"
}
