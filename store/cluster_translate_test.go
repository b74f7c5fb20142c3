package store_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpibridge/kpibridge/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// The embedded migrations, translated for a cluster, are reviewed as a
// whole in testdata/cluster_migrations.sql: regenerate it with -update and
// read the diff.
func TestClusterMigrationsGolden(t *testing.T) {
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "-- %s\n", m.Name)
		for i, stmt := range m.Statements {
			sts, err := store.ClusterStatements(stmt, "kpibridge", "kpibridge")
			if err != nil {
				t.Fatalf("%s statement %d: %v", m.Name, i+1, err)
			}
			for _, s := range sts {
				b.WriteString(s + ";\n\n")
			}
		}
	}
	golden := filepath.Join("testdata", "cluster_migrations.sql")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./store/ -run ClusterMigrationsGolden -update)", err)
	}
	if b.String() != string(want) {
		t.Errorf("cluster translation differs from %s; run with -update and review the diff", golden)
	}
}

// A statement the translation does not know is refused, naming it, rather
// than run on one node only.
func TestClusterStatementsRefuseUnknownForms(t *testing.T) {
	for _, tt := range []struct{ name, stmt, want string }{
		{"rename", "RENAME TABLE a TO b", "only CREATE TABLE IF NOT EXISTS and ALTER TABLE"},
		{"create without IF NOT EXISTS", "CREATE TABLE a (x UInt8) ENGINE = MergeTree ORDER BY x", "only CREATE TABLE IF NOT EXISTS"},
		{"memory engine", "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Memory", "engine Memory"},
		{"replicated already", "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY x", "only non-replicated"},
		{"drop column", "ALTER TABLE events DROP COLUMN x", "only ADD COLUMN, DELETE, UPDATE and MODIFY TTL"},
		{"unbalanced", "CREATE TABLE IF NOT EXISTS a (x UInt8 ENGINE = MergeTree", "unbalanced parentheses"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.ClusterStatements(tt.stmt, "db", "c")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// Sharded tables get a local table and a Distributed one; ADD COLUMN on
// them reaches both; a parenthesis inside a string or a default does not
// end the column list.
func TestClusterStatementsSharded(t *testing.T) {
	got, err := store.ClusterStatements("CREATE TABLE IF NOT EXISTS dead_letters (reason String DEFAULT ')', x UInt64 DEFAULT cityHash64(reason)) ENGINE = ReplacingMergeTree(failed_at) ORDER BY x", "db", "c")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE IF NOT EXISTS db.dead_letters_local ON CLUSTER c (reason String DEFAULT ')', x UInt64 DEFAULT cityHash64(reason))\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/dead_letters_local', '{replica}', failed_at)\nORDER BY x",
		"CREATE TABLE IF NOT EXISTS db.dead_letters ON CLUSTER c AS db.dead_letters_local\nENGINE = Distributed(c, db, dead_letters_local, cityHash64(topic, `partition`, `offset`))",
	}
	if strings.Join(got, ";\n") != strings.Join(want, ";\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, ";\n"), strings.Join(want, ";\n"))
	}
	got, err = store.ClusterStatements("ALTER TABLE events ADD COLUMN extra String", "db", "c")
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"ALTER TABLE db.events_local ON CLUSTER c ADD COLUMN extra String",
		"DROP TABLE IF EXISTS db.events ON CLUSTER c",
		"CREATE TABLE IF NOT EXISTS db.events ON CLUSTER c AS db.events_local\nENGINE = Distributed(c, db, events_local, cityHash64(event_id))",
	}
	if strings.Join(got, ";\n") != strings.Join(want, ";\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, ";\n"), strings.Join(want, ";\n"))
	}
}
