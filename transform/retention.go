package transform

import (
	"context"
	"log/slog"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/store"
)

// RunRetention applies r to target's database, which conn is connected
// to, now and then every r.Interval until ctx ends (store.ApplyRetention,
// on every node of target's cluster if it has one); the transform role
// runs it, one process per deployment. The KPI history of the days the
// catalog's baselines read (baseline.at) is kept. A failed round is
// logged and retried at the next interval.
func RunRetention(ctx context.Context, conn store.Conn, target store.Target, r store.Retention, cat *catalog.Catalog, log *slog.Logger) {
	keep := BaselineDays(cat)
	for {
		aged, err := store.ApplyRetention(ctx, conn, target, r, keep, time.Now())
		for _, a := range aged {
			log.Info("retention removed old rows", "table", a.Table, "rows", a.Rows, "before", a.Cutoff.Format(time.RFC3339), "months_dropped", len(a.Partitions))
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("retention failed; old rows stay until the next try", "retry_in", r.Interval, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.Interval):
		}
	}
}

// BaselineDays are the days whose KPI totals the catalog's baselines read.
func BaselineDays(cat *catalog.Catalog) []store.KeptDay {
	var out []store.KeptDay
	for _, k := range cat.KPIs {
		if k.Baseline == nil || k.Baseline.At == "" {
			continue
		}
		if day, err := k.Baseline.AtTime(); err == nil { // the catalog's validation refuses a bad date
			out = append(out, store.KeptDay{KPI: k.Name, Day: day})
		}
	}
	return out
}
