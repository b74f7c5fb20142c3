package store

import (
	"context"
	"fmt"
	"time"
)

// Mutate runs an ALTER TABLE … DELETE (or UPDATE) on table and waits until
// ClickHouse has applied it to every part. ClickHouse 18.16 runs mutations in
// the background and has no mutations_sync setting, so the wait polls
// system.mutations until no mutation of the table is left to do; ctx bounds
// it. A mutation that fails keeps is_done = 0: the wait then ends with ctx,
// and the error says where to look.
func Mutate(ctx context.Context, conn Conn, database, table string, q Query) error {
	if err := conn.Exec(ctx, q.SQL, q.Args...); err != nil {
		return fmt.Errorf("%s: %w", table, err)
	}
	return WaitMutations(ctx, conn, database, table)
}

// WaitMutations waits until table has no unfinished mutation.
func WaitMutations(ctx context.Context, conn Conn, database, table string) error {
	wait := 50 * time.Millisecond
	for {
		var left uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0", database, table).Scan(&left); err != nil {
			return fmt.Errorf("wait for mutations of %s.%s: %w", database, table, err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d mutations of %s.%s are not done (see SELECT * FROM system.mutations WHERE database = '%s' AND table = '%s' AND is_done = 0): %w",
				left, database, table, database, table, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
