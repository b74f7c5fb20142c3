//go:build cluster

package clustertest_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/internal/kpitest"
	"github.com/kpibridge/kpibridge/store"
)

// bothSink stores each generated valid message, re-sends included, on one
// server and on the cluster, the cluster's copies through two nodes in turn.
type bothSink struct {
	dec    *events.Decoder
	single *ingest.ClickHouseWriter
	nodes  []*ingest.ClickHouseWriter
	n      int
}

func (s *bothSink) Write(ctx context.Context, recs []generate.Record) error {
	var rows []ingest.Row
	for _, r := range recs {
		if !r.Valid {
			continue
		}
		ev, err := s.dec.Decode(r.Value)
		if err != nil {
			return err
		}
		rows = append(rows, ingest.Row{Event: ev, Topic: r.Topic})
	}
	if err := s.single.InsertEvents(ctx, rows); err != nil {
		return fmt.Errorf("one server: %w", err)
	}
	s.n++
	if err := s.nodes[s.n%len(s.nodes)].InsertEvents(ctx, rows); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

func (s *bothSink) Close() error { return nil }

// kpiValues resolves identity and computes every default KPI at now,
// returning how long each of the two took.
func kpiValues(t *testing.T, conn store.Conn, now time.Time) (kpis map[string]float64, identityTook, kpisTook time.Duration) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	if _, err := identity.NewResolver(conn, nil).Update(ctx); err != nil {
		t.Fatalf("identity update: %v", err)
	}
	identityTook = time.Since(start)
	start = time.Now()
	kpis = kpitest.Series(t, conn, now)
	return kpis, identityTook, time.Since(start)
}

// The same generated stream (5 % re-sends), stored on one server and on
// the cluster (through two nodes), gives every default KPI the same value,
// series for series: the identity resolver and every compiled KPI query
// are correct on the cluster's placement of tables.
func TestClusterKPIsEqualOneNode(t *testing.T) {
	c := clustertest.Require(t)
	ctx := context.Background()
	target := migrated(t, c)
	single, err := store.ParseDSN("clickhouse://" + c.Addrs[0] + "/" + target.Database + "_one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, single, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("KPIBRIDGE_TEST_KEEP_DB") == "" {
			_ = store.DropDatabase(context.Background(), single)
		}
	})
	end := time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)
	def := config.Default()
	dec, err := events.NewDecoder(events.Config{EmailHashKey: []byte("cluster-test-key-0123456789"), ReportingCurrency: def.Events.ReportingCurrency,
		Rates: def.Events.CurrencyRates, Now: func() time.Time { return end.Add(24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	oneConn := clustertest.Conn(t, single)
	sink := &bothSink{dec: dec, single: ingest.NewClickHouseWriter(oneConn, 1024), nodes: []*ingest.ClickHouseWriter{
		ingest.NewClickHouseWriter(clustertest.Conn(t, c.OnNode(t, target, 1)), 1024),
		ingest.NewClickHouseWriter(clustertest.Conn(t, c.OnNode(t, target, 3)), 1024)}}
	gcfg := generate.DefaultConfig()
	// KPIBRIDGE_CLUSTER_KPI_CUSTOMERS=N compares (and times) a larger stream.
	gcfg.Customers, gcfg.Days, gcfg.End, gcfg.InvalidRate, gcfg.DuplicateRate = envInt(t, "KPIBRIDGE_CLUSTER_KPI_CUSTOMERS", 1500), 90, end, 0, 0.05
	gcfg.Now = end.Add(24 * time.Hour)
	sum, err := generate.Run(ctx, gcfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	syncReplicas(t, c, target, "events_local")
	t.Logf("stored %d valid events and %d re-sends on one server and on the cluster", sum.Valid, sum.Duplicates)

	now := end.Add(24 * time.Hour)
	want, oneIdentity, oneTook := kpiValues(t, oneConn, now)
	got, clusterIdentity, clusterTook := kpiValues(t, clustertest.Conn(t, c.OnNode(t, target, 1)), now)
	t.Logf("default catalog: %d series; computed in %s on one server, %s on the cluster (identity update before: %s, %s)", len(want),
		oneTook.Round(time.Millisecond), clusterTook.Round(time.Millisecond), oneIdentity.Round(time.Millisecond), clusterIdentity.Round(time.Millisecond))
	var diff []string
	for k, w := range want {
		if strings.HasPrefix(k, "ingest_lag{") {
			continue // the age of the newest ingest: each store's own clock
		}
		if g, ok := got[k]; !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			diff = append(diff, fmt.Sprintf("%s = %v on the cluster, %v on one server", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diff = append(diff, k+" only on the cluster")
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%d of %d KPI series differ:\n%s", len(diff), len(want), strings.Join(diff[:min(len(diff), 30)], "\n"))
	}
}
