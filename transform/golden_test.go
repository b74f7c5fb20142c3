package transform_test

// Golden test of the default KPI catalog over a hand-written fixture
// (testdata/golden/*.ndjson), run on the real ClickHouse server (and, with
// -tags chdb, loaded into current ClickHouse and asserted again). Every
// expected value is worked out by hand below.
//
// Evaluation time: 2026-03-31 12:00:00 UTC. Windows end then:
//   30d from 2026-03-01 12:00:01, 90d from 2025-12-31 12:00:01, 7d from 2026-03-24 12:00:01.
// Reporting currency EUR, USD at 0.5. Settings: the defaults (first touch,
// 30-day lookback; paid = paid_search, paid_social, display, affiliate,
// events; owned = email, social; earned = organic_search, referral, direct).
//
// People (canonical customer id in brackets):
//   Alice [crm:C1]: visits anonymously as a1 via paid_search (a1, 03-02 10:00),
//     fills a form with "Alice@Example.com " (a2: links a1 to her email, case
//     and spaces normalised), becomes CRM contact C1 with that email (a3).
//     Funnel lead 03-02 11:00, mql 03-05, sql 03-08, opportunity 03-10, wins O1
//     10000 on 03-20. Orders A1 100 web 03-21 (delivered twice) and A2 50
//     mobile_app. Email c_mail sent (a11), opened (a12 03-04 09:00) and clicked
//     (a14 09:05, a late event). App session on ios. First touch of her lead
//     and first order: paid_search; last touch of her first order: email.
//   Bob [crm:C2]: anon b1 via paid_social 03-03, form with his email, CRM C2.
//     lead 03-03, mql 03-06; loses O2. Order B1 200 USD = 100 EUR in store
//     03-12, refunded 40 USD = 20 EUR on 03-28. Subscription from 02-10,
//     cancelled 03-15. Sent the email.
//   Carol [crm:C3]: CRM contact with her email; clicked an email on 2025-12-01
//     (40 days before her lead on 01-10, 76 before her first order): outside
//     the 30-day lookback, so (none). Subscribed 01-10, orders C01 300 phone
//     (02-15) and C02 60 web (03-20).
//   Dave [anon:d1]: two anonymous visits, one via paid_search. Never identified.
//   Eve [email:…]: only receives an email.
//   Frank [crm:C4]: contact and subscription 03-05, clicks an email he was not
//     sent 03-08 (owned), orders F1 40 web 03-09, cancels 03-20.
//   Grace [crm:C5]: sent an email 03-01 13:00 (a send, not a touch), then
//     visits via organic_search 03-06 (earned), form, contact, lead 03-06,
//     order G1 50 web 03-10.
//   Henry [crm:C6]: visits via affiliate 03-07 (paid, no spend reported),
//     form, contact, lead 03-07. No order.
// Spend (by stat date): paid_search 100 for 03-10, corrected to 150 (with 60
// clicks) by a later re-send of s1; 40 for 01-15 and 30 for 02-28 reported on
// 03-02 (both outside 30d); paid_social 80; display 120 USD = 60 EUR; email
// 10. Martech: 31 for 2025-12, 15 for 2026-02, 25 for 2026-03, spread over
// their months.
// Data health: 2 dead letters from shopify, 1 duplicate from google_analytics,
// all received in the last 7 days with the 58 valid events.

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

// Martech in the 90-day window, each month's cost spread over its seconds:
// December keeps 12:00:00 to midnight of the 31st (43,199 s), February is
// whole, March runs from the 1st to 12:00:01 on the 31st (2,635,201 s).
var goldenMartech = 31.0*43199/2678400 + 15 + 25.0*2635201/2678400

var golden = map[string]want{
	// By stat date: 150 (corrected) + 80 + 60 + 10; the 01-15 and 02-28 reports are outside.
	"marketing_spend": {total: 300, by: map[string]float64{"channel=paid_search": 150, "channel=paid_social": 80, "channel=display": 60,
		"channel=email": 10, "campaign_id=c_display": 60, "campaign_id=c_search": 150}},
	// Alice (paid_search), Bob (paid_social), Grace (organic_search), Henry (affiliate); Carol's lead is January.
	"leads": {total: 4, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1, "channel=organic_search": 1, "channel=affiliate": 1}},
	// Paid spend 290 ÷ the 3 paid leads; affiliate has leads but no spend, display spend but no lead: no value.
	"cpl": {total: 290.0 / 3, by: map[string]float64{"channel=paid_search": 150, "channel=paid_social": 80},
		absent: []string{"channel=display", "channel=affiliate", "channel=organic_search", "channel=email"}},
	// First orders in window: Alice 03-21, Bob 03-12, Frank 03-09, Grace 03-10 (Carol's first was 02-15).
	"new_customers": {total: 4, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1, "channel=email": 1, "channel=organic_search": 1}},
	// 290 ÷ the 2 paid-acquired customers (Alice, Bob).
	"cac": {total: 145, by: map[string]float64{"channel=paid_search": 150, "channel=paid_social": 80},
		absent: []string{"channel=display", "channel=email", "channel=organic_search"}},
	// Paid or owned: Alice 100 + 50, Bob 100 − 20, Frank 40 (email); not Grace (earned) nor Carol (none).
	"marketing_sourced_revenue": {total: 270, by: map[string]float64{"channel=paid_search": 150, "channel=paid_social": 80, "channel=email": 40},
		absent: []string{"channel=organic_search", "channel=" + catalog.Unattributed}},
	// Paid-acquired revenue 230 ÷ paid spend 290; display spent 60 and earned nothing: 0.
	"roas": {total: 230.0 / 290, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1, "channel=display": 0},
		absent: []string{"channel=email"}},
	"marketing_roi": {total: 230.0/290 - 1},
	// 100 × (60 + 20 + 10 + 5) / (1000 + 2000 + 5000 + 500)
	"ctr": {total: 100 * 95.0 / 8500, by: map[string]float64{"channel=paid_search": 6, "channel=paid_social": 1, "channel=display": 0.2, "channel=email": 1}},
	// 300 / 95 clicks
	"cpc": {total: 300.0 / 95},
	// Sent: Alice, Bob, Eve, Grace. Sent and opened: Alice.
	"email_open_rate": {total: 0.25, by: map[string]float64{"campaign_id=c_mail": 0.25}},
	// Sent and clicked: Alice (by the late a14); Frank clicked without a send.
	"email_click_rate": {total: 0.25, by: map[string]float64{"campaign_id=c_mail": 0.25}},
	// Leads in 90d: Alice, Bob, Carol, Grace, Henry; reached mql: Alice, Bob.
	"lead_to_mql": {total: 2.0 / 5, by: map[string]float64{"channel=paid_search": 1, "channel=paid_social": 1,
		"channel=" + catalog.Unattributed: 0, "channel=organic_search": 0, "channel=affiliate": 0}},
	// MQLs: Alice, Bob; SQL: Alice.
	"mql_to_sql":         {total: 0.5},
	"sql_to_opportunity": {total: 1},
	"opportunity_to_won": {total: 1},
	// O1 won, O2 lost.
	"win_rate":          {total: 0.5},
	"average_deal_size": {total: 10000},
	// Orders in 30d: 100 + 50 + 100 + 60 + 40 + 50 = 400, refund 20.
	"revenue":               {total: 380},
	"order_revenue":         {total: 400, by: map[string]float64{"order_channel=web": 250, "order_channel=mobile_app": 50, "order_channel=store": 100}},
	"orders":                {total: 6, by: map[string]float64{"order_channel=web": 4, "order_channel=mobile_app": 1, "order_channel=store": 1}},
	"aov":                   {total: 400.0 / 6, by: map[string]float64{"order_channel=web": 62.5, "order_channel=mobile_app": 50, "order_channel=store": 100}},
	"mobile_order_share":    {total: 1.0 / 6},
	"digital_revenue_share": {total: 300.0 / 400},
	// Lifetime: two or more orders Alice, Carol; one or more Alice, Bob, Carol, Frank, Grace.
	"repeat_purchase_rate": {total: 2.0 / 5},
	// Active at window start: Bob, Carol; Bob cancelled. Frank joined and left inside: in neither part.
	"churn_rate": {total: 0.5},
	// Bob 100 − 20, Carol 60; Frank's 40 is not the subscribers' of 03-01.
	"revenue_per_subscriber": {total: 70},
	// 6 orders by 5 customers.
	"purchase_frequency": {total: 6.0 / 5},
	// 70 × margin 1 ÷ 0.5
	"clv": {total: 140},
	// Engaged in 30d: Alice, Bob, Carol (web order), Dave, Frank, Grace, Henry. Eve only received an email.
	"active_customers": {total: 7, by: map[string]float64{"touch_channel=web": 7, "touch_channel=mobile_app": 1, "touch_channel=email": 2, "touch_channel=store": 1}},
	// Two or more channels: Alice (web, email, mobile_app), Bob (web, store), Frank (email, web).
	"multichannel_share": {total: 3.0 / 7},
	// 90d net revenue: 700 − 20.
	"martech_spend_share": {total: 100 * goldenMartech / 680},
	// Newest in 7d: b8 03-28 11:00 (shopify), d2 03-27 10:00 (google_analytics), a13 03-26 20:00 (firebase).
	"data_freshness": {total: 3*86400 + 3600, by: map[string]float64{"source=shopify": 3*86400 + 3600, "source=google_analytics": 4*86400 + 2*3600, "source=firebase": 4*86400 + 16*3600}},
	// Last stored at 11:00.
	"ingest_lag": {total: 3600},
	// 2 of 61 messages (58 valid + 2 invalid + 1 duplicate; the correction of s1 is the same event); shopify 2 of 10.
	"invalid_event_rate": {total: 2.0 / 61, by: map[string]float64{"source=shopify": 0.2}},
	// 1 of 61; google_analytics 1 of 7.
	"duplicate_event_rate": {total: 1.0 / 61, by: map[string]float64{"source=google_analytics": 1.0 / 7}},
	// Touches with an identity in 30d: Alice 5, Bob 2, Frank 1, Grace 2, Henry 2 (CRM); Dave 2 (not).
	"identity_match_rate": {total: 12.0 / 14},
}

// goldenLastTouch are the values that change under last-touch attribution
// with a 90-day lookback: Alice's first order goes to her email click, and
// Carol's first order (02-15) to her click of 2025-12-01, now in the lookback.
var goldenLastTouch = map[string]want{
	"new_customers":             {total: 4, by: map[string]float64{"channel=email": 2, "channel=paid_social": 1, "channel=organic_search": 1}},
	"marketing_sourced_revenue": {total: 330, by: map[string]float64{"channel=email": 250, "channel=paid_social": 80}},
	"roas":                      {total: 80.0 / 290, by: map[string]float64{"channel=paid_social": 1, "channel=paid_search": 0, "channel=display": 0}},
	"cac":                       {total: 290, by: map[string]float64{"channel=paid_social": 80}, absent: []string{"channel=paid_search"}},
	// Carol's lead (01-10) is 40 days after her click: email now.
	"leads": {total: 4, by: map[string]float64{"channel=paid_search": 1}},
	"lead_to_mql": {total: 2.0 / 5, by: map[string]float64{"channel=email": 0, "channel=paid_search": 1},
		absent: []string{"channel=" + catalog.Unattributed}},
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

// goldenData is the fixture as stored in two phases, with the resolver
// clock that follows them.
type goldenData struct {
	conn  store.Conn
	bulk  []events.Event
	late  []events.Event
	clock time.Time
}

// loadGolden stores phase 1: everything but Alice's identity links and the
// late events, a re-delivered order, two dead letters and a duplicate.
func loadGolden(t *testing.T, conn store.Conn) *goldenData {
	t.Helper()
	ctx := context.Background()
	g := &goldenData{conn: conn, bulk: decodeFile(t, "testdata/golden/events.ndjson"), late: decodeFile(t, "testdata/golden/late.ndjson")}
	received := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	w := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return received })
	// Phase 1: everything but Alice's identity links (a2 form, a3 contact).
	if err := w.InsertEvents(ctx, rows(g.bulk, "a2", "a3")); err != nil {
		t.Fatal(err)
	}
	// Order A1 delivered a second time, before any merge.
	if err := w.InsertEvents(ctx, rows(g.bulk[14:15])); err != nil || g.bulk[14].EventID != "a9" {
		t.Fatalf("redeliver a9: %v (%s)", err, g.bulk[14].EventID)
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
	g.clock = received.Add(time.Second)
	return g
}

// phase2 stores, received later, Alice's links, the late click and the
// corrected spend report.
func (g *goldenData) phase2(t *testing.T) {
	t.Helper()
	received := time.Date(2026, 3, 31, 11, 0, 0, 0, time.UTC)
	w := ingest.NewClickHouseWriter(g.conn, 1024).WithClock(func() time.Time { return received })
	var links []events.Event
	for _, ev := range g.bulk {
		if ev.EventID == "a2" || ev.EventID == "a3" {
			links = append(links, ev)
		}
	}
	if err := w.InsertEvents(context.Background(), append(rows(links), rows(g.late)...)); err != nil {
		t.Fatal(err)
	}
	g.clock = received.Add(time.Second)
}

// loadResolvedGolden stores both phases and resolves identities after each,
// as the golden test does: the data set the golden values hold for.
func loadResolvedGolden(t *testing.T, conn store.Conn) *goldenData {
	t.Helper()
	g := loadGolden(t, conn)
	if _, err := g.resolver().Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.phase2(t)
	if _, err := g.resolver().Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

// resolver is a new identity resolver (a restart) on the phases' clock.
func (g *goldenData) resolver() *identity.Resolver {
	r := identity.NewResolver(g.conn, nil)
	r.Now = func() time.Time { return g.clock }
	return r
}

func TestGoldenDefaultCatalog(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	g := loadGolden(t, conn)
	resolver := g.resolver
	r := resolver()
	st, err := r.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Alice is still three people: anon:a1, her email, crm:C1.
	if n := countCustomers(t, conn); n != 10 {
		t.Fatalf("after phase 1: %d customers, want 10 (Alice not yet linked) — %+v", n, st)
	}

	// Phase 2, received later: the links, the late click and a corrected
	// report. The incremental update merges Alice.
	g.phase2(t)
	st, err = r.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Merged != 2 || st.FullRebuld {
		t.Errorf("phase 2 merged %d customers (full rebuild %v), want 2 merged incrementally", st.Merged, st.FullRebuld)
	}
	if n := countCustomers(t, conn); n != 8 {
		t.Fatalf("after phase 2: %d customers, want 8", n)
	}
	// Reports identify no person: resolved_events holds none, so no stale version of a corrected one.
	var reports uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM resolved_events WHERE type IN ('campaign.daily_stats', 'martech.cost')").Scan(&reports); err != nil || reports != 0 {
		t.Errorf("resolved_events holds %d reports (%v), want 0", reports, err)
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
	checkGolden(t, conn, cat, golden, true)

	// The attribution settings are the catalog's: another model and
	// lookback recompute every customer 360, with no new event.
	lastTouch := goldenCatalog(t, "last_touch", "90d")
	r = resolver()
	r.Settings = lastTouch.Settings
	if st, err := r.Update(ctx); err != nil || !st.FullRebuld {
		t.Fatalf("new attribution settings: full rebuild %v (%v), want every customer recomputed", st.FullRebuld, err)
	}
	t.Run("last_touch_90d", func(t *testing.T) { checkGolden(t, conn, lastTouch, goldenLastTouch, false) })
	// And back: the stored settings follow the resolver's.
	if st, err := resolver().Update(ctx); err != nil || !st.FullRebuld {
		t.Fatalf("back to the default settings: full rebuild %v (%v), want true", st.FullRebuld, err)
	}
	if st, err := resolver().Update(ctx); err != nil || st.FullRebuld {
		t.Fatalf("unchanged settings: full rebuild %v (%v), want false", st.FullRebuld, err)
	}
}

// checkGolden evaluates the catalog's KPIs at goldenNow over q and compares
// them with wants; all requires a value for every KPI.
func checkGolden(t *testing.T, q transform.Querier, cat *catalog.Catalog, wants map[string]want, all bool) {
	t.Helper()
	ctx := context.Background()
	prior := map[string]transform.Result{}
	for _, k := range cat.Order() {
		res := transform.Evaluate(ctx, q, k, goldenNow, prior)
		prior[k.Name] = res
		exp, ok := wants[k.Name]
		if !ok && !all {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			if res.Err != nil {
				t.Fatal(res.Err)
			}
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
					t.Errorf("%s: no value, want %v (got %v)", key, v, got)
				} else if !near(g, v) {
					t.Errorf("%s = %v, want %v", key, g, v)
				}
			}
			for _, key := range exp.absent {
				if g, ok := got[key]; ok {
					t.Errorf("%s = %v, want no series", key, g)
				}
			}
		})
	}
	for name := range wants {
		if _, ok := cat.Get(name); !ok {
			t.Errorf("golden value for %s, which is not in the catalog", name)
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

// goldenCatalog is the default catalog under another attribution model and lookback.
func goldenCatalog(t *testing.T, model, lookback string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	c.Settings.Attribution.Model = model
	if c.Settings.Attribution.Lookback, err = catalog.ParseWindow(lookback); err != nil {
		t.Fatal(err)
	}
	return c
}
