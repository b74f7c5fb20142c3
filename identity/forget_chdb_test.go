//go:build chdb

package identity_test

import (
	"context"
	"testing"

	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/internal/chdbtest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// TestChDBForget runs the erasure on current ClickHouse: the fixture of
// TestForgetRemovesOneCustomerAndNoOneElse, stored and resolved on the test
// server, is copied into chDB, where Alice is forgotten; the same rows go,
// nothing of her is left, and no other customer's 360 changes.
func TestChDBForget(t *testing.T) {
	ctx := context.Background()
	fx := loadForgetFixture(t, true)
	// Versions written within one second tie; merged here, the copy holds
	// the one the test server reads.
	for _, table := range []string{"identity_map", "customers", "customer_merges"} {
		if err := fx.conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	s := chdbtest.Session(t, "forget")
	chdbtest.Migrate(t, s)
	chdbtest.CopyTables(t, fx.target, s, "events", "dead_letters", "duplicates", "identity_map", "customers", "resolved_events", "resolve_staging", "customer_merges", "transform_state")
	conn := chdbtest.Conn{S: s}
	want, err := identity.Forget(ctx, fx.conn, fx.target, "crm:C1", forgetKey, identity.ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := customers360(t, conn)
	got, err := identity.Forget(ctx, conn, chdbtest.Target(t, "forget"), "crm:C1", forgetKey, identity.ForgetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != len(want.Rows) || got.Keys != want.Keys {
		t.Errorf("chDB forgot %+v, the test server %+v", got, want)
	}
	for table, n := range want.Rows {
		if got.Rows[table] != n {
			t.Errorf("%s: chDB removed %d rows, the test server %d", table, got.Rows[table], n)
		}
	}
	for _, fd := range testenv.FindInTables(t, conn, "forget", []string{"crm:C1", "anon:a1", aliceHash}, false) {
		t.Errorf("left after the erasure on chDB: %s", fd)
	}
	after := customers360(t, conn)
	for id, row := range before {
		if id == "crm:C1" || id == "anon:a1" || id == "email:"+aliceHash {
			continue
		}
		if after[id] != row {
			t.Errorf("customer %s changed on chDB:\n before %s\n after  %s", id, row, after[id])
		}
	}
	if len(after) != len(before)-3 {
		t.Errorf("%d customers after, %d before; want Alice's 3 rows gone", len(after), len(before))
	}
}
