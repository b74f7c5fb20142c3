package transform

import (
	"context"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

func TestEveryDefaultKPIRunsOnClickHouse(t *testing.T) {
	_, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	prior := map[string]Result{}
	for _, k := range cat.Order() {
		r := Evaluate(ctx, conn, k, time.Now(), prior)
		if r.Err != nil {
			t.Errorf("%v", r.Err)
		}
		prior[k.Name] = r
	}
}
