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
				if _, done := prior[r]; !done {
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
