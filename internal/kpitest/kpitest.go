// Package kpitest computes every default KPI for tests that compare two
// stores (the fault suite against an undisturbed run, the cluster against
// one server).
package kpitest

import (
	"context"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/transform"
)

// Series evaluates every KPI of the default catalog at now over q, in
// dependency order, and returns the value of each series keyed
// "kpi{dimension=value}" (the total: "kpi{=}"). A KPI that fails fails t.
func Series(t testing.TB, q transform.Querier, now time.Time) map[string]float64 {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	prior := map[string]transform.Result{}
	out := map[string]float64{}
	for _, k := range cat.Order() {
		res := transform.Evaluate(context.Background(), q, k, now, prior)
		if res.Err != nil {
			t.Fatalf("%s: %v", k.Name, res.Err)
		}
		prior[k.Name] = res
		for _, s := range res.Series {
			out[k.Name+"{"+s.Dimension+"="+s.Value+"}"] = s.Result
		}
	}
	return out
}
