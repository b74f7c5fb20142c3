//go:build chdb

package transform_test

import (
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/internal/chdbtest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// TestGoldenOnChDB asserts the golden values on current ClickHouse: the
// fixture is stored and resolved on the test server, its tables are copied
// into chDB, the customer 360 (with attribution) is recomputed there, and
// every default KPI is evaluated there.
func TestGoldenOnChDB(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	loadResolvedGolden(t, conn)
	s := chdbtest.Session(t, "golden")
	chdbtest.Migrate(t, s)
	chdbtest.CopyTables(t, target, s, "events", "dead_letters", "duplicates", "identity_map", "resolved_events", "customer_merges")
	for _, settings := range []struct {
		name  string
		model string
		look  string
		wants map[string]want
	}{{"first_touch_30d", "first_touch", "30d", golden}, {"last_touch_90d", "last_touch", "90d", goldenLastTouch}} {
		t.Run(settings.name, func(t *testing.T) {
			cat := goldenCatalog(t, settings.model, settings.look)
			q, err := identity.CustomersQuery(nil, true, time.Now().UTC(), cat.Settings)
			if err != nil {
				t.Fatal(err)
			}
			sql, err := chdbtest.Inline(q)
			if err != nil {
				t.Fatal(err)
			}
			chdbtest.Query(t, s, "TRUNCATE TABLE customers")
			chdbtest.Query(t, s, sql)
			if got := chdbtest.Query(t, s, "SELECT count() FROM customers FINAL WHERE merged_into = ''"); got != "8" {
				t.Fatalf("chDB computed %s customers, want 8", got)
			}
			checkGolden(t, chdbtest.Querier{S: s}, cat, settings.wants, settings.name == "first_touch_30d")
		})
	}
}
