package transform_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/transform"
)

// OnlyTypes of a computed column must hold every type for which its
// expression can be non-empty, or pushed conditions would drop real rows.
func TestOnlyTypesCoverTheExpression(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	for name, col := range catalog.Sources["events"].Columns {
		if len(col.OnlyTypes) == 0 {
			continue
		}
		for _, typ := range append(slices.Clone(events.CRMTypes), events.CampaignTypes...) {
			var v string
			// Every raw text column set, so no branch of the expression is empty for want of data.
			q := "SELECT toString(" + col.Expr + ") FROM (SELECT ? AS type, 'web' AS order_channel, 'x' AS crm_contact_id, 'x' AS email_hash, 'x' AS anonymous_id, 1 AS amount, toDate('2026-03-01') AS stat_date, 'paid_search' AS channel)"
			if err := conn.QueryRow(context.Background(), q, string(typ)).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != "" && !slices.Contains(col.OnlyTypes, string(typ)) {
				t.Errorf("%s is %q for %s, which its OnlyTypes leaves out", name, v, typ)
			}
		}
	}
}

// count_groups_with_min_distinct counts groups with at least min distinct
// values, through both of its plans (min 2, and any other min).
func TestCountGroupsWithMinDistinct(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	day := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	var rows []ingest.Row
	touch := func(id, anon string, typ events.Type, orderChannel string) {
		rows = append(rows, ingest.Row{Topic: typ.Topic(), Event: events.Event{EventID: id, Type: typ, Source: "test", OccurredAt: day,
			AnonymousID: anon, OrderChannel: orderChannel}})
	}
	touch("x1", "X", events.TypeWebVisit, "")
	touch("x2", "X", events.TypeEmailOpened, "")
	touch("x3", "X", events.TypeAppSession, "")
	touch("x4", "X", events.TypeWebVisit, "") // a repeat channel
	touch("y1", "Y", events.TypeWebVisit, "")
	touch("y2", "Y", events.TypeOrderPlaced, "store")
	touch("y3", "Y", events.TypeEmailSent, "") // not a touch
	touch("z1", "Z", events.TypeFormSubmitted, "")
	if err := ingest.NewClickHouseWriter(conn, 1024).InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewResolver(conn, nil).Update(ctx); err != nil {
		t.Fatal(err)
	}
	life, _ := catalog.ParseWindow("lifetime")
	for min, want := range map[int]float64{1: 3, 2: 2, 3: 1, 4: 0} {
		m := &catalog.Measure{Source: "events", Aggregate: "count_groups_with_min_distinct", Field: "touch_channel", GroupBy: "customer", Min: min, TimeField: "occurred_at",
			Where: map[string]catalog.Condition{"touch_channel": {Op: "ne", Values: []string{""}}}}
		q, err := transform.Compile(m, "", transform.NewParams(life, day.Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		got := 0.0
		if err := conn.QueryRow(ctx, q.SQL, q.Args...).Scan(new(string), &got); err != nil && want != 0 {
			t.Fatalf("min %d: %v\n%s", min, err, q.SQL)
		}
		if got != want {
			t.Errorf("min %d: %v customers, want %v\n%s", min, got, want, q.SQL)
		}
	}
}
