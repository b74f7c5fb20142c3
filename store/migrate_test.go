package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want []string
	}{
		{"one", "CREATE TABLE a (x UInt8) ENGINE = Memory;\n", []string{"CREATE TABLE a (x UInt8) ENGINE = Memory"}},
		{"comments and two", "-- first\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\n-- second\nDROP TABLE a;", []string{"CREATE TABLE a (x UInt8)\nENGINE = Memory", "DROP TABLE a"}},
		{"no trailing semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"only comments", "-- nothing\n\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := store.SplitStatements(tt.sql)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("SplitStatements = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadMigrationsRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"bad name", fstest.MapFS{"m/1_x.sql": {Data: []byte("SELECT 1;")}}, "1_x.sql: name must look like"},
		{"duplicate version", fstest.MapFS{"m/0001_a.sql": {Data: []byte("SELECT 1;")}, "m/0001_b.sql": {Data: []byte("SELECT 1;")}}, "version 1 already used by 0001_a.sql"},
		{"empty", fstest.MapFS{"m/0001_a.sql": {Data: []byte("-- nothing\n")}}, "0001_a.sql: no SQL statement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.LoadMigrations(tt.files, "m")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 || ms[0].Name != "0001_events.sql" {
		t.Fatalf("migrations = %d, first %q; want 0001_events.sql first", len(ms), ms[0].Name)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("%s has version %d, want %d: versions must be contiguous", m.Name, m.Version, i+1)
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	target := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}

	first, err := store.Migrate(ctx, target, nil)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if len(first.Applied) != len(ms) || first.Current != ms[len(ms)-1].Version {
		t.Fatalf("first migrate applied %v (current %d), want all %d", first.Applied, first.Current, len(ms))
	}
	second, err := store.Migrate(ctx, target, nil)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(second.Applied) != 0 || second.Current != first.Current {
		t.Fatalf("second migrate applied %v (current %d), want nothing", second.Applied, second.Current)
	}

	conn, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, table := range []string{"events", "dead_letters", "schema_migrations"} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", target.Database, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s missing after migrate", table)
		}
	}
	var recorded uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM schema_migrations FINAL").Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if int(recorded) != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", recorded, len(ms))
	}
	if err := store.CheckSchema(ctx, conn, target); err != nil {
		t.Errorf("CheckSchema after migrate: %v", err)
	}
	// The same schema taken for a cluster's is refused, with what to do.
	onCluster, err := target.WithCluster("kpibridge")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckSchema(ctx, conn, onCluster); err == nil || !strings.Contains(err.Error(), "was migrated for one server") || !strings.Contains(err.Error(), "unset clickhouse.cluster") {
		t.Errorf("CheckSchema of a one-server schema with clickhouse.cluster set: %v", err)
	}
}

func TestMigrateFailureNamesFileAndServerError(t *testing.T) {
	target := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	files := fstest.MapFS{
		"m/0001_ok.sql":     {Data: []byte("CREATE TABLE IF NOT EXISTS ok (x UInt8) ENGINE = Memory;\n")},
		"m/0002_broken.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS broken (x NoSuchType) ENGINE = Memory;\n")},
	}
	ms, err := store.LoadMigrations(files, "m")
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.ApplyMigrations(ctx, target, ms, nil)
	if err == nil {
		t.Fatal("broken migration applied without error")
	}
	for _, want := range []string{"0002_broken.sql", "statement 1 of 1", "NoSuchType"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if len(res.Applied) != 1 || res.Applied[0] != "0001_ok.sql" {
		t.Errorf("applied = %v, want only 0001_ok.sql", res.Applied)
	}

	// Editing an applied migration is refused, naming the file.
	files["m/0001_ok.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS ok (x UInt16) ENGINE = Memory;\n")}
	ms, err = store.LoadMigrations(files, "m")
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.ApplyMigrations(ctx, target, ms[:1], nil)
	if err == nil || !strings.Contains(err.Error(), "0001_ok.sql was changed after it was applied") {
		t.Fatalf("err = %v, want a changed-checksum error naming 0001_ok.sql", err)
	}
}

// schema lists every column of every table of a database with its type,
// by name: what two schemas must agree on (18.16 has no column position).
func schema(t *testing.T, conn store.Conn, database string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name", database)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s.%s %s\n", table, name, typ)
	}
	return b.String()
}

// Every statement of every migration can run again: a migration that
// failed half-way is re-run from its first statement. Forgetting what was
// applied and migrating again re-runs them all, without an error and
// without changing the schema.
func TestMigrationsAreIdempotent(t *testing.T) {
	target := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := store.Migrate(ctx, target, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := schema(t, conn, target.Database)
	if err := conn.Exec(ctx, "TRUNCATE TABLE schema_migrations"); err != nil {
		t.Fatal(err)
	}
	res, err := store.Migrate(ctx, target, nil)
	if err != nil {
		t.Fatalf("re-running every migration: %v", err)
	}
	ms, _ := store.Migrations()
	if len(res.Applied) != len(ms) {
		t.Errorf("re-ran %d migrations, want %d", len(res.Applied), len(ms))
	}
	if got := schema(t, conn, target.Database); got != want {
		t.Errorf("schema after re-running the migrations:\n%s\nwant\n%s", got, want)
	}

	// A migration that stopped after its first statement (a column added)
	// is completed by the next run.
	files := fstest.MapFS{"m/0001_half.sql": {Data: []byte("ALTER TABLE events ADD COLUMN half_done String;\nALTER TABLE events ADD COLUMN NoSuchType NoSuchType;\n")}}
	half, err := store.LoadMigrations(files, "m")
	if err != nil {
		t.Fatal(err)
	}
	half[0].Version = 1000
	if _, err := store.ApplyMigrations(ctx, target, half, nil); err == nil || !strings.Contains(err.Error(), "statement 2 of 2") {
		t.Fatalf("half-failing migration: %v", err)
	}
	files["m/0001_half.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE events ADD COLUMN half_done String;\nALTER TABLE events ADD COLUMN second_half String AFTER half_done;\n")}
	fixed, err := store.LoadMigrations(files, "m")
	if err != nil {
		t.Fatal(err)
	}
	fixed[0].Version = 1000
	if _, err := store.ApplyMigrations(ctx, target, fixed, nil); err != nil {
		t.Fatalf("re-running the fixed migration: %v", err)
	}
	if got := schema(t, conn, target.Database); !strings.Contains(got, "events.half_done String\n") || !strings.Contains(got, "events.second_half String\n") {
		t.Errorf("the re-run migration did not complete:\n%s", got)
	}
}

// Processes that start at once all migrate: none fails, and the schema is
// the one a single migrate gives.
func TestConcurrentMigrations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := testenv.ClickHouse(t)
	if _, err := store.Migrate(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := testenv.ClickHouse(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = store.Migrate(ctx, target, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrate %d: %v", i, err)
		}
	}
	if got, want := schema(t, conn, target.Database), schema(t, conn, ref.Database); got != want {
		t.Errorf("schema after concurrent migrations:\n%s\nwant\n%s", got, want)
	}
	var recorded uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(version) FROM "+target.Database+".schema_migrations").Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if ms, _ := store.Migrations(); int(recorded) != len(ms) {
		t.Errorf("%d versions recorded, want %d", recorded, len(ms))
	}
}
