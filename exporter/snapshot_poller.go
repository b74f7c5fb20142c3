package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// Poller builds snapshots from kpi_runs and kpi_values when the export role
// runs without the transform role in its process. It polls on its own
// schedule, so scrapes stay free of SQL and flat as data grows.
type Poller struct {
	cat      *catalog.Catalog
	conn     store.Conn
	interval time.Duration
	log      *slog.Logger
	snap     atomic.Pointer[transform.Snapshot]
}

// NewPoller returns a poller; Snapshot is nil until the first poll succeeds.
func NewPoller(cat *catalog.Catalog, conn store.Conn, interval time.Duration, logger *slog.Logger) *Poller {
	return &Poller{cat: cat, conn: conn, interval: interval, log: logger}
}

// Snapshot returns the latest polled snapshot, or nil before the first.
func (p *Poller) Snapshot() *transform.Snapshot { return p.snap.Load() }

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("reading the latest KPI values failed; serving the previous snapshot", "err", err, "retry_in", p.interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll reads the latest run of every KPI and the series of its latest successful run.
func (p *Poller) Poll(ctx context.Context) error {
	states := map[string]*transform.KPIState{}
	for _, k := range p.cat.KPIs {
		states[k.Name] = &transform.KPIState{KPI: k}
	}
	rows, err := p.conn.Query(ctx, `SELECT kpi, max(computed_at), maxIf(computed_at, ok = 1), countIf(ok = 0), sum(dropped),
  argMax(duration_ms, computed_at), argMax(error, computed_at)
FROM kpi_runs GROUP BY kpi`)
	if err != nil {
		return fmt.Errorf("read kpi_runs: %w", err)
	}
	lastOK := map[string]time.Time{}
	for rows.Next() {
		var name, msg string
		var last, ok time.Time
		var errs, dropped uint64
		var ms uint32
		if err := rows.Scan(&name, &last, &ok, &errs, &dropped, &ms, &msg); err != nil {
			rows.Close()
			return fmt.Errorf("read kpi_runs: %w", err)
		}
		st, known := states[name]
		if !known {
			continue // a KPI no longer in the catalog
		}
		st.Errors, st.DroppedTotal = int(errs), int(dropped)
		st.Last = transform.Result{KPI: name, ComputedAt: last.UTC(), Duration: time.Duration(ms) * time.Millisecond}
		if msg != "" {
			st.Last.Err = fmt.Errorf("%s", msg)
		}
		if ok.Unix() > 0 {
			lastOK[name] = ok.UTC()
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read kpi_runs: %w", err)
	}
	for name, at := range lastOK {
		res := transform.Result{KPI: name, ComputedAt: at}
		vr, err := p.conn.Query(ctx, `SELECT dimension, dimension_value, value, numerator, denominator, window, window_start, window_end
FROM kpi_values WHERE kpi = ? AND computed_at = ?`, name, at)
		if err != nil {
			return fmt.Errorf("read kpi_values of %s: %w", name, err)
		}
		for vr.Next() {
			var s transform.Series
			if err := vr.Scan(&s.Dimension, &s.Value, &s.Result, &s.Numerator, &s.Denominator, &res.Window, &res.WindowStart, &res.WindowEnd); err != nil {
				vr.Close()
				return fmt.Errorf("read kpi_values of %s: %w", name, err)
			}
			k := states[name].KPI
			s.HasParts = k.Type == catalog.TypeRatio
			res.Series = append(res.Series, s)
		}
		vr.Close()
		if last := states[name].Last; last.ComputedAt.Equal(at) {
			res.Duration = last.Duration
			states[name].Last = res
		}
		states[name].LastSuccess = res
	}
	snap := &transform.Snapshot{Taken: time.Now().UTC()}
	for _, k := range p.cat.KPIs {
		snap.KPIs = append(snap.KPIs, *states[k.Name])
	}
	p.snap.Store(snap)
	return nil
}
