//go:build cluster

package clustertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// hashKey is the email hash key of every kpibridge process these tests start.
const hashKey = "cluster-test-key-0123456789abcdef"

// proc is a kpibridge child process; it is killed when the test ends.
type proc = testenv.Process

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return testenv.StartProcess(t, name, []string{"KPIBRIDGE_EMAIL_HASH_KEY=" + hashKey}, args...)
}

// stop sends SIGTERM and waits for a clean exit (ingest drains its batches).
func stop(t *testing.T, p *proc) {
	t.Helper()
	if !p.Stop(60 * time.Second) {
		t.Errorf("%s did not exit within 60 s of SIGTERM", p.Name)
	} else if !p.Cmd.ProcessState.Success() {
		t.Errorf("%s exited with %v after SIGTERM", p.Name, p.Cmd.ProcessState)
	}
}

// summary is what `kpibridge generate` reports of the stream it produced.
type summary struct {
	Total      int64            `json:"total"`
	Valid      int64            `json:"valid"`
	Invalid    map[string]int64 `json:"invalid"`
	Duplicates int64            `json:"duplicates"`
}

// poison is the number of invalid messages, every reason together.
func (s summary) poison() uint64 {
	var n int64
	for _, v := range s.Invalid {
		n += v
	}
	return uint64(n)
}

// stream is a `kpibridge broker` process (6 partitions per topic) and what
// `kpibridge generate` wrote into it.
type stream struct {
	addr string
	sum  summary
	ends map[string]map[int]int64 // high watermark by topic and partition
}

// startBroker starts `kpibridge broker`; it creates the event topics at start.
func startBroker(t *testing.T) *stream {
	t.Helper()
	s := &stream{addr: testenv.FreeAddr(t)}
	p := startProc(t, "broker", "broker", "--listen", s.addr, "--partitions", "6")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Out.String(), "Kafka protocol on") {
		if time.Now().After(deadline) {
			t.Fatalf("kpibridge broker did not listen on %s within 30 s:\n%s", s.addr, p.Out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// generate runs `kpibridge generate` of customers over 90 days with 1 %
// poison and 5 % re-sends (the same stream for the same count).
func (s *stream) generate(t *testing.T, customers int) {
	t.Helper()
	gen := exec.Command(testenv.Binary(t), "generate", "--brokers", s.addr, "--seed", "42", "--customers", fmt.Sprint(customers),
		"--days", "90", "--end", "2026-03-30", "--invalid-rate", "0.01", "--duplicate-rate", "0.05")
	gen.Env = append(os.Environ(), "KPIBRIDGE_EMAIL_HASH_KEY="+hashKey)
	var stderr bytes.Buffer
	gen.Stderr = &stderr
	out, err := gen.Output()
	if err != nil {
		t.Fatalf("kpibridge generate: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, &s.sum); err != nil {
		t.Fatalf("generate summary: %v\n%s", err, out)
	}
	s.ends = map[string]map[int]int64{}
	var msgs int64
	for _, topic := range config.Default().Kafka.Topics {
		s.ends[topic] = testenv.EndOffsets(t, s.addr, topic)
		for _, o := range s.ends[topic] {
			msgs += o
		}
	}
	if msgs != s.sum.Total {
		t.Fatalf("the broker holds %d messages, generate reported %d", msgs, s.sum.Total)
	}
	t.Logf("generated %d messages: %d valid events, %d poison, %d re-sends", s.sum.Total, s.sum.Valid, s.sum.poison(), s.sum.Duplicates)
}

// ingestConfig writes a configuration file for ingest processes of one
// consumer group; cluster is clickhouse.cluster (empty: one server), extra
// more YAML under ingest.
func ingestConfig(t *testing.T, group, cluster, extra string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), group+".yml")
	cfg := fmt.Sprintf("clickhouse:\n  cluster: %q\ningest:\n  group_id: %s\n%s", cluster, group, extra)
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// ingest starts `kpibridge run --role ingest` with configFile into dsn.
func (s *stream) ingest(t *testing.T, name, configFile, dsn string, flags ...string) *proc {
	t.Helper()
	return startProc(t, name, append([]string{"--config.file", configFile, "run", "--role", "ingest", "--brokers", s.addr, "--clickhouse", dsn,
		"--web.listen-address", testenv.FreeAddr(t)}, flags...)...)
}

// committed returns how many messages of the stream group has committed,
// which ingest does only once they are stored.
func (s *stream) committed(t *testing.T, group string) int64 {
	t.Helper()
	var n int64
	for topic, ends := range s.ends {
		got := testenv.CommittedOffsets(t, s.addr, group, topic)
		for p, end := range ends {
			n += min(got[p], end)
		}
	}
	return n
}

// waitCommitted waits until group has committed the end of every partition
// of the stream, calling each (if not nil) every poll, and returns every
// commit seen to go back ("topic/partition: from → to"), which ingest must
// never do: a member that lost a partition in a rebalance committing a
// batch it fetched before, behind what the new owner committed
// (ingest.TestRebalanceNeverMovesCommitsBack). The end counts as committed once seen. It fails
// when one of procs exits first, or when the group commits nothing for
// stall: then it logs what each partition lacks, the group's members and
// the queries running on nodes.
func (s *stream) waitCommitted(t *testing.T, group string, stall time.Duration, nodes []store.Target, each func(), procs ...*proc) (backs []string) {
	t.Helper()
	last, highest := map[string]int64{}, map[string]int64{}
	done, progress := int64(-1), time.Now()
	for {
		var n int64
		for topic, ends := range s.ends {
			got := testenv.CommittedOffsets(t, s.addr, group, topic)
			for p, end := range ends {
				key := fmt.Sprintf("%s/%d", topic, p)
				if o, ok := got[p]; ok {
					if o < last[key] {
						backs = append(backs, fmt.Sprintf("%s: %d → %d", key, last[key], o))
					}
					last[key], highest[key] = o, max(highest[key], o)
				}
				n += min(highest[key], end)
			}
		}
		if n == s.sum.Total {
			return backs
		}
		if n != done {
			done, progress = n, time.Now()
		}
		for _, p := range procs {
			select {
			case <-p.Done():
				t.Fatalf("%s exited before the stream was stored:\n%s", p.Name, p.Out.String())
			default:
			}
		}
		if time.Since(progress) > stall {
			s.diagnose(t, group, nodes, procs)
			t.Fatalf("group %s committed %d of %d messages and nothing more for %s (commits that went back: %v)", group, n, s.sum.Total, stall, backs)
		}
		if each != nil {
			each()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// diagnose logs why a stream is not stored: the partitions group has not
// committed to the end, its members and their partitions, and what every
// node is running; it keeps the whole output of procs in files.
func (s *stream) diagnose(t *testing.T, group string, nodes []store.Target, procs []*proc) {
	t.Helper()
	if dir, err := os.MkdirTemp("", "kpibridge-"+group+"-"); err == nil {
		for i, p := range procs {
			f := filepath.Join(dir, fmt.Sprintf("proc%d.log", i+1))
			if err := os.WriteFile(f, []byte(p.Name+"\n"+p.Out.String()), 0o644); err == nil {
				t.Logf("%s's output: %s", p.Name, f)
			}
		}
	}
	for topic, ends := range s.ends {
		got := testenv.CommittedOffsets(t, s.addr, group, topic)
		for p, end := range ends {
			if got[p] < end {
				t.Logf("%s/%d: committed %d of %d", topic, p, got[p], end)
			}
		}
	}
	c := &kafka.Client{Addr: kafka.TCP(s.addr), Timeout: 10 * time.Second}
	if res, err := c.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}}); err != nil {
		t.Logf("describe group %s: %v", group, err)
	} else {
		for _, g := range res.Groups {
			t.Logf("group %s: %s", g.GroupID, g.GroupState)
			for _, m := range g.Members {
				t.Logf("  member %s (%s): %v", m.MemberID, m.ClientHost, m.MemberAssignments.Topics)
			}
		}
	}
	for i, target := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := store.Open(ctx, target)
		if err == nil {
			var rows driver.Rows
			rows, err = conn.Query(ctx, "SELECT elapsed, substring(query, 1, 200) FROM system.processes WHERE query NOT LIKE '%system.processes%'")
			for err == nil && rows.Next() {
				var elapsed float64
				var query string
				if err = rows.Scan(&elapsed, &query); err == nil {
					t.Logf("node %d runs for %.0f s: %s", i+1, elapsed, query)
				}
			}
			if rows != nil {
				rows.Close()
			}
			conn.Close()
		}
		if err != nil {
			t.Logf("node %d: %v", i+1, err)
		}
		cancel()
	}
}

// nodes is target on every node of the cluster.
func nodes(t *testing.T, c *clustertest.Cluster, target store.Target) []store.Target {
	var out []store.Target
	for i := range c.Addrs {
		out = append(out, c.OnNode(t, target, i+1))
	}
	return out
}

// The path as deployed on a cluster: `kpibridge broker`, two `kpibridge
// run --role ingest` processes of one consumer group, configured with
// clickhouse.cluster and each writing through a node of another shard, and
// `kpibridge generate` streaming 3,000 customers with 1 % poison and 5 %
// re-sends while they run; node 3, a replica of shard 2, is stopped as
// the stream starts and started again while it is being stored. Every
// node then counts each valid event once (each shard's replicas alike, node
// 3 once it caught up), every poison message as one dead letter and every
// re-send as one duplicate: what one server counts. No commit goes back.
func TestClusterIngestEndToEnd(t *testing.T) {
	c := clustertest.Require(t)
	target := migrated(t, c)
	s := startBroker(t)
	const group = "cluster-e2e"
	cfg := ingestConfig(t, group, c.Name, "  batch: {max_rows: 2000, max_wait: 200ms}\n  shutdown_timeout: 10s\n")
	procs := []*proc{
		s.ingest(t, "ingest via node 1", cfg, c.OnNode(t, target, 1).DSN),
		s.ingest(t, "ingest via node 4", cfg, c.OnNode(t, target, 4).DSN),
	}
	// Both hold partitions before the stream starts: a re-send is then read
	// by the process that read its original (same key, same partition), as
	// without a rebalance on one server, so every re-send is counted.
	testenv.WaitGroupMembers(t, s.addr, group, 2)
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- c.StopNode(t, 3) }()
	s.generate(t, 3000)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(2 * time.Second) // ingest stores on while the replica is down
	c.StartNode(t, 3)
	t.Logf("node 3 down from %s to %s after the stream started", down.Sub(start).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	if backs := s.waitCommitted(t, group, time.Minute, nodes(t, c, target), nil, procs...); len(backs) > 0 {
		t.Errorf("committed offsets went back: %v", backs)
	}
	t.Logf("%d messages generated and stored through nodes 1 and 4 in %s", s.sum.Total, time.Since(start).Round(time.Millisecond))
	for _, p := range procs {
		stop(t, p)
	}

	checkExact(t, c, target, uint64(s.sum.Valid))
	syncReplicas(t, c, target, "dead_letters_local")
	syncReplicas(t, c, target, "duplicates_local")
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		if got := count(t, conn, "SELECT count() FROM dead_letters FINAL"); got != s.sum.poison() {
			t.Errorf("node %d: dead_letters FINAL = %d, want the %d poison messages", i+1, got, s.sum.poison())
		}
		if got := count(t, conn, "SELECT count() FROM duplicates FINAL"); got != uint64(s.sum.Duplicates) {
			t.Errorf("node %d: duplicates FINAL = %d, want the %d re-sends", i+1, got, s.sum.Duplicates)
		}
	}
}
