package scorecard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/store"
)

// ErrNoHistory means a KPI has no stored value on or before a date.
var ErrNoHistory = errors.New("no KPI history")

// BaselineChange is one recorded baseline: who set what, when, over what.
type BaselineChange struct {
	KPI      string    `json:"kpi"`
	Value    float64   `json:"value"`
	At       time.Time `json:"at"`
	SetBy    string    `json:"set_by"`
	SetAt    time.Time `json:"set_at"`
	Previous *float64  `json:"previous,omitempty"`
}

// ValueOn is a KPI's total on day (the last computed that day or before).
func ValueOn(ctx context.Context, q Querier, kpi string, day time.Time) (float64, error) {
	rows, err := q.Query(ctx, "SELECT argMax(value, computed_at), count() FROM kpi_values WHERE kpi = ? AND dimension = '' AND computed_at < ?", kpi, day.AddDate(0, 0, 1))
	if err != nil {
		return 0, fmt.Errorf("read the history of %s: %w", kpi, err)
	}
	defer rows.Close()
	var v float64
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&v, &n); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%w for %s on or before %s: compute it with `kpibridge kpis backfill --from %s`", ErrNoHistory, kpi, day.Format("2006-01-02"), day.Format("2006-01-02"))
	}
	return v, rows.Err()
}

// SetBaseline records kpi's value on day as its baseline, with who set it
// and the baseline it replaces.
func SetBaseline(ctx context.Context, conn store.Conn, cat *catalog.Catalog, kpi string, day time.Time, by string, now time.Time) (BaselineChange, error) {
	k, ok := cat.Get(kpi)
	if !ok {
		return BaselineChange{}, fmt.Errorf("no KPI named %q in the catalog (kpis list shows them)", kpi)
	}
	v, err := ValueOn(ctx, conn, k.Name, day)
	if err != nil {
		return BaselineChange{}, err
	}
	c := BaselineChange{KPI: k.Name, Value: v, At: day, SetBy: by, SetAt: now.UTC().Truncate(time.Second)}
	stored, err := storedBaselines(ctx, conn)
	if err != nil {
		return c, err
	}
	if old, ok := stored[k.Name]; ok {
		c.Previous = &old
	} else if b := k.Baseline; b != nil && b.Value != nil {
		c.Previous = b.Value
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO kpi_baselines (kpi, value, at, set_by, set_at, previous, had_previous, seq)")
	if err != nil {
		return c, fmt.Errorf("record the baseline: %w", err)
	}
	prev, had := 0.0, uint8(0)
	if c.Previous != nil {
		prev, had = *c.Previous, 1
	}
	if err := batch.Append(c.KPI, c.Value, c.At, c.SetBy, c.SetAt, prev, had, uint64(now.UnixNano())); err != nil {
		_ = batch.Abort()
		return c, fmt.Errorf("record the baseline: %w", err)
	}
	if err := batch.Send(); err != nil {
		return c, fmt.Errorf("record the baseline: %w", err)
	}
	return c, nil
}

// BaselineLog lists every recorded baseline, oldest first.
func BaselineLog(ctx context.Context, q Querier) ([]BaselineChange, error) {
	rows, err := q.Query(ctx, "SELECT kpi, value, at, set_by, set_at, previous, had_previous FROM kpi_baselines ORDER BY seq, kpi")
	if err != nil {
		return nil, fmt.Errorf("read kpi_baselines: %w", err)
	}
	defer rows.Close()
	var out []BaselineChange
	for rows.Next() {
		var c BaselineChange
		var prev float64
		var had uint8
		if err := rows.Scan(&c.KPI, &c.Value, &c.At, &c.SetBy, &c.SetAt, &prev, &had); err != nil {
			return nil, err
		}
		if had == 1 {
			c.Previous = &prev
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// storedBaselines is the latest recorded baseline of each KPI.
func storedBaselines(ctx context.Context, q Querier) (map[string]float64, error) {
	rows, err := q.Query(ctx, "SELECT kpi, argMax(value, seq) FROM kpi_baselines GROUP BY kpi")
	if err != nil {
		return nil, fmt.Errorf("read kpi_baselines: %w", err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var k string
		var v float64
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}
