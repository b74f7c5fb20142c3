package transform_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

const schedulerCatalog = `kpis:
  - name: spend
    title: Spend
    description: Campaign cost.
    owner: {team: marketing, contact: m@example.com}
    unit: currency
    direction: lower_is_better
    target: 100
    window: lifetime
    dimensions: [channel]
    max_series: 2
    audience: [exec]
    type: simple
    measure: {source: events, aggregate: sum, field: amount, where: {type: campaign.daily_stats}}
  - name: slow
    title: Slow
    description: Cannot finish within its timeout.
    owner: {team: it, contact: i@example.com}
    unit: count
    direction: higher_is_better
    target: 1
    window: lifetime
    timeout: 1ns
    audience: [ops]
    type: simple
    measure: {source: events, aggregate: count}
`

// newScheduler is a scheduler of schedulerCatalog over a fresh database
// holding the golden fixture's events.
func newScheduler(t *testing.T) (*transform.Scheduler, store.Conn) {
	t.Helper()
	_, conn := testenv.MigratedClickHouse(t)
	if err := ingest.NewClickHouseWriter(conn, 1024).InsertEvents(context.Background(), rows(decodeFile(t, "testdata/golden/events.ndjson"))); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Parse("scheduler.yaml", []byte(schedulerCatalog))
	if err != nil {
		t.Fatal(err)
	}
	s, err := transform.NewScheduler(transform.DefaultConfig(), cat, conn, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, conn
}

func TestSchedulerStoresResultsAndIsolatesFailures(t *testing.T) {
	s, conn := newScheduler(t)
	ctx := context.Background()
	s.RunDue(ctx, goldenNow)

	snap := s.Snapshot()
	if len(snap.KPIs) != 2 {
		t.Fatalf("snapshot has %d KPIs", len(snap.KPIs))
	}
	spend, slow := snap.KPIs[0], snap.KPIs[1]
	if spend.Last.Err != nil || spend.LastSuccess.ComputedAt.IsZero() {
		t.Fatalf("spend failed: %v", spend.Last.Err)
	}
	// Lifetime spend: paid_search 100 + 40 + 30, paid_social 80, display 60, email 10; capped at 2 series: the total and the largest channel.
	if tot, _ := spend.Last.Total(); tot.Result != 320 || len(spend.Last.Series) != 2 || spend.Last.Dropped != 3 {
		t.Errorf("spend total %v, %d series, %d dropped; want 320, 2, 3", tot.Result, len(spend.Last.Series), spend.Last.Dropped)
	}
	if spend.Last.Series[1].Value != "paid_search" {
		t.Errorf("kept series %q, want the largest channel paid_search", spend.Last.Series[1].Value)
	}
	if slow.Last.Err == nil || slow.Errors != 1 || !slow.LastSuccess.ComputedAt.IsZero() {
		t.Errorf("slow: err %v, errors %d: want a timeout error counted", slow.Last.Err, slow.Errors)
	}

	var values, okRuns, failedRuns uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM kpi_values WHERE kpi = 'spend' AND computed_at = ?", goldenNow).Scan(&values); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT countIf(ok = 1), countIf(ok = 0 AND kpi = 'slow' AND error != '') FROM kpi_runs").Scan(&okRuns, &failedRuns); err != nil {
		t.Fatal(err)
	}
	if values != 2 || okRuns != 1 || failedRuns != 1 {
		t.Errorf("kpi_values rows %d, ok runs %d, failed runs %d; want 2, 1, 1", values, okRuns, failedRuns)
	}

	// Not due again until its refresh interval has passed.
	s.RunDue(ctx, goldenNow.Add(time.Minute))
	if got := s.Snapshot().KPIs[0].Last.ComputedAt; !got.Equal(goldenNow) {
		t.Errorf("re-evaluated after 1m (refresh 5m): computed_at %s", got)
	}
	s.RunDue(ctx, goldenNow.Add(5*time.Minute))
	if got := s.Snapshot().KPIs[0].Last.ComputedAt; !got.Equal(goldenNow.Add(5 * time.Minute)) {
		t.Errorf("not re-evaluated after refresh: computed_at %s", got)
	}
}

// countingQuerier counts the queries that reach ClickHouse.
type countingQuerier struct {
	transform.Querier
	mu sync.Mutex
	n  map[string]int
}

func (c *countingQuerier) Query(ctx context.Context, sql string, args ...any) (driver.Rows, error) {
	c.mu.Lock()
	c.n[sql]++
	c.mu.Unlock()
	return c.Querier.Query(ctx, sql, args...)
}

// KPIs of one round that share a measure (CPL's denominator is the leads
// KPI's measure) query it once, concurrently or not, with the same result.
func TestMeasureCacheSharesCommonMeasures(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]catalog.KPI{}
	for _, k := range cat.KPIs {
		byName[k.Name] = k
	}
	q := &countingQuerier{Querier: conn, n: map[string]int{}}
	cache := transform.NewMeasureCache()
	now := time.Now()
	var wg sync.WaitGroup
	results := make([]transform.Result, 2)
	for i, name := range []string{"churn_rate", "revenue_per_subscriber"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = transform.EvaluateShared(ctx, q, byName[name], now, nil, cache)
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	total := 0
	for sql, n := range q.n {
		total += n
		if n > 1 {
			t.Errorf("query ran %d times in one round:\n%s", n, sql)
		}
	}
	// churn_rate: churned and active subscribers; revenue_per_subscriber:
	// their revenue and the same active subscribers (one population).
	if total != 3 {
		t.Errorf("%d queries for churn_rate and revenue_per_subscriber, want 3 (the subscribers at window start shared)", total)
	}
}
