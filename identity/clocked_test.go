package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// clocked is a fresh database whose events are stored at ingest times the
// test chooses, with resolvers whose clock is a second after the last store.
type clocked struct {
	t     *testing.T
	conn  store.Conn
	clock time.Time
}

func newClocked(t *testing.T) *clocked {
	_, conn := testenv.MigratedClickHouse(t)
	return &clocked{t: t, conn: conn}
}

// store stores rows as ingested at ts.
func (c *clocked) store(ts time.Time, rows ...ingest.Row) {
	c.t.Helper()
	c.clock = ts.Add(time.Second)
	if err := ingest.NewClickHouseWriter(c.conn, 1024).WithClock(func() time.Time { return ts }).InsertEvents(context.Background(), rows); err != nil {
		c.t.Fatal(err)
	}
}

// resolver is a new resolver (a restart) on the store's clock.
func (c *clocked) resolver() *identity.Resolver {
	r := identity.NewResolver(c.conn, nil)
	r.Now = func() time.Time { return c.clock }
	return r
}

// marchEvent is event id of type typ on the given day of March 2026 at
// 10:00, with the given CRM id, email hash and anonymous id ("" for none).
func marchEvent(id string, typ events.Type, day int, crm, email, anon string) ingest.Row {
	return ingest.Row{Topic: typ.Topic(), Event: events.Event{EventID: id, Type: typ, Source: "test",
		OccurredAt: time.Date(2026, 3, day, 10, 0, 0, 0, time.UTC), CRMContactID: crm, EmailHash: email, AnonymousID: anon}}
}
