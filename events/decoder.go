package events

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"strings"
	"sync"
	"time"
)

// Decoder turns contract v1 messages into Events. It is safe for concurrent
// use; make one per process with NewDecoder.
type Decoder struct {
	key     []byte
	rates   map[string]rate
	skew    time.Duration
	now     func() time.Time
	hashers sync.Pool // of *emailHasher
}

// NewDecoder validates cfg and returns a Decoder. The decoder keeps copies
// of the key and rates, so later changes to cfg do not affect it.
func NewDecoder(cfg Config) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Decoder{
		key:   slices.Clone(cfg.EmailHashKey),
		rates: make(map[string]rate, len(cfg.Rates)+1),
		skew:  cfg.MaxFutureSkew,
		now:   cfg.Now,
	}
	for code, f := range cfg.Rates {
		d.rates[code] = rate{code: code, factor: f}
	}
	d.rates[cfg.ReportingCurrency] = rate{code: cfg.ReportingCurrency, factor: 1}
	if d.skew == 0 {
		d.skew = DefaultMaxFutureSkew
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.hashers.New = func() any {
		return &emailHasher{mac: hmac.New(sha256.New, d.key)}
	}
	return d, nil
}

// Length limits, in characters.
const (
	maxEventIDLen = 128
	maxSourceLen  = 64
	maxIDLen      = 256  // crm_contact_id, anonymous_id, campaign_id, entity ids
	maxLabelLen   = 128  // segment, country, vendor
	maxURLLen     = 8192 // url, referrer
)

// parsed is a message after the syntax pass: the values of every field the
// contract knows, before any rule is checked.
type parsed struct {
	eventID, typ, occurredAt, source val

	identity, crmContactID, anonymousID, email val
	campaign, campaignID, channel              val

	properties val
	propsRaw   []byte
	// propsRewrite is set when propsRaw has whitespace or an email key and
	// so cannot be stored as is.
	propsRewrite bool
	props        [numProps]val
}

// Decode checks one message against contract v1 and returns its Event. A
// message that breaks a rule gives a *Error saying which, and which field;
// Decode never returns another kind of error and never panics. data is not
// retained.
func (d *Decoder) Decode(data []byte) (Event, error) {
	var p parsed
	if err := parse(data, &p); err != nil {
		return Event{}, err
	}
	var ev Event
	if err := d.build(&p, &ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// parse runs the syntax pass over the whole message, so that a message
// that is not JSON is always invalid_json whatever else is wrong with it.
func parse(data []byte, p *parsed) *Error {
	l := lexer{data: data}
	l.skipWS()
	if l.pos >= len(data) {
		return &Error{Reason: ReasonInvalidJSON, Detail: "empty message"}
	}
	if l.peek() != '{' {
		if k, ok := l.skipValue(0); ok {
			l.skipWS()
			if l.pos == len(data) {
				return &Error{Reason: ReasonInvalidJSON, Detail: "message is " + k.String() + ", not a JSON object"}
			}
		}
		return &Error{Reason: ReasonInvalidJSON, Detail: "message is not a JSON object"}
	}
	ok := l.members(1, func(key []byte) bool {
		switch string(key) {
		case "event_id":
			return l.readVal(&p.eventID, 1)
		case "type":
			return l.readVal(&p.typ, 1)
		case "occurred_at":
			return l.readVal(&p.occurredAt, 1)
		case "source":
			return l.readVal(&p.source, 1)
		case "identity":
			if l.peek() != '{' {
				return l.readVal(&p.identity, 1)
			}
			if p.identity.kind != kindAbsent {
				p.identity.dup = true
			}
			p.identity.kind = kindObject
			return l.members(2, func(key []byte) bool {
				switch string(key) {
				case "crm_contact_id":
					return l.readVal(&p.crmContactID, 2)
				case "anonymous_id":
					return l.readVal(&p.anonymousID, 2)
				case "email":
					return l.readVal(&p.email, 2)
				}
				_, ok := l.skipValue(2)
				return ok
			})
		case "campaign":
			if l.peek() != '{' {
				return l.readVal(&p.campaign, 1)
			}
			if p.campaign.kind != kindAbsent {
				p.campaign.dup = true
			}
			p.campaign.kind = kindObject
			return l.members(2, func(key []byte) bool {
				switch string(key) {
				case "campaign_id":
					return l.readVal(&p.campaignID, 2)
				case "channel":
					return l.readVal(&p.channel, 2)
				}
				_, ok := l.skipValue(2)
				return ok
			})
		case "properties":
			if l.peek() != '{' {
				return l.readVal(&p.properties, 1)
			}
			if p.properties.kind != kindAbsent {
				p.properties.dup = true
			}
			p.properties.kind = kindObject
			start, ws := l.pos, l.ws
			l.inProps, l.sawEmail = true, false
			ok := l.members(2, func(key []byte) bool {
				if isEmailKey(key) {
					l.sawEmail = true
				} else if id := propID(key); id >= 0 {
					return l.readVal(&p.props[id], 2)
				}
				_, ok := l.skipValue(2)
				return ok
			})
			l.inProps = false
			p.propsRaw = data[start:l.pos]
			p.propsRewrite = l.sawEmail || l.ws != ws
			return ok
		}
		// Unknown top-level fields are ignored.
		_, ok := l.skipValue(1)
		return ok
	})
	if !ok {
		return l.err
	}
	l.skipWS()
	if l.pos != len(data) {
		l.failAt("the end of the message after the JSON object")
		return l.err
	}
	return nil
}

// Slots of strs, one per string column of Event.
const (
	sEventID = iota
	sSource
	sCRMContactID
	sAnonymousID
	sCampaignID
	sEntityID
	sSegment
	sCountry
	sVendor
	sURL
	sReferrer
	numStrs
)

// strs collects the strings of an Event during checks and then makes them
// all with one allocation. It holds slices, never pointers into the Event,
// so that the Event stays on the stack.
type strs struct {
	src       [numStrs][]byte
	emailHash [64]byte // hex, valid when hasEmail
	hasEmail  bool
}

// flush sets the string columns of ev.
func (s *strs) flush(ev *Event) {
	size := 0
	for _, src := range s.src {
		size += len(src)
	}
	if s.hasEmail {
		size += len(s.emailHash)
	}
	if size == 0 {
		return
	}
	var b strings.Builder
	b.Grow(size)
	for _, src := range s.src {
		b.Write(src)
	}
	if s.hasEmail {
		b.Write(s.emailHash[:])
	}
	all, off := b.String(), 0
	var out [numStrs]string
	for i, src := range s.src {
		out[i] = all[off : off+len(src)]
		off += len(src)
	}
	if s.hasEmail {
		ev.EmailHash = all[off:]
	}
	ev.EventID, ev.Source = out[sEventID], out[sSource]
	ev.CRMContactID, ev.AnonymousID = out[sCRMContactID], out[sAnonymousID]
	ev.CampaignID, ev.EntityID = out[sCampaignID], out[sEntityID]
	ev.Segment, ev.Country, ev.Vendor = out[sSegment], out[sCountry], out[sVendor]
	ev.URL, ev.Referrer = out[sURL], out[sReferrer]
}

// build checks every rule of contract v1 on p, in document order, and
// fills ev.
func (d *Decoder) build(p *parsed, ev *Event) *Error {
	var ss strs
	var err *Error
	var b []byte

	// Envelope.
	if b, err = str(p.eventID, "event_id", true, maxEventIDLen); err != nil {
		return err
	}
	ss.src[sEventID] = b
	if ev.Type, err = eventType(p.typ); err != nil {
		return err
	}
	if ev.OccurredAt, err = d.occurredAt(p.occurredAt); err != nil {
		return err
	}
	if b, err = source(p.source); err != nil {
		return err
	}
	ss.src[sSource] = b

	// Identity.
	if err = d.identity(p, &ss); err != nil {
		return err
	}

	// Campaign.
	switch p.campaign.kind {
	case kindAbsent, kindNull:
		if ev.Type == TypeCampaignDailyStats {
			return &Error{Reason: ReasonMissingField, Field: "campaign", Detail: "required for " + string(TypeCampaignDailyStats)}
		}
	case kindObject:
		if p.campaign.dup {
			return duplicate("campaign")
		}
		if b, err = str(p.campaignID, "campaign.campaign_id", true, maxIDLen); err != nil {
			return err
		}
		if string(b) == ReservedValue {
			return &Error{Reason: ReasonInvalidField, Field: "campaign.campaign_id", Detail: quote(b) + " is reserved: KPI breakdowns use it for rows without a campaign"}
		}
		ss.src[sCampaignID] = b
		if ev.Channel, err = enum(p.channel, "campaign.channel", true, Channels); err != nil {
			return err
		}
	default:
		return wrongKind("campaign", "an object", p.campaign.kind)
	}

	// Properties.
	switch p.properties.kind {
	case kindAbsent, kindNull:
	case kindObject:
		if p.properties.dup {
			return duplicate("properties")
		}
	default:
		return wrongKind("properties", "an object", p.properties.kind)
	}
	if err = d.properties(ev, &p.props, &ss); err != nil {
		return err
	}
	switch {
	case p.properties.kind != kindObject:
		ev.Properties = []byte("{}")
	case p.propsRewrite:
		ev.Properties = compactProperties(p.propsRaw)
	default:
		ev.Properties = append([]byte(nil), p.propsRaw...)
	}
	// No raw email address is stored: one anywhere in properties or in a
	// string column (a note, a URL, an id) becomes its redacted form.
	ev.Properties = d.Redact(ev.Properties)
	for i, src := range ss.src {
		if bytes.IndexByte(src, '@') >= 0 {
			ss.src[i], _ = d.redactText(src)
		}
	}
	ss.flush(ev)
	return nil
}

// identity checks the identity block and records its ids and the email
// hash in ss.
func (d *Decoder) identity(p *parsed, ss *strs) *Error {
	switch p.identity.kind {
	case kindAbsent, kindNull:
		return &Error{Reason: ReasonMissingIdentity, Field: "identity",
			Detail: "required: an object with crm_contact_id, anonymous_id or email"}
	case kindObject:
	default:
		return wrongKind("identity", "an object", p.identity.kind)
	}
	if p.identity.dup {
		return duplicate("identity")
	}
	crm, err := str(p.crmContactID, "identity.crm_contact_id", false, maxIDLen)
	if err != nil {
		return err
	}
	anon, err := str(p.anonymousID, "identity.anonymous_id", false, maxIDLen)
	if err != nil {
		return err
	}
	email, err := str(p.email, "identity.email", false, maxEmailLen)
	if err != nil {
		return err
	}
	if len(email) > 0 {
		// An address redacted in a dead letter (RedactedEmailPrefix and its
		// hash) is taken as the hash: a replay resolves to the same customer.
		if h, ok := redactedHash(email); ok {
			ss.emailHash = h
		} else if !d.hashEmailTo(&ss.emailHash, email) {
			return &Error{Reason: ReasonInvalidField, Field: "identity.email",
				Detail: "is not an email address (want local-part@domain without spaces)"}
		}
		ss.hasEmail = true
	}
	if len(crm) == 0 && len(anon) == 0 && len(email) == 0 {
		return &Error{Reason: ReasonMissingIdentity, Field: "identity",
			Detail: "has none of crm_contact_id, anonymous_id and email"}
	}
	ss.src[sCRMContactID], ss.src[sAnonymousID] = crm, anon
	return nil
}

// properties checks the properties of ev.Type and fills the typed columns.
func (d *Decoder) properties(ev *Event, props *[numProps]val, ss *strs) *Error {
	var err *Error
	var b []byte
	entity := func(slot int, field string) *Error {
		b, err := str(props[slot], field, true, maxIDLen)
		ss.src[sEntityID] = b
		return err
	}
	switch ev.Type {
	case TypeContactUpserted:
		if b, err = str(props[propSegment], "properties.segment", false, maxLabelLen); err != nil {
			return err
		}
		ss.src[sSegment] = b
		if b, err = str(props[propCountry], "properties.country", false, maxLabelLen); err != nil {
			return err
		}
		ss.src[sCountry] = b

	case TypeLeadStageChanged:
		ev.Stage, err = enum(props[propStage], "properties.stage", true, Stages)
		return err

	case TypeOpportunityClosed:
		if err = entity(propOpportunityID, "properties.opportunity_id"); err != nil {
			return err
		}
		if ev.Outcome, err = enum(props[propOutcome], "properties.outcome", true, Outcomes); err != nil {
			return err
		}
		return d.money(ev, props[propAmount], "properties.amount", props[propCurrency])

	case TypeOrderPlaced:
		if err = entity(propOrderID, "properties.order_id"); err != nil {
			return err
		}
		if err = d.money(ev, props[propAmount], "properties.amount", props[propCurrency]); err != nil {
			return err
		}
		ev.OrderChannel, err = enum(props[propChannel], "properties.channel", true, OrderChannels)
		return err

	case TypeOrderRefunded:
		if err = entity(propOrderID, "properties.order_id"); err != nil {
			return err
		}
		return d.money(ev, props[propAmount], "properties.amount", props[propCurrency])

	case TypeSubscriptionStarted:
		if err = entity(propSubscriptionID, "properties.subscription_id"); err != nil {
			return err
		}
		return d.money(ev, props[propMRR], "properties.mrr", props[propCurrency])

	case TypeSubscriptionCancel:
		return entity(propSubscriptionID, "properties.subscription_id")

	case TypeCampaignDailyStats:
		if ev.StatDate, err = date(props[propDate], "properties.date", false); err != nil {
			return err
		}
		if ev.Impressions, err = count(props[propImpressions], "properties.impressions"); err != nil {
			return err
		}
		if ev.Clicks, err = count(props[propClicks], "properties.clicks"); err != nil {
			return err
		}
		return d.money(ev, props[propCost], "properties.cost", props[propCurrency])

	case TypeEmailSent, TypeEmailOpened, TypeEmailClicked:

	case TypeWebVisit:
		if b, err = str(props[propURL], "properties.url", true, maxURLLen); err != nil {
			return err
		}
		ss.src[sURL] = b
		if b, err = str(props[propReferrer], "properties.referrer", false, maxURLLen); err != nil {
			return err
		}
		ss.src[sReferrer] = b

	case TypeAppSession:
		ev.Platform, err = enum(props[propPlatform], "properties.platform", true, Platforms)
		return err

	case TypeFormSubmitted:
		return entity(propFormID, "properties.form_id")

	case TypeMartechCost:
		if b, err = str(props[propVendor], "properties.vendor", true, maxLabelLen); err != nil {
			return err
		}
		ss.src[sVendor] = b
		if ev.StatDate, err = date(props[propMonth], "properties.month", true); err != nil {
			return err
		}
		return d.money(ev, props[propAmount], "properties.amount", props[propCurrency])
	}
	return nil
}
