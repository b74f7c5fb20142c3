package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// On a ClickHouse cluster (Target.WithCluster) the schema is the one of a
// single server, translated statement by statement rather than kept as a
// second copy of every migration:
//
//   - a sharded table T (shardingKey) is a Replicated*MergeTree table
//     T_local on every node, replicated within its shard, plus a Distributed
//     table T over it, so that every statement written for one server reads
//     and writes T unchanged;
//   - every other table is replicated whole: one Replicated*MergeTree table
//     of the same name whose replicas are all the nodes of the cluster, read
//     locally on whichever node a query reaches.
//
// docs/SCALING.md says which table is placed how, and why.

// shardingKey returns the sharding key of a table split across shards;
// ok is false for a table replicated whole to every node.
func shardingKey(table string) (key string, ok bool) {
	switch table {
	case "events":
		// Every copy of a re-sent event lands on the shard that holds the
		// first, where ReplacingMergeTree (and FINAL) makes it one row.
		return "cityHash64(event_id)", true
	case "dead_letters", "duplicates":
		// One row per Kafka message: a message delivered again lands on the
		// shard of its first delivery.
		return "cityHash64(topic, `partition`, `offset`)", true
	}
	return "", false
}

// localSuffix names the shard-local table under a Distributed table.
const localSuffix = "_local"

// storageTable is the table that holds the rows of logical table t.
func storageTable(t string) string {
	if _, ok := shardingKey(t); ok {
		return t + localSuffix
	}
	return t
}

// storage is the table that holds the rows of logical table table on the
// target: table itself on one server, storageTable on a cluster.
func (t Target) storage(table string) string {
	if t.cluster == "" {
		return table
	}
	return storageTable(table)
}

var (
	createTableRe = regexp.MustCompile("(?is)^CREATE\\s+TABLE\\s+IF\\s+NOT\\s+EXISTS\\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\\s*(.*)$")
	createAsRe    = regexp.MustCompile("(?is)^AS\\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\\s+(.*)$")
	engineRe      = regexp.MustCompile(`(?is)^ENGINE\s*=\s*([A-Za-z]+)\s*(.*)$`)
	alterTableRe  = regexp.MustCompile("(?is)^ALTER\\s+TABLE\\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\\s+(.*)$")
	alterAddRe    = regexp.MustCompile(`(?is)^ADD\s+COLUMN\s`)
	alterLocalRe  = regexp.MustCompile(`(?is)^(DELETE\s+WHERE|UPDATE\s|MODIFY\s+TTL\s)`)
)

// clusterStatements translates one single-server migration statement into
// the statements that make the same change on cluster, in order:
//
//   - CREATE TABLE IF NOT EXISTS t (…) ENGINE = XMergeTree(args) … becomes,
//     for a sharded table, t_local with ReplicatedXMergeTree(
//     '/clickhouse/tables/{shard}/db/t_local', '{replica}', args) and the
//     same PARTITION BY, ORDER BY and settings, and t with
//     Distributed(cluster, db, t_local, key); for a table replicated whole,
//     t with ReplicatedXMergeTree('/clickhouse/tables/all/db/t',
//     '{shard}_{replica}', args): every node a replica of one table;
//   - CREATE TABLE … AS other ENGINE = … copies other's storage table;
//   - ALTER TABLE t ADD COLUMN goes to the storage table and, when sharded,
//     to the Distributed table, which is dropped and created again with the
//     new column (rebuildDistributed);
//   - ALTER TABLE t DELETE, UPDATE and MODIFY TTL go to the storage table.
//
// Every statement is ON CLUSTER and names its database. Anything else is
// an error: teach this function the new form before using it in a migration.
func clusterStatements(stmt, database, cluster string) ([]string, error) {
	stmt = strings.TrimSpace(stmt)
	if m := createTableRe.FindStringSubmatch(stmt); m != nil {
		return clusterCreate(m[1], m[2], database, cluster)
	}
	if m := alterTableRe.FindStringSubmatch(stmt); m != nil {
		table, rest := m[1], strings.TrimSpace(m[2])
		storage := storageTable(table)
		alter := func(t string) string {
			return "ALTER TABLE " + database + "." + t + " ON CLUSTER " + cluster + " " + rest
		}
		switch {
		case alterAddRe.MatchString(rest):
			out := []string{alter(storage)}
			if key, ok := shardingKey(table); ok {
				out = append(out, rebuildDistributed(table, key, database, cluster)...)
			}
			return out, nil
		case alterLocalRe.MatchString(rest):
			return []string{alter(storage)}, nil
		}
		return nil, fmt.Errorf("cannot run %q on a cluster: only ADD COLUMN, DELETE, UPDATE and MODIFY TTL are translated (store.clusterStatements)", firstLine(stmt))
	}
	return nil, fmt.Errorf("cannot run %q on a cluster: only CREATE TABLE IF NOT EXISTS and ALTER TABLE are translated (store.clusterStatements)", firstLine(stmt))
}

func clusterCreate(table, rest, database, cluster string) ([]string, error) {
	var head string // the column list, or AS db.table
	switch {
	case strings.HasPrefix(rest, "("):
		end, err := closingParen(rest)
		if err != nil {
			return nil, fmt.Errorf("CREATE TABLE %s: %w", table, err)
		}
		head, rest = rest[:end+1], strings.TrimSpace(rest[end+1:])
	case createAsRe.MatchString(rest):
		m := createAsRe.FindStringSubmatch(rest)
		head, rest = "AS "+database+"."+storageTable(m[1]), m[2]
	default:
		return nil, fmt.Errorf("CREATE TABLE %s: want a column list or AS another table", table)
	}
	m := engineRe.FindStringSubmatch(rest)
	if m == nil {
		return nil, fmt.Errorf("CREATE TABLE %s: want ENGINE = …MergeTree after the columns", table)
	}
	engine, rest := m[1], strings.TrimSpace(m[2])
	if !strings.HasSuffix(engine, "MergeTree") || strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("CREATE TABLE %s: engine %s: only non-replicated *MergeTree engines are translated", table, engine)
	}
	var args string
	if strings.HasPrefix(rest, "(") {
		end, err := closingParen(rest)
		if err != nil {
			return nil, fmt.Errorf("CREATE TABLE %s: engine arguments: %w", table, err)
		}
		args, rest = strings.TrimSpace(rest[1:end]), strings.TrimSpace(rest[end+1:])
	}
	key, sharded := shardingKey(table)
	storage, path, replica := table, "/clickhouse/tables/all/"+database+"/"+table, "{shard}_{replica}"
	if sharded {
		storage = table + localSuffix
		path, replica = "/clickhouse/tables/{shard}/"+database+"/"+storage, "{replica}"
	}
	params := "'" + path + "', '" + replica + "'"
	if args != "" {
		params += ", " + args
	}
	create := "CREATE TABLE IF NOT EXISTS " + database + "." + storage + " ON CLUSTER " + cluster + " " + head +
		"\nENGINE = Replicated" + engine + "(" + params + ")"
	if rest != "" {
		create += "\n" + rest
	}
	out := []string{create}
	if sharded {
		out = append(out, distributed(table, table, key, database, cluster))
	}
	return out, nil
}

// distributed creates name, a Distributed table over table's storage.
func distributed(name, table, key, database, cluster string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s ON CLUSTER %[3]s AS %[1]s.%[4]s\nENGINE = Distributed(%[3]s, %[1]s, %[4]s, %[5]s)",
		database, name, cluster, table+localSuffix, key)
}

// rebuildDistributed drops the Distributed table of table and creates it
// again from its storage table, which has changed. 18.16 can neither ALTER
// it ON CLUSTER (on a cluster whose shards replicate internally it refuses
// any table that is not replicated) nor RENAME it cleanly (the renamed
// table's directory stays behind, and DROP DATABASE fails on it later): an
// insert in the moment between DROP and CREATE fails, and ingest retries it.
// Running it again rebuilds it again.
func rebuildDistributed(table, key, database, cluster string) []string {
	return []string{
		"DROP TABLE IF EXISTS " + database + "." + table + " ON CLUSTER " + cluster,
		distributed(table, table, key, database, cluster),
	}
}

// closingParen returns the index of the parenthesis that closes s[0],
// skipping quoted strings and identifiers.
func closingParen(s string) (int, error) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i, nil
			}
		}
	}
	return 0, errors.New("unbalanced parentheses")
}

func firstLine(s string) string {
	line, _, cut := strings.Cut(s, "\n")
	if cut {
		return line + " …"
	}
	return line
}

// Host is one node of a cluster as remote_servers names it.
type Host struct {
	Name string
	Port uint16
}

func (h Host) String() string { return fmt.Sprintf("%s:%d", h.Name, h.Port) }

// clusterHosts lists the nodes of cluster as conn's server knows them.
func clusterHosts(ctx context.Context, conn Conn, cluster string) ([]Host, error) {
	rows, err := conn.Query(ctx, "SELECT host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, fmt.Errorf("list the nodes of cluster %s: %w", cluster, err)
	}
	defer rows.Close()
	var hosts []Host
	for rows.Next() {
		var h Host
		if err := rows.Scan(&h.Name, &h.Port); err != nil {
			return nil, fmt.Errorf("list the nodes of cluster %s: %w", cluster, err)
		}
		hosts = append(hosts, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the nodes of cluster %s: %w", cluster, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("cluster %s is not defined on this server (no such cluster in system.clusters): check clickhouse.cluster and the server's remote_servers", cluster)
	}
	return hosts, nil
}

// hostStatus is one row of the table an ON CLUSTER statement returns.
type hostStatus struct {
	Host   Host
	Code   int64
	Error  string
	Landed bool // the host reported back
}

// ClickHouse error codes of distributed DDL.
const (
	codeTimeoutExceeded = 159 // a host did not finish within distributed_ddl_task_timeout
)

// onCluster runs an ON CLUSTER statement and waits for every host of the
// cluster to report back. A host error that means "already done" for an
// idempotent statement (the table exists for CREATE … IF NOT EXISTS, the
// column exists for ADD COLUMN) counts as done; any other error, and a
// host that did not report within distributed_ddl_task_timeout, fails the
// statement, naming every such host and why. args are bound to stmt.
func onCluster(ctx context.Context, conn Conn, hosts []Host, stmt string, args ...any) error {
	status := map[Host]*hostStatus{}
	for _, h := range hosts {
		status[h] = &hostStatus{Host: h}
	}
	runErr := readStatus(ctx, conn, stmt, args, status)
	var ex *clickhouse.Exception
	if runErr != nil && (!anyLanded(status) || !errors.As(runErr, &ex)) {
		// Refused by the server it was sent to before any host ran it, or
		// the connection failed: what the hosts did is unknown.
		return runErr
	}
	var failed []string
	for _, h := range hosts {
		st := status[h]
		switch {
		case !st.Landed:
			failed = append(failed, h.String()+" did not report within distributed_ddl_task_timeout (down, or behind in its DDL queue: it runs the statement when it is back; run the command again then)")
		case st.Code != 0 && !alreadyDone(stmt, st.Code, st.Error):
			failed = append(failed, fmt.Sprintf("%s: %s", h, strings.TrimSpace(st.Error)))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("not applied on %d of %d hosts: %s", len(failed), len(hosts), strings.Join(failed, "; "))
	}
	// Every host reported, each done: the exception 18.16 ends with is one
	// of the "already done" host errors.
	if runErr != nil && (ex.Code == codeTimeoutExceeded || !landedAll(status)) {
		return runErr
	}
	return nil
}

func anyLanded(status map[Host]*hostStatus) bool {
	for _, st := range status {
		if st.Landed {
			return true
		}
	}
	return false
}

func landedAll(status map[Host]*hostStatus) bool {
	for _, st := range status {
		if !st.Landed {
			return false
		}
	}
	return true
}

// readStatus runs stmt and records each host's status row. 18.16 sends
// every host's row, then throws the first host error (or a timeout), which
// is what it returns.
func readStatus(ctx context.Context, conn Conn, stmt string, args []any, status map[Host]*hostStatus) error {
	rows, err := conn.Query(ctx, stmt, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	names := rows.Columns()
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		var h Host
		var code int64
		var msg string
		for i, name := range names {
			v := reflect.ValueOf(dest[i]).Elem()
			switch name {
			case "host":
				h.Name = v.String()
			case "port":
				h.Port = uint16(v.Uint())
			case "status":
				code = v.Int()
			case "error":
				msg = v.String()
			}
		}
		st, ok := status[h]
		if !ok { // a host this server names otherwise
			st = &hostStatus{Host: h}
			status[h] = st
		}
		st.Landed, st.Code, st.Error = true, code, msg
	}
	return rows.Err()
}

// alreadyDone says whether a host's error means an idempotent statement had
// been applied there before.
func alreadyDone(stmt string, code int64, msg string) bool {
	switch code {
	case codeTableAlreadyExists:
		return strings.Contains(strings.ToUpper(stmt), "IF NOT EXISTS")
	case codeIllegalColumn:
		return addColumnOnCluster.MatchString(stmt) && strings.Contains(msg, "already exists")
	}
	return false
}

var addColumnOnCluster = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+\S+\s+ON\s+CLUSTER\s+\S+\s+ADD\s+COLUMN\s`)

// checkLayout refuses a database whose layout differs from the target's
// cluster, for migrate and at every start (CheckSchema): a database
// migrated for one server cannot be carried to a cluster by migrating it
// again with a cluster name, and a cluster's database is not used, or
// migrated, without its cluster's name or with another's. Without it,
// inserts into the Distributed tables would return before the shards
// stored the rows (so offsets could be committed first) and deletions
// would reach one node. A database with no schema yet passes.
func checkLayout(ctx context.Context, conn Conn, t Target) error {
	var migrations, events, eventsFull string
	err := conn.QueryRow(ctx, "SELECT anyIf(engine, name = ?), anyIf(engine, name = 'events'), anyIf(engine_full, name = 'events') FROM system.tables WHERE database = ?",
		migrationsTable, t.Database).Scan(&migrations, &events, &eventsFull)
	if err != nil {
		return fmt.Errorf("check the layout of %s: %w", t.Database, err)
	}
	if migrations == "" {
		return nil
	}
	// The cluster the database is on: "" for one server; "?" when on one,
	// but events (Distributed over it) does not exist yet to say which.
	cluster, why := "", ""
	switch {
	case events == "Distributed":
		cluster = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(eventsFull, ",", 2)[0], "Distributed("))
		why = "events is a Distributed table over " + cluster
	case strings.HasPrefix(migrations, "Replicated"):
		cluster, why = "?", t.Database+"."+migrationsTable+" is "+migrations
	}
	switch {
	case cluster == t.cluster || (cluster == "?" && t.cluster != ""):
		return nil
	case t.cluster == "":
		name := cluster
		if name == "?" {
			name = "NAME"
		}
		return fmt.Errorf("database %s was migrated for a cluster (%s), but clickhouse.cluster is not set: set clickhouse.cluster: %s (--cluster %s for migrate), "+
			"so that inserts wait for every shard and deletions reach every node (docs/SCALING.md)", t.Database, why, name, name)
	case cluster == "":
		return fmt.Errorf("clickhouse.cluster is %s, but database %s was migrated for one server (%s.%s is %s): "+
			"unset clickhouse.cluster, or migrate a new database with --cluster %s and copy the data over (docs/SCALING.md)",
			t.cluster, t.Database, t.Database, migrationsTable, migrations, t.cluster)
	default:
		return fmt.Errorf("clickhouse.cluster is %s, but database %s is on cluster %s (%s): set clickhouse.cluster: %s", t.cluster, t.Database, cluster, why, cluster)
	}
}

var createdRe = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS db\.(\w+) `)

// ClusterTables lists, for a cluster, every table the schema creates on
// each node: the storage tables and the Distributed tables over the sharded ones.
func ClusterTables(ms []Migration) ([]string, error) {
	var out []string
	for _, m := range ms {
		for _, stmt := range m.Statements {
			sts, err := clusterStatements(stmt, "db", "c")
			if err != nil {
				return nil, fmt.Errorf("migration %s: %w", m.Name, err)
			}
			for _, s := range sts {
				if mm := createdRe.FindStringSubmatch(s); mm != nil && !slices.Contains(out, mm[1]) {
					out = append(out, mm[1])
				}
			}
		}
	}
	return append(out, migrationsTable), nil
}
