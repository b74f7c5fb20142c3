//go:build cluster

package clustertest_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// forgetPeople is how many customers the erasure fixture holds. Customer
// i is crm-<i> and the device dev-<i> (4 digits), linked by a form sent
// in a second phase, so that the resolver merges them as in production;
// each has a visit, a form and three orders (ev-<i>-0 … ev-<i>-4), two
// duplicates of orders and three dead letters naming them. Every id of
// customer i, and no other's, holds "-<i>".
const forgetPeople = 30

// loadForgetCluster stores the fixture through node 1 in its two phases,
// resolving identities on node 1 after each, as the transform does.
func loadForgetCluster(t *testing.T, c *clustertest.Cluster, target store.Target) {
	t.Helper()
	ctx := context.Background()
	conn := clustertest.Conn(t, c.OnNode(t, target, 1))
	received := [2]time.Time{time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 11, 0, 0, 0, time.UTC)}
	resolver := identity.NewResolver(conn, nil)
	var clock time.Time
	resolver.Now = func() time.Time { return clock }
	for phase := range 2 {
		w := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return received[phase] })
		var rows []ingest.Row
		var dls []ingest.DeadLetter
		var dups []ingest.Duplicate
		for i := range forgetPeople {
			crm, dev := fmt.Sprintf("crm-%04d", i), fmt.Sprintf("dev-%04d", i)
			ev := func(k int, typ events.Type, topic string) ingest.Row {
				return ingest.Row{Topic: topic, Offset: int64(10*i + k), Event: events.Event{EventID: fmt.Sprintf("ev-%04d-%d", i, k), Type: typ, Source: "test",
					OccurredAt: time.Date(2026, 3, 1+i%28, k, 0, 0, 0, time.UTC), Properties: []byte("{}")}}
			}
			if phase == 1 {
				form := ev(1, events.TypeFormSubmitted, events.TopicCampaign)
				form.CRMContactID, form.AnonymousID = crm, dev
				rows = append(rows, form)
				continue
			}
			visit := ev(0, events.TypeWebVisit, events.TopicCampaign)
			visit.AnonymousID = dev
			rows = append(rows, visit)
			for k := 2; k <= 4; k++ {
				order := ev(k, events.TypeOrderPlaced, events.TopicCRM)
				order.CRMContactID, order.Amount, order.Currency, order.EntityID = crm, 10, "EUR", fmt.Sprintf("o-%04d-%d", i, k)
				rows = append(rows, order)
				if k > 2 {
					dups = append(dups, ingest.Duplicate{EventID: order.EventID, Type: order.Type, Topic: events.TopicCRM, Partition: 1, Offset: int64(10*i + k)})
				}
			}
			for j, payload := range []string{
				`{"event_id":"x","identity":{"crm_contact_id":"` + crm + `"},"properties":{"currency":"XYZ"}}`,
				`{"event_id":"y","identity": {"crm_contact_id": "` + crm + `"`,
				`{"event_id":"z","identity":{"anonymous_id":"` + dev + `"}}`,
			} {
				dls = append(dls, ingest.DeadLetter{Reason: events.ReasonInvalidJSON, Topic: events.TopicCRM, Partition: 2, Offset: int64(10*i + j),
					Key: []byte(fmt.Sprintf("k-%04d-%d", i, j)), Value: []byte(payload), Time: received[phase]})
			}
		}
		if err := w.InsertEvents(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := w.InsertDeadLetters(ctx, dls); err != nil {
			t.Fatal(err)
		}
		if err := w.InsertDuplicates(ctx, dups); err != nil {
			t.Fatal(err)
		}
		clock = received[phase].Add(time.Second)
		if _, err := resolver.Update(ctx); err != nil {
			t.Fatalf("identity update, phase %d: %v", phase+1, err)
		}
	}
}

// forgetTables lists the tables that hold rows on a node (local and
// whole, not Distributed), but transform_state, where Forget writes its
// mark, and schema_migrations; with their engines.
func forgetTables(t *testing.T, conn store.Conn, database string) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name, engine FROM system.tables WHERE database = ? AND engine != 'Distributed' AND name NOT IN ('transform_state', 'schema_migrations')", database)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		out[name] = engine
	}
	return out
}

// forgetCounts returns, node by node and table by table (forgetTables),
// how many rows the node itself holds that mention marker in a String
// column, and how many that do not: once merged (FINAL), so that a
// background merge does not change them.
func forgetCounts(t *testing.T, c *clustertest.Cluster, target store.Target, marker string) []map[string][2]uint64 {
	t.Helper()
	ctx := context.Background()
	out := make([]map[string][2]uint64, len(c.Addrs))
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		out[i] = map[string][2]uint64{}
		for table, engine := range forgetTables(t, conn, target.Database) {
			rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ? AND type IN ('String', 'Array(String)')", target.Database, table)
			if err != nil {
				t.Fatal(err)
			}
			var conds []string
			var args []any
			for rows.Next() {
				var name, typ string
				if err := rows.Scan(&name, &typ); err != nil {
					t.Fatal(err)
				}
				if typ == "String" {
					conds = append(conds, "position("+store.QuoteIdent(name)+", ?) > 0")
				} else {
					conds = append(conds, "arrayExists(x -> position(x, ?) > 0, "+store.QuoteIdent(name)+")")
				}
				args = append(args, marker)
			}
			rows.Close()
			final := ""
			if strings.Contains(engine, "Replacing") {
				final = " FINAL"
			}
			var mine, all uint64
			if err := conn.QueryRow(ctx, "SELECT countIf("+strings.Join(conds, " OR ")+"), count() FROM "+table+final, args...).Scan(&mine, &all); err != nil {
				t.Fatalf("node %d, %s: %v", i+1, table, err)
			}
			out[i][table] = [2]uint64{mine, all - mine}
		}
	}
	return out
}

// distinctOn lists the distinct values of expr in table on a node.
func distinctOn(t *testing.T, conn store.Conn, expr, table string) map[string]bool {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT DISTINCT "+expr+" FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out[v] = true
	}
	return out
}

// `customer forget` on the cluster (identity.Forget through node 2)
// removes one customer from every node and no one else: their events,
// duplicates and dead letters from both shards (a mutation of every
// shard's local table), their identity keys, merges, resolved events and
// 360 from all four replicas of those tables. It waits for a replica that
// lags (node 4, its replication queues stopped for 8 s). As soon as it
// returns, each node holds no row of theirs, the same number of rows of
// everyone else, table by table, and no trace of their ids anywhere.
func TestClusterForget(t *testing.T) {
	c := clustertest.Require(t)
	target := migrated(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	loadForgetCluster(t, c, target)
	lagging := clustertest.Conn(t, c.OnNode(t, target, 4))
	tables := slices.Sorted(maps.Keys(forgetTables(t, lagging, target.Database)))
	for _, table := range tables {
		syncReplicas(t, c, target, table)
	}

	// The customer forgotten has rows of each sharded table on both shards
	// (nodes 1 and 3 are one replica of each).
	var person string
	var candidates []map[string]bool
	for _, node := range []int{1, 3} {
		conn := clustertest.Conn(t, c.OnNode(t, target, node))
		candidates = append(candidates, distinctOn(t, conn, "substring(event_id, 4, 4)", "events_local"),
			distinctOn(t, conn, "substring(message_key, 3, 4)", "dead_letters_local"), distinctOn(t, conn, "substring(event_id, 4, 4)", "duplicates_local"))
	}
	for i := range forgetPeople {
		p := fmt.Sprintf("%04d", i)
		if !slices.ContainsFunc(candidates, func(m map[string]bool) bool { return !m[p] }) {
			person = p
			break
		}
	}
	if person == "" {
		t.Fatal("no customer has rows of every sharded table on both shards")
	}
	marker := "-" + person
	before := forgetCounts(t, c, target, marker)
	for i, node := range before {
		for _, table := range []string{"events_local", "dead_letters_local", "duplicates_local", "identity_map", "customer_merges", "customers", "resolved_events"} {
			if n := node[table]; n[0] == 0 || n[1] == 0 {
				t.Fatalf("node %d holds %d rows of customer %s and %d of others in %s before the erasure: the fixture does not reach every node", i+1, n[0], person, n[1], table)
			}
		}
	}

	if err := replicationQueues(ctx, lagging, target.Database, "STOP", tables...); err != nil {
		t.Fatal(err)
	}
	type result struct {
		f   identity.Forgotten
		err error
	}
	done := make(chan result, 1)
	via := c.OnNode(t, target, 2)
	start := time.Now()
	go func() {
		f, err := identity.Forget(ctx, clustertest.Conn(t, via), via, "crm:crm-"+person, []byte("cluster-test-key-0123456789"), identity.ForgetOptions{})
		done <- result{f, err}
	}()
	select {
	case r := <-done:
		_ = replicationQueues(ctx, lagging, target.Database, "START", tables...)
		t.Fatalf("forget returned while node 4 had not applied it (%+v, err %v): it does not wait for every node", r.f, r.err)
	case <-time.After(8 * time.Second):
	}
	if err := replicationQueues(ctx, lagging, target.Database, "START", tables...); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("forget on cluster %s: %v", c.Name, r.err)
	}
	t.Logf("forget took %s, 8 s of which waiting for node 4; removed %v", time.Since(start).Round(time.Millisecond), r.f.Rows)
	if f := r.f; f.CustomerID != "crm:crm-"+person || f.Keys != 2 || f.Rows["events"] != 5 || f.Rows["dead_letters"] != 3 || f.Rows["duplicates"] != 2 {
		t.Errorf("forgot %+v; want crm:crm-%s with 2 keys, 5 events, 3 dead letters, 2 duplicates", f, person)
	}

	// No SYSTEM SYNC REPLICA: Forget has waited for every node.
	after := forgetCounts(t, c, target, marker)
	for i := range after {
		for _, table := range tables {
			if a, b := after[i][table], before[i][table]; a[0] != 0 || a[1] != b[1] {
				t.Errorf("node %d, %s: %d rows of customer %s left (had %d), %d of others (had %d)", i+1, table, a[0], person, b[0], a[1], b[1])
			}
		}
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		for _, fd := range testenv.FindInTables(t, conn, target.Database, []string{"crm-" + person, "dev-" + person, "ev-" + person + "-"}, false) {
			t.Errorf("node %d: left after the erasure: %s", i+1, fd)
		}
	}
}
