//go:build chdb

// Package chdbtest runs kpibridge's SQL on current ClickHouse, in process,
// through chDB (the npm package @chdb/lib-linux-x64-gnu, loaded by
// chdb-go), for the tests built with -tags chdb. Debian's 18.16 server
// covers the old end; this covers the new end, which the docker-compose
// deployment runs.
package chdbtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/chdb-io/chdb-go/chdb"

	"github.com/kpibridge/kpibridge/store"
)

// Session opens a chDB session in a temporary folder with database db
// created, migrated and in use.
func Session(t *testing.T, db string) *chdb.Session {
	t.Helper()
	if os.Getenv("CHDB_LIB_PATH") == "" {
		t.Fatal("CHDB_LIB_PATH is not set: run `make test` or CHDB_LIB_PATH=$(scripts/chdb.sh) go test -tags chdb ./...")
	}
	s, err := chdb.NewSession(t.TempDir())
	if err != nil {
		t.Fatalf("chDB session: %v", err)
	}
	t.Cleanup(s.Close)
	Query(t, s, "CREATE DATABASE IF NOT EXISTS "+db)
	Query(t, s, "USE "+db)
	return s
}

// Target names database db of a session, one server's, for the functions
// that take a store.Target with a Conn; nothing connects to its address.
func Target(t *testing.T, db string) store.Target {
	t.Helper()
	target, err := store.ParseDSN("clickhouse://chdb.invalid:9000/" + db)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// Migrate applies every migration to the session's database.
func Migrate(t *testing.T, s *chdb.Session) {
	t.Helper()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for i, stmt := range m.Statements {
			if _, err := s.Query(stmt, "TSV"); err != nil {
				t.Fatalf("statement %d of %s fails on current ClickHouse: %v", i+1, m.Name, err)
			}
		}
	}
}

// Query runs sql and returns its result as TSV, failing the test on error.
func Query(t *testing.T, s *chdb.Session, sql string) string {
	t.Helper()
	out, err := run(s, sql)
	if err != nil {
		t.Fatalf("chDB: %v\nSQL:\n%s", err, sql)
	}
	return out
}

// run returns the TSV result without its final newline (a leading tab is
// an empty first column, so no other space is trimmed).
func run(s *chdb.Session, sql string) (string, error) {
	res, err := s.Query(sql, "TSV")
	if err != nil {
		return "", err
	}
	defer res.Free()
	if err := res.Error(); err != nil {
		return "", err
	}
	return strings.TrimRight(res.String(), "\n"), nil
}

// Inline writes bound arguments into the SQL as literals (chDB takes no
// parameters); test only: the values come from kpibridge and its tests.
func Inline(q store.Query) (string, error) {
	var b strings.Builder
	args := q.Args
	for _, r := range q.SQL {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		if len(args) == 0 {
			return "", fmt.Errorf("more placeholders than arguments in\n%s", q.SQL)
		}
		lit, err := literal(args[0])
		if err != nil {
			return "", err
		}
		b.WriteString(lit)
		args = args[1:]
	}
	if len(args) != 0 {
		return "", fmt.Errorf("%d arguments left over for\n%s", len(args), q.SQL)
	}
	return b.String(), nil
}

func literal(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'", nil
	case []string:
		items := make([]string, len(v))
		for i, s := range v {
			items[i], _ = literal(s)
		}
		return "[" + strings.Join(items, ", ") + "]", nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case uint32:
		return strconv.FormatUint(uint64(v), 10), nil
	case int:
		return strconv.Itoa(v), nil
	case time.Time:
		return "toDateTime('" + v.UTC().Format("2006-01-02 15:04:05") + "', 'UTC')", nil
	}
	return "", fmt.Errorf("inline: unsupported argument %T", v)
}

// CopyTables copies the rows of tables from the ClickHouse server behind
// target (through clickhouse-client, in Values format) into the session's
// database of the same schema.
func CopyTables(t *testing.T, target store.Target, s *chdb.Session, tables ...string) {
	t.Helper()
	u, err := url.Parse(target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		cmd := exec.Command("clickhouse-client", "--host", u.Hostname(), "--port", u.Port(), "--database", target.Database,
			"--query", "SELECT * FROM "+table+" FORMAT Values")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("read %s from the test server: %v", table, err)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			continue
		}
		Query(t, s, "INSERT INTO "+table+" VALUES "+string(out))
	}
}

// Querier runs read queries on a chDB session: a transform.Querier over
// current ClickHouse. Rows scan into string and float64 destinations.
type Querier struct{ S *chdb.Session }

// Query inlines args and returns the rows of the result.
func (q Querier) Query(_ context.Context, sql string, args ...any) (driver.Rows, error) {
	text, err := Inline(store.Query{SQL: sql, Args: args})
	if err != nil {
		return nil, err
	}
	out, err := run(q.S, text)
	if err != nil {
		return nil, fmt.Errorf("chDB: %w\nSQL:\n%s", err, text)
	}
	r := &rows{i: -1}
	if out != "" {
		for _, line := range strings.Split(out, "\n") {
			r.data = append(r.data, strings.Split(line, "\t"))
		}
	}
	return r, nil
}

// rows is a TSV result as driver.Rows; only what KPI evaluation, retention
// and erasure use works.
type rows struct {
	data [][]string
	i    int
	err  error
}

func (r *rows) Next() bool { r.i++; return r.i < len(r.data) }
func (r *rows) Scan(dest ...any) error {
	row := r.data[r.i]
	if len(dest) != len(row) {
		return fmt.Errorf("scan %d values into %d destinations", len(row), len(dest))
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *string:
			*d = strings.NewReplacer(`\t`, "\t", `\n`, "\n", `\\`, `\`).Replace(row[i])
		case *float64:
			f, err := strconv.ParseFloat(row[i], 64)
			if err != nil {
				return err
			}
			*d = f
		case *uint64:
			n, err := strconv.ParseUint(row[i], 10, 64)
			if err != nil {
				return err
			}
			*d = n
		default:
			return fmt.Errorf("scan into %T is not supported", d)
		}
	}
	return nil
}
func (r *rows) ScanStruct(any) error             { return fmt.Errorf("ScanStruct is not supported") }
func (r *rows) ColumnTypes() []driver.ColumnType { return nil }
func (r *rows) Totals(...any) error              { return nil }
func (r *rows) Columns() []string                { return nil }
func (r *rows) Close() error                     { return nil }
func (r *rows) Err() error                       { return r.err }
func (r *rows) HasData() bool                    { return len(r.data) > 0 }

// Conn runs kpibridge code that takes a store.Conn on a chDB session: its
// Query, QueryRow and Exec inline the arguments and run the SQL on current
// ClickHouse. Every other method of store.Conn panics (the embedded nil
// interface): code that needs them cannot run here.
type Conn struct {
	store.Conn
	S *chdb.Session
}

// Query runs a read query, as Querier does.
func (c Conn) Query(ctx context.Context, sql string, args ...any) (driver.Rows, error) {
	return Querier{S: c.S}.Query(ctx, sql, args...)
}

// QueryRow runs a query and returns its first row.
func (c Conn) QueryRow(ctx context.Context, sql string, args ...any) driver.Row {
	rs, err := c.Query(ctx, sql, args...)
	if err != nil {
		return row{err: err}
	}
	r := rs.(*rows)
	if !r.Next() {
		return row{err: fmt.Errorf("no rows: %s", sql)}
	}
	return row{r: r}
}

// Exec runs a statement.
func (c Conn) Exec(_ context.Context, sql string, args ...any) error {
	text, err := Inline(store.Query{SQL: sql, Args: args})
	if err != nil {
		return err
	}
	if _, err := run(c.S, text); err != nil {
		return fmt.Errorf("chDB: %w\nSQL:\n%s", err, text)
	}
	return nil
}

type row struct {
	r   *rows
	err error
}

func (r row) Err() error { return r.err }
func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dest...)
}
func (r row) ScanStruct(any) error { return fmt.Errorf("ScanStruct is not supported") }
