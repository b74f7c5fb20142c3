package scorecard_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/scorecard"
	"github.com/kpibridge/kpibridge/transform"
)

// A crafted history: leads (target 300, higher is better) climbs across
// its target during the week, CAC (target 600, warning 800, lower is
// better) goes from on track to off track, revenue holds. The scorecard
// shows the win with its date, CAC under needs attention, statuses as
// words, changes against last week, progress from a baseline, and trends.
func TestScorecardFromHistory(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	y := strings.Replace(string(catalog.DefaultYAML()), "  - name: leads\n", "  - name: leads\n    baseline: {value: 200}\n", 1)
	cat, err := catalog.Parse("kpis.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	write := func(kpi string, day time.Time, v float64) {
		if err := transform.WriteResult(ctx, conn, transform.Result{KPI: kpi, ComputedAt: day, Window: "30d",
			Series: []transform.Series{{Result: v}}}); err != nil {
			t.Fatal(err)
		}
	}
	for d := 0; d <= 20; d++ {
		day := at.AddDate(0, 0, d-20).Truncate(24 * time.Hour)
		leads := 250.0 + float64(d)*3 // 250 … 310: crosses 300 on day 17 (301)
		cac := 550.0
		if d >= 18 {
			cac = 850
		}
		write("leads", day, leads)
		write("cac", day, cac)
		write("revenue", day, 50000)
		if d <= 17 {
			write("orders", day, 3200) // on target, then not computed for three days
		}
	}
	r, err := scorecard.Build(ctx, conn, cat, scorecard.Options{At: at, Period: scorecard.Week, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Wins) != 1 || r.Wins[0].KPI != "leads" || !r.Wins[0].Day.Equal(at.AddDate(0, 0, -3).Truncate(24*time.Hour)) {
		t.Errorf("wins %+v, want leads on %s", r.Wins, at.AddDate(0, 0, -3).Format("2006-01-02"))
	}
	if len(r.Attention) != 2 || r.Attention[0].KPI != "orders" || !strings.Contains(r.Attention[0].Text, "not updated since 27 Mar 00:00 UTC") ||
		r.Attention[1].KPI != "cac" || !strings.Contains(r.Attention[1].Text, "went off track") {
		t.Errorf("needs attention %+v, want orders not updated, then cac off track", r.Attention)
	}
	rows := map[string]scorecard.Row{}
	for _, g := range r.Goals {
		for _, row := range g.Rows {
			rows[row.KPI.Name] = row
		}
	}
	leads := rows["leads"]
	if leads.Value != "310" || leads.Status != "on track" || leads.WeekChange != "+7.3 %" || leads.WeekClass != "good" ||
		leads.Baseline != "200" || leads.Progress != "110 %" || len(leads.Trend) != 21 {
		t.Errorf("leads row %+v", leads)
	}
	if cac := rows["cac"]; cac.Value != "EUR 850.00" || cac.Status != "off track" || cac.WeekClass != "bad" {
		t.Errorf("cac row %+v", cac)
	}
	if o := rows["orders"]; o.Value != "3,200" || o.Status != "stale" || o.StatusClass != "muted" || !o.Computed.Equal(at.AddDate(0, 0, -3).Truncate(24*time.Hour)) {
		t.Errorf("a KPI last computed three days ago: %+v", o)
	}
	if rows["new_customers"].Value != "—" || rows["new_customers"].Status != "no value" {
		t.Errorf("a KPI without history: %+v", rows["new_customers"])
	}
	var page bytes.Buffer
	if err := scorecard.Render(&page, r); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{"Wins this week", "Needs attention", `aria-hidden="true">●</span> on track`, `aria-hidden="true">■</span> off track`, "<svg class=\"trend\"", "@media print", "EUR 850.00"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, external := range []string{"<link", "<script", "src=\"http", "url(http"} {
		if strings.Contains(html, external) {
			t.Errorf("page loads an external asset (%s)", external)
		}
	}
	if _, err := scorecard.Build(ctx, conn, cat, scorecard.Options{At: at, Period: "year"}); err == nil || !strings.Contains(err.Error(), "want week or month") {
		t.Errorf("bad period: %v", err)
	}
}
