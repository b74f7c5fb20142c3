package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// retentionNow is the clock of the retention tests.
var retentionNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// retentionFixture is rows around each table's cutoff at retentionNow with
// the default retention, named by what should become of them. Dead letters
// and duplicates keep 90 days (cutoff 2026-03-17 12:00, exact); KPI history
// keeps 400 days in whole months (2025-05-11, so the cutoff is 2025-05-01);
// the total of orders on 2024-09-10 is a baseline's day.
var retentionFixture = []struct {
	table, id string
	at        time.Time
	kept      bool
}{
	{"dead_letters", "old month", time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), false},
	{"dead_letters", "an hour too old", time.Date(2026, 3, 17, 11, 0, 0, 0, time.UTC), false},
	{"dead_letters", "an hour young enough", time.Date(2026, 3, 17, 13, 0, 0, 0, time.UTC), true},
	{"dead_letters", "today", retentionNow, true},
	{"duplicates", "old month", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
	{"duplicates", "a day too old", time.Date(2026, 3, 16, 12, 0, 0, 0, time.UTC), false},
	{"duplicates", "a day young enough", time.Date(2026, 3, 18, 12, 0, 0, 0, time.UTC), true},
	{"kpi_values", "old month", time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), false},
	{"kpi_values", "last hour before the cutoff month", time.Date(2025, 4, 30, 23, 0, 0, 0, time.UTC), false},
	{"kpi_values", "older than 400 days, in the cutoff month", time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC), true},
	{"kpi_values", "recent", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), true},
	{"kpi_values", "baseline day total", time.Date(2024, 9, 10, 12, 0, 0, 0, time.UTC), true},
	{"kpi_values", "baseline day, by channel", time.Date(2024, 9, 10, 12, 0, 0, 0, time.UTC), false},
	{"kpi_values", "baseline day, another KPI", time.Date(2024, 9, 10, 12, 0, 0, 0, time.UTC), false},
	{"kpi_runs", "old month", time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC), false},
	{"kpi_runs", "recent", time.Date(2025, 5, 3, 0, 0, 0, 0, time.UTC), true},
}

// insertRetentionFixture writes the fixture with INSERT … SELECT (which
// the native protocol runs as one statement on any server); the id goes
// into a String column of each table.
func insertRetentionFixture(t *testing.T, exec func(sql string)) {
	t.Helper()
	for _, r := range retentionFixture {
		at := "toDateTime('" + r.at.Format("2006-01-02 15:04:05") + "', 'UTC')"
		switch r.table {
		case "dead_letters":
			exec(fmt.Sprintf("INSERT INTO dead_letters (reason, detail, topic, `offset`, failed_at) SELECT 'invalid_json', '%s', 't', %d, %s", r.id, r.at.Unix(), at))
		case "duplicates":
			exec(fmt.Sprintf("INSERT INTO duplicates (event_id, topic, `offset`, seen_at) SELECT '%s', 't', %d, %s", r.id, r.at.Unix(), at))
		case "kpi_values":
			kpi, dim := "orders", ""
			switch r.id {
			case "baseline day, by channel":
				dim = "channel"
			case "baseline day, another KPI":
				kpi = "revenue"
			}
			exec(fmt.Sprintf("INSERT INTO kpi_values (kpi, dimension, dimension_value, window, computed_at) SELECT '%s', '%s', '%s', '7d', %s", kpi, dim, r.id, at))
		case "kpi_runs":
			exec(fmt.Sprintf("INSERT INTO kpi_runs (kpi, computed_at, error) SELECT 'orders', %s, '%s'", at, r.id))
		}
	}
}

// retentionIDColumn is the column of each table insertRetentionFixture puts the id in.
var retentionIDColumn = map[string]string{"dead_letters": "detail", "duplicates": "event_id", "kpi_values": "dimension_value", "kpi_runs": "error"}

// checkRetained compares what each table holds with the fixture; query
// returns the ids of a table, one per line.
func checkRetained(t *testing.T, ids func(table string) []string) {
	t.Helper()
	for table := range retentionIDColumn {
		var want []string
		for _, r := range retentionFixture {
			if r.table == table && r.kept {
				want = append(want, r.id)
			}
		}
		got := ids(table)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s keeps %q, want %q", table, got, want)
		}
	}
}

var baselineDay = []store.KeptDay{{KPI: "orders", Day: time.Date(2024, 9, 10, 0, 0, 0, 0, time.UTC)}}

// TestRetentionRemovesOnlyWhatIsOlder applies the default retention to
// rows on both sides of each cutoff: what is older goes (whole months as
// dropped partitions, the rest by mutation), what is newer stays, and so
// does a baseline's day. A second run finds nothing more to remove.
func TestRetentionRemovesOnlyWhatIsOlder(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	insertRetentionFixture(t, func(sql string) {
		if err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	})
	aged, err := store.ApplyRetention(ctx, conn, target, store.DefaultRetention(), baselineDay, retentionNow)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range aged {
		got[a.Table] = fmt.Sprintf("%d rows, months %s, before %s", a.Rows, strings.Join(a.Partitions, " "), a.Cutoff.Format(time.RFC3339))
	}
	want := map[string]string{
		"dead_letters": "2 rows, months 202512, before 2026-03-17T12:00:00Z",
		"duplicates":   "2 rows, months 202501, before 2026-03-17T12:00:00Z",
		// 202409 holds a baseline's day: its other rows go by mutation.
		"kpi_values": "4 rows, months 202502 202504, before 2025-05-01T00:00:00Z",
		"kpi_runs":   "1 rows, months 202503, before 2025-05-01T00:00:00Z",
	}
	for table, w := range want {
		if got[table] != w {
			t.Errorf("%s: removed %q, want %q", table, got[table], w)
		}
	}
	checkRetained(t, func(table string) []string {
		rows, err := conn.Query(ctx, "SELECT "+retentionIDColumn[table]+" FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	})
	again, err := store.ApplyRetention(ctx, conn, target, store.DefaultRetention(), baselineDay, retentionNow)
	if err != nil || len(again) != 0 {
		t.Errorf("second run removed %+v (err %v), want nothing", again, err)
	}
	off := store.Retention{Interval: time.Hour}
	if aged, err := store.ApplyRetention(ctx, conn, target, off, nil, retentionNow.AddDate(10, 0, 0)); err != nil || len(aged) != 0 {
		t.Errorf("retention 0 (keep forever) removed %+v (err %v)", aged, err)
	}
}
