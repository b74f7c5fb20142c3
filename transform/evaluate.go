package transform

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/expr-lang/expr"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/store"
)

// Querier runs read queries; a store.Conn is one.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
}

// Series is one labelled value of a KPI. Dimension is "" for the total.
type Series struct {
	Dimension   string
	Value       string // the dimension's value; "" for the total
	Result      float64
	Numerator   float64
	Denominator float64
	HasParts    bool // ratio KPIs export numerator and denominator
}

// Result is one evaluation of one KPI.
type Result struct {
	KPI         string
	ComputedAt  time.Time
	WindowStart time.Time
	WindowEnd   time.Time
	Window      string
	Series      []Series
	Dropped     int // series beyond max_series, not stored
	Duration    time.Duration
	Err         error
}

// Total returns the total series, if the KPI has a value.
func (r Result) Total() (Series, bool) {
	for _, s := range r.Series {
		if s.Dimension == "" {
			return s, true
		}
	}
	return Series{}, false
}

// querySettings keep WHERE after FINAL: moving a filter to PREWHERE would
// read past a tombstone to an older version of a merged customer.
var querySettings = clickhouse.Settings{"optimize_move_to_prewhere": 0}

// Evaluate computes one KPI at now. Derived KPIs read the totals of the KPIs
// they reference from prior. A KPI with a zero denominator for a group has no
// series for that group.
func Evaluate(ctx context.Context, q Querier, k catalog.KPI, now time.Time, prior map[string]Result) Result {
	return EvaluateShared(ctx, q, k, now, prior, nil)
}

// EvaluateShared is Evaluate with measure results shared through cache
// (nil shares nothing) among the KPIs of one round evaluated at the same now.
func EvaluateShared(ctx context.Context, q Querier, k catalog.KPI, now time.Time, prior map[string]Result, cache *MeasureCache) Result {
	start := time.Now()
	p := NewParams(k.Window, now)
	p.Settings = k.Settings()
	res := Result{KPI: k.Name, ComputedAt: p.Now, WindowStart: p.WindowStart, WindowEnd: p.WindowEnd, Window: k.Window.String()}
	if k.Window.Kind == catalog.Lifetime {
		res.WindowStart = time.Unix(0, 0).UTC()
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(querySettings))
	var err error
	switch k.Type {
	case catalog.TypeSimple:
		res.Series, err = evalSimple(ctx, measurer{q, cache}, k, p)
	case catalog.TypeRatio:
		res.Series, err = evalRatio(ctx, measurer{q, cache}, k, p)
	case catalog.TypeDerived:
		res.Series, err = evalDerived(k, prior)
	default:
		err = fmt.Errorf("unknown KPI type %q", k.Type)
	}
	if err != nil {
		res.Err = fmt.Errorf("kpi %s: %w", k.Name, err)
		res.Series = nil
	}
	res.Series, res.Dropped = capSeries(res.Series, k.MaxSeries)
	res.Duration = time.Since(start)
	return res
}

func dimensions(k catalog.KPI) []string { return append([]string{""}, k.Dimensions...) }

func evalSimple(ctx context.Context, q measurer, k catalog.KPI, p Params) ([]Series, error) {
	var out []Series
	for _, d := range dimensions(k) {
		rows, err := q.run(ctx, k.Measure, d, p)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if math.IsNaN(r.value) || math.IsInf(r.value, 0) {
				continue
			}
			out = append(out, Series{Dimension: d, Value: r.dim, Result: r.value})
		}
	}
	return out, nil
}

func evalRatio(ctx context.Context, q measurer, k catalog.KPI, p Params) ([]Series, error) {
	scale := 1.0
	if k.Unit == catalog.UnitPercent {
		scale = 100
	}
	var out []Series
	for _, d := range dimensions(k) {
		num, err := q.run(ctx, k.Numerator, d, p)
		if err != nil {
			return nil, fmt.Errorf("numerator: %w", err)
		}
		den, err := q.run(ctx, k.Denominator, d, p)
		if err != nil {
			return nil, fmt.Errorf("denominator: %w", err)
		}
		nums := map[string]float64{}
		for _, r := range num {
			nums[r.dim] = r.value
		}
		for _, r := range den {
			if r.value == 0 || math.IsNaN(r.value) || math.IsInf(r.value, 0) {
				continue // no value for this group, not 0 and not NaN
			}
			n, ok := nums[r.dim]
			if !ok && k.RequireNumerator {
				continue // e.g. CPL of a channel without spend: no value, not "free"
			}
			out = append(out, Series{Dimension: d, Value: r.dim, Result: scale * n / r.value, Numerator: n, Denominator: r.value, HasParts: true})
		}
	}
	return out, nil
}

func evalDerived(k catalog.KPI, prior map[string]Result) ([]Series, error) {
	refs, err := catalog.References(k.Expression)
	if err != nil {
		return nil, err
	}
	env := k.Settings().Constants()
	for _, r := range refs {
		if catalog.IsConstant(r) {
			continue
		}
		res, ok := prior[r]
		if !ok || res.Err != nil {
			return nil, nil // an input has no value yet: neither has this KPI
		}
		total, ok := res.Total()
		if !ok {
			return nil, nil
		}
		env[r] = total.Result
	}
	v, err := expr.Eval(k.Expression, env)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", k.Expression, err)
	}
	f, ok := toFloat(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, nil // e.g. a zero divisor: no value
	}
	return []Series{{Result: f}}, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

type row struct {
	dim   string
	value float64
}

// MeasureCache shares measure results among the KPIs of one evaluation
// round: KPIs with a common measure (the paid spend of CPL, CAC and ROAS,
// the email rates' sends, churn's subscribers) query it once. Safe for concurrent use; a failed
// query is not shared, so each KPI keeps its own timeout and error.
type MeasureCache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	done chan struct{}
	rows []row
	err  error
}

// NewMeasureCache returns an empty cache; use one per round.
func NewMeasureCache() *MeasureCache { return &MeasureCache{entries: map[string]*cacheEntry{}} }

// measurer runs compiled measures, through the cache when there is one.
type measurer struct {
	q     Querier
	cache *MeasureCache
}

func (m measurer) run(ctx context.Context, ms *catalog.Measure, dimension string, p Params) ([]row, error) {
	cq, err := Compile(ms, dimension, p)
	if err != nil {
		return nil, err
	}
	if m.cache == nil {
		return query(ctx, m.q, ms, dimension, cq)
	}
	key := cq.SQL + "\x00" + fmt.Sprintf("%#v", cq.Args) // %#v quotes strings: ("ab", "c") is not ("a", "bc")
	m.cache.mu.Lock()
	e, ok := m.cache.entries[key]
	if !ok {
		e = &cacheEntry{done: make(chan struct{})}
		m.cache.entries[key] = e
		m.cache.mu.Unlock()
		e.rows, e.err = query(ctx, m.q, ms, dimension, cq)
		if e.err != nil {
			m.cache.mu.Lock()
			delete(m.cache.entries, key)
			m.cache.mu.Unlock()
		}
		close(e.done)
		return e.rows, e.err
	}
	m.cache.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return query(ctx, m.q, ms, dimension, cq)
	}
	return e.rows, nil
}

func query(ctx context.Context, q Querier, m *catalog.Measure, dimension string, cq store.Query) ([]row, error) {
	rows, err := q.Query(ctx, cq.SQL, cq.Args...)
	if err != nil {
		return nil, fmt.Errorf("query %s by %q: %w", m.Source, dimension, err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.dim, &r.value); err != nil {
			return nil, fmt.Errorf("read %s by %q: %w", m.Source, dimension, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s by %q: %w", m.Source, dimension, err)
	}
	return out, nil
}

// capSeries keeps at most limit series: the total first, then per dimension
// the largest groups (by denominator for ratios, by value otherwise).
func capSeries(s []Series, limit int) ([]Series, int) {
	if len(s) <= limit {
		return s, 0
	}
	sorted := append([]Series(nil), s...)
	weight := func(x Series) float64 {
		if x.HasParts {
			return x.Denominator
		}
		return math.Abs(x.Result)
	}
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if (a.Dimension == "") != (b.Dimension == "") {
			return a.Dimension == ""
		}
		return weight(a) > weight(b)
	})
	return sorted[:limit], len(s) - limit
}
