package transform

import (
	"context"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

func TestEveryDefaultKPIRunsOnClickHouse(t *testing.T) {
	target := testenv.ClickHouse(t)
	ctx := context.Background()
	if _, err := store.Migrate(ctx, target, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
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
