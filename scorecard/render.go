package scorecard

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

//go:embed scorecard.html.tmpl
var pageTemplate string

var page = template.Must(template.New("scorecard").Funcs(template.FuncMap{
	"trend": trendSVG,
	"date":  func(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006") },
	"fresh": func(t time.Time, at time.Time) string {
		if t.IsZero() {
			return "never computed"
		}
		return "computed " + t.UTC().Format("2 Jan 15:04") + " UTC"
	},
	"icon": func(class string) string {
		return map[string]string{"ok": "●", "warn": "▲", "bad": "■", "muted": "○"}[class]
	},
}).Parse(pageTemplate))

// Render writes the report as one self-contained HTML page: no external
// assets, a print stylesheet, status as words and icons, not colour alone.
func Render(w io.Writer, r Report) error { return page.Execute(w, r) }

// trendSVG draws a row's history as a small inline line chart, with its
// target as a dashed line when it lies in range.
func trendSVG(row Row) template.HTML {
	const w, h, pad = 140.0, 32.0, 2.0
	if len(row.Trend) < 2 {
		return template.HTML(`<span class="muted">not enough history</span>`)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range row.Trend {
		lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
	}
	if row.KPI.Target != nil {
		lo, hi = math.Min(lo, *row.KPI.Target), math.Max(hi, *row.KPI.Target)
	}
	if hi == lo {
		hi = lo + 1
	}
	first, last := row.Trend[0].Day, row.Trend[len(row.Trend)-1].Day
	span := math.Max(last.Sub(first).Hours(), 1)
	x := func(t time.Time) float64 { return pad + (w-2*pad)*t.Sub(first).Hours()/span }
	y := func(v float64) float64 { return h - pad - (h-2*pad)*(v-lo)/(hi-lo) }
	var pts []string
	for _, p := range row.Trend {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.Day), y(p.Value)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="trend" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s over %d days">`,
		w, h, w, h, template.HTMLEscapeString(row.KPI.Title), int(span/24)+1)
	if row.KPI.Target != nil {
		ty := y(*row.KPI.Target)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" class="target"/>`, pad, w-pad, ty, ty)
	}
	fmt.Fprintf(&b, `<polyline points="%s" class="line"/></svg>`, strings.Join(pts, " "))
	return template.HTML(b.String())
}
