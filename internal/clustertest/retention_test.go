//go:build cluster

package clustertest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/store"
)

// clusterRetentionNow is the clock of TestClusterRetention: with the
// default retention dead letters and duplicates keep rows from 2026-03-17
// 12:00 on, KPI history from 2025-05-01 on, and the total of orders on
// 2024-09-10 is a baseline's day.
var clusterRetentionNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// clusterRetentionSlots are groups of rows around each table's cutoff,
// marked 'aged' or 'kept' in the table's column retentionMark names: whole
// months older than the cutoff (dropped as partitions), older rows in the
// cutoff's month or beside a kept baseline total (deleted by mutation),
// and rows to keep.
var clusterRetentionSlots = []struct {
	table, at string
	kept      bool
	kpi, dim  string // kpi_values
}{
	{table: "dead_letters", at: "2025-12-01 00:00:00"},
	{table: "dead_letters", at: "2026-01-10 00:00:00"},
	{table: "dead_letters", at: "2026-03-17 11:00:00"},
	{table: "dead_letters", at: "2026-03-17 13:00:00", kept: true},
	{table: "dead_letters", at: "2026-06-15 00:00:00", kept: true},
	{table: "duplicates", at: "2025-01-01 00:00:00"},
	{table: "duplicates", at: "2026-03-16 12:00:00"},
	{table: "duplicates", at: "2026-03-18 12:00:00", kept: true},
	{table: "kpi_values", at: "2025-02-01 00:00:00", kpi: "orders"},
	{table: "kpi_values", at: "2025-04-30 23:00:00", kpi: "orders"},
	{table: "kpi_values", at: "2024-09-10 12:00:00", kpi: "orders", kept: true},
	{table: "kpi_values", at: "2024-09-10 12:00:00", kpi: "orders", dim: "channel"},
	{table: "kpi_values", at: "2024-09-10 12:00:00", kpi: "revenue"},
	{table: "kpi_values", at: "2025-05-02 00:00:00", kpi: "orders", kept: true},
	{table: "kpi_runs", at: "2025-03-03 00:00:00"},
	{table: "kpi_runs", at: "2025-05-03 00:00:00", kept: true},
}

// retentionMark is the column of each table that says 'aged' or 'kept',
// and the table that holds its rows on a node.
var retentionMark = map[string]struct{ column, storage string }{
	"dead_letters": {"detail", "dead_letters_local"},
	"duplicates":   {"type", "duplicates_local"},
	"kpi_values":   {"window", "kpi_values"},
	"kpi_runs":     {"error", "kpi_runs"},
}

// retentionCounts returns, node by node, the 'aged' and 'kept' rows each
// node itself holds of every table.
func retentionCounts(t *testing.T, c *clustertest.Cluster, target store.Target) []map[string][2]uint64 {
	t.Helper()
	out := make([]map[string][2]uint64, len(c.Addrs))
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		out[i] = map[string][2]uint64{}
		for table, m := range retentionMark {
			out[i][table] = [2]uint64{
				count(t, conn, "SELECT count() FROM "+m.storage+" WHERE "+store.QuoteIdent(m.column)+" = 'aged'"),
				count(t, conn, "SELECT count() FROM "+m.storage+" WHERE "+store.QuoteIdent(m.column)+" = 'kept'"),
			}
		}
	}
	return out
}

// Retention applied through one node on the cluster removes what is older
// than each cutoff from every node at once, and nothing else: the months
// of the sharded dead letters and duplicates go from both shards
// (partitions dropped ON CLUSTER, the rest of their older rows by a
// mutation of every shard), those of the KPI history, replicated whole,
// from all four nodes (a plain statement, replicated). It waits for a
// replica that lags (its replication queues stopped for 8 s); each
// node counts, as soon as ApplyRetention returns, no older row and every
// row it kept before. A second run finds nothing more.
func TestClusterRetention(t *testing.T) {
	c := clustertest.Require(t)
	target := migrated(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := clustertest.Conn(t, c.OnNode(t, target, 1))
	const perSlot = 40 // rows of a slot, spread over both shards of a sharded table
	for i, s := range clusterRetentionSlots {
		at := "toDateTime('" + s.at + "', 'UTC')"
		mark := "aged"
		if s.kept {
			mark = "kept"
		}
		var sql string
		switch s.table {
		case "dead_letters":
			sql = fmt.Sprintf("INSERT INTO dead_letters (reason, detail, topic, `partition`, `offset`, failed_at) SELECT 'invalid_json', '%s', 't', %d, number, %s FROM numbers(%d)", mark, i, at, perSlot)
		case "duplicates":
			sql = fmt.Sprintf("INSERT INTO duplicates (event_id, type, topic, `partition`, `offset`, seen_at) SELECT concat('ev-', toString(number)), '%s', 't', %d, number, %s FROM numbers(%d)", mark, i, at, perSlot)
		case "kpi_values":
			sql = fmt.Sprintf("INSERT INTO kpi_values (kpi, dimension, dimension_value, window, computed_at) SELECT '%s', '%s', toString(number), '%s', %s FROM numbers(%d)", s.kpi, s.dim, mark, at, perSlot)
		case "kpi_runs":
			sql = fmt.Sprintf("INSERT INTO kpi_runs (kpi, computed_at, error, series) SELECT 'orders', %s, '%s', number FROM numbers(%d)", at, mark, perSlot)
		}
		if err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, m := range retentionMark {
		syncReplicas(t, c, target, m.storage)
	}
	before := retentionCounts(t, c, target)
	for i, node := range before {
		for table, n := range node {
			if n[0] == 0 || n[1] == 0 {
				t.Fatalf("node %d holds %d aged and %d kept rows of %s before retention: the fixture does not reach every node", i+1, n[0], n[1], table)
			}
		}
	}
	baseline := []store.KeptDay{{KPI: "orders", Day: time.Date(2024, 9, 10, 0, 0, 0, 0, time.UTC)}}

	// A replica of shard 2 lags: its replication queues (which carry the
	// mutations and dropped partitions of the other replicas) are stopped,
	// so retention must not return until they run again. It is not the
	// table's leader replica, which runs a DROP PARTITION and waits for its
	// own queue only.
	var lagging []func(verb string) error
	for _, m := range retentionMark {
		for _, node := range []int{3, 4} {
			conn := clustertest.Conn(t, c.OnNode(t, target, node))
			if count(t, conn, "SELECT count() FROM system.replicas WHERE database = ? AND table = ? AND is_leader", target.Database, m.storage) == 0 {
				lagging = append(lagging, func(verb string) error {
					return replicationQueues(ctx, conn, target.Database, verb, m.storage)
				})
				t.Logf("node %d lags on %s", node, m.storage)
				break
			}
		}
	}
	queues := func(verb string) {
		t.Helper()
		for _, q := range lagging {
			if err := q(verb); err != nil {
				t.Fatal(err)
			}
		}
	}
	queues("STOP")
	type result struct {
		aged []store.Aged
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		aged, err := store.ApplyRetention(ctx, conn, target, store.DefaultRetention(), baseline, clusterRetentionNow)
		done <- result{aged, err}
	}()
	select {
	case r := <-done:
		queues("START")
		t.Fatalf("retention returned while a replica had not applied it (err %v): it does not wait for every node", r.err)
	case <-time.After(8 * time.Second): // retention takes about 4 s here
	}
	queues("START")
	r := <-done
	if r.err != nil {
		t.Fatalf("retention on cluster %s: %v", c.Name, r.err)
	}
	aged := r.aged
	t.Logf("retention took %s, 8 s of which waiting for the lagging replicas", time.Since(start).Round(time.Millisecond))
	got := map[string]string{}
	for _, a := range aged {
		got[a.Table] = fmt.Sprintf("%d rows, months %s", a.Rows, strings.Join(a.Partitions, " "))
	}
	want := map[string]string{
		"dead_letters": fmt.Sprintf("%d rows, months 202512 202601", 3*perSlot),
		"duplicates":   fmt.Sprintf("%d rows, months 202501", 2*perSlot),
		// 202409 holds the baseline's day: its other rows go by mutation.
		"kpi_values": fmt.Sprintf("%d rows, months 202502 202504", 4*perSlot),
		"kpi_runs":   fmt.Sprintf("%d rows, months 202503", perSlot),
	}
	for table, w := range want {
		if got[table] != w {
			t.Errorf("%s: removed %q, want %q", table, got[table], w)
		}
	}
	// No SYSTEM SYNC REPLICA: ApplyRetention has waited for every node.
	after := retentionCounts(t, c, target)
	for i := range after {
		for table, n := range after[i] {
			if n[0] != 0 || n[1] != before[i][table][1] {
				t.Errorf("node %d, %s: %d aged rows left (want 0), %d kept (had %d)", i+1, table, n[0], n[1], before[i][table][1])
			}
		}
	}
	again, err := store.ApplyRetention(ctx, conn, target, store.DefaultRetention(), baseline, clusterRetentionNow)
	if err != nil || len(again) != 0 {
		t.Errorf("second run removed %+v (err %v), want nothing", again, err)
	}
}

// replicationQueues runs SYSTEM verb (STOP or START) REPLICATION QUEUES
// for each of tables of database on conn's node: stopped, the replica
// fetches nothing and applies no mutation or dropped partition of the
// other replicas until started again.
func replicationQueues(ctx context.Context, conn store.Conn, database, verb string, tables ...string) error {
	for _, table := range tables {
		if err := conn.Exec(ctx, "SYSTEM "+verb+" REPLICATION QUEUES "+database+"."+table); err != nil {
			return fmt.Errorf("%s replication queues of %s: %w", verb, table, err)
		}
	}
	return nil
}
