//go:build cluster

package transform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/internal/clustertest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// TestGoldenOnCluster asserts the hand-worked golden values on the test
// cluster (make test-cluster): the fixture is stored in its two phases
// through node 1 into the Distributed tables, resolved there, and every
// default KPI, under both attribution settings, is evaluated on every
// node — each shard holds part of the events, each replica answers for
// its shard. The customer 360 lookup (`kpibridge customer`, as a process)
// then answers from a node of the other shard exactly as it does on one
// server holding the same fixture.
func TestGoldenOnCluster(t *testing.T) {
	c := clustertest.Require(t)
	target := c.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := store.Migrate(ctx, target, nil); err != nil {
		t.Fatal(err)
	}
	g := loadResolvedGolden(t, clustertest.Conn(t, target))
	for i := range c.Addrs {
		conn := clustertest.Conn(t, c.OnNode(t, target, i+1))
		t.Run(fmt.Sprintf("node%d", i+1), func(t *testing.T) {
			if n := countCustomers(t, conn); n != 8 {
				t.Fatalf("%d customers, want 8", n)
			}
			cat, err := catalog.Default()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, conn, cat, golden, true)
		})
	}
	lastTouch := goldenCatalog(t, "last_touch", "90d")
	r := g.resolver()
	r.Settings = lastTouch.Settings
	if st, err := r.Update(ctx); err != nil || !st.FullRebuld {
		t.Fatalf("new attribution settings: full rebuild %v (%v), want every customer recomputed", st.FullRebuld, err)
	}
	t.Run("last_touch_90d", func(t *testing.T) {
		checkGolden(t, clustertest.Conn(t, c.OnNode(t, target, 4)), lastTouch, goldenLastTouch, false)
	})
	if _, err := g.resolver().Update(ctx); err != nil { // back to the default settings
		t.Fatal(err)
	}

	// The same fixture on one server: a database of node 1 migrated without the cluster.
	single, err := store.ParseDSN("clickhouse://" + c.Addrs[0] + "/" + target.Database + "_one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, single, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.DropDatabase(context.Background(), single) })
	loadResolvedGolden(t, clustertest.Conn(t, single))

	bin := testenv.Binary(t)
	clusterConfig := filepath.Join(t.TempDir(), "kpibridge.yaml")
	if err := os.WriteFile(clusterConfig, []byte("clickhouse:\n  cluster: "+c.Name+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := func(t *testing.T, id, dsn string, flags ...string) (identity.Customer, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"customer", id, "--format", "json", "--clickhouse", dsn}, flags...)...)
		cmd.Env = append(os.Environ(), "KPIBRIDGE_EMAIL_HASH_KEY=golden-key-0123456789")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kpibridge customer %q on %s: %v\n%s", id, dsn, err, stderrOf(err))
		}
		var cu identity.Customer
		if err := json.Unmarshal(out, &cu); err != nil {
			t.Fatalf("kpibridge customer %q: %v\n%s", id, err, out)
		}
		return cu, string(out)
	}
	other := c.OnNode(t, target, 3) // shard 2's first replica
	for _, id := range []string{" Alice@Example.com", "a1", "crm:C1", "crm:C2", "crm:C3"} {
		t.Run("customer "+id, func(t *testing.T) {
			got, gotJSON := lookup(t, id, other.DSN, "--config.file", clusterConfig)
			_, wantJSON := lookup(t, id, single.DSN)
			if gotJSON != wantJSON {
				t.Errorf("the cluster answers\n%s\none server answers\n%s", gotJSON, wantJSON)
			}
			if id == "crm:C2" || id == "crm:C3" {
				return
			}
			if got.CustomerID != "crm:C1" || len(got.Keys) != 3 || got.Orders != 2 || got.Revenue != 150 || got.AcquisitionChannel != "paid_search" {
				t.Errorf("Alice's 360 on the cluster: %+v", got)
			}
		})
	}
}

// stderrOf is what a failed command wrote to stderr.
func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
