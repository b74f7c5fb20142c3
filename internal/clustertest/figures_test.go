//go:build cluster

package clustertest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// The variables of TestClusterIngestFigures.
const (
	figuresEnv          = "KPIBRIDGE_CLUSTER_FIGURES"           // set: run it
	figuresCustomersEnv = "KPIBRIDGE_CLUSTER_FIGURES_CUSTOMERS" // customers generated (default 78,000: about 1 M messages, as make bench)
	figuresRunsEnv      = "KPIBRIDGE_CLUSTER_FIGURES_RUNS"      // runs of each setup, in turn (default 3)
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// ingestSetup is one way of storing the stream: 1-3 ingest processes of one
// group, on the cluster (process i writing through nodes[i]) or on one
// server.
type ingestSetup struct {
	name  string
	nodes []int // cluster nodes, one per process; nil on one server
	procs int
}

// ingestRun is one measured run of a setup.
type ingestRun struct {
	wall     time.Duration // from the processes' start until the group committed the whole stream
	settled  time.Duration // from the start until every process held partitions (the last rebalance)
	before   int64         // messages committed by then
	backs    []string      // committed offsets that went back (waitCommitted)
	cpu      time.Duration // utime+stime of the ingest processes
	hostCPU  float64       // busy share of the machine's CPUs over the run, 0-1
	hostBusy time.Duration // busy CPU time of the machine over the run (every process on it)
}

// TestClusterIngestFigures measures, and asserts nothing but exact counts:
// one stream generated once into `kpibridge broker` (6 partitions per
// topic), then stored again and again by 1, 2 and 3 `kpibridge run --role
// ingest` processes at default settings in a fresh consumer group and
// database, on the cluster (each process through another node) and, when
// KPIBRIDGE_TEST_CLICKHOUSE_DSN names one, on one server. Events/s is
// messages over the wall time from the processes' start until the group
// has committed every message (commits follow storage), like make bench;
// "once settled" leaves out the start until every process holds
// partitions. Host CPU is every process of the machine (servers, ZooKeeper,
// broker, ingest, and whatever else runs). The table it logs is in
// docs/SCALING.md.
func TestClusterIngestFigures(t *testing.T) {
	if os.Getenv(figuresEnv) == "" {
		t.Skipf("measures ingest throughput for docs/SCALING.md; %s=1 runs it", figuresEnv)
	}
	c := clustertest.Require(t)
	customers := envInt(t, figuresCustomersEnv, 78000)
	runs := envInt(t, figuresRunsEnv, 3)
	s := startBroker(t)
	s.generate(t, customers)

	setups := []ingestSetup{
		{name: "cluster", nodes: []int{1}, procs: 1},
		{name: "cluster", nodes: []int{1, 3}, procs: 2},
		{name: "cluster", nodes: []int{1, 3, 2}, procs: 3},
	}
	single := os.Getenv(testenv.ClickHouseEnv)
	if single != "" {
		for n := 1; n <= 3; n++ {
			setups = append(setups, ingestSetup{name: "one server", procs: n})
		}
	} else {
		t.Logf("%s is unset: no single-server figures", testenv.ClickHouseEnv)
	}
	results := make([][]ingestRun, len(setups))
	for run := range runs {
		for i, setup := range setups {
			// A subtest each, so that its database is dropped (and its
			// merges stop) before the next run.
			t.Run(fmt.Sprintf("%s_%d_run%d", strings.ReplaceAll(setup.name, " ", "_"), setup.procs, run+1), func(t *testing.T) {
				r := measureIngest(t, c, s, setup, fmt.Sprintf("figures-%d-%d-%d", time.Now().UnixNano(), run, i))
				t.Logf("%s, %d process(es): %s (group settled after %s), %.0f events/s, host CPU %.0f %%; commits that went back: %v", setup.name, setup.procs,
					r.wall.Round(10*time.Millisecond), r.settled.Round(10*time.Millisecond), float64(s.sum.Total)/r.wall.Seconds(), 100*r.hostCPU, r.backs)
				results[i] = append(results[i], r)
			})
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d messages (%d valid, %d poison, %d re-sends), %d run(s) each\n", s.sum.Total, s.sum.Valid, s.sum.poison(), s.sum.Duplicates, runs)
	fmt.Fprintf(&b, "| store | ingest processes | writing through | events/s | wall | group settled after | events/s once settled | ingest CPU-µs/message | host CPU-µs/message | host CPU busy | runs with a commit going back |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, setup := range setups {
		rs := results[i]
		if len(rs) == 0 {
			continue // not run (-run chose other subtests)
		}
		through := single
		if u, err := url.Parse(single); err == nil {
			through = u.Host
		}
		if setup.nodes != nil {
			through = "node " + strings.Trim(strings.ReplaceAll(fmt.Sprint(setup.nodes), " ", ", "), "[]")
		}
		back := 0
		for _, r := range rs {
			if len(r.backs) > 0 {
				back++
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s %% | %d of %d |\n", setup.name, setup.procs, through,
			span(rs, func(r ingestRun) float64 { return float64(s.sum.Total) / r.wall.Seconds() }, "%.0f"),
			span(rs, func(r ingestRun) float64 { return r.wall.Seconds() }, "%.1f s"),
			span(rs, func(r ingestRun) float64 { return r.settled.Seconds() }, "%.1f s"),
			span(rs, func(r ingestRun) float64 { return r.steady(s.sum.Total) }, "%.0f"),
			span(rs, func(r ingestRun) float64 { return float64(r.cpu.Microseconds()) / float64(s.sum.Total) }, "%.2f"),
			span(rs, func(r ingestRun) float64 { return float64(r.hostBusy.Microseconds()) / float64(s.sum.Total) }, "%.1f"),
			span(rs, func(r ingestRun) float64 { return 100 * r.hostCPU }, "%.0f"), back, len(rs))
	}
	t.Logf("\n%s", b.String())
}

// steady is the rate of the run after the group settled (of total
// messages), or over the whole run when it settled at once.
func (r ingestRun) steady(total int64) float64 {
	if r.wall-r.settled < time.Second {
		return float64(total) / r.wall.Seconds()
	}
	return float64(total-r.before) / (r.wall - r.settled).Seconds()
}

// span formats the smallest and largest of f over runs.
func span(runs []ingestRun, f func(ingestRun) float64, format string) string {
	var v []float64
	for _, r := range runs {
		v = append(v, f(r))
	}
	lo, hi := slices.Min(v), slices.Max(v)
	if fmt.Sprintf(format, lo) == fmt.Sprintf(format, hi) {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+" – "+format, lo, hi)
}

// measureIngest stores the stream with one setup into a fresh database and
// consumer group, checks the counts and returns the figures.
func measureIngest(t *testing.T, c *clustertest.Cluster, s *stream, setup ingestSetup, group string) ingestRun {
	t.Helper()
	var dsns []string
	var cluster string
	var target store.Target
	var conn store.Conn
	if setup.nodes != nil {
		target = migrated(t, c)
		for _, n := range setup.nodes {
			dsns = append(dsns, c.OnNode(t, target, n).DSN)
		}
		cluster = c.Name
		conn = clustertest.Conn(t, target)
	} else {
		target, conn = testenv.MigratedClickHouse(t)
		for range setup.procs {
			dsns = append(dsns, target.DSN)
		}
	}
	cfg := ingestConfig(t, group, cluster, "")

	busy0, total0 := hostCPU(t)
	start := time.Now()
	var procs []*proc
	for i, dsn := range dsns {
		procs = append(procs, s.ingest(t, fmt.Sprintf("ingest %d of %s", i+1, group), cfg, dsn, "--log.level=debug"))
	}
	var r ingestRun
	var diag []store.Target
	if setup.nodes != nil {
		diag = nodes(t, c, target)
	} else {
		diag = []store.Target{target}
	}
	r.backs = s.waitCommitted(t, group, 2*time.Minute, diag, func() {
		if r.settled == 0 && s.settled(group, len(procs)) {
			r.settled, r.before = time.Since(start), s.committed(t, group)
		}
	}, procs...)
	r.wall = time.Since(start)
	if r.settled == 0 {
		r.settled, r.before = r.wall, s.sum.Total
	}
	busy1, total1 := hostCPU(t)
	r.hostCPU = float64(busy1-busy0) / float64(total1-total0)
	r.hostBusy = time.Duration(busy1-busy0) * time.Second / clockTicks
	for _, p := range procs {
		r.cpu += procCPU(t, p.Cmd.Process.Pid)
		stop(t, p)
	}

	if setup.nodes != nil {
		for _, table := range []string{"events_local", "dead_letters_local"} {
			syncReplicas(t, c, target, table)
		}
	}
	if got := count(t, conn, "SELECT uniqExact(event_id) FROM events"); got != uint64(s.sum.Valid) {
		t.Errorf("%s, %d processes: %d distinct events stored, want %d", setup.name, setup.procs, got, s.sum.Valid)
	}
	if got := count(t, conn, "SELECT count() FROM dead_letters FINAL"); got != s.sum.poison() {
		t.Errorf("%s, %d processes: %d dead letters, want %d", setup.name, setup.procs, got, s.sum.poison())
	}
	return r
}

// settled reports whether group is stable with n members each holding partitions.
func (s *stream) settled(group string, n int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(s.addr), Timeout: 5 * time.Second}
	res, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(res.Groups) != 1 || res.Groups[0].GroupState != "Stable" {
		return false
	}
	held := 0
	for _, m := range res.Groups[0].Members {
		if len(m.MemberAssignments.Topics) > 0 {
			held++
		}
	}
	return held == n
}

// clockTicks is USER_HZ, the unit of CPU times in /proc.
const clockTicks = 100

// hostCPU reads the machine's busy and total CPU time (clock ticks) from /proc/stat.
func hostCPU(t *testing.T) (busy, total int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	// cpu user nice system idle iowait irq softirq steal ...
	fields := strings.Fields(string(line))[1:]
	for i, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("/proc/stat: %q", line)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// procCPU is utime+stime of a running process from /proc/PID/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (in parentheses): utime is the 12th, stime the 13th.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}
