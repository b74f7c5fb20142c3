package events

// Property keys the decoder reads, across all types. Other keys are kept in
// Event.Properties without being looked at.
const (
	propSegment = iota
	propCountry
	propStage
	propOpportunityID
	propOutcome
	propAmount
	propCurrency
	propOrderID
	propChannel
	propSubscriptionID
	propMRR
	propDate
	propImpressions
	propClicks
	propCost
	propURL
	propReferrer
	propPlatform
	propFormID
	propVendor
	propMonth
	numProps
)

// propID returns the slot of a known property key, or -1.
func propID(key []byte) int {
	switch string(key) {
	case "segment":
		return propSegment
	case "country":
		return propCountry
	case "stage":
		return propStage
	case "opportunity_id":
		return propOpportunityID
	case "outcome":
		return propOutcome
	case "amount":
		return propAmount
	case "currency":
		return propCurrency
	case "order_id":
		return propOrderID
	case "channel":
		return propChannel
	case "subscription_id":
		return propSubscriptionID
	case "mrr":
		return propMRR
	case "date":
		return propDate
	case "impressions":
		return propImpressions
	case "clicks":
		return propClicks
	case "cost":
		return propCost
	case "url":
		return propURL
	case "referrer":
		return propReferrer
	case "platform":
		return propPlatform
	case "form_id":
		return propFormID
	case "vendor":
		return propVendor
	case "month":
		return propMonth
	}
	return -1
}

// compactProperties returns the already validated JSON object raw without
// insignificant whitespace and without any member whose key is email (in
// any case) at any depth. Escapes, number literals and key order stay as
// sent.
func compactProperties(raw []byte) []byte {
	l := lexer{data: raw}
	return l.appendCompact(make([]byte, 0, len(raw)))
}

// appendCompact appends the value at the current position, compacted and
// without email members, to out. The input must have passed the lexer.
func (l *lexer) appendCompact(out []byte) []byte {
	l.skipWS()
	switch l.peek() {
	case '{':
		l.pos++
		out = append(out, '{')
		first := true
		for l.pos < len(l.data) {
			l.skipWS()
			switch l.peek() {
			case '}':
				l.pos++
				return append(out, '}')
			case ',':
				l.pos++
				l.skipWS()
			}
			if l.peek() != '"' {
				return out // cannot happen after the lexer accepted raw
			}
			keyStart := l.pos
			key, ok := l.readString()
			if !ok {
				return out
			}
			keyRaw := l.data[keyStart:l.pos]
			l.skipWS()
			l.pos++ // ':'
			if isEmailKey(key) {
				l.skipWS()
				if _, ok := l.skipValue(0); !ok {
					return out
				}
				continue
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, keyRaw...)
			out = append(out, ':')
			before := l.pos
			if out = l.appendCompact(out); l.pos == before {
				return out // cannot happen after the lexer accepted raw
			}
		}
		return out
	case '[':
		l.pos++
		out = append(out, '[')
		first := true
		for l.pos < len(l.data) {
			l.skipWS()
			switch l.peek() {
			case ']':
				l.pos++
				return append(out, ']')
			case ',':
				l.pos++
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			before := l.pos
			if out = l.appendCompact(out); l.pos == before {
				return out // cannot happen after the lexer accepted raw
			}
		}
		return out
	default:
		start := l.pos
		if _, ok := l.skipValue(0); !ok {
			return out
		}
		return append(out, l.data[start:l.pos]...)
	}
}
