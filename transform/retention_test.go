package transform_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// The transform role applies retention as it starts, and stops with it.
func TestRunRetentionAppliesAtStart(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	for _, at := range []string{"2020-01-15 00:00:00", "2099-01-15 00:00:00"} {
		if err := conn.Exec(ctx, "INSERT INTO dead_letters (reason, topic, `offset`, failed_at) SELECT 'invalid_json', 't', 1, toDateTime('"+at+"', 'UTC')"); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		transform.RunRetention(run, conn, target, store.DefaultRetention(), cat, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(20 * time.Second)
	var left uint64
	for time.Now().Before(deadline) {
		if err := conn.QueryRow(ctx, "SELECT count() FROM dead_letters").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunRetention did not stop with its context")
	}
	if left != 1 {
		t.Errorf("dead_letters holds %d rows, want the 2099 one only", left)
	}
}

// Baselines set at a date keep that day's totals; fixed values need none.
func TestBaselineDays(t *testing.T) {
	v := 3.0
	cat := &catalog.Catalog{KPIs: []catalog.KPI{
		{Name: "leads", Baseline: &catalog.Baseline{At: "2026-09-01"}},
		{Name: "orders", Baseline: &catalog.Baseline{Value: &v}},
		{Name: "revenue"},
	}}
	got := transform.BaselineDays(cat)
	if len(got) != 1 || got[0].KPI != "leads" || !got[0].Day.Equal(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("BaselineDays = %+v", got)
	}
}
