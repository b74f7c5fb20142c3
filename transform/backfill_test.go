package transform_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/transform"
)

// Backfilled history is what the transform would have computed at those
// times (the golden values at goldenNow), and a second run adds nothing.
func TestBackfillIsTheHistoryAndIdempotent(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	loadResolvedGolden(t, conn)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	st, err := transform.Backfill(ctx, conn, cat, goldenNow.Add(-48*time.Hour), goldenNow, 24*time.Hour, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if st.Points != 3 || st.Computed != 3*len(cat.KPIs) || st.Failed != 0 || strings.Count(progress.String(), "\n") != 3 {
		t.Errorf("backfill %+v, progress:\n%s", st, progress.String())
	}
	for kpi, want := range map[string]float64{"revenue": golden["revenue"].total, "cac": golden["cac"].total, "churn_rate": golden["churn_rate"].total} {
		var got float64
		if err := conn.QueryRow(ctx, "SELECT value FROM kpi_values WHERE kpi = ? AND dimension = '' AND computed_at = ?", kpi, goldenNow).Scan(&got); err != nil || !near(got, want) {
			t.Errorf("backfilled %s at %s = %v (%v), want the golden %v", kpi, goldenNow, got, err, want)
		}
	}
	st, err = transform.Backfill(ctx, conn, cat, goldenNow.Add(-48*time.Hour), goldenNow, 24*time.Hour, nil)
	if err != nil || st.Computed != 0 || st.Skipped != 3*len(cat.KPIs) {
		t.Errorf("second backfill %+v (%v), want everything skipped", st, err)
	}
	if _, err := transform.Backfill(ctx, conn, cat, goldenNow, goldenNow.Add(-time.Hour), 24*time.Hour, nil); err == nil {
		t.Error("a range that ends before it starts was accepted")
	}
}
