// Package clustertest gives integration tests the ClickHouse cluster that
// scripts/cluster.sh starts (2 shards × 2 replicas and ZooKeeper on
// loopback ports): a fresh database of their own created ON CLUSTER, a
// connection to any node, and a way to stop and start one node.
//
// The tests are behind the build tag "cluster", so that `make test` (one
// server, where a skipped test fails CI) does not build them; `make
// test-cluster` starts the cluster and runs them with -tags cluster. Run by
// hand without the cluster they skip, with a message saying how to run
// them; make test-cluster sets KPIBRIDGE_TEST_CLUSTER_REQUIRED, which turns
// the skip into a failure.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/store"
)

// The variables scripts/cluster.sh env prints.
const (
	AddrsEnv    = "KPIBRIDGE_TEST_CLUSTER_DSNS"     // comma-separated native host:port of every node, node 1 first
	NameEnv     = "KPIBRIDGE_TEST_CLUSTER_NAME"     // the cluster's name in remote_servers
	ControlEnv  = "KPIBRIDGE_TEST_CLUSTER_CONTROL"  // scripts/cluster.sh, to stop and start a node
	RequiredEnv = "KPIBRIDGE_TEST_CLUSTER_REQUIRED" // set by make test-cluster: fail instead of skipping
)

// Cluster is the running test cluster.
type Cluster struct {
	Name   string
	Addrs  []string // node i (1-based) is Addrs[i-1]
	script string   // scripts/cluster.sh
}

// Require returns the test cluster, or skips the test (fails it under
// make test-cluster) when the environment does not name one.
func Require(t testing.TB) *Cluster {
	t.Helper()
	addrs, name := os.Getenv(AddrsEnv), os.Getenv(NameEnv)
	if addrs == "" || name == "" {
		if os.Getenv(RequiredEnv) != "" {
			t.Fatalf("%s and %s are required (make test-cluster sets them from scripts/cluster.sh env)", AddrsEnv, NameEnv)
		}
		t.Skipf("SKIP: no ClickHouse cluster (%s is unset); run `make test-cluster`, which starts one with scripts/cluster.sh", AddrsEnv)
	}
	return &Cluster{Name: name, Addrs: strings.Split(addrs, ","), script: os.Getenv(ControlEnv)}
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// Database returns a Target on node 1 for a fresh database of the test's
// own, created on every node, with the cluster set; the database is dropped
// on every node when the test ends (KPIBRIDGE_TEST_KEEP_DB=1 keeps it).
func (c *Cluster) Database(t testing.TB) store.Target {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	target := c.target(t, 1, "ct_"+name+"_"+hex.EncodeToString(b[:]))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := store.CreateDatabase(ctx, target); err != nil {
		t.Fatalf("create test database on cluster %s: %v", c.Name, err)
	}
	t.Cleanup(func() {
		if os.Getenv("KPIBRIDGE_TEST_KEEP_DB") != "" {
			t.Logf("kept database %s", target.Database)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := store.DropDatabase(ctx, target); err != nil {
			t.Logf("drop test database: %v", err)
		}
	})
	return target
}

// OnNode is target's database on node i (1-based).
func (c *Cluster) OnNode(t testing.TB, target store.Target, i int) store.Target {
	t.Helper()
	return c.target(t, i, target.Database)
}

func (c *Cluster) target(t testing.TB, i int, database string) store.Target {
	t.Helper()
	if i < 1 || i > len(c.Addrs) {
		t.Fatalf("node %d: the cluster has nodes 1-%d", i, len(c.Addrs))
	}
	target, err := store.ParseDSN("clickhouse://" + c.Addrs[i-1] + "/" + database)
	if err != nil {
		t.Fatal(err)
	}
	if target, err = target.WithCluster(c.Name); err != nil {
		t.Fatal(err)
	}
	return target
}

// Conn opens a connection to target, closed when the test ends.
func Conn(t testing.TB, target store.Target) store.Conn {
	t.Helper()
	conn, err := store.Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// StopNode stops node i with scripts/cluster.sh (SIGTERM, as an operator
// would, waiting until it exits); it is started again when the test ends.
// It may run in a goroutine of the test: it returns its error.
func (c *Cluster) StopNode(t testing.TB, i int) error {
	t.Cleanup(func() {
		if err := c.control("start-node", i); err != nil {
			t.Error(err)
		}
	})
	return c.control("stop-node", i)
}

// StartNode starts node i again and waits until it answers.
func (c *Cluster) StartNode(t testing.TB, i int) {
	t.Helper()
	if err := c.control("start-node", i); err != nil {
		t.Fatal(err)
	}
}

func (c *Cluster) control(verb string, i int) error {
	if c.script == "" {
		return fmt.Errorf("%s is unset: cannot %s %d (scripts/cluster.sh env sets it)", ControlEnv, verb, i)
	}
	if out, err := exec.Command(c.script, verb, strconv.Itoa(i)).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s %d: %w\n%s", c.script, verb, i, err, out)
	}
	return nil
}
