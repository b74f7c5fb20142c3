package transform

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
)

// QueryKPI computes one KPI now, for analysts: the total, or the total and the
// breakdown by one of its dimensions; window, when not empty, overrides the
// KPI's window (for the KPIs a derived one uses too).
func QueryKPI(ctx context.Context, q Querier, c *catalog.Catalog, name, by, window string, now time.Time) (Result, error) {
	k, ok := c.Get(name)
	if !ok {
		return Result{}, fmt.Errorf("no KPI named %q in the catalog (kpis list shows them: %s)", name, strings.Join(c.Names(), ", "))
	}
	var win *catalog.Window
	if window != "" {
		w, err := catalog.ParseWindow(window)
		if err != nil {
			return Result{}, fmt.Errorf("--window: %w", err)
		}
		win = &w
	}
	if by != "" && !slices.Contains(k.Dimensions, by) {
		if len(k.Dimensions) == 0 {
			return Result{}, fmt.Errorf("--by %s: KPI %s has no dimensions", by, name)
		}
		return Result{}, fmt.Errorf("--by %s: KPI %s can be broken down by %s", by, name, strings.Join(k.Dimensions, ", "))
	}
	prior := map[string]Result{}
	var eval func(k catalog.KPI, dims []string) Result
	eval = func(k catalog.KPI, dims []string) Result {
		if win != nil {
			k.Window = *win
		}
		k.Dimensions = dims
		if k.Type == catalog.TypeDerived {
			refs, _ := catalog.References(k.Expression)
			for _, r := range refs {
				if _, done := prior[r]; !done && !catalog.IsConstant(r) {
					dep, _ := c.Get(r)
					prior[r] = eval(dep, nil)
				}
			}
		}
		return Evaluate(ctx, q, k, now, prior)
	}
	var dims []string
	if by != "" {
		dims = []string{by}
	}
	res := eval(k, dims)
	return res, res.Err
}

// ReadsCustomers reports whether k, or a KPI it is derived from, has a
// measure of the customer: one that reads resolved_events and so sees an
// event only once the identity resolver has placed it.
func ReadsCustomers(c *catalog.Catalog, k catalog.KPI) bool {
	for _, m := range []*catalog.Measure{k.Measure, k.Numerator, k.Denominator} {
		if m == nil || m.Source != "events" {
			continue
		}
		cols := append([]string{m.Field, m.GroupBy}, catalog.SortedKeys(m.Where)...)
		for _, d := range k.Dimensions {
			cols = append(cols, m.Dimension(d))
		}
		for _, n := range cols {
			if catalog.Sources["events"].Columns[n].Layer >= 2 {
				return true
			}
		}
	}
	if k.Type == catalog.TypeDerived {
		refs, _ := catalog.References(k.Expression)
		for _, r := range refs {
			if dep, ok := c.Get(r); ok && ReadsCustomers(c, dep) {
				return true
			}
		}
	}
	return false
}

// ResolvedUpTo returns the newest ingest time of the events the identity
// resolver has placed, and of all stored events.
func ResolvedUpTo(ctx context.Context, q Querier) (resolved, stored time.Time, err error) {
	rows, err := q.Query(ctx, "SELECT (SELECT max(ingested_at) FROM resolved_events), (SELECT max(ingested_at) FROM events)")
	if err != nil {
		return resolved, stored, err
	}
	defer rows.Close()
	if rows.Next() {
		err = rows.Scan(&resolved, &stored)
	}
	if err == nil {
		err = rows.Err()
	}
	return resolved.UTC(), stored.UTC(), err
}
