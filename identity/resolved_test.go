package identity_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// TestResolvedColumnsCoverEventsSource: a raw column added to the events
// source must also be kept in resolved_events, or customer measures could
// not filter on it.
func TestResolvedColumnsCoverEventsSource(t *testing.T) {
	for name, col := range catalog.Sources["events"].Columns {
		if col.Layer == 1 && col.Expr == "" && !slices.Contains(identity.ResolvedColumns, name) {
			t.Errorf("events source column %q is not in identity.ResolvedColumns (and the resolved_events migration)", name)
		}
		for _, u := range col.Uses {
			if !slices.Contains(identity.ResolvedColumns, u) {
				t.Errorf("column %q uses %q, which resolved_events does not keep", name, u)
			}
		}
	}
}

// resolvedCustomers reads resolved_events the way KPIs do: event_id → customer now.
func resolvedCustomers(t *testing.T, conn store.Conn) map[string][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT event_id, customer FROM ("+identity.ResolvedSQL([]string{"event_id"}, "", true)+") ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id, cust string
		if err := rows.Scan(&id, &cust); err != nil {
			t.Fatal(err)
		}
		out[id] = append(out[id], cust)
	}
	return out
}

// An anonymous visitor links to an email, which later links to a CRM
// contact: two merges in a row. Every event of the person, resolved under
// whichever id was canonical when it arrived, reads as the CRM customer; a
// re-delivered event stays one row; a restarted resolver keeps the chain.
func TestResolvedEventsFollowChainedMerges(t *testing.T) {
	db := newClocked(t)
	conn, store, resolver := db.conn, db.store, db.resolver
	ctx := context.Background()
	r := resolver()
	update := func() identity.UpdateStats {
		t.Helper()
		st, err := r.Update(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	t0 := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	store(t0, marchEvent("v1", events.TypeWebVisit, 1, "", "", "A"), marchEvent("v2", events.TypeWebVisit, 2, "", "", "A"))
	update()
	store(t0.Add(time.Hour), marchEvent("f1", events.TypeFormSubmitted, 3, "", "E", "A"))
	if st := update(); st.Merged != 1 {
		t.Fatalf("anon→email merged %d customers, want 1", st.Merged)
	}
	// v1 is delivered again after it was resolved, with a later ingest time.
	store(t0.Add(2*time.Hour), marchEvent("c1", events.TypeContactUpserted, 4, "C", "E", ""), marchEvent("v1", events.TypeWebVisit, 1, "", "", "A"))
	if st := update(); st.Merged != 1 {
		t.Fatalf("email→crm merged %d customers, want 1", st.Merged)
	}
	want := map[string][]string{"v1": {"crm:C"}, "v2": {"crm:C"}, "f1": {"crm:C"}, "c1": {"crm:C"}}
	check := func(when string) {
		t.Helper()
		got := resolvedCustomers(t, conn)
		if len(got) != len(want) {
			t.Fatalf("%s: resolved events %v, want %v", when, got, want)
		}
		for id, w := range want {
			if !slices.Equal(got[id], w) {
				t.Errorf("%s: event %s resolves to %v, want %v", when, id, got[id], w)
			}
		}
	}
	check("after the second merge")

	// The CRM customer's 360 holds all four events; a customer measure counts one person.
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM customers FINAL WHERE merged_into = ''").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d live customers (%v), want 1", n, err)
	}
	var first time.Time
	if err := conn.QueryRow(ctx, "SELECT first_seen FROM customers FINAL WHERE customer_id = 'crm:C'").Scan(&first); err != nil || first.Day() != 1 {
		t.Fatalf("crm:C first seen %s (%v), want March 1 (the anonymous visit)", first, err)
	}

	// A restart loads the merges; a later link of another anonymous id joins the same customer.
	r = resolver()
	store(t0.Add(3*time.Hour), marchEvent("v3", events.TypeAppSession, 5, "", "E", "B"))
	update()
	want["v3"] = []string{"crm:C"}
	check("after a restart")
	if err := conn.QueryRow(ctx, "SELECT count() FROM customers FINAL WHERE merged_into = ''").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d live customers after restart (%v), want 1", n, err)
	}

	// A link stored late, with an ingest time before the watermark (another
	// ingest process's slow insert), is still read and merges two customers.
	store(t0.Add(4*time.Hour), marchEvent("l1", events.TypeWebVisit, 6, "", "", "L"))
	update()
	store(t0.Add(4*time.Hour-time.Minute), marchEvent("l2", events.TypeFormSubmitted, 6, "", "E", "L"))
	db.clock = t0.Add(4*time.Hour + time.Second)
	if st := update(); st.Merged != 1 {
		t.Fatalf("late link merged %d customers, want 1", st.Merged)
	}
	want["l1"], want["l2"] = []string{"crm:C"}, []string{"crm:C"}
	check("after a late link")
}

// An incremental update of thousands of customers sends their ids beside
// the query: a list in the SQL text would pass ClickHouse's max_query_size
// (256 KiB) at about 3,500 email ids.
func TestIncrementalUpdateOfManyCustomers(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	w := ingest.NewClickHouseWriter(conn, 1024)
	visit := func(i int) ingest.Row {
		return ingest.Row{Topic: "campaign.events", Event: events.Event{EventID: fmt.Sprintf("v%d", i), Type: events.TypeWebVisit, Source: "test",
			OccurredAt: time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC), EmailHash: fmt.Sprintf("%064d", i)}}
	}
	if err := w.InsertEvents(ctx, []ingest.Row{visit(0)}); err != nil {
		t.Fatal(err)
	}
	r := identity.NewResolver(conn, nil)
	if _, err := r.Update(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 6000
	var rows []ingest.Row
	for i := 1; i <= n; i++ {
		rows = append(rows, visit(i))
	}
	if err := w.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	r.FullRebuildAbove = 2 * n
	st, err := r.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.FullRebuld || st.Customers < n { // the overlap may re-read the first customer
		t.Fatalf("update %+v, want %d customers recomputed incrementally", st, n)
	}
	var count uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM customers FINAL WHERE merged_into = ''").Scan(&count); err != nil || count != n+1 {
		t.Fatalf("%d customers (%v), want %d", count, err, n+1)
	}
}

// A crash after events were added to resolved_events but before their
// customers were recomputed: the next resolver finishes the unfinished run.
func TestResolverRecoversAnUnfinishedRun(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	w := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return at })
	if err := w.InsertEvents(ctx, []ingest.Row{{Topic: "campaign.events", Event: events.Event{EventID: "f1", Type: events.TypeFormSubmitted,
		Source: "test", OccurredAt: at.Add(-time.Hour), EmailHash: "E", AnonymousID: "A"}}}); err != nil {
		t.Fatal(err)
	}
	// What the crashed update did: stage and resolve the event, nothing more.
	for _, q := range []store.Query{identity.StageEventsQuery(time.Unix(0, 0), at, true, false), identity.ResolveStagedQuery(7)} {
		if err := conn.Exec(ctx, q.SQL, q.Args...); err != nil {
			t.Fatal(err)
		}
	}
	st, err := identity.NewResolver(conn, nil).Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 2 || st.Customers != 1 {
		t.Fatalf("update after the crash: %+v, want the event's 2 keys linked into 1 customer", st)
	}
	var cust string
	if err := conn.QueryRow(ctx, "SELECT customer_id FROM identity_map FINAL WHERE identifier = 'anon:A'").Scan(&cust); err != nil || cust != "email:E" {
		t.Fatalf("anon:A maps to %q (%v), want email:E", cust, err)
	}
}

// Events the window cannot see — stored with an ingest time long past, as a
// bulk load may — are resolved by the full check of a new process, and by
// the periodic one.
func TestFullCheckResolvesEventsOutsideTheWindow(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	storeAt := func(at time.Time, id string) {
		t.Helper()
		w := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return at })
		if err := w.InsertEvents(ctx, []ingest.Row{{Topic: "campaign.events", Event: events.Event{EventID: id, Type: events.TypeWebVisit,
			Source: "test", OccurredAt: at.Add(-time.Hour), AnonymousID: id}}}); err != nil {
			t.Fatal(err)
		}
	}
	resolved := func() uint64 {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM resolved_events").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	newResolver := func() *identity.Resolver {
		r := identity.NewResolver(conn, nil)
		r.Now = func() time.Time { return now }
		return r
	}
	storeAt(now, "a")
	r := newResolver()
	if _, err := r.Update(ctx); err != nil || resolved() != 1 {
		t.Fatalf("first update: %d resolved (%v), want 1", resolved(), err)
	}
	storeAt(now.Add(-24*time.Hour), "old") // a day before the window
	storeAt(now.Add(time.Second), "b")
	now = now.Add(time.Minute)
	if _, err := r.Update(ctx); err != nil || resolved() != 2 {
		t.Fatalf("window update: %d resolved (%v), want 2 (the old event is outside the window)", resolved(), err)
	}
	if _, err := newResolver().Update(ctx); err != nil || resolved() != 3 {
		t.Fatalf("a new process's first update: %d resolved (%v), want 3", resolved(), err)
	}
	storeAt(now.Add(-48*time.Hour), "older")
	r.FullCheckEvery = 0
	if _, err := r.Update(ctx); err != nil || resolved() != 4 {
		t.Fatalf("periodic full check: %d resolved (%v), want 4", resolved(), err)
	}
}

// A staged event that resolved_events already holds (a re-delivered copy
// stored while staging checked) is not resolved twice.
func TestResolveSkipsStagedEventsAlreadyResolved(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	if err := ingest.NewClickHouseWriter(conn, 1024).InsertEvents(ctx, []ingest.Row{{Topic: "campaign.events", Event: events.Event{EventID: "e1",
		Type: events.TypeWebVisit, Source: "test", OccurredAt: time.Now().Add(-time.Hour), AnonymousID: "A"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewResolver(conn, nil).Update(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO resolve_staging (event_id, type, occurred_at, source, ingested_at, identifier) SELECT event_id, type, occurred_at, source, ingested_at, identifier FROM resolved_events"); err != nil {
		t.Fatal(err)
	}
	q := identity.ResolveStagedQuery(99)
	if err := conn.Exec(ctx, q.SQL, q.Args...); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM resolved_events WHERE event_id = 'e1'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("e1 has %d rows in resolved_events (%v), want 1", n, err)
	}
}
