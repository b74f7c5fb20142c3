package transform

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/store"
)

// backfillConcurrency is how many KPIs a backfill evaluates at once.
const backfillConcurrency = 2

// BackfillStats says what a backfill did.
type BackfillStats struct {
	Points   int // evaluation times in the range
	Computed int // KPI evaluations written
	Skipped  int // already in the history
	Failed   int // evaluations that failed (written to kpi_runs with their error)
}

// Backfill computes the KPI history for past evaluation times, from to to
// (inclusive) every step, as the scheduler would have written it then:
// each KPI's window ends at that time and events are placed by their own
// time. One evaluation time is held in memory at once. It is idempotent:
// a KPI already computed successfully at a time is skipped. Customer
// attributes (acquisition and lead channel, subscription dates) are those
// of today's customer 360, which the events since may have changed.
func Backfill(ctx context.Context, conn store.Conn, cat *catalog.Catalog, from, to time.Time, step time.Duration, progress io.Writer) (BackfillStats, error) {
	var st BackfillStats
	if step < time.Minute {
		return st, fmt.Errorf("--step: want at least 1m, got %s", step)
	}
	if to.Before(from) {
		return st, fmt.Errorf("--from %s is after --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	done := map[string]bool{} // kpi \x00 computed_at
	rows, err := conn.Query(ctx, "SELECT kpi, computed_at FROM kpi_runs WHERE ok = 1 AND computed_at >= ? AND computed_at <= ?", from, to)
	if err != nil {
		return st, fmt.Errorf("read the history already computed: %w", err)
	}
	for rows.Next() {
		var k string
		var at time.Time
		if err := rows.Scan(&k, &at); err != nil {
			rows.Close()
			return st, err
		}
		done[k+"\x00"+at.UTC().Format(time.RFC3339)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	inputs := map[string]bool{} // KPIs a derived KPI reads
	for _, k := range cat.KPIs {
		if k.Type == catalog.TypeDerived {
			refs, _ := catalog.References(k.Expression)
			for _, r := range refs {
				inputs[r] = true
			}
		}
	}
	total := int(to.Sub(from)/step) + 1
	for i, t := 0, from; !t.After(to); i, t = i+1, t.Add(step) {
		started := time.Now()
		st.Points++
		cache := NewMeasureCache()
		key := func(k catalog.KPI) string { return k.Name + "\x00" + t.UTC().Format(time.RFC3339) }
		// KPIs of measures first, two at a time like the scheduler (sharing
		// measures through the cache); derived ones after, from their results.
		var plain, derived []catalog.KPI
		for _, k := range cat.Order() {
			switch {
			case k.Type == catalog.TypeDerived:
				derived = append(derived, k)
			case done[key(k)] && !inputs[k.Name]:
				st.Skipped++
			default:
				plain = append(plain, k)
			}
		}
		results := make([]Result, len(plain))
		var wg sync.WaitGroup
		sem := make(chan struct{}, backfillConcurrency)
		for j, k := range plain {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				results[j] = EvaluateShared(ctx, conn, k, t, nil, cache)
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return st, err
		}
		prior := map[string]Result{}
		var out []Result // the day's results, written in one insert per table
		keep := func(k catalog.KPI, res Result) {
			if done[key(k)] {
				st.Skipped++ // evaluated only as a derived KPI's input
				return
			}
			if res.Err != nil {
				st.Failed++
			}
			out = append(out, res)
		}
		for j, k := range plain {
			prior[k.Name] = results[j]
			keep(k, results[j])
		}
		for _, k := range derived {
			if done[key(k)] && !inputs[k.Name] {
				st.Skipped++
				continue
			}
			res := EvaluateShared(ctx, conn, k, t, prior, cache)
			prior[k.Name] = res
			keep(k, res)
		}
		if len(out) > 0 {
			if err := WriteResults(ctx, conn, out); err != nil {
				return st, err
			}
		}
		st.Computed += len(out)
		computed := len(out)
		if progress != nil {
			fmt.Fprintf(progress, "backfill %s (%d/%d): %d KPIs computed in %s\n", t.UTC().Format("2006-01-02 15:04"), i+1, total, computed, time.Since(started).Round(10*time.Millisecond))
		}
	}
	return st, nil
}
