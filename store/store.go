// Package store owns kpibridge's ClickHouse side: connections over the native
// protocol (clickhouse-go/v2), the embedded, ordered schema migrations, and
// batch-insert helpers that always name their columns.
package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kpibridge/kpibridge/internal/tlserror"
)

// Conn is the part of a ClickHouse connection kpibridge uses.
type Conn = driver.Conn

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Target is a parsed ClickHouse DSN: where to connect and which database to use.
type Target struct {
	DSN      string
	Database string
	options  *clickhouse.Options
	cluster  string // the ClickHouse cluster the schema lives on; "" for one server
}

// ParseDSN checks a DSN of the form clickhouse://[user[:password]@]host:port/database[?options].
// Only the native protocol is supported.
func ParseDSN(dsn string) (Target, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return Target{}, fmt.Errorf("clickhouse DSN %q: %w", redact(dsn), err)
	}
	if u.Scheme != "clickhouse" && u.Scheme != "tcp" {
		return Target{}, fmt.Errorf("clickhouse DSN %q: scheme must be clickhouse:// (native protocol), got %q", redact(dsn), u.Scheme)
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return Target{}, fmt.Errorf("clickhouse DSN %q: %w", redact(dsn), err)
	}
	db := strings.Trim(u.Path, "/")
	if db == "" {
		db = "default"
	}
	if !identRe.MatchString(db) {
		return Target{}, fmt.Errorf("clickhouse DSN %q: database %q must match %s", redact(dsn), db, identRe)
	}
	opts.Auth.Database = db
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	opts.MaxOpenConns = max(opts.MaxOpenConns, 8)
	return Target{DSN: dsn, Database: db, options: opts}, nil
}

// redact hides a password in a DSN so it can be logged.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User, changed = url.UserPassword(u.User.Username(), "xxxxx"), true
		}
	}
	if q := u.Query(); q.Has("password") { // clickhouse-go also reads ?password=
		q.Set("password", "xxxxx")
		u.RawQuery, changed = q.Encode(), true
	}
	if !changed {
		return dsn
	}
	return u.String()
}

// Redacted is the DSN with any password hidden, for logs and errors.
func (t Target) Redacted() string { return redact(t.DSN) }

// WithTLS returns a copy of t that connects over TLS with cfg.
func (t Target) WithTLS(cfg *tls.Config) Target {
	if t.options == nil {
		return t
	}
	opts := *t.options
	opts.TLS = cfg
	t.options = &opts
	return t
}

// WithAuth returns a copy of t that logs in as user with password; an
// empty user or password keeps the DSN's.
func (t Target) WithAuth(user, password string) Target {
	if t.options == nil || (user == "" && password == "") {
		return t
	}
	opts := *t.options
	if user != "" {
		opts.Auth.Username = user
	}
	if password != "" {
		opts.Auth.Password = password
	}
	t.options = &opts
	return t
}

// WithCluster returns a copy of t whose schema lives on the named
// ClickHouse cluster (remote_servers in the servers' config): migrations
// create every table ON CLUSTER (docs/SCALING.md), and inserts into a
// Distributed table return once every shard stored its rows
// (insert_distributed_sync). An empty name is one server.
func (t Target) WithCluster(name string) (Target, error) {
	if name != "" && !identRe.MatchString(name) {
		return Target{}, fmt.Errorf("cluster name %q must match %s", name, identRe)
	}
	t.cluster = name
	return t, nil
}

// Cluster is the cluster the target's schema lives on, "" for one server.
func (t Target) Cluster() string { return t.cluster }

// Open connects to the target database and checks the server answers.
func Open(ctx context.Context, t Target) (Conn, error) {
	return open(ctx, t, t.Database)
}

func open(ctx context.Context, t Target, database string) (Conn, error) {
	if t.options == nil {
		return nil, errors.New("store: Target not made by ParseDSN")
	}
	opts := *t.options
	opts.Auth.Database = database
	if t.cluster != "" {
		// A successful insert into a Distributed table means stored on a
		// replica of every shard it touched, not queued on this node.
		opts.Settings = maps.Clone(opts.Settings)
		if opts.Settings == nil {
			opts.Settings = clickhouse.Settings{}
		}
		opts.Settings["insert_distributed_sync"] = 1
	}
	conn, err := clickhouse.Open(&opts)
	if err != nil {
		return nil, fmt.Errorf("open ClickHouse %s: %w", t.Redacted(), err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		_ = conn.Close()
		var ex *clickhouse.Exception
		if errors.As(err, &ex) && ex.Code == codeUnknownDatabase {
			return nil, fmt.Errorf("ClickHouse %s answers, but database %s does not exist: run `kpibridge migrate` (with the same --clickhouse) to create it and its tables", t.Redacted(), database)
		}
		if errors.As(err, &ex) && slices.Contains(codesAuthentication, ex.Code) {
			return nil, fmt.Errorf("ClickHouse %s refused user %q: authentication failed; check clickhouse.user and the password (%s, clickhouse.password_file or the DSN): %w",
				t.Redacted(), opts.Auth.Username, "KPIBRIDGE_CLICKHOUSE_PASSWORD", err)
		}
		if opts.TLS != nil {
			server := opts.TLS.ServerName
			if server == "" && len(opts.Addr) > 0 {
				server, _, _ = net.SplitHostPort(opts.Addr[0])
			}
			if what := tlserror.Explain(err, server, "clickhouse.tls"); what != "" {
				return nil, fmt.Errorf("ClickHouse %s: TLS: %s: %w", t.Redacted(), what, err)
			}
		}
		return nil, fmt.Errorf("ClickHouse %s (database %s) does not answer: %w", t.Redacted(), database, err)
	}
	return conn, nil
}

// codeUnknownDatabase is ClickHouse's error code for a database that does not exist.
const codeUnknownDatabase = 81

// codesAuthentication are ClickHouse's error codes for a login refused:
// UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD (older servers) and
// AUTHENTICATION_FAILED (current ones).
var codesAuthentication = []int32{192, 193, 194, 516}

// CreateDatabase creates the target's database if it does not exist yet,
// on every node of its cluster if it has one.
func CreateDatabase(ctx context.Context, t Target) error {
	return onServer(ctx, t, "create database "+t.Database, "CREATE DATABASE IF NOT EXISTS "+t.Database)
}

// DropDatabase removes the target's database and everything in it, on
// every node of its cluster if it has one.
func DropDatabase(ctx context.Context, t Target) error {
	return onServer(ctx, t, "drop database "+t.Database, "DROP DATABASE IF EXISTS "+t.Database)
}

// onServer runs stmt, which is about the target's database, from the
// server's default database; on a cluster, ON CLUSTER, waiting for every node.
func onServer(ctx context.Context, t Target, what, stmt string) error {
	conn, err := open(ctx, t, "default")
	if err != nil {
		return err
	}
	defer conn.Close()
	if t.cluster == "" {
		err = conn.Exec(ctx, stmt)
	} else {
		var hosts []Host
		if hosts, err = clusterHosts(ctx, conn, t.cluster); err == nil {
			err = onCluster(ctx, conn, hosts, stmt+" ON CLUSTER "+t.cluster)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// WithDatabase returns a copy of t that points at another database on the same server.
func (t Target) WithDatabase(db string) (Target, error) {
	if !identRe.MatchString(db) {
		return Target{}, fmt.Errorf("database %q must match %s", db, identRe)
	}
	opts := *t.options
	opts.Auth.Database = db
	u, err := url.Parse(t.DSN)
	if err != nil {
		return Target{}, err
	}
	u.Path = "/" + db
	return Target{DSN: u.String(), Database: db, options: &opts, cluster: t.cluster}, nil
}

// Query is SQL with its bound arguments, in text order, and the external
// tables sent with it (clickhouse.WithExternalTable).
type Query struct {
	SQL      string
	Args     []any
	External []*ext.Table
}

// QuoteIdent quotes a schema column name (letters, digits, _ and .) for ClickHouse.
func QuoteIdent(name string) string { return "`" + name + "`" }

// QuoteIdents quotes each of names.
func QuoteIdents(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = QuoteIdent(n)
	}
	return out
}
