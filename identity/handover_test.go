package identity_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
)

// The transform role moves from one process to another and back: the
// resolver that gets it back reloads the graph the other one extended
// instead of writing from its stale memory, so a person linked across the
// two stays one customer. A resolver whose fence refuses writes nothing.
func TestResolverReloadsWhenTheRoleComesBack(t *testing.T) {
	db := newClocked(t)
	conn, store, resolver := db.conn, db.store, db.resolver
	ctx := context.Background()
	update := func(r *identity.Resolver) {
		t.Helper()
		if _, err := r.Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a, b := resolver(), resolver()
	t0 := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	store(t0, marchEvent("v1", events.TypeWebVisit, 1, "", "", "A"))
	update(a)
	store(t0.Add(time.Hour), marchEvent("f1", events.TypeFormSubmitted, 2, "", "E", "A"))
	update(b) // the role moved to b: anonymous A joins email E

	// b loses the role to a: its fence refuses, and its update writes nothing.
	store(t0.Add(2*time.Hour), marchEvent("c1", events.TypeContactUpserted, 3, "C", "E", ""))
	lost := errors.New("another process holds the transform role")
	b.Fence = func(context.Context) error { return lost }
	if _, err := b.Update(ctx); !errors.Is(err, lost) {
		t.Fatalf("fenced update returned %v, want the fence's error", err)
	}
	var staged, resolved uint64
	if err := conn.QueryRow(ctx, "SELECT (SELECT count() FROM resolve_staging WHERE event_id = 'c1'), (SELECT count() FROM resolved_events)").Scan(&staged, &resolved); err != nil {
		t.Fatal(err)
	}
	if staged != 0 || resolved != 2 {
		t.Errorf("after the fenced update: new event staged %d times, %d resolved events; want 0 and the 2 of before", staged, resolved)
	}

	update(a) // a has the role back: it must know that A and E are one person
	got := resolvedCustomers(t, conn)
	for _, id := range []string{"v1", "f1", "c1"} {
		if !slices.Equal(got[id], []string{"crm:C"}) {
			t.Errorf("event %s resolves to %v, want [crm:C]", id, got[id])
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM customers FINAL WHERE merged_into = ''").Scan(&n); err != nil || n != 1 {
		t.Errorf("%d live customers (%v), want 1", n, err)
	}
}
