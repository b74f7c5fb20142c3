package exporter_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/exporter"
)

// The landing page shows each KPI's value and target with the unit's rule
// (display), the status word, and when the value was computed.
func TestLandingPage(t *testing.T) {
	cat, err := catalog.Parse("test.yaml", []byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		currency string
		ordersAt time.Time
		kpi      string
		want     []string // cells of the KPI's row, in order
	}{
		{"currency KPI on track in the default currency", "", now.Add(-30 * time.Second), "cac",
			[]string{`<td class="num">EUR 120.00</td>`, `<td class="num">EUR 600.00</td>`, `<td class="ok">on track</td>`,
				`<td title="2026-03-31T11:59:00Z">computed 11:59:00 UTC, 1m ago</td>`}},
		{"currency KPI in the configured currency", "USD", now.Add(-30 * time.Second), "cac",
			[]string{`<td class="num">USD 120.00</td>`, `<td class="num">USD 600.00</td>`}},
		{"count KPI off track without a warning", "EUR", now.Add(-30 * time.Second), "orders",
			[]string{`<td class="num">4</td>`, `<td class="num">100</td>`, `<td class="bad">off track</td>`,
				`<td title="2026-03-31T11:59:30Z">computed 11:59:30 UTC, 30 s ago</td>`}},
		{"stale KPI computed yesterday", "EUR", now.Add(-13 * time.Hour), "orders",
			[]string{`<td class="num">—</td>`, `<td class="num">100</td>`, `<td class="bad">stale</td>`,
				`<td title="2026-03-30T23:00:00Z">computed 2026-03-30 23:00:00 UTC, 13h ago</td>`}},
		{"failing KPI never computed", "EUR", now, "churn_rate",
			[]string{`<td class="num">—</td>`, `<td class="num">0.03</td>`, `<td class="bad">failing: timeout</td>`, `<td>never computed</td>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := exporter.NewHandler(exporter.HandlerOptions{Gatherer: prometheus.NewRegistry(), Catalog: cat,
				Snapshots: fixedSnapshot{snapshot(t, cat, tc.ordersAt)}, Roles: []string{"export"}, Version: "test", Staleness: 3,
				Currency: tc.currency, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			page := rec.Body.String()
			row := regexp.MustCompile(`(?s)<tr id="` + tc.kpi + `">.*?</tr>`).FindString(page)
			if row == "" {
				t.Fatalf("no row for %s:\n%s", tc.kpi, page)
			}
			rest := row
			for _, cell := range tc.want {
				i := strings.Index(rest, cell)
				if i < 0 {
					t.Fatalf("row %s lacks %s (after the cells before it):\n%s", tc.kpi, cell, row)
				}
				rest = rest[i+len(cell):]
			}
		})
	}
}
