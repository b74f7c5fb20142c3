package generate

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/events"
)

// event is a valid message as a consumer reads it.
type event struct {
	events.Message
	at    time.Time
	props map[string]any
}

// validEvents runs cfg without noise and returns its events in order.
func validEvents(t *testing.T, cfg Config) []event {
	t.Helper()
	cfg.InvalidRate, cfg.DuplicateRate = 0, 0
	recs, _ := run(t, cfg)
	out := make([]event, 0, len(recs))
	for _, r := range recs {
		var e event
		if err := json.Unmarshal(r.Value, &e.Message); err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339, e.OccurredAt)
		if err != nil {
			t.Fatal(err)
		}
		e.at, e.props = at, e.Properties
		out = append(out, e)
	}
	return out
}

func (e *event) str(key string) string { s, _ := e.props[key].(string); return s }
func (e *event) num(key string) float64 {
	f, _ := e.props[key].(float64)
	return f
}

func TestEventsLieInTheWindow(t *testing.T) {
	cfg := smallConfig()
	evs := validEvents(t, cfg)
	start := day(cfg.End).AddDate(0, 0, 1-cfg.Days)
	end := day(cfg.End).AddDate(0, 0, 1)
	offsets, fractions := map[string]int{}, 0
	for _, e := range evs {
		if e.at.Before(start) || !e.at.Before(end) {
			t.Fatalf("%s at %s, outside [%s, %s)", e.Type, e.OccurredAt, start, end)
		}
		switch e.Type {
		case events.TypeCampaignDailyStats:
			d, err := time.Parse(time.DateOnly, e.str("date"))
			if err != nil || d.Before(start) || !d.Before(end) || d != day(e.at) {
				t.Fatalf("daily stats for %q reported at %s", e.str("date"), e.OccurredAt)
			}
		case events.TypeMartechCost:
			m, err := time.Parse("2006-01", e.str("month"))
			if err != nil || m.After(e.at) || m.AddDate(0, 1, 0).Before(start) {
				t.Fatalf("martech cost for month %q reported at %s", e.str("month"), e.OccurredAt)
			}
		}
		offsets[e.OccurredAt[len(e.OccurredAt)-1:]]++
		if strings.Contains(e.OccurredAt, ".") {
			fractions++
		}
	}
	if offsets["Z"] < len(evs)/2 || offsets["Z"] == len(evs) || fractions == 0 {
		t.Errorf("offsets by last character %v, %d with fractions: want mostly Z, some offsets, some fractions", offsets, fractions)
	}
}

func TestFunnel(t *testing.T) {
	evs := validEvents(t, smallConfig())
	order := map[string]int{}
	for i, s := range events.Stages {
		order[s] = i
	}
	last := map[string]string{}
	lastAt := map[string]time.Time{}
	segment := map[string]string{}
	reached := map[string]int{}
	for _, e := range evs {
		id := e.Identity.CRMContactID
		switch e.Type {
		case events.TypeContactUpserted:
			segment[id] = e.str("segment")
		case events.TypeLeadStageChanged:
			s, prev := e.str("stage"), last[id]
			switch {
			case prev == "" && s != "lead":
				t.Fatalf("%s: first stage %s, want lead", id, s)
			case prev == "disqualified" || prev == "customer":
				t.Fatalf("%s: %s after the terminal stage %s", id, s, prev)
			case prev != "" && s != "disqualified" && order[s] != order[prev]+1:
				t.Fatalf("%s: %s after %s skips or reverses the funnel", id, s, prev)
			case e.at.Before(lastAt[id]):
				t.Fatalf("%s: %s at %s, before the previous stage at %s", id, s, e.at, lastAt[id])
			}
			last[id], lastAt[id] = s, e.at
			reached[s]++
		case events.TypeOpportunityClosed:
			if last[id] != "opportunity" {
				t.Fatalf("%s: opportunity closed at stage %q", id, last[id])
			}
			if seg := segment[id]; seg != "mid_market" && seg != "enterprise" {
				t.Fatalf("%s: opportunity.closed for a %s contact", id, seg)
			}
		}
	}
	// Each stage converts part of the one before it, and some leads are disqualified.
	for i := 1; i < 5; i++ {
		prev, cur := reached[events.Stages[i-1]], reached[events.Stages[i]]
		if cur == 0 || cur >= prev {
			t.Errorf("funnel %v: want 0 < %s < %s", reached, events.Stages[i], events.Stages[i-1])
		}
	}
	if reached["disqualified"] == 0 {
		t.Errorf("funnel %v: nobody disqualified", reached)
	}
}

// The form links an anonymous visitor to an email, the CRM links the email
// to a contact, and every event that names both a contact and an anonymous
// id agrees with those links.
func TestIdentityLinks(t *testing.T) {
	evs := validEvents(t, smallConfig())
	emailOfAnon := map[string]string{}
	contactOfEmail := map[string]string{}
	known := map[string]bool{}
	for _, e := range evs {
		id := e.Identity
		email := strings.ToLower(strings.TrimSpace(id.Email))
		switch e.Type {
		case events.TypeFormSubmitted:
			if id.AnonymousID == "" || id.Email == "" || id.CRMContactID != "" {
				t.Fatalf("form.submitted identity %+v: want anonymous_id and email", id)
			}
			emailOfAnon[id.AnonymousID] = email
		case events.TypeContactUpserted:
			if !slices.Contains(mapsValues(emailOfAnon), email) {
				t.Fatalf("contact %s upserted with email %s that no form submitted", id.CRMContactID, email)
			}
			if c, ok := contactOfEmail[email]; ok && c != id.CRMContactID {
				t.Fatalf("email %s belongs to contacts %s and %s", email, c, id.CRMContactID)
			}
			contactOfEmail[email] = id.CRMContactID
			known[id.CRMContactID] = true
		}
		if id.CRMContactID != "" && !strings.HasPrefix(id.CRMContactID, "system:") && !known[id.CRMContactID] {
			t.Fatalf("%s names contact %s before the CRM created it", e.Type, id.CRMContactID)
		}
		if id.CRMContactID != "" && id.AnonymousID != "" && contactOfEmail[emailOfAnon[id.AnonymousID]] != id.CRMContactID {
			t.Fatalf("%s pairs contact %s with anonymous %s, which the form linked to %s", e.Type, id.CRMContactID, id.AnonymousID, contactOfEmail[emailOfAnon[id.AnonymousID]])
		}
		if email != "" && e.Type != events.TypeFormSubmitted && contactOfEmail[email] == "" {
			t.Fatalf("%s to %s before the email was known", e.Type, email)
		}
		isSystem := e.Type == events.TypeCampaignDailyStats || e.Type == events.TypeMartechCost
		if isSystem != strings.HasPrefix(id.AnonymousID, "system:") {
			t.Fatalf("%s with anonymous_id %q: only system events use system: ids", e.Type, id.AnonymousID)
		}
	}
}

func mapsValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestOrdersRefundsSubscriptions(t *testing.T) {
	cfg := smallConfig()
	cfg.Customers, cfg.Days = 3000, 90 // enough for refunds and churn whatever the seed
	evs := validEvents(t, cfg)
	type order struct {
		contact, currency string
		amount            float64
		at                time.Time
	}
	orders := map[string]order{}
	subs := map[string]string{}
	cancelled := map[string]bool{}
	channels := map[string]int{}
	repeat := map[string]int{}
	for _, e := range evs {
		contact := e.Identity.CRMContactID
		switch e.Type {
		case events.TypeOrderPlaced:
			id := e.str("order_id")
			if _, dup := orders[id]; dup {
				t.Fatalf("order_id %s placed twice", id)
			}
			orders[id] = order{contact, e.str("currency"), e.num("amount"), e.at}
			channels[e.str("channel")]++
			repeat[contact]++
		case events.TypeOrderRefunded:
			o, ok := orders[e.str("order_id")]
			switch {
			case !ok:
				t.Fatalf("refund of unknown order %s", e.str("order_id"))
			case o.contact != contact || o.currency != e.str("currency"):
				t.Fatalf("refund of %s by %s in %s; order by %s in %s", e.str("order_id"), contact, e.str("currency"), o.contact, o.currency)
			case e.num("amount") <= 0 || e.num("amount") > o.amount:
				t.Fatalf("refund of %v for an order of %v", e.num("amount"), o.amount)
			case !e.at.After(o.at):
				t.Fatalf("refund at %s of an order placed at %s", e.at, o.at)
			}
		case events.TypeSubscriptionStarted:
			id := e.str("subscription_id")
			if _, dup := subs[id]; dup || e.num("mrr") <= 0 {
				t.Fatalf("subscription %s started twice or with mrr %v", id, e.num("mrr"))
			}
			subs[id] = contact
		case events.TypeSubscriptionCancel:
			id := e.str("subscription_id")
			if subs[id] != contact || cancelled[id] {
				t.Fatalf("cancel of subscription %s by %s: started by %q, cancelled before: %v", id, contact, subs[id], cancelled[id])
			}
			cancelled[id] = true
		}
	}
	repeaters := 0
	for _, n := range repeat {
		if n > 1 {
			repeaters++
		}
	}
	if len(channels) != len(events.OrderChannels) || repeaters == 0 || len(cancelled) == 0 {
		t.Errorf("order channels %v, %d repeat buyers, %d cancellations: want all channels, some repeat buyers and churn", channels, repeaters, len(cancelled))
	}
}

// Campaign stats agree with what the tracked people did that day.
func TestCampaignStatsMatchActivity(t *testing.T) {
	cfg := smallConfig()
	evs := validEvents(t, cfg)
	type key struct{ campaign, date string }
	visits, sends, clicks := map[key]int{}, map[key]int{}, map[key]int{}
	channelsSeen, currencies, sources := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, e := range evs {
		if e.Campaign == nil {
			continue
		}
		k := key{e.Campaign.CampaignID, e.at.UTC().Format(time.DateOnly)}
		switch e.Type {
		case events.TypeWebVisit:
			visits[k]++
		case events.TypeEmailSent:
			sends[k]++
		case events.TypeEmailClicked:
			clicks[k]++
		}
	}
	for _, e := range evs {
		if e.Type != events.TypeCampaignDailyStats {
			continue
		}
		k := key{e.Campaign.CampaignID, e.str("date")}
		impressions, clk := int(e.num("impressions")), int(e.num("clicks"))
		channelsSeen[e.Campaign.Channel] = true
		currencies[e.str("currency")] = true
		sources[e.Source] = true
		if clk > impressions {
			t.Fatalf("%v: %d clicks > %d impressions", k, clk, impressions)
		}
		if e.Campaign.Channel == "email" {
			if impressions != sends[k] || clk != clicks[k] {
				t.Fatalf("%v: stats %d sent %d clicked; events %d sent %d clicked", k, impressions, clk, sends[k], clicks[k])
			}
		} else if clk < visits[k] {
			t.Fatalf("%v: %d clicks but %d tracked visits", k, clk, visits[k])
		}
		if ctr := float64(clk) / float64(max(impressions, 1)); e.Campaign.Channel != "email" && impressions > 1000 && (ctr < 0.003 || ctr > 0.08) {
			t.Errorf("%v: CTR %.4f", k, ctr)
		}
	}
	if len(channelsSeen) != len(events.Channels) || len(currencies) < 2 || len(sources) < 6 {
		t.Errorf("daily stats over channels %v, currencies %v, sources %v: want every channel, several currencies and sources", channelsSeen, currencies, sources)
	}
}

func TestCurrencyMix(t *testing.T) {
	cfg := smallConfig()
	cfg.CurrencyMix = []CurrencyShare{{"USD", 1}}
	for _, e := range validEvents(t, cfg) {
		switch e.Type {
		case events.TypeOrderPlaced, events.TypeSubscriptionStarted, events.TypeOrderRefunded, events.TypeOpportunityClosed:
			if e.str("currency") != "USD" {
				t.Fatalf("%s in %s with --currency USD=1", e.Type, e.str("currency"))
			}
		case events.TypeContactUpserted:
			if e.str("country") != "US" {
				t.Fatalf("contact in %s pays in USD", e.str("country"))
			}
		}
	}
}
