package scorecard_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/exporter"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/scorecard"
	"github.com/kpibridge/kpibridge/transform"
)

// BenchmarkScorecard builds and renders the scorecard of 40 exec KPIs with
// a year of daily history (what the export role does in the background),
// then serves it 500 times through the export role's handler. Target:
// p99 ≤ 100 ms per request.
func BenchmarkScorecard(b *testing.B) {
	_, conn := testenv.MigratedClickHouse(b)
	ctx := context.Background()
	y := string(catalog.DefaultYAML())
	for i := range 24 {
		y += fmt.Sprintf(`
  - name: extra_%d
    title: Extra KPI %d
    description: A copy of orders, to have 40 exec KPIs.
    owner: {team: finance, contact: f@example.com}
    unit: count
    direction: higher_is_better
    target: 100
    warning: 80
    window: 30d
    audience: [exec]
    type: simple
    measure: {source: events, aggregate: count_distinct, field: entity_id, where: {type: order.placed}}
`, i, i)
	}
	cat, err := catalog.Parse("bench.yaml", []byte(y))
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	n := 0
	for _, k := range cat.KPIs {
		if !slices.Contains(k.Audience, "exec") {
			continue
		}
		n++
		year := make([]transform.Result, 365)
		for d := range year {
			year[d] = transform.Result{KPI: k.Name, ComputedAt: at.AddDate(0, 0, -d).Truncate(24 * time.Hour), Window: "30d",
				Series: []transform.Series{{Result: 100 + float64(d%17)}}}
		}
		if err := transform.WriteResults(ctx, conn, year); err != nil {
			b.Fatal(err)
		}
	}
	if n != 40 {
		b.Fatalf("%d exec KPIs, want 40", n)
	}
	var page []byte
	b.Run("build_and_render", func(b *testing.B) {
		for range b.N {
			r, err := scorecard.Build(ctx, conn, cat, scorecard.Options{At: at, Period: scorecard.Week, Currency: "EUR"})
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if err := scorecard.Render(&buf, r); err != nil {
				b.Fatal(err)
			}
			page = buf.Bytes()
		}
		b.ReportMetric(float64(len(page)), "page_bytes")
	})
	h := exporter.NewHandler(exporter.HandlerOptions{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Scorecard: func() ([]byte, bool) { return page, true }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	b.Run("serve_500", func(b *testing.B) {
		var worst time.Duration
		for range b.N {
			lat := make([]time.Duration, 500)
			for i := range lat {
				start := time.Now()
				res, err := http.Get(srv.URL + "/scorecard")
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "KPI scorecard") {
					b.Fatalf("status %d", res.StatusCode)
				}
				lat[i] = time.Since(start)
			}
			slices.Sort(lat)
			worst = max(worst, lat[len(lat)*99/100])
		}
		b.ReportMetric(float64(worst.Microseconds())/1000, "p99_ms")
	})
}
