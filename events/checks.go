package events

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// occurredAt checks occurred_at and returns it in UTC.
func (d *Decoder) occurredAt(v val) (time.Time, *Error) {
	const field = "occurred_at"
	b, err := str(v, field, true, 64)
	if err != nil {
		if err.Reason == ReasonInvalidField && !v.dup {
			// A Unix number or an overlong string: a timestamp problem
			// before it is a type problem.
			err.Reason = ReasonBadTimestamp
			if v.kind != kindString {
				err.Detail = "must be an RFC 3339 string such as 2025-03-01T09:30:00Z, got " + v.kind.String()
			}
		}
		return time.Time{}, err
	}
	t, ok := parseRFC3339(b)
	if !ok {
		return time.Time{}, &Error{Reason: ReasonBadTimestamp, Field: field,
			Detail: quote(b) + " is not an RFC 3339 time with an offset, such as 2025-03-01T09:30:00Z or 2025-03-01T10:30:00+01:00"}
	}
	if t.Unix() < 0 { // the events table's DateTime starts at 1970
		return time.Time{}, &Error{Reason: ReasonBadTimestamp, Field: field,
			Detail: quote(b) + " is before 1970-01-01T00:00:00Z"}
	}
	if now := d.now(); t.After(now.Add(d.skew)) {
		return time.Time{}, &Error{Reason: ReasonBadTimestamp, Field: field,
			Detail: fmt.Sprintf("%s is %v in the future, more than the %v allowed", quote(b), t.Sub(now).Round(time.Second), d.skew)}
	}
	return t, nil
}

// source checks the source system name.
func source(v val) ([]byte, *Error) {
	b, err := str(v, "source", true, maxSourceLen)
	if err != nil {
		return nil, err
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return nil, &Error{Reason: ReasonInvalidField, Field: "source",
				Detail: quote(b) + " may only hold a-z, 0-9, '_', '.' and '-'"}
		}
	}
	return b, nil
}

// eventType returns the Type named by v.
func eventType(v val) (Type, *Error) {
	b, err := str(v, "type", true, 64)
	if err != nil {
		if err.Reason == ReasonInvalidField && v.kind == kindString && !v.dup {
			// Too long to be a type.
			err.Reason, err.Detail = ReasonUnknownType, quote(v.b)+" is not a type of contract v1"
		}
		return "", err
	}
	switch string(b) {
	case "contact.upserted":
		return TypeContactUpserted, nil
	case "lead.stage_changed":
		return TypeLeadStageChanged, nil
	case "opportunity.closed":
		return TypeOpportunityClosed, nil
	case "order.placed":
		return TypeOrderPlaced, nil
	case "order.refunded":
		return TypeOrderRefunded, nil
	case "subscription.started":
		return TypeSubscriptionStarted, nil
	case "subscription.cancelled":
		return TypeSubscriptionCancel, nil
	case "campaign.daily_stats":
		return TypeCampaignDailyStats, nil
	case "email.sent":
		return TypeEmailSent, nil
	case "email.opened":
		return TypeEmailOpened, nil
	case "email.clicked":
		return TypeEmailClicked, nil
	case "web.visit":
		return TypeWebVisit, nil
	case "app.session":
		return TypeAppSession, nil
	case "form.submitted":
		return TypeFormSubmitted, nil
	case "martech.cost":
		return TypeMartechCost, nil
	}
	return "", &Error{Reason: ReasonUnknownType, Field: "type",
		Detail: quote(b) + " is not a type of contract v1"}
}

// str checks that v is a string of at most maxLen characters and returns
// its bytes. An absent, null or empty value is a missing_field error when
// required and nil otherwise.
func str(v val, field string, required bool, maxLen int) ([]byte, *Error) {
	if v.dup {
		return nil, duplicate(field)
	}
	switch v.kind {
	case kindAbsent, kindNull:
		if required {
			return nil, &Error{Reason: ReasonMissingField, Field: field, Detail: "required"}
		}
		return nil, nil
	case kindString:
	default:
		return nil, wrongKind(field, "a string", v.kind)
	}
	if len(v.b) == 0 {
		if required {
			return nil, &Error{Reason: ReasonMissingField, Field: field, Detail: "required, got an empty string"}
		}
		return nil, nil
	}
	if len(v.b) > maxLen && utf8.RuneCount(v.b)-redactedSurplus(v.b) > maxLen {
		return nil, &Error{Reason: ReasonInvalidField, Field: field,
			Detail: fmt.Sprintf("is %d characters long, more than the %d allowed", utf8.RuneCount(v.b), maxLen)}
	}
	return v.b, nil
}

// enum checks that v is one of values and returns the canonical string.
func enum(v val, field string, required bool, values []string) (string, *Error) {
	b, err := str(v, field, required, 64)
	if err != nil || b == nil {
		if err != nil && err.Reason == ReasonInvalidField && v.kind == kindString && !v.dup {
			err.Detail = quote(v.b) + " is not one of " + strings.Join(values, ", ")
		}
		return "", err
	}
	for _, s := range values {
		if s == string(b) {
			return s, nil
		}
	}
	return "", &Error{Reason: ReasonInvalidField, Field: field,
		Detail: quote(b) + " is not one of " + strings.Join(values, ", ")}
}

// money checks an amount and its currency and sets the amount columns.
func (d *Decoder) money(ev *Event, amount val, amountField string, currency val) *Error {
	a, err := nonNegative(amount, amountField)
	if err != nil {
		return err
	}
	b, err := str(currency, "properties.currency", true, 3)
	if err != nil {
		if err.Reason == ReasonInvalidField && currency.kind == kindString && !currency.dup {
			err.Detail = quote(currency.b) + " is not an ISO 4217 code (3 upper-case letters)"
		}
		return err
	}
	if len(b) != 3 || !isUpper(b[0]) || !isUpper(b[1]) || !isUpper(b[2]) {
		return &Error{Reason: ReasonInvalidField, Field: "properties.currency",
			Detail: quote(b) + " is not an ISO 4217 code (3 upper-case letters)"}
	}
	r, ok := d.rates[string(b)]
	if !ok {
		return &Error{Reason: ReasonUnknownCurrency, Field: "properties.currency",
			Detail: quote(b) + " is neither the reporting currency nor in the configured rates"}
	}
	ev.AmountOriginal = a
	ev.Currency = r.code
	ev.Amount = a * r.factor
	return nil
}

// nonNegative checks that v is a finite JSON number >= 0.
func nonNegative(v val, field string) (float64, *Error) {
	if err := number(v, field); err != nil {
		return 0, err
	}
	f, perr := strconv.ParseFloat(string(v.b), 64)
	if perr != nil || math.IsInf(f, 0) {
		return 0, &Error{Reason: ReasonInvalidField, Field: field, Detail: quote(v.b) + " is out of range"}
	}
	if f < 0 {
		return 0, &Error{Reason: ReasonInvalidField, Field: field, Detail: "must be >= 0, got " + string(v.b)}
	}
	return f + 0, nil // + 0 turns -0 into 0
}

// maxExactInt is the largest integer a float64 holds exactly.
const maxExactInt = 1 << 53

// count checks that v is a non-negative integer.
func count(v val, field string) (uint64, *Error) {
	if err := number(v, field); err != nil {
		return 0, err
	}
	plain := true
	for _, c := range v.b {
		if c < '0' || c > '9' {
			plain = false
			break
		}
	}
	if plain {
		n, perr := strconv.ParseUint(string(v.b), 10, 64)
		if perr != nil {
			return 0, &Error{Reason: ReasonInvalidField, Field: field, Detail: quote(v.b) + " is out of range"}
		}
		return n, nil
	}
	// A literal such as 1.2e3 or -0 is fine when it names a whole number.
	f, perr := strconv.ParseFloat(string(v.b), 64)
	switch {
	case perr != nil || f > maxExactInt:
		return 0, &Error{Reason: ReasonInvalidField, Field: field, Detail: quote(v.b) + " is out of range"}
	case f < 0:
		return 0, &Error{Reason: ReasonInvalidField, Field: field, Detail: "must be >= 0, got " + string(v.b)}
	case f != math.Trunc(f):
		return 0, &Error{Reason: ReasonInvalidField, Field: field, Detail: "must be a whole number, got " + string(v.b)}
	}
	return uint64(f), nil
}

// number checks that v is present and a JSON number.
func number(v val, field string) *Error {
	if v.dup {
		return duplicate(field)
	}
	switch v.kind {
	case kindNumber:
		return nil
	case kindAbsent, kindNull:
		return &Error{Reason: ReasonMissingField, Field: field, Detail: "required"}
	}
	return wrongKind(field, "a number", v.kind)
}

// date checks a YYYY-MM-DD date, or a YYYY-MM month when month is set, and
// returns its first day at UTC midnight.
func date(v val, field string, month bool) (time.Time, *Error) {
	b, err := str(v, field, true, 10)
	layout := "YYYY-MM-DD"
	if month {
		layout = "YYYY-MM"
	}
	if err != nil {
		if err.Reason == ReasonInvalidField && v.kind == kindString && !v.dup {
			err.Detail = quote(v.b) + " is not a " + layout + " date"
		}
		return time.Time{}, err
	}
	var t time.Time
	var ok bool
	if month {
		t, ok = parseMonth(b)
	} else {
		t, ok = parseDate(b)
	}
	if !ok {
		return time.Time{}, &Error{Reason: ReasonInvalidField, Field: field, Detail: quote(b) + " is not a " + layout + " date"}
	}
	if t.Year() < 1970 || t.Year() > 2105 {
		return time.Time{}, &Error{Reason: ReasonInvalidField, Field: field, Detail: quote(b) + " is outside 1970-2105"}
	}
	return t, nil
}

func duplicate(field string) *Error {
	return &Error{Reason: ReasonInvalidField, Field: field, Detail: "appears more than once"}
}

func wrongKind(field, want string, got kind) *Error {
	return &Error{Reason: ReasonInvalidField, Field: field, Detail: "must be " + want + ", got " + got.String()}
}
