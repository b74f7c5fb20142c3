package transform_test

// Golden test of the default KPI catalog over a hand-written fixture
// (testdata/golden/*.ndjson), run on the real ClickHouse server. Every
// expected value is worked out by hand below.
//
// Evaluation time: 2026-03-31 12:00:00 UTC. Windows end then:
//   30d from 2026-03-01 12:00:01, 90d from 2025-12-31 12:00:01, 7d from 2026-03-24 12:00:01.
// Reporting currency EUR, USD at 0.5.
//
// People (canonical customer id in brackets):
//   Alice [crm:C1]: visits anonymously as a1 via paid_search (a1), fills a form
//     with "Alice@Example.com " (a2: links a1 to her email, case and spaces
//     normalised), becomes CRM contact C1 with that email (a3). Funnel
//     lead 03-02, mql 03-05, sql 03-08, opportunity 03-10, wins O1 10000 on
//     03-20. Orders A1 100 web (delivered twice: a redelivered row) and A2 50
//     mobile_app. Email c_mail sent, opened, and clicked (a14, a late event
//     ingested after the rest). App session on ios.
//   Bob [crm:C2]: anon b1 via paid_social, form with his email, CRM C2. lead
//     03-03, mql 03-06; loses O2. Order B1 200 USD = 100 EUR in store,
//     refunded 40 USD = 20 EUR on 03-28. Subscription from 02-10, cancelled 03-15.
//   Carol [crm:C3]: CRM only, no campaign touch. lead 01-10, subscribed 01-10,
//     orders C01 300 phone (02-15, outside 30d) and C02 60 web (03-20).
//   Dave [anon:d1]: two anonymous visits, one via paid_search. Never identified.
//   Eve [email:…]: only receives an email.
// Spend: paid_search 100 (03-10) and 40 (01-15, outside 30d), paid_social 80,
// display 120 USD = 60 EUR; martech 25 (March) and 15 (February).
// Data health: 2 dead letters from shopify, 1 duplicate from google_analytics,
// all received in the last 7 days with the 39 valid events.

import (
	"bufio"
	"context"
	"math"
	"os"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

var goldenNow = time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)

// want is a KPI's expected total and, optionally, some of its breakdown.
type want struct {
	total  float64
	none   bool               // no value at all
	by     map[string]float64 // "dimension=value" → expected
	absent []string           // "dimension=value" that must have no series (zero denominator)
}

var golden = map[string]want{
	// 100 + 80 + 60 (display, 120 USD × 0.5); the January 40 is outside 30d.
	"marketing_spend": {total: 240, by: map[string]float64{"channel=paid_search": 100, "channel=paid_social": 80, "channel=display": 60, "campaign_id=c_display": 60}},
	// Alice (03-02) and Bob (03-03); Carol's lead is January.
	"leads": {total: 2, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1}},
	// 240 / 2; display has spend and no lead: no value, not Inf.
	"cpl": {total: 120, by: map[string]float64{"channel=paid_search": 100, "channel=paid_social": 80}, absent: []string{"channel=display"}},
	// First orders in window: Alice 03-21, Bob 03-12 (Carol's first was 02-15).
	"new_customers": {total: 2, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1}},
	"cac":           {total: 120, by: map[string]float64{"channel=paid_search": 100, "channel=paid_social": 80}, absent: []string{"channel=display"}},
	// Campaign-acquired customers' net revenue: Alice 100 + 50 (A1 once), Bob 100 − 20; Carol has no campaign touch.
	"marketing_sourced_revenue": {total: 230, by: map[string]float64{"channel=paid_search": 150, "channel=paid_social": 80}},
	// 230 / 240; display spent 60 and sourced nothing: 0.
	"roas": {total: 230.0 / 240, by: map[string]float64{"channel=paid_search": 1.5, "channel=paid_social": 1, "channel=display": 0}},
	// (230 − 240) / 240
	"marketing_roi": {total: -10.0 / 240},
	// 100 × (50 + 20 + 10) / (1000 + 2000 + 5000)
	"ctr": {total: 1, by: map[string]float64{"channel=paid_search": 5, "channel=paid_social": 1, "channel=display": 0.2}},
	// 240 / 80 clicks
	"cpc": {total: 3},
	// Opened: Alice. Sent: Alice, Bob, Eve (email only).
	"email_open_rate": {total: 1.0 / 3, by: map[string]float64{"campaign_id=c_mail": 1.0 / 3}},
	// Clicked: Alice, by the late event a14.
	"email_click_rate": {total: 1.0 / 3},
	// Leads in 90d: Alice, Bob, Carol; reached mql: Alice, Bob.
	"lead_to_mql": {total: 2.0 / 3, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1, "channel=unknown": 0}},
	// MQLs: Alice, Bob; SQL: Alice.
	"mql_to_sql":         {total: 0.5},
	"sql_to_opportunity": {total: 1},
	"opportunity_to_won": {total: 1},
	// O1 won, O2 lost.
	"win_rate":          {total: 0.5},
	"average_deal_size": {total: 10000},
	// Orders in 30d: 100 + 50 + 100 + 60 = 310, refund 20.
	"revenue":               {total: 290},
	"order_revenue":         {total: 310, by: map[string]float64{"order_channel=web": 160, "order_channel=mobile_app": 50, "order_channel=store": 100}},
	"orders":                {total: 4, by: map[string]float64{"order_channel=web": 2, "order_channel=mobile_app": 1, "order_channel=store": 1}},
	"aov":                   {total: 77.5, by: map[string]float64{"order_channel=web": 80, "order_channel=mobile_app": 50, "order_channel=store": 100}},
	"mobile_order_share":    {total: 0.25},
	"digital_revenue_share": {total: 210.0 / 310},
	// Lifetime: two or more orders Alice, Carol; one or more Alice, Bob, Carol.
	"repeat_purchase_rate": {total: 2.0 / 3},
	// Cancelled in window: Bob. Active at window start: Bob and Carol.
	"churn_rate": {total: 0.5},
	// 4 orders by 3 customers.
	"purchase_frequency": {total: 4.0 / 3},
	// 77.5 × 4/3 / 0.5
	"clv": {total: 77.5 * 4 / 3 / 0.5},
	// Engaged in 30d: Alice, Bob, Carol (web order), Dave. Eve only received an email.
	"active_customers": {total: 4, by: map[string]float64{"touch_channel=web": 4, "touch_channel=mobile_app": 1, "touch_channel=email": 1, "touch_channel=store": 1}},
	// Two or more channels: Alice (web, email, mobile_app), Bob (web, store).
	"multichannel_share": {total: 0.5},
	// 90d: martech 25 + 15 = 40; net revenue 610 − 20 = 590.
	"martech_spend_share": {total: 100 * 40.0 / 590},
	// Newest in 7d: b8 03-28 11:00 (shopify), d2 03-27 10:00 (google_analytics), a13 03-26 20:00 (firebase).
	"data_freshness": {total: 3*86400 + 3600, by: map[string]float64{"source=shopify": 3*86400 + 3600, "source=google_analytics": 4*86400 + 2*3600, "source=firebase": 4*86400 + 16*3600}},
	// Last stored at 11:00.
	"ingest_lag": {total: 3600},
	// 2 of 42 messages (39 valid + 2 invalid + 1 duplicate); shopify 2 of 8.
	"invalid_event_rate": {total: 2.0 / 42, by: map[string]float64{"source=shopify": 0.25}},
	// 1 of 42; google_analytics 1 of 5.
	"duplicate_event_rate": {total: 1.0 / 42, by: map[string]float64{"source=google_analytics": 0.2}},
	// Touches with an identity in 30d: Alice 5, Bob 2 (CRM); Dave 2 (not).
	"identity_match_rate": {total: 7.0 / 9},
}

func decodeFile(t *testing.T, path string) []events.Event {
	t.Helper()
	dec, err := events.NewDecoder(events.Config{EmailHashKey: []byte("golden-key-0123456789"), ReportingCurrency: "EUR",
		Rates: map[string]float64{"USD": 0.5}, Now: func() time.Time { return goldenNow }})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []events.Event
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		ev, err := dec.Decode(sc.Bytes())
		if err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		out = append(out, ev)
	}
	return out
}

func rows(evs []events.Event, skip ...string) []ingest.Row {
	var out []ingest.Row
	for i, ev := range evs {
		if contains(skip, ev.EventID) {
			continue
		}
		out = append(out, ingest.Row{Event: ev, Topic: ev.Type.Topic(), Offset: int64(i)})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestGoldenDefaultCatalog(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()

	bulk := decodeFile(t, "testdata/golden/events.ndjson")
	late := decodeFile(t, "testdata/golden/late.ndjson")
	at := func(ts time.Time) *ingest.ClickHouseWriter {
		return ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return ts })
	}
	received := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	w := at(received)

	// Phase 1: everything but Alice's identity links (a2 form, a3 contact).
	if err := w.InsertEvents(ctx, rows(bulk, "a2", "a3")); err != nil {
		t.Fatal(err)
	}
	// Order A1 delivered a second time, before any merge.
	if err := w.InsertEvents(ctx, rows(bulk[14:15])); err != nil || bulk[14].EventID != "a9" {
		t.Fatalf("redeliver a9: %v (%s)", err, bulk[14].EventID)
	}
	if err := w.InsertDeadLetters(ctx, []ingest.DeadLetter{
		{Reason: events.ReasonInvalidField, Topic: "crm.events", Offset: 100, Source: "shopify", Value: []byte(`{}`)},
		{Reason: events.ReasonUnknownCurrency, Topic: "crm.events", Offset: 101, Source: "shopify", Value: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.InsertDuplicates(ctx, []ingest.Duplicate{{EventID: "a1", Type: events.TypeWebVisit, Source: "google_analytics", Topic: "campaign.events", Offset: 102}}); err != nil {
		t.Fatal(err)
	}
	// The resolver's clock agrees with ingest's: a second after each phase is stored.
	clock := received.Add(time.Second)
	resolver := func() *identity.Resolver {
		r := identity.NewResolver(conn, nil)
		r.Now = func() time.Time { return clock }
		return r
	}
	r := resolver()
	st, err := r.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Alice is still three people: anon:a1, her email, crm:C1.
	if n := countCustomers(t, conn); n != 7 {
		t.Fatalf("after phase 1: %d customers, want 7 (Alice not yet linked) — %+v", n, st)
	}

	// Phase 2, received later: the links and the late click. Incremental update merges Alice.
	w2 := at(time.Date(2026, 3, 31, 11, 0, 0, 0, time.UTC))
	clock = time.Date(2026, 3, 31, 11, 0, 1, 0, time.UTC)
	var links []events.Event
	for _, ev := range bulk {
		if ev.EventID == "a2" || ev.EventID == "a3" {
			links = append(links, ev)
		}
	}
	if err := w2.InsertEvents(ctx, append(rows(links), rows(late)...)); err != nil {
		t.Fatal(err)
	}
	st, err = r.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Merged != 2 || st.FullRebuld {
		t.Errorf("phase 2 merged %d customers (full rebuild %v), want 2 merged incrementally", st.Merged, st.FullRebuld)
	}
	if n := countCustomers(t, conn); n != 5 {
		t.Fatalf("after phase 2: %d customers, want 5", n)
	}
	var cust, acq string
	var orders uint32
	if err := conn.QueryRow(ctx, "SELECT customer_id FROM identity_map FINAL WHERE identifier = 'anon:a1'").Scan(&cust); err != nil || cust != "crm:C1" {
		t.Fatalf("anon:a1 resolves to %q (%v), want crm:C1", cust, err)
	}
	if err := conn.QueryRow(ctx, "SELECT acquisition_channel, orders FROM customers FINAL WHERE customer_id = 'crm:C1' AND merged_into = ''").Scan(&acq, &orders); err != nil || acq != "paid_search" || orders != 2 {
		t.Fatalf("Alice's 360: acquisition %q, orders %d (%v); want paid_search, 2", acq, orders, err)
	}

	// A fresh resolver (a restart) resumes from the stored state and changes nothing.
	st, err = resolver().Update(ctx)
	if err != nil || st.Changed != 0 {
		t.Fatalf("restart re-resolved %d keys (%v), want 0", st.Changed, err)
	}

	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	prior := map[string]transform.Result{}
	for _, k := range cat.Order() {
		res := transform.Evaluate(ctx, conn, k, goldenNow, prior)
		prior[k.Name] = res
		t.Run(k.Name, func(t *testing.T) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			exp, ok := golden[k.Name]
			if !ok {
				t.Fatalf("no golden value for %s: every default KPI must be covered", k.Name)
			}
			got := map[string]float64{}
			for _, s := range res.Series {
				if math.IsNaN(s.Result) || math.IsInf(s.Result, 0) {
					t.Errorf("series %s=%s is %v", s.Dimension, s.Value, s.Result)
				}
				key := ""
				if s.Dimension != "" {
					key = s.Dimension + "=" + s.Value
				}
				got[key] = s.Result
			}
			total, has := got[""]
			switch {
			case exp.none && has:
				t.Errorf("total = %v, want no value", total)
			case !exp.none && !has:
				t.Errorf("no total, want %v", exp.total)
			case !exp.none && !near(total, exp.total):
				t.Errorf("total = %v, want %v", total, exp.total)
			}
			for key, v := range exp.by {
				if g, ok := got[key]; !ok {
					t.Errorf("%s: no value, want %v", key, v)
				} else if !near(g, v) {
					t.Errorf("%s = %v, want %v", key, g, v)
				}
			}
			for _, key := range exp.absent {
				if g, ok := got[key]; ok {
					t.Errorf("%s = %v, want no series (zero denominator)", key, g)
				}
			}
		})
	}
	for name := range golden {
		if _, ok := cat.Get(name); !ok {
			t.Errorf("golden value for %s, which is not in the default catalog", name)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func countCustomers(t *testing.T, conn store.Conn) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM customers FINAL WHERE merged_into = ''").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
