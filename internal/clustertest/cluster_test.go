//go:build cluster

package clustertest_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// sharded are the tables split across shards, each a Distributed table over
// a replicated <name>_local (docs/SCALING.md); every other table is
// replicated whole to every node.
var sharded = map[string]bool{"events": true, "dead_letters": true, "duplicates": true}

// schemaOf lists every table of database on a node with its engine and
// columns, one line each.
func schemaOf(t *testing.T, conn store.Conn, database string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	tables, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", database)
	if err != nil {
		t.Fatal(err)
	}
	defer tables.Close()
	for tables.Next() {
		var name, engine string
		if err := tables.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		out[name] = engine + ":"
	}
	cols, err := conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name", database)
	if err != nil {
		t.Fatal(err)
	}
	defer cols.Close()
	for cols.Next() {
		var table, name, typ string
		if err := cols.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		out[table] += " " + name + " " + typ
	}
	return out
}

// checkLayout checks that every node has every table of the schema with
// the engine its placement gives, the same columns on a Distributed table
// and its local table, the same schema as node 1, and answers CheckSchema.
func checkLayout(t *testing.T, c *clustertest.Cluster, target store.Target) {
	t.Helper()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := store.ClusterTables(ms)
	if err != nil {
		t.Fatal(err)
	}
	var first map[string]string
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		got := schemaOf(t, conn, target.Database)
		for _, name := range tables {
			engine, _, _ := strings.Cut(got[name], ":")
			logical, local := strings.CutSuffix(name, "_local")
			switch {
			case got[name] == "":
				t.Errorf("node %d: table %s missing", i+1, name)
			case sharded[name] && engine != "Distributed":
				t.Errorf("node %d: %s is %s, want Distributed", i+1, name, engine)
			case !sharded[name] && !strings.HasPrefix(engine, "Replicated"):
				t.Errorf("node %d: %s is %s, want a Replicated engine", i+1, name, engine)
			case local && sharded[logical]:
				_, dist, _ := strings.Cut(got[logical], ":")
				_, loc, _ := strings.Cut(got[name], ":")
				if dist != loc {
					t.Errorf("node %d: %s has columns%s, its local table%s", i+1, logical, dist, loc)
				}
			}
		}
		if len(got) != len(tables) {
			t.Errorf("node %d has %d tables, want %d (%v)", i+1, len(got), len(tables), tables)
		}
		if first == nil {
			first = got
		} else if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Errorf("node %d's schema differs from node 1's:\n%v\nnode 1:\n%v", i+1, got, first)
		}
		if err := store.CheckSchema(context.Background(), conn, target); err != nil {
			t.Errorf("node %d: %v", i+1, err)
		}
	}
}

// `kpibridge migrate --cluster` creates the schema on every node, and
// running it again is a no-op; forgetting what was applied and migrating
// again re-runs every statement on the cluster without an error or a
// change; a column added to a sharded table reaches both its local and
// its Distributed table.
func TestClusterMigrate(t *testing.T) {
	c := clustertest.Require(t)
	target := c.Database(t)
	bin := testenv.Binary(t)
	migrate := func() string {
		t.Helper()
		start := time.Now()
		out, err := exec.Command(bin, "migrate", "--clickhouse", target.DSN, "--cluster", c.Name).CombinedOutput()
		if err != nil {
			t.Fatalf("kpibridge migrate --cluster %s: %v\n%s", c.Name, err, out)
		}
		t.Logf("migrate took %s", time.Since(start).Round(time.Millisecond))
		return string(out)
	}
	if out := migrate(); !strings.Contains(out, "on every node of cluster "+c.Name) {
		t.Errorf("first migrate said:\n%s", out)
	}
	if out := migrate(); !strings.Contains(out, "is up to date") {
		t.Errorf("second migrate said:\n%s", out)
	}
	checkLayout(t, c, target)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := clustertest.Conn(t, c.OnNode(t, target, 2))
	before := schemaOf(t, conn, target.Database)
	// Every statement of every migration again, as a migration that failed
	// half-way is re-run, from another node.
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		ms[i].Version += 1000
	}
	// The newest distributed DDL task before the re-run.
	ddlTasks := "SELECT %s FROM system.zookeeper WHERE path = '/clickhouse/" + c.Name + "/task_queue/ddl'"
	var lastTask string
	if err := conn.QueryRow(ctx, fmt.Sprintf(ddlTasks, "max(name)")).Scan(&lastTask); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ApplyMigrations(ctx, c.OnNode(t, target, 3), ms, nil); err != nil {
		t.Fatalf("re-running every migration on the cluster: %v", err)
	}
	// An ADD COLUMN every node has done already is not sent again: on 18.16
	// such an ALTER failing on a replica can end that node's DDL thread.
	if n := count(t, conn, fmt.Sprintf(ddlTasks, "count()")+" AND name > ? AND value LIKE ?", lastTask, "%"+target.Database+"%ADD COLUMN%"); n != 0 {
		t.Errorf("re-running the migrations sent %d ADD COLUMN statements whose columns exist on every node", n)
	}
	if after := schemaOf(t, conn, target.Database); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("schema after re-running the migrations:\n%v\nwant\n%v", after, before)
	}
	checkLayout(t, c, target)

	// A later migration adding a column to a sharded table, run twice.
	for run := range 2 {
		files := fstest.MapFS{fmt.Sprintf("m/%04d_extra.sql", 2000+run): {Data: []byte("ALTER TABLE events ADD COLUMN cluster_extra String;\n")}}
		extra, err := store.LoadMigrations(files, "m")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.ApplyMigrations(ctx, target, extra, nil); err != nil {
			t.Fatalf("adding a column to events, run %d: %v", run+1, err)
		}
	}
	for i := range c.Addrs {
		got := schemaOf(t, clustertest.Conn(t, c.OnNode(t, target, i+1)), target.Database)
		for _, table := range []string{"events", "events_local"} {
			if !strings.Contains(got[table], " cluster_extra String") {
				t.Errorf("node %d: %s lacks the added column: %s", i+1, table, got[table])
			}
		}
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO events (event_id, cluster_extra)")
	if err == nil {
		if err = batch.Append("x", "y"); err == nil {
			err = batch.Send()
		}
	}
	if err != nil {
		t.Errorf("insert into the rebuilt Distributed table: %v", err)
	} else if n := count(t, conn, "SELECT count() FROM events WHERE cluster_extra = 'y'"); n != 1 {
		t.Errorf("the rebuilt Distributed table reads %d rows with the new column set, want 1", n)
	}

	// A database migrated for one server is not taken for a cluster one.
	single, err := target.WithCluster("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, single, nil); err == nil || !strings.Contains(err.Error(), "was migrated for a cluster") {
		t.Errorf("migrating a cluster database without the cluster: %v", err)
	}
	// Nor is it used without clickhouse.cluster: inserts would not wait for
	// the shards, deletions would reach one node. Every command refuses.
	if err := store.CheckSchema(ctx, conn, single); err == nil || !strings.Contains(err.Error(), "clickhouse.cluster is not set") {
		t.Errorf("CheckSchema of a cluster database without the cluster: %v", err)
	}
	wrong, err := target.WithCluster("elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckSchema(ctx, conn, wrong); err == nil || !strings.Contains(err.Error(), "set clickhouse.cluster: "+c.Name) {
		t.Errorf("CheckSchema of a cluster database with another cluster's name: %v", err)
	}
	for _, args := range [][]string{
		{"run", "--role", "transform", "--web.listen-address", testenv.FreeAddr(t)},
		{"customer", "c-1"},
	} {
		out, err := exec.Command(bin, append(args, "--clickhouse", target.DSN)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "set clickhouse.cluster: "+c.Name) {
			t.Errorf("kpibridge %s on a cluster database without clickhouse.cluster: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func count(t *testing.T, conn store.Conn, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// migrated is a fresh database migrated on the cluster.
func migrated(t *testing.T, c *clustertest.Cluster) store.Target {
	t.Helper()
	target := c.Database(t)
	start := time.Now()
	if _, err := store.Migrate(context.Background(), target, nil); err != nil {
		t.Fatalf("migrate on cluster %s: %v", c.Name, err)
	}
	t.Logf("migrate took %s", time.Since(start).Round(time.Millisecond))
	return target
}

func event(i int) ingest.Row {
	return ingest.Row{Topic: "crm.events", Partition: i % 6, Offset: int64(i), Event: events.Event{
		EventID: fmt.Sprintf("ev-%06d", i), Type: events.TypeOrderPlaced, Source: "test",
		OccurredAt: time.Date(2026, time.Month(1+i%3), 1+i%28, 12, 0, 0, 0, time.UTC), CRMContactID: fmt.Sprintf("c-%d", i%97),
		Amount: float64(i % 50), Currency: "EUR", EntityID: fmt.Sprintf("o-%d", i), Properties: []byte("{}")}}
}

// syncReplicas waits until every replica of table has fetched what its
// shard holds.
func syncReplicas(t *testing.T, c *clustertest.Cluster, target store.Target, table string) {
	t.Helper()
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		if err := conn.Exec(context.Background(), "SYSTEM SYNC REPLICA "+target.Database+"."+table); err != nil {
			t.Fatalf("node %d: sync %s: %v", i+1, table, err)
		}
	}
}

// checkExact checks, on every node, that the events table counts want
// distinct event_ids, both as uniqExact and with FINAL, and that each
// shard's two replicas hold the same rows and no event is on two shards.
func checkExact(t *testing.T, c *clustertest.Cluster, target store.Target, want uint64) {
	t.Helper()
	syncReplicas(t, c, target, "events_local")
	perNode := make([]uint64, len(c.Addrs))
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		if got := count(t, conn, "SELECT uniqExact(event_id) FROM events"); got != want {
			t.Errorf("node %d: uniqExact(event_id) = %d, want %d", i+1, got, want)
		}
		if got := count(t, conn, "SELECT count() FROM events FINAL"); got != want {
			t.Errorf("node %d: count() FINAL = %d, want %d", i+1, got, want)
		}
		perNode[i] = count(t, conn, "SELECT count() FROM events_local FINAL")
	}
	// Nodes 1, 2 are shard 1 and nodes 3, 4 shard 2 (scripts/cluster.sh).
	if perNode[0] != perNode[1] || perNode[2] != perNode[3] || perNode[0]+perNode[2] != want || perNode[0] == 0 || perNode[2] == 0 {
		t.Errorf("distinct events per node (local tables) = %v, want two equal pairs summing to %d", perNode, want)
	}
}

// Events inserted through the Distributed table by the ingest writer,
// each re-sent through another node, in other batches, count exactly once
// on every node; so do dead letters and duplicates delivered twice.
func TestClusterInsertsAreExact(t *testing.T) {
	c := clustertest.Require(t)
	target := migrated(t, c)
	ctx := context.Background()
	writers := []*ingest.ClickHouseWriter{
		ingest.NewClickHouseWriter(clustertest.Conn(t, c.OnNode(t, target, 1)), 1024),
		ingest.NewClickHouseWriter(clustertest.Conn(t, c.OnNode(t, target, 4)), 1024),
	}
	const n, batch = 4000, 500
	for start := 0; start < n; start += batch {
		var rows []ingest.Row
		for i := start; i < start+batch; i++ {
			rows = append(rows, event(i))
		}
		if err := writers[0].InsertEvents(ctx, rows); err != nil {
			t.Fatalf("insert events %d-%d: %v", start, start+batch, err)
		}
		// Every fifth event again, through another node, mixed with others.
		var again []ingest.Row
		for i := 0; i <= start+batch-1; i += 5 {
			again = append(again, event(i))
		}
		if err := writers[1].InsertEvents(ctx, again); err != nil {
			t.Fatalf("re-send events: %v", err)
		}
	}
	checkExact(t, c, target, n)

	var dls []ingest.DeadLetter
	var dups []ingest.Duplicate
	for i := range 300 {
		dls = append(dls, ingest.DeadLetter{Reason: events.ReasonInvalidJSON, Topic: "crm.events", Partition: i % 6, Offset: int64(i), Value: []byte("{"), Time: time.Now()})
		dups = append(dups, ingest.Duplicate{EventID: fmt.Sprintf("ev-%06d", i), Type: events.TypeOrderPlaced, Topic: "crm.events", Partition: i % 6, Offset: int64(10_000 + i)})
	}
	for _, w := range writers {
		if err := w.InsertDeadLetters(ctx, dls); err != nil {
			t.Fatalf("insert dead letters: %v", err)
		}
		if err := w.InsertDuplicates(ctx, dups); err != nil {
			t.Fatalf("insert duplicates: %v", err)
		}
	}
	syncReplicas(t, c, target, "dead_letters_local")
	syncReplicas(t, c, target, "duplicates_local")
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		for _, table := range []string{"dead_letters", "duplicates"} {
			if got := count(t, conn, "SELECT count() FROM "+table+" FINAL"); got != 300 {
				t.Errorf("node %d: %s FINAL has %d rows, want 300", i+1, table, got)
			}
		}
	}
}

// One replica of shard 2 is stopped (SIGTERM) while a stream of inserts
// through node 1 runs, and started again while it still runs: every insert
// succeeds or is retried as it was (as ingest retries), and once the
// replica has caught up every node counts each event once, raw rows
// included (a retried block is deduplicated), and the returned replica
// holds what its peer holds. An ON CLUSTER statement sent while it is down
// names it.
func TestClusterReplicaDownDuringInserts(t *testing.T) {
	c := clustertest.Require(t)
	target := migrated(t, c)
	ctx := context.Background()
	conn := clustertest.Conn(t, c.OnNode(t, target, 1))
	const batches, batch, down, check, up = 60, 500, 10, 30, 45
	stopped := make(chan error, 1)
	retries := 0
	for b := range batches {
		switch b {
		case down:
			go func() { stopped <- c.StopNode(t, 3) }()
		case check:
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			// A migration sent now says which host did not apply it
			// (the impatient user waits 5 s for it).
			other, err := target.WithDatabase(target.Database + "_other")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.DropDatabase(context.Background(), other) })
			impatient, err := store.ParseDSN("clickhouse://impatient@" + c.Addrs[0] + "/" + other.Database)
			if err != nil {
				t.Fatal(err)
			}
			if impatient, err = impatient.WithCluster(c.Name); err != nil {
				t.Fatal(err)
			}
			_, err = store.Migrate(ctx, impatient, nil)
			if err == nil || !strings.Contains(err.Error(), c.Addrs[2]+" did not report") {
				t.Errorf("migrate with node 3 down: %v, want it to name %s", err, c.Addrs[2])
			} else {
				t.Logf("migrate with node 3 down: %v", err)
			}
		case up:
			c.StartNode(t, 3)
		}
		var rows []ingest.Row
		for i := b * batch; i < (b+1)*batch; i++ {
			rows = append(rows, event(i))
		}
		stamp := time.Date(2026, 4, 1, 0, 0, b, 0, time.UTC)
		w := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return stamp })
		deadline := time.Now().Add(time.Minute)
		for {
			err := w.InsertEvents(ctx, rows)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("batch %d still failing after a minute: %v", b, err)
			}
			retries++
			t.Logf("batch %d: %v (retrying)", b, err)
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("%d batches of %d events, %d retried inserts", batches, batch, retries)
	checkExact(t, c, target, batches*batch)
	for i := range c.Addrs {
		if got := count(t, clustertest.Conn(t, c.OnNode(t, target, i+1)), "SELECT count() FROM events"); got != batches*batch {
			t.Errorf("node %d: events holds %d rows before merges, want %d: a block was stored twice", i+1, got, batches*batch)
		}
	}
}
