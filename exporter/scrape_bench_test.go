package exporter_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/exporter"
	"github.com/kpibridge/kpibridge/transform"
)

// BenchmarkScrape2000Series measures a full /metrics scrape (KPI families
// plus Go and process collectors) over a snapshot of 2,000 KPI series, and
// reports p50 and p99 latency. Target: p99 <= 50 ms.
func BenchmarkScrape2000Series(b *testing.B) {
	cat, err := catalog.Default()
	if err != nil {
		b.Fatal(err)
	}
	// Spread 2,000 series over the catalog's KPIs and their dimensions.
	snap := &transform.Snapshot{Taken: time.Now()}
	per := 2000 / len(cat.KPIs)
	total := 0
	for i, k := range cat.KPIs {
		res := transform.Result{KPI: k.Name, ComputedAt: time.Now(), Duration: time.Second}
		n := per
		if i == len(cat.KPIs)-1 {
			n = 2000 - total
		}
		for j := range n {
			s := transform.Series{Result: float64(j), Numerator: float64(j), Denominator: 10, HasParts: k.Type == catalog.TypeRatio}
			if j > 0 {
				s.Dimension, s.Value = "channel", fmt.Sprintf("value-%d", j)
			}
			res.Series = append(res.Series, s)
		}
		total += n
		snap.KPIs = append(snap.KPIs, transform.KPIState{KPI: k, Last: res, LastSuccess: res})
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	kpis := exporter.NewCachedGatherer(exporter.NewKPICollector(cat, fixedSnapshot{snap}, 3))
	h := exporter.NewHandler(exporter.HandlerOptions{Gatherer: exporter.Join(reg, kpis), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		lat = append(lat, time.Since(start))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
