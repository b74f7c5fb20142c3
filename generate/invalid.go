package generate

import (
	"strconv"
	"strings"

	"github.com/kpibridge/kpibridge/events"
)

// This file makes invalid messages: each one is a copy of a valid event
// (under a fresh event_id) that breaks exactly one rule of contract v1, so
// that the decoder refuses it for exactly the intended reason. Reasons take
// turns, so every reason gets an even share; the variant within a reason
// is drawn from the noise stream.

// requiredProps are the properties contract v1 requires, by type.
var requiredProps = map[events.Type][]string{
	events.TypeLeadStageChanged:    {"stage"},
	events.TypeOpportunityClosed:   {"opportunity_id", "outcome", "amount", "currency"},
	events.TypeOrderPlaced:         {"order_id", "amount", "currency", "channel"},
	events.TypeOrderRefunded:       {"order_id", "amount", "currency"},
	events.TypeSubscriptionStarted: {"subscription_id", "mrr", "currency"},
	events.TypeSubscriptionCancel:  {"subscription_id"},
	events.TypeCampaignDailyStats:  {"date", "impressions", "clicks", "cost", "currency"},
	events.TypeWebVisit:            {"url"},
	events.TypeAppSession:          {"platform"},
	events.TypeFormSubmitted:       {"form_id"},
	events.TypeMartechCost:         {"vendor", "month", "amount", "currency"},
}

// badProps are wrong values of typed properties: key, then the JSON that
// breaks it.
var badProps = map[events.Type][][2]string{
	events.TypeContactUpserted:     {{"segment", "3"}, {"country", "false"}},
	events.TypeLeadStageChanged:    {{"stage", `"won"`}, {"stage", `"Customer"`}, {"stage", `"closed_lost"`}},
	events.TypeOpportunityClosed:   {{"outcome", `"pending"`}, {"amount", `"12,000.00"`}, {"amount", "-5000"}},
	events.TypeOrderPlaced:         {{"channel", `"fax"`}, {"amount", `"49.90"`}, {"amount", "-19.99"}, {"channel", `"Web"`}},
	events.TypeOrderRefunded:       {{"amount", "-10.00"}, {"order_id", "1234"}},
	events.TypeSubscriptionStarted: {{"mrr", `"49"`}, {"mrr", "-49"}},
	events.TypeSubscriptionCancel:  {{"subscription_id", "true"}},
	events.TypeCampaignDailyStats:  {{"impressions", "-5"}, {"clicks", "12.5"}, {"date", `"31.12.2025"`}, {"cost", `"n/a"`}},
	events.TypeWebVisit:            {{"url", "42"}, {"referrer", "{}"}},
	events.TypeAppSession:          {{"platform", `"windows"`}, {"platform", `"iOS"`}},
	events.TypeFormSubmitted:       {{"form_id", "17"}},
	events.TypeMartechCost:         {{"month", `"2025-13"`}, {"month", `"March 2025"`}},
}

var (
	unknownTypes = []string{
		"order.created", "page_view", "Order.Placed", "lead.created", "email.bounced", "web.pageview",
		"campaign.stats", "subscription.renewed", "contact.deleted",
		"com.example.crm.contact.lifecycle.stage.changed.v2.with.extra.context.fields", // longer than any type
	}
	badSources     = []string{`"Salesforce"`, `"HubSpot"`, `"Google Ads"`, `"shop!fy"`}
	badEmails      = []string{"not-an-email", "anna schmidt@example.com", "@example.com", "bob@", "mailto:"}
	badChannels    = []string{"tv", "newsletter", "Paid Search", "sem", "radio"}
	noIdentity     = []string{`{}`, `null`, `{"crm_contact_id":"","anonymous_id":"","email":""}`, `{"user_id":"u_48151623"}`, `{"email":null}`, ""}
	notObjectsJSON = []string{`null`, `"ok"`, `[]`, `42`}
)

// emitInvalid writes one invalid message made from the valid event tmpl.
func (g *gen) emitInvalid(tmpl *msg, topic int) {
	reason := allReasons[g.nInvalid%len(allReasons)]
	g.nInvalid++
	t := &g.bad
	*t = *tmpl
	t.id = mix(g.badKey + g.nBad)
	g.nBad++
	nr := g.nr
	rec := Record{Type: t.typ, Reason: string(reason), EventID: "evt_" + string(appendHex16(nil, t.id))}
	keyed := true
	var value []byte

	switch reason {
	case events.ReasonInvalidJSON:
		rec.EventID = ""
		v := g.encode(g.scratch[:0], t)
		g.scratch = v
		switch nr.IntN(7) {
		case 0: // cut off in transit
			cut := len(v)/3 + nr.IntN(len(v)-len(v)/3-1)
			value = v[:cut]
		case 1: // wrapped in an array
			value = append(append([]byte{'['}, v...), ']')
		case 2: // encoded twice: a JSON string holding the object
			value = appendString(nil, string(v))
		case 3: // a trailing comma
			value = append(append([]byte{}, v[:len(v)-1]...), ",}"...)
		case 4: // a Python dict's repr
			value = []byte(strings.ReplaceAll(string(v), `"`, `'`))
		case 5: // two objects in one message
			value = append(append([]byte{}, v...), v...)
		default:
			value = []byte(notObjectsJSON[nr.IntN(len(notObjectsJSON))])
		}

	case events.ReasonMissingField:
		req := requiredProps[t.typ]
		k := nr.IntN(10)
		switch {
		case k == 7 && len(req) > 0: // a required property left out
			t.drop(t.find(req[nr.IntN(len(req))]))
		case k == 8 && len(req) > 0: // no properties at all
			t.np = 0
		case k == 9 && t.typ == events.TypeCampaignDailyStats:
			t.over[fCampaign] = val{kind: vDrop}
		default:
			switch k % 7 {
			case 0:
				t.over[fEventID] = val{kind: vDrop}
				rec.EventID = ""
			case 1:
				t.over[fEventID] = raw(`""`)
				rec.EventID = ""
			case 2:
				t.over[fType] = val{kind: vDrop}
			case 3:
				t.over[fOccurredAt] = val{kind: vDrop}
			case 4:
				t.over[fOccurredAt] = raw(`null`)
			case 5:
				t.over[fSource] = val{kind: vDrop}
			default:
				t.over[fSource] = raw(`""`)
			}
		}

	case events.ReasonInvalidField:
		switch k := nr.IntN(10); {
		case k >= 7 && len(badProps[t.typ]) > 0: // a typed property with a wrong value
			bad := badProps[t.typ]
			p := bad[nr.IntN(len(bad))]
			if i := t.find(p[0]); i >= 0 {
				t.props[i].v = raw(p[1])
			} else {
				t.add(p[0], raw(p[1]))
			}
		case k == 0:
			t.over[fSource] = raw(badSources[nr.IntN(len(badSources))])
		case k == 1:
			id := "evt_" + strings.Repeat(string(appendHex16(nil, t.id)), 8) // 132 characters
			t.over[fEventID] = raw(`"` + id + `"`)
			rec.EventID = id
		case k == 2:
			t.over[fEventID] = raw(strconv.FormatUint(t.id>>12, 10))
			rec.EventID = ""
		case k == 3:
			t.ident.email = str(badEmails[nr.IntN(len(badEmails))])
		case k == 4:
			cid := "spring-sale"
			if t.camp >= 0 {
				cid = g.camps[t.camp].id
			}
			t.over[fCampaign] = raw(`{"campaign_id":"` + cid + `","channel":"` + badChannels[nr.IntN(len(badChannels))] + `"}`)
		case k == 5:
			t.over[fProperties] = raw([]string{`[]`, `"n/a"`}[nr.IntN(2)])
		case k == 6: // a CRM id exported as a number
			t.ident.crm = raw(strconv.FormatUint(t.id>>20, 10))
		default:
			t.over[fIdentity] = raw([]string{`"anon_1234"`, `["a","b"]`}[nr.IntN(2)])
		}

	case events.ReasonUnknownType:
		t.over[fType] = raw(`"` + unknownTypes[nr.IntN(len(unknownTypes))] + `"`)

	case events.ReasonBadTimestamp:
		var b []byte
		ts := appendTime(nil, t.at, -1, 0) // 2006-01-02T15:04:05Z
		switch nr.IntN(10) {
		case 9: // Unix seconds as a JSON number
			t.over[fOccurredAt] = raw(strconv.FormatInt(t.at, 10))
		case 0: // no offset
			b = ts[:19]
		case 1: // a space instead of T
			b = append(append(append([]byte{}, ts[:10]...), ' '), ts[11:]...)
		case 2: // a date only
			b = ts[:10]
		case 3: // offset without a colon
			b = append(ts[:19:19], "+0200"...)
		case 4: // a century in the future
			b = appendTime(nil, t.at+100*365*86400, -1, 0)
		case 5: // before 1970
			b = []byte([]string{"1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"}[nr.IntN(2)])
		case 6: // a European date
			b = append(append(append(append(append([]byte{}, ts[8:10]...), '.'), ts[5:7]...), '.'), ts[:4]...)
			b = append(append(b, ' '), ts[11:16]...)
		case 7: // Unix milliseconds in a string
			b = strconv.AppendInt(nil, t.at*1000, 10)
		default: // a day that does not exist
			b = append(append([]byte{}, ts[:8]...), "31T"...)
			b = append(b, ts[11:]...)
			if m := string(ts[5:7]); m != "04" && m != "06" && m != "09" && m != "11" {
				copy(b[5:], "02-30")
			}
		}
		if b != nil {
			t.over[fOccurredAt] = raw(string(appendString(nil, string(b))))
		}

	case events.ReasonUnknownCurrency:
		code := g.unknown[nr.IntN(len(g.unknown))]
		i := t.find("currency")
		if i < 0 {
			// Not a money event: make one on the same topic for the same identity.
			ident := t.ident
			if topic == 0 {
				t.reset(events.TypeOrderPlaced, tmpl.at, "shopify")
				t.add("order_id", hexID("ord_", mix(g.badKey^g.ordKey+g.nBad)))
				t.add("amount", cents(int64(1000+nr.IntN(20000))))
				t.add("currency", str(code))
				t.add("channel", str("web"))
			} else {
				t.reset(events.TypeMartechCost, tmpl.at, "netsuite")
				t.add("vendor", str("hubspot"))
				t.add("month", val{kind: vMonth, n: tmpl.at / 86400})
				t.add("amount", cents(int64(10000+nr.IntN(100000))))
				t.add("currency", str(code))
			}
			t.ident = ident
			rec.Type = t.typ
		} else {
			t.props[i].v = str(code)
		}

	case events.ReasonMissingIdentity:
		keyed = false
		if v := noIdentity[nr.IntN(len(noIdentity))]; v == "" {
			t.over[fIdentity] = val{kind: vDrop}
		} else {
			t.over[fIdentity] = raw(v)
		}
	}
	if value == nil {
		value = g.encode(g.scratch[:0], t)
		g.scratch = value
	}
	var key []byte
	if keyed {
		key = g.appendKey(nil, &tmpl.ident)
	}
	g.appendRecord(topic, key, value, rec)
	g.invalid[reasonIndex(reason)]++
}

func reasonIndex(r events.Reason) int {
	for i, x := range allReasons {
		if x == r {
			return i
		}
	}
	panic("generate: unknown reason " + string(r))
}
