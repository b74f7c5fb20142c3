// Package scorecard owns the executive scorecard: every exec KPI of the
// catalog grouped by shared goal, with its value against target, status,
// change against last week and last month, progress from its baseline,
// a 13-week trend, and the period's wins and KPIs that need attention —
// all from the stored KPI history (kpi_values), so that a report for a
// past period is reproducible. The export role serves it at /scorecard;
// `kpibridge report` writes it to a file.
package scorecard

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/display"
)

// Querier runs read queries; a store.Conn is one.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Periods a report covers.
const (
	Week  = "week"
	Month = "month"
)

// trendDays is how much history the sparkline shows: 13 weeks.
const trendDays = 91

// Options say which scorecard to build.
type Options struct {
	At       time.Time // end of the period; the values are the latest at or before it
	Period   string    // Week or Month: what counts as "this period" for wins and attention
	Currency string    // reporting currency, for money
	// Staleness is how many refresh intervals old a KPI's latest value may
	// be before its status is "stale" (export.stale_after_refreshes; 0
	// means 3). The history is daily, so a value up to a day old is never
	// stale: a backfilled day's value stands for that day.
	Staleness int
}

// Report is a scorecard, ready to render.
type Report struct {
	At, From  time.Time // the period
	Period    string
	Goals     []Goal
	Wins      []Event // crossed the target the good way in the period
	Attention []Event // went off target or regressed, largest movers first
	Empty     bool    // no history at all yet
}

// Goal is one shared goal's KPIs.
type Goal struct {
	Title string
	Rows  []Row
}

// Row is one KPI on the scorecard.
type Row struct {
	KPI                     catalog.KPI
	Value                   string // formatted, "—" without a value
	Target, Baseline        string
	Status, StatusClass     string
	WeekChange, MonthChange string // "+4.2 %", "—"
	WeekClass, MonthClass   string // good, bad, flat
	Progress                string // share of the way from baseline to target
	BaselineValue           *float64
	Trend                   []Point
	Computed                time.Time
}

// Point is one day of a KPI's history: its last value that day.
type Point struct {
	Day      time.Time
	Value    float64
	Computed time.Time // when that value was computed
}

// Event is a win or a KPI needing attention.
type Event struct {
	KPI, Title, Team string
	Day              time.Time
	Text             string
	size             float64
}

// Build reads the history of the exec KPIs and makes the report.
func Build(ctx context.Context, q Querier, cat *catalog.Catalog, o Options) (Report, error) {
	if o.Period != Week && o.Period != Month {
		return Report{}, fmt.Errorf("--period: want week or month, got %q", o.Period)
	}
	at := o.At.UTC()
	r := Report{At: at, Period: o.Period, From: at.AddDate(0, 0, -7)}
	if o.Period == Month {
		r.From = at.AddDate(0, -1, 0)
	}
	var exec []catalog.KPI
	var names []string
	for _, k := range cat.KPIs {
		if slices.Contains(k.Audience, "exec") {
			exec = append(exec, k)
			names = append(names, k.Name)
		}
	}
	hist, err := history(ctx, q, names, at.AddDate(0, 0, -trendDays-31), at)
	if err != nil {
		return r, err
	}
	r.Empty = len(hist) == 0
	baselines, err := baselineValues(ctx, q, exec)
	if err != nil {
		return r, err
	}
	for _, goal := range catalog.Goals() {
		g := Goal{Title: catalog.GoalTitle(goal)}
		for _, k := range exec {
			if k.Goal != goal {
				continue
			}
			b, hasB := baselines[k.Name]
			row, win, attention := evaluate(k, hist[k.Name], b, hasB, r, o)
			g.Rows = append(g.Rows, row)
			if win != nil {
				r.Wins = append(r.Wins, *win)
			}
			if attention != nil {
				r.Attention = append(r.Attention, *attention)
			}
		}
		if len(g.Rows) > 0 {
			r.Goals = append(r.Goals, g)
		}
	}
	sort.SliceStable(r.Wins, func(i, j int) bool { return r.Wins[i].Day.After(r.Wins[j].Day) })
	sort.SliceStable(r.Attention, func(i, j int) bool { return r.Attention[i].size > r.Attention[j].size })
	return r, nil
}

// history is each KPI's last total of each day in [from, to], and when it was computed.
func history(ctx context.Context, q Querier, names []string, from, to time.Time) (map[string][]Point, error) {
	rows, err := q.Query(ctx, `SELECT kpi, toDate(computed_at) AS day, argMax(value, computed_at), max(computed_at)
FROM kpi_values
WHERE dimension = '' AND computed_at >= ? AND computed_at <= ? AND has(?, kpi)
GROUP BY kpi, day
ORDER BY kpi, day`, from, to, names)
	if err != nil {
		return nil, fmt.Errorf("read KPI history: %w", err)
	}
	defer rows.Close()
	hist := map[string][]Point{}
	for rows.Next() {
		var k string
		var day, at time.Time
		var v float64
		if err := rows.Scan(&k, &day, &v, &at); err != nil {
			return nil, fmt.Errorf("read KPI history: %w", err)
		}
		hist[k] = append(hist[k], Point{Day: time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC), Value: v, Computed: at.UTC()})
	}
	return hist, rows.Err()
}

// baselineValues resolves each KPI's baseline: the latest recorded with
// `kpibridge kpis baseline set`, else the catalog's fixed value or its
// value on the catalog's date.
func baselineValues(ctx context.Context, q Querier, kpis []catalog.KPI) (map[string]float64, error) {
	out, err := storedBaselines(ctx, q)
	if err != nil {
		return nil, err
	}
	for _, k := range kpis {
		b := k.Baseline
		if _, ok := out[k.Name]; ok || b == nil {
			continue
		}
		if b.Value != nil {
			out[k.Name] = *b.Value
			continue
		}
		day, err := b.AtTime()
		if err != nil {
			return nil, fmt.Errorf("kpi %s: baseline.at: %w", k.Name, err)
		}
		v, err := ValueOn(ctx, q, k.Name, day)
		if errors.Is(err, ErrNoHistory) {
			continue // no history that far back: no progress shown
		}
		if err != nil {
			return nil, err
		}
		out[k.Name] = v
	}
	return out, nil
}

// pointAt is the last point on or before day.
func pointAt(h []Point, day time.Time) (Point, bool) {
	for i := len(h) - 1; i >= 0; i-- {
		if !h[i].Day.After(day) {
			return h[i], true
		}
	}
	return Point{}, false
}

// valueAt is the value of the last point on or before day.
func valueAt(h []Point, day time.Time) (float64, bool) {
	p, ok := pointAt(h, day)
	return p.Value, ok
}

// maxAge is how old a KPI's latest value may be and still not be stale.
func (o Options) maxAge(k catalog.KPI) time.Duration {
	n := o.Staleness
	if n <= 0 {
		n = 3
	}
	return max(time.Duration(n)*time.Duration(k.Refresh), 24*time.Hour)
}

func evaluate(k catalog.KPI, h []Point, baseline float64, hasBaseline bool, r Report, o Options) (Row, *Event, *Event) {
	currency := o.Currency
	row := Row{KPI: k, Value: "—", WeekChange: "—", MonthChange: "—", Progress: "—", Baseline: "—",
		Target: display.Target(k, currency), Status: display.NoValue, StatusClass: "muted"}
	today := r.At.Truncate(24 * time.Hour)
	for _, p := range h {
		if !p.Day.Before(today.AddDate(0, 0, -trendDays)) {
			row.Trend = append(row.Trend, p)
		}
	}
	last, ok := pointAt(h, today)
	if !ok {
		return row, nil, nil
	}
	v := last.Value
	row.Computed = last.Computed
	row.Value = display.Value(v, k, currency)
	row.Status, row.StatusClass = display.StatusAt(k, v, r.At.Sub(last.Computed), o.maxAge(k))
	better := func(change float64) string {
		switch {
		case math.Abs(change) < 1e-9:
			return "flat"
		case (change > 0) == (k.Direction == catalog.HigherIsBetter):
			return "good"
		}
		return "bad"
	}
	change := func(days int) (string, string, float64, bool) {
		old, ok := valueAt(h, today.AddDate(0, 0, -days))
		if !ok || old == 0 {
			return "—", "flat", 0, false
		}
		c := (v - old) / math.Abs(old)
		return fmt.Sprintf("%+.1f %%", 100*c), better(c), c, true
	}
	var week float64
	var hasWeek bool
	row.WeekChange, row.WeekClass, week, hasWeek = change(7)
	row.MonthChange, row.MonthClass, _, _ = change(30)
	if hasBaseline {
		row.BaselineValue = &baseline
		row.Baseline = display.Value(baseline, k, currency)
		if k.Target != nil && *k.Target != baseline {
			row.Progress = fmt.Sprintf("%.0f %%", 100*(v-baseline)/(*k.Target-baseline))
		}
	}
	// Wins: the last day this period the KPI crossed onto its target.
	var win *Event
	for i := 1; i < len(h); i++ {
		if h[i].Day.Before(r.From.Truncate(24*time.Hour)) || h[i].Day.After(today) {
			continue
		}
		before, _ := display.Status(k, h[i-1].Value)
		now, _ := display.Status(k, h[i].Value)
		if before != display.OnTrack && now == display.OnTrack {
			win = &Event{KPI: k.Name, Title: k.Title, Team: k.Owner.Team, Day: h[i].Day,
				Text: fmt.Sprintf("reached %s (target %s)", display.Value(h[i].Value, k, currency), display.Target(k, currency))}
		}
	}
	// Needs attention: off target now though on track at the period's start,
	// or worse than a week ago by more than the KPI's regression threshold.
	var attention *Event
	start, hasStart := valueAt(h, r.From.Truncate(24*time.Hour))
	startStatus := ""
	if hasStart {
		startStatus, _ = display.Status(k, start)
	}
	switch {
	case row.Status == display.Stale:
		// Listed first: the page cannot say where this KPI stands.
		attention = &Event{KPI: k.Name, Title: k.Title, Team: k.Owner.Team, Day: today, size: math.Inf(1),
			Text: fmt.Sprintf("not updated since %s UTC: %s is its last value", last.Computed.Format("2 Jan 15:04"), row.Value)}
	case startStatus == display.OnTrack && row.Status != display.OnTrack && row.Status != display.NoTarget:
		attention = &Event{KPI: k.Name, Title: k.Title, Team: k.Owner.Team, Day: today, size: math.Abs((v - start) / math.Max(math.Abs(start), 1e-9)),
			Text: fmt.Sprintf("went %s: %s (target %s, %s at the period's start)", row.Status, row.Value, row.Target, display.Value(start, k, currency))}
	case hasWeek && better(week) == "bad" && math.Abs(week) > *k.Alert.Regression:
		attention = &Event{KPI: k.Name, Title: k.Title, Team: k.Owner.Team, Day: today, size: math.Abs(week),
			Text: fmt.Sprintf("%s against last week: %s", row.WeekChange, row.Value)}
	}
	return row, win, attention
}
