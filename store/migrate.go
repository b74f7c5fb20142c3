package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migration is one schema change: an ordered, named file of SQL statements.
type Migration struct {
	Version    int
	Name       string // file name, e.g. 0001_events.sql
	SQL        string
	Checksum   string // hex SHA-256 of SQL
	Statements []string
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	return LoadMigrations(embedded, "migrations")
}

// LoadMigrations reads NNNN_name.sql files from dir of fsys, in version order.
// Versions must be unique; every file must hold at least one statement.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must look like 0001_what_it_does.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration %s: version %d already used by %s", e.Name(), v, other)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		stmts := SplitStatements(string(body))
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration %s: no SQL statement", e.Name())
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(body), Checksum: hex.EncodeToString(sum[:]), Statements: stmts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// SplitStatements splits a migration into statements at semicolons that end a
// line, dropping whole-line "--" comments. Migrations keep one statement per
// semicolon-terminated block; semicolons inside string literals must not end a line.
func SplitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				stmts = append(stmts, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

const migrationsTable = "schema_migrations"

// MigrateResult says what a Migrate call did.
type MigrateResult struct {
	Applied []string // names applied by this call, in order
	Current int      // highest applied version after the call
}

// Migrate creates the target database if needed and applies, in order, every
// embedded migration not yet recorded in schema_migrations. Running it again is
// a no-op. A migration whose file changed after it was applied is an error, and
// a failed statement names its file and carries the server's error.
func Migrate(ctx context.Context, t Target, logger *slog.Logger) (MigrateResult, error) {
	ms, err := Migrations()
	if err != nil {
		return MigrateResult{}, err
	}
	return ApplyMigrations(ctx, t, ms, logger)
}

// ApplyMigrations applies the given migrations as Migrate does; tests and
// tools with migrations of their own use it.
func ApplyMigrations(ctx context.Context, t Target, ms []Migration, logger *slog.Logger) (MigrateResult, error) {
	var res MigrateResult
	if err := CreateDatabase(ctx, t); err != nil {
		return res, err
	}
	conn, err := Open(ctx, t)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	if err := checkLayout(ctx, conn, t); err != nil {
		return res, err
	}
	apply := func(stmt string) error { return applyStatement(ctx, conn, t.Database, stmt) }
	recordCtx := ctx
	if t.cluster != "" {
		hosts, err := clusterHosts(ctx, conn, t.cluster)
		if err != nil {
			return res, err
		}
		apply = func(stmt string) error { return applyOnCluster(ctx, conn, hosts, t, stmt) }
		// schema_migrations is replicated to every node: the record is
		// written once every node has it, so any node answers CheckSchema.
		recordCtx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
			"insert_quorum": len(hosts), "insert_quorum_timeout": 60_000,
		}))
	}
	if err := apply(createMigrationsTable); err != nil {
		return res, fmt.Errorf("create %s.%s: %w", t.Database, migrationsTable, err)
	}
	applied := map[int]string{}
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM "+migrationsTable+" FINAL")
	if err != nil {
		return res, fmt.Errorf("read %s: %w", migrationsTable, err)
	}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return res, fmt.Errorf("read %s: %w", migrationsTable, err)
		}
		applied[int(v)] = sum
		res.Current = max(res.Current, int(v))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("read %s: %w", migrationsTable, err)
	}
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return res, fmt.Errorf("migration %s was changed after it was applied (checksum %s in %s.%s, file has %s): add a new migration instead of editing an applied one",
					m.Name, short(sum), t.Database, migrationsTable, short(m.Checksum))
			}
			continue
		}
		start := time.Now()
		for i, stmt := range m.Statements {
			if err := apply(stmt); err != nil {
				return res, fmt.Errorf("migration %s, statement %d of %d: %w", m.Name, i+1, len(m.Statements), err)
			}
		}
		if err := record(recordCtx, conn, m); err != nil {
			return res, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		res.Applied = append(res.Applied, m.Name)
		res.Current = max(res.Current, m.Version)
		if logger != nil {
			args := []any{"name", m.Name, "database", t.Database, "statements", len(m.Statements), "duration", time.Since(start).Round(time.Millisecond)}
			if t.cluster != "" {
				args = append(args, "cluster", t.cluster)
			}
			logger.Info("applied migration", args...)
		}
	}
	return res, nil
}

// createMigrationsTable is schema_migrations, where Migrate records what it applied.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS ` + migrationsTable + ` (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version`

// codeUnsatisfiedQuorumForPreviousWrite is 18.16's answer to a quorum
// insert while another one (a concurrent migrate's) waits for its quorum.
const codeUnsatisfiedQuorumForPreviousWrite = 286

// record writes m into schema_migrations. On a cluster ctx asks for a
// quorum of every node; a concurrent migrate's quorum insert in flight is
// waited for.
func record(ctx context.Context, conn Conn, m Migration) error {
	wait := 100 * time.Millisecond
	for {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+migrationsTable+" (version, name, checksum, applied_at)")
		if err != nil {
			return err
		}
		if err := batch.Append(uint32(m.Version), m.Name, m.Checksum, time.Now().UTC()); err != nil {
			return err
		}
		err = batch.Send()
		var ex *clickhouse.Exception
		if err == nil || !errors.As(err, &ex) || ex.Code != codeUnsatisfiedQuorumForPreviousWrite {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// applyOnCluster runs one migration statement, translated for the
// target's cluster, on every node; each translated statement waits for
// every host and is idempotent as applyStatement's are (onCluster).
//
// As on one server, an ADD COLUMN whose column every host has already (a
// re-run) is skipped rather than sent: on 18.16 an ON CLUSTER ALTER that
// fails on a replica can end that node's DDL thread in a ZooKeeper race
// (docs/SCALING.md), so a statement with nothing to do is not sent at all.
func applyOnCluster(ctx context.Context, conn Conn, hosts []Host, t Target, stmt string) error {
	sts, err := clusterStatements(stmt, t.Database, t.cluster)
	if err != nil {
		return err
	}
	if add := addColumn.FindStringSubmatch(stmt); add != nil {
		if everywhere, err := columnOnEveryHost(ctx, conn, hosts, t.Database, add[1], add[2]); err == nil && everywhere {
			return nil
		}
	}
	for _, s := range sts {
		if err := onCluster(ctx, conn, hosts, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

// columnOnEveryHost says whether every host has column in table and, for
// a sharded table, in its storage table too.
func columnOnEveryHost(ctx context.Context, conn Conn, hosts []Host, database, table, column string) (bool, error) {
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		addrs[i] = h.String()
	}
	tables := []string{storageTable(table)}
	if _, sharded := shardingKey(table); sharded {
		tables = append(tables, table)
	}
	var n uint64
	err := conn.QueryRow(ctx, "SELECT count() FROM remote(?, system, columns) WHERE database = ? AND has(?, table) AND name = ?",
		strings.Join(addrs, ","), database, tables, column).Scan(&n)
	return n == uint64(len(hosts)*len(tables)), err
}

// addColumn matches ALTER TABLE t ADD COLUMN c …, which ClickHouse 18.16
// cannot write as IF NOT EXISTS.
var addColumn = regexp.MustCompile("(?is)^ALTER\\s+TABLE\\s+`?([a-z0-9_]+)`?\\s+ADD\\s+COLUMN\\s+`?([a-z0-9_]+)`?\\s")

// ClickHouse error codes a re-run or a concurrent migration meets.
const (
	codeIllegalColumn      = 44 // "column with this name already exists", among others
	codeTableAlreadyExists = 57
)

// applyStatement runs one migration statement so that running it again
// changes nothing and does not fail, which is what lets a migration that
// failed half-way be re-run, and two processes migrate at once:
//   - CREATE … IF NOT EXISTS is idempotent, except that two servers'
//     sessions racing can both pass the check: the loser's "already
//     exists" is success;
//   - ADD COLUMN is skipped when the column exists (checked first, and
//     again when the ALTER fails, for the same race);
//   - ALTER … DELETE and MODIFY TTL are idempotent as they are.
//
// A new migration must keep to these forms (TestMigrationsAreIdempotent).
func applyStatement(ctx context.Context, conn Conn, database, stmt string) error {
	add := addColumn.FindStringSubmatch(stmt)
	exists := func() (bool, error) {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?", database, add[1], add[2]).Scan(&n)
		return n > 0, err
	}
	if add != nil {
		if ok, err := exists(); err != nil || ok {
			return err
		}
	}
	err := conn.Exec(ctx, stmt)
	var ex *clickhouse.Exception
	switch {
	case err == nil || !errors.As(err, &ex):
	case ex.Code == codeTableAlreadyExists && strings.Contains(strings.ToUpper(stmt), "IF NOT EXISTS"):
		return nil
	case ex.Code == codeIllegalColumn && add != nil:
		if ok, _ := exists(); ok {
			return nil
		}
	}
	return err
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// CheckSchema returns an error that says to run `kpibridge migrate` unless
// every embedded migration has been applied to the target database.
func CheckSchema(ctx context.Context, conn Conn, t Target) error {
	database := t.Database
	ms, err := Migrations()
	if err != nil {
		return err
	}
	want := ms[len(ms)-1].Version
	var exists uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", database, migrationsTable).Scan(&exists); err != nil {
		return fmt.Errorf("check schema of %s: %w", database, err)
	}
	if exists == 0 {
		return fmt.Errorf("database %s has no kpibridge schema: run `kpibridge migrate` first", database)
	}
	var have uint32
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM "+migrationsTable).Scan(&have); err != nil {
		return fmt.Errorf("check schema of %s: %w", database, err)
	}
	if int(have) < want {
		return fmt.Errorf("schema of %s is at version %d, this kpibridge needs %d: run `kpibridge migrate`", database, have, want)
	}
	return checkLayout(ctx, conn, t)
}
