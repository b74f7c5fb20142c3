package identity_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// The erasure tests use the transform golden fixture (transform/testdata/golden),
// whose Alice is crm:C1, anon:a1 and alice@example.com, linked only by events
// that arrive in a second phase: her three identities merge, as in production.
var (
	forgetKey      = []byte("golden-key-0123456789")
	forgetNow      = time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	forgetReceived = []time.Time{time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 11, 0, 0, 0, time.UTC)}
	aliceHash      = events.HashEmail(forgetKey, "alice@example.com")
)

func isAlice(ev events.Event) bool {
	return ev.CRMContactID == "C1" || ev.AnonymousID == "a1" || ev.EmailHash == aliceHash
}

func forgetDecoder(t *testing.T) *events.Decoder {
	t.Helper()
	dec, err := events.NewDecoder(events.Config{EmailHashKey: forgetKey, ReportingCurrency: "EUR",
		Rates: map[string]float64{"USD": 0.5}, Now: func() time.Time { return forgetNow }})
	if err != nil {
		t.Fatal(err)
	}
	return dec
}

// goldenPhases decodes the fixture: phase 1 is everything but Alice's
// identity links (a2, a3) and the late events, phase 2 those.
func goldenPhases(t *testing.T, dec *events.Decoder) [2][]events.Event {
	t.Helper()
	var phases [2][]events.Event
	for _, name := range []string{"events.ndjson", "late.ndjson"} {
		f, err := os.Open(filepath.Join("..", "transform", "testdata", "golden", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ev, err := dec.Decode(sc.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			p := 0
			if name == "late.ndjson" || ev.EventID == "a2" || ev.EventID == "a3" {
				p = 1
			}
			phases[p] = append(phases[p], ev)
		}
		f.Close()
	}
	return phases
}

// forgetFixture is one database loaded with the fixture.
type forgetFixture struct {
	target   store.Target
	conn     store.Conn
	resolver *identity.Resolver
	clock    time.Time
}

// loadForgetFixture stores the fixture in its two phases, resolving after
// each, with dead letters (redacted as ingest stores them) and duplicates
// of Alice and of others; withAlice false leaves out everything of Alice.
func loadForgetFixture(t *testing.T, withAlice bool) *forgetFixture {
	t.Helper()
	ctx := context.Background()
	target, conn := testenv.MigratedClickHouse(t)
	dec := forgetDecoder(t)
	fx := &forgetFixture{target: target, conn: conn}
	fx.resolver = identity.NewResolver(conn, nil)
	fx.resolver.Now = func() time.Time { return fx.clock }
	for p, evs := range goldenPhases(t, dec) {
		w := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return forgetReceived[p] })
		var rows []ingest.Row
		for i, ev := range evs {
			if withAlice || !isAlice(ev) {
				rows = append(rows, ingest.Row{Event: ev, Topic: ev.Type.Topic(), Offset: int64(100*p + i)})
			}
		}
		if err := w.InsertEvents(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if p == 0 {
			dead := []struct {
				alice      bool
				key, value string
			}{
				{true, "Alice@Example.com", `{"event_id":"x1","type":"order.placed","identity":{"crm_contact_id":"C1","email":"Alice@Example.com"},"properties":{"currency":"XYZ"}}`},
				{true, "k-2", `{"event_id":"x2","identity": {"anonymous_id": "a1", "crm`},
				{false, "C2", `{"event_id":"x3","type":"order.placed","identity":{"crm_contact_id":"C2","email":"bob@example.com"},"properties":{"currency":"XYZ"}}`},
				{false, "k-4", `{"event_id":"x4","identity":{"crm_contact_id":"C11"}}`},
			}
			var dls []ingest.DeadLetter
			for i, d := range dead {
				if withAlice || !d.alice {
					dls = append(dls, ingest.DeadLetter{Reason: events.ReasonUnknownCurrency, Topic: "crm.events", Offset: int64(1000 + i),
						Key: dec.Redact([]byte(d.key)), Value: dec.Redact([]byte(d.value))})
				}
			}
			dups := []ingest.Duplicate{{EventID: "b1", Type: events.TypeWebVisit, Topic: "campaign.events", Offset: 2000}}
			if withAlice {
				dups = append(dups, ingest.Duplicate{EventID: "a9", Type: events.TypeOrderPlaced, Topic: "crm.events", Offset: 2001})
			}
			if err := w.InsertDeadLetters(ctx, dls); err != nil {
				t.Fatal(err)
			}
			if err := w.InsertDuplicates(ctx, dups); err != nil {
				t.Fatal(err)
			}
		}
		fx.clock = forgetReceived[p].Add(time.Second)
		if _, err := fx.resolver.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// customerColumns are the customer 360 columns compared, updated_at aside.
var customerColumns = []string{"crm_contact_id", "acquisition_channel", "acquisition_campaign", "acquisition_class", "lead_channel", "lead_campaign",
	"lead_class", "segment", "country", "stage", "orders", "revenue", "channels_count", "is_crm", "churned", "first_seen", "last_seen",
	"first_order_at", "last_order_at", "reached_lead_at", "reached_mql_at", "reached_sql_at", "reached_opportunity_at", "reached_customer_at",
	"won_at", "subscribed_at", "churned_at", "channels", "campaigns", "order_channels", "merged_into"}

// customers360 returns every row of customers FINAL as text, by customer id.
func customers360(t *testing.T, conn store.Conn) map[string]string {
	t.Helper()
	cols := make([]string, len(customerColumns))
	for i, c := range customerColumns {
		switch c {
		case "channels", "campaigns", "order_channels":
			cols[i] = "arrayStringConcat(arraySort(" + c + "), ',')"
		default:
			cols[i] = "toString(" + c + ")"
		}
	}
	rows, err := conn.Query(context.Background(), "SELECT customer_id, concat("+strings.Join(cols, ", '|', ")+") FROM customers FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, row string
		if err := rows.Scan(&id, &row); err != nil {
			t.Fatal(err)
		}
		out[id] = row
	}
	return out
}

// kpiValues evaluates every KPI of the default catalog at forgetNow and
// returns its series as text.
func kpiValues(t *testing.T, conn store.Conn) map[string]string {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	prior := map[string]transform.Result{}
	for _, k := range cat.Order() {
		res := transform.Evaluate(context.Background(), conn, k, forgetNow, prior)
		prior[k.Name] = res
		if res.Err != nil {
			t.Fatalf("kpi %s: %v", k.Name, res.Err)
		}
		var series []string
		for _, s := range res.Series {
			series = append(series, fmt.Sprintf("%s=%s: %.9g (%.9g/%.9g)", s.Dimension, s.Value, s.Result, s.Numerator, s.Denominator))
		}
		slices.Sort(series)
		out[k.Name] = strings.Join(series, "; ")
	}
	return out
}

// TestForgetRemovesOneCustomerAndNoOneElse forgets Alice, named by her
// email address, and proves that nothing of her is left in any table, that
// every other customer's 360 is as before, and that the database then
// holds, customer for customer and KPI for KPI, what a database that never
// saw Alice holds. A resolver that knew Alice before reloads: her
// anonymous id seen again is a new, unlinked customer.
func TestForgetRemovesOneCustomerAndNoOneElse(t *testing.T) {
	ctx := context.Background()
	a := loadForgetFixture(t, true)
	never := loadForgetFixture(t, false)
	before360, beforeKPIs := customers360(t, a.conn), kpiValues(t, a.conn)
	if before360["crm:C1"] == "" {
		t.Fatalf("Alice is not a customer before: %v", before360)
	}
	var aliceEvents uint64
	var aliceIDs []string
	for _, phase := range goldenPhases(t, forgetDecoder(t)) {
		for _, ev := range phase {
			if isAlice(ev) {
				aliceEvents++
				aliceIDs = append(aliceIDs, ev.EventID)
			}
		}
	}

	f, err := identity.Forget(ctx, a.conn, a.target, " Alice@Example.com", forgetKey, identity.ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.CustomerID != "crm:C1" || f.Keys != 3 || f.Rows["events"] != aliceEvents || f.Rows["dead_letters"] != 2 || f.Rows["duplicates"] != 1 ||
		f.Rows["identity_map"] == 0 || f.Rows["resolved_events"] == 0 || f.Rows["customers"] == 0 || f.Rows["customer_merges"] == 0 {
		t.Errorf("forgot %+v; want crm:C1 with 3 keys, %d events, 2 dead letters, 1 duplicate, and rows of the identity tables", f, aliceEvents)
	}

	// Nothing of Alice remains: not her keys, ids, email hash (also in its
	// redacted form) or event ids, in any String column of any table.
	for _, fd := range testenv.FindInTables(t, a.conn, a.target.Database, []string{"crm:C1", "anon:a1", aliceHash, `"crm_contact_id":"C1"`}, false) {
		t.Errorf("left after the erasure: %s", fd)
	}
	for _, fd := range testenv.FindInTables(t, a.conn, a.target.Database, append([]string{"C1", "a1"}, aliceIDs...), true) {
		t.Errorf("left after the erasure: %s", fd)
	}
	// No one else changed, and the result is a database that never had her.
	after360 := customers360(t, a.conn)
	for id := range before360 {
		if id == "crm:C1" || id == "anon:a1" || id == "email:"+aliceHash {
			delete(before360, id)
		}
	}
	for id, row := range before360 {
		if after360[id] != row {
			t.Errorf("customer %s changed:\n before %s\n after  %s", id, row, after360[id])
		}
	}
	never360 := customers360(t, never.conn)
	if len(after360) != len(before360) || len(after360) != len(never360) {
		t.Errorf("%d customers after, %d others before, %d in a database without Alice", len(after360), len(before360), len(never360))
	}
	for id, row := range never360 {
		if after360[id] != row {
			t.Errorf("customer %s after the erasure:\n %s\nin a database without Alice:\n %s", id, after360[id], row)
		}
	}
	afterKPIs, neverKPIs := kpiValues(t, a.conn), kpiValues(t, never.conn)
	changed := 0
	for name, v := range neverKPIs {
		if afterKPIs[name] != v {
			t.Errorf("kpi %s after the erasure:\n %s\nin a database without Alice:\n %s", name, afterKPIs[name], v)
		}
		if beforeKPIs[name] != afterKPIs[name] {
			changed++
		}
	}
	if changed == 0 {
		t.Error("no KPI changed when Alice was forgotten: the comparison proves nothing")
	}

	// Alice's device comes back: the resolver that linked her before
	// reloads, and the device is a customer of its own.
	received := forgetReceived[1].Add(30 * time.Minute)
	w := ingest.NewClickHouseWriter(a.conn, 1024).WithClock(func() time.Time { return received })
	visit := events.Event{EventID: "n1", Type: events.TypeWebVisit, Source: "google_analytics", OccurredAt: forgetNow, AnonymousID: "a1", Properties: []byte("{}")}
	if err := w.InsertEvents(ctx, []ingest.Row{{Event: visit, Topic: "campaign.events"}}); err != nil {
		t.Fatal(err)
	}
	a.clock = received.Add(time.Second)
	if _, err := a.resolver.Update(ctx); err != nil {
		t.Fatal(err)
	}
	var keys []string
	rows, err := a.conn.Query(ctx, "SELECT concat(identifier, ' -> ', customer_id) FROM identity_map FINAL WHERE identifier IN ('anon:a1', 'crm:C1') OR customer_id IN ('anon:a1', 'crm:C1') OR identifier LIKE 'email:%' AND customer_id = 'crm:C1'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if !slices.Equal(keys, []string{"anon:a1 -> anon:a1"}) {
		t.Errorf("after the device came back, identity_map holds %q; want only anon:a1 -> anon:a1", keys)
	}
	for _, fd := range testenv.FindInTables(t, a.conn, a.target.Database, []string{"crm:C1", aliceHash}, false) {
		t.Errorf("came back after the erasure: %s", fd)
	}
}

// An id that names no customer is refused, and nothing is removed.
func TestForgetUnknownCustomer(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	_, err := identity.Forget(context.Background(), conn, target, "nobody@example.com", forgetKey, identity.ForgetOptions{})
	if err == nil || !strings.Contains(err.Error(), "no such customer") || strings.Contains(err.Error(), "nobody@") {
		t.Errorf("err %v; want no such customer, without the address", err)
	}
}
