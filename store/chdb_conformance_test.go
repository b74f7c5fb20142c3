//go:build chdb

package store_test

// The conformance test applies kpibridge's SQL on current ClickHouse, in
// process, through chDB (the npm package @chdb/lib-linux-x64-gnu, loaded by
// chdb-go). Debian's 18.16 server covers the old end in the integration tests;
// this covers the new end, which the docker-compose deployment runs.
//
//	CHDB_LIB_PATH=$(scripts/chdb.sh) go test -tags chdb ./store/

import (
	"testing"
	"time"

	"github.com/chdb-io/chdb-go/chdb"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/internal/chdbtest"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

func chdbQuery(t *testing.T, s *chdb.Session, sql string) string {
	t.Helper()
	return chdbtest.Query(t, s, sql)
}

func TestChDBConformance(t *testing.T) {
	s := chdbtest.Session(t, "conformance")
	t.Logf("chDB version %s", chdbQuery(t, s, "SELECT version()"))
	chdbtest.Migrate(t, s)
	for _, table := range []string{"events", "dead_letters", "duplicates", "identity_map", "customers", "kpi_values", "kpi_runs", "resolved_events", "customer_merges", "resolve_staging", "kpi_baselines"} {
		if got := chdbQuery(t, s, "SELECT count() FROM system.tables WHERE database = 'conformance' AND name = '"+table+"'"); got != "1" {
			t.Errorf("table %s not created on current ClickHouse", table)
		}
	}
	// The documented read pattern: a re-delivered event is one row with FINAL.
	for range 2 {
		chdbQuery(t, s, `INSERT INTO events (event_id, type, occurred_at, source, topic, `+"`partition`, `offset`"+`, ingested_at)
			VALUES ('e1', 'order.placed', '2026-01-02 03:04:05', 'shopify', 'crm.events', 0, 1, now())`)
	}
	if got := chdbQuery(t, s, "SELECT count() FROM events FINAL WHERE event_id = 'e1'"); got != "1" {
		t.Errorf("events FINAL returns %s rows for one re-delivered event, want 1", got)
	}
	for _, q := range conformanceQueries {
		chdbQuery(t, s, q)
	}
	// Every query the default KPI catalog compiles to, total and per dimension.
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	n := 0
	for _, k := range cat.KPIs {
		for _, m := range []*catalog.Measure{k.Measure, k.Numerator, k.Denominator} {
			if m == nil {
				continue
			}
			for _, d := range append([]string{""}, k.Dimensions...) {
				q, err := transform.Compile(m, d, transform.NewParams(k.Window, now))
				if err != nil {
					t.Fatal(err)
				}
				sql := inline(t, q)
				if res, err := s.Query(sql, "TSV"); err != nil {
					t.Errorf("kpi %s by %q fails on current ClickHouse: %v\n%s", k.Name, d, err, sql)
				} else {
					if err := res.Error(); err != nil {
						t.Errorf("kpi %s by %q fails on current ClickHouse: %v\n%s", k.Name, d, err, sql)
					}
					res.Free()
				}
				n++
			}
		}
	}
	t.Logf("%d KPI queries ran on current ClickHouse", n)
	// chDB takes no external tables: the changed customers go in a table of the same name.
	chdbQuery(t, s, "CREATE TABLE "+identity.ChangedCustomersTable+" (customer_id String) ENGINE = Memory")
	chdbQuery(t, s, "INSERT INTO "+identity.ChangedCustomersTable+" VALUES ('crm:1'), ('anon:x')")
	all, err := identity.CustomersQuery(nil, true, now, cat.Settings)
	if err != nil {
		t.Fatal(err)
	}
	some, err := identity.CustomersQuery([]string{"crm:1", "anon:x"}, false, now, cat.Settings)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.Query{identity.StageEventsQuery(now.Add(-time.Hour), now, false, false), identity.StageEventsQuery(now.Add(-time.Hour), now, true, false), identity.StageEventsQuery(now.Add(-time.Hour), now, true, true), identity.ResolveStagedQuery(1), all, some} {
		chdbQuery(t, s, inline(t, q))
	}
}

func inline(t *testing.T, q store.Query) string {
	t.Helper()
	sql, err := chdbtest.Inline(q)
	if err != nil {
		t.Fatal(err)
	}
	return sql
}

// conformanceQueries are the read patterns kpibridge documents for analysts;
// later issues append their KPI SQL here.
var conformanceQueries = []string{
	"SELECT type, uniqExact(event_id) FROM events WHERE occurred_at >= now() - INTERVAL 30 DAY GROUP BY type",
	"SELECT reason, count() FROM dead_letters FINAL GROUP BY reason",
	// The scorecard's history, baselines and backfill (package scorecard, transform.Backfill).
	"SELECT kpi, toDate(computed_at) AS day, argMax(value, computed_at), max(computed_at) FROM kpi_values WHERE dimension = '' AND computed_at >= toDateTime('2026-01-01 00:00:00', 'UTC') AND computed_at <= toDateTime('2026-04-01 00:00:00', 'UTC') AND has(['leads', 'cac'], kpi) GROUP BY kpi, day ORDER BY kpi, day",
	"SELECT argMax(value, computed_at), count() FROM kpi_values WHERE kpi = 'leads' AND dimension = '' AND computed_at < toDateTime('2026-03-02 00:00:00', 'UTC')",
	"SELECT kpi, argMax(value, seq) FROM kpi_baselines GROUP BY kpi",
	"SELECT kpi, value, at, set_by, set_at, previous, had_previous FROM kpi_baselines ORDER BY seq, kpi",
	"SELECT kpi, computed_at FROM kpi_runs WHERE ok = 1 AND computed_at >= toDateTime('2026-01-01 00:00:00', 'UTC')",
}
