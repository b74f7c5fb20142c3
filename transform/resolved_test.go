package transform_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// TestResolvedColumnsCoverEventsSource: a raw column added to the events
// source must also be kept in resolved_events, or customer measures could
// not filter on it.
func TestResolvedColumnsCoverEventsSource(t *testing.T) {
	for name, col := range catalog.Sources["events"].Columns {
		if col.Layer == 1 && col.Expr == "" && !slices.Contains(transform.ResolvedColumns, name) {
			t.Errorf("events source column %q is not in transform.ResolvedColumns (and the resolved_events migration)", name)
		}
		for _, u := range col.Uses {
			if !slices.Contains(transform.ResolvedColumns, u) {
				t.Errorf("column %q uses %q, which resolved_events does not keep", name, u)
			}
		}
	}
}

// resolvedCustomers reads resolved_events the way KPIs do: event_id → customer now.
func resolvedCustomers(t *testing.T, conn store.Conn) map[string][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT event_id, customer FROM ("+transform.ResolvedSQL([]string{"event_id"}, "", true)+") ORDER BY event_id")
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
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	ev := func(id string, typ events.Type, day int, crm, email, anon string) ingest.Row {
		return ingest.Row{Topic: typ.Topic(), Event: events.Event{EventID: id, Type: typ, Source: "test",
			OccurredAt: time.Date(2026, 3, day, 10, 0, 0, 0, time.UTC), CRMContactID: crm, EmailHash: email, AnonymousID: anon}}
	}
	store := func(ts time.Time, rows ...ingest.Row) {
		t.Helper()
		if err := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return ts }).InsertEvents(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	r := transform.NewResolver(conn, nil)
	update := func() transform.UpdateStats {
		t.Helper()
		st, err := r.Update(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	t0 := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	store(t0, ev("v1", events.TypeWebVisit, 1, "", "", "A"), ev("v2", events.TypeWebVisit, 2, "", "", "A"))
	update()
	store(t0.Add(time.Hour), ev("f1", events.TypeFormSubmitted, 3, "", "E", "A"))
	if st := update(); st.Merged != 1 {
		t.Fatalf("anon→email merged %d customers, want 1", st.Merged)
	}
	// v1 is delivered again after it was resolved, with a later ingest time.
	store(t0.Add(2*time.Hour), ev("c1", events.TypeContactUpserted, 4, "C", "E", ""), ev("v1", events.TypeWebVisit, 1, "", "", "A"))
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
	r = transform.NewResolver(conn, nil)
	store(t0.Add(3*time.Hour), ev("v3", events.TypeAppSession, 5, "", "E", "B"))
	update()
	want["v3"] = []string{"crm:C"}
	check("after a restart")
	if err := conn.QueryRow(ctx, "SELECT count() FROM customers FINAL WHERE merged_into = ''").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d live customers after restart (%v), want 1", n, err)
	}
}
