//go:build chdb

package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kpibridge/kpibridge/internal/chdbtest"
	"github.com/kpibridge/kpibridge/store"
)

// TestChDBRetention runs retention (system.parts, DROP PARTITION, ALTER
// TABLE … DELETE and the wait on system.mutations) on current ClickHouse
// over the fixture of TestRetentionRemovesOnlyWhatIsOlder, with the same
// outcome.
func TestChDBRetention(t *testing.T) {
	s := chdbtest.Session(t, "retention")
	chdbtest.Migrate(t, s)
	insertRetentionFixture(t, func(sql string) { chdbtest.Query(t, s, sql) })
	conn := chdbtest.Conn{S: s}
	if _, err := store.ApplyRetention(context.Background(), conn, chdbtest.Target(t, "retention"), store.DefaultRetention(), baselineDay, retentionNow); err != nil {
		t.Fatal(err)
	}
	checkRetained(t, func(table string) []string {
		out := chdbtest.Query(t, s, "SELECT "+retentionIDColumn[table]+" FROM "+table)
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	})
	again, err := store.ApplyRetention(context.Background(), conn, chdbtest.Target(t, "retention"), store.DefaultRetention(), baselineDay, retentionNow)
	if err != nil || len(again) != 0 {
		t.Errorf("second run removed %+v (err %v), want nothing", again, err)
	}
}
