package transform_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/leader"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// countRows returns count() of query.
func countRows(t *testing.T, conn store.Conn, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A round written twice at the same computed_at is stored once; one cut
// between its two inserts is completed by CompleteRounds or by writing it
// again, never doubled.
func TestWriteRoundOnceAndWhole(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	at := goldenNow.Add(1500 * time.Millisecond) // stored to the second
	round := []transform.Result{
		{KPI: "revenue", ComputedAt: at, Window: "30d", Series: []transform.Series{{Result: 10}, {Dimension: "channel", Value: "web", Result: 10}}},
		{KPI: "broken", ComputedAt: at, Err: errors.New("timeout")},
	}
	for range 2 {
		if err := transform.WriteRound(ctx, conn, round, nil); err != nil {
			t.Fatal(err)
		}
	}
	if v, r := countRows(t, conn, "SELECT count() FROM kpi_values"), countRows(t, conn, "SELECT count() FROM kpi_runs"); v != 2 || r != 2 {
		t.Errorf("after writing the round twice: %d kpi_values rows, %d kpi_runs rows; want 2 and 2", v, r)
	}

	// Cut between the inserts: the fence says yes to kpi_values, no to kpi_runs.
	next := []transform.Result{{KPI: "revenue", ComputedAt: at.Add(time.Minute), Series: []transform.Series{{Result: 11}, {Dimension: "channel", Value: "web", Result: 11}}}}
	var asked atomic.Int32
	fence := transform.Fence(func(context.Context) error {
		if asked.Add(1) > 1 {
			return leader.ErrNotActive
		}
		return nil
	})
	if err := transform.WriteRound(ctx, conn, next, fence); !errors.Is(err, transform.ErrFenced) || !errors.Is(err, leader.ErrNotActive) {
		t.Fatalf("fenced write returned %v, want ErrFenced wrapping leader.ErrNotActive", err)
	}
	if v, r := countRows(t, conn, "SELECT count() FROM kpi_values"), countRows(t, conn, "SELECT count() FROM kpi_runs"); v != 4 || r != 2 {
		t.Fatalf("after the cut round: %d kpi_values rows, %d kpi_runs rows; want 4 and 2", v, r)
	}
	n, err := transform.CompleteRounds(ctx, conn, goldenNow.Add(-time.Hour), nil)
	if err != nil || n != 1 {
		t.Fatalf("CompleteRounds = %d, %v; want 1 run written", n, err)
	}
	if series := countRows(t, conn, "SELECT sum(series) FROM kpi_runs WHERE computed_at = ? AND ok = 1", at.Add(time.Minute)); series != 2 {
		t.Errorf("completed run has %d series, want the 2 stored", series)
	}
	// Written again (a new active process computing at the same second), and completed again: nothing doubles.
	if err := transform.WriteRound(ctx, conn, next, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := transform.CompleteRounds(ctx, conn, goldenNow.Add(-time.Hour), nil); err != nil || n != 0 {
		t.Errorf("second CompleteRounds = %d, %v; want nothing to do", n, err)
	}
	if v, r := countRows(t, conn, "SELECT count() FROM kpi_values"), countRows(t, conn, "SELECT count() FROM kpi_runs"); v != 4 || r != 3 {
		t.Errorf("at the end: %d kpi_values rows, %d kpi_runs rows; want 4 and 3", v, r)
	}
}

// A scheduler whose fence refuses (this process lost the transform role)
// stops before it writes anything more: no round, no identity step, and
// Run returns the refusal.
func TestSchedulerStepsDownWhenFenced(t *testing.T) {
	s, conn := newScheduler(t)
	ctx := context.Background()
	var lost atomic.Bool
	s.SetFence(func(context.Context) error {
		if lost.Load() {
			return leader.ErrNotActive
		}
		return nil
	})
	if err := s.RunDue(ctx, goldenNow); err != nil {
		t.Fatalf("round while active: %v", err)
	}
	if r := countRows(t, conn, "SELECT count() FROM kpi_runs"); r != 2 {
		t.Fatalf("round while active stored %d runs, want 2", r)
	}

	lost.Store(true)
	if err := s.RunDue(ctx, goldenNow.Add(5*time.Minute)); !errors.Is(err, transform.ErrFenced) {
		t.Errorf("round after losing the role returned %v, want ErrFenced", err)
	}
	if got := s.Snapshot().KPIs[0].Last.ComputedAt; !got.Equal(goldenNow) {
		t.Errorf("snapshot took the refused round: computed_at %s", got)
	}
	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Run(runCtx); !errors.Is(err, transform.ErrFenced) || runCtx.Err() != nil {
		t.Errorf("Run after losing the role returned %v (ctx %v), want ErrFenced at once", err, runCtx.Err())
	}
	if r := countRows(t, conn, "SELECT count() FROM kpi_runs"); r != 2 {
		t.Errorf("%d runs stored, want only the 2 of the round before the role was lost", r)
	}
	if n := countRows(t, conn, "SELECT count() FROM resolved_events") + countRows(t, conn, "SELECT count() FROM resolve_staging") +
		countRows(t, conn, "SELECT count() FROM transform_state WHERE key = 'identity_progress'"); n != 0 {
		t.Errorf("the identity update wrote %d rows after the role was lost", n)
	}
}
