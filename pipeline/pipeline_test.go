package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/pipeline"
)

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start runs pipeline roles until the returned stop is called.
func start(t *testing.T, cfg config.Config, roles []string, w *web.FlagConfig) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pipeline.Run(ctx, cfg, pipeline.Options{Roles: roles, Logger: logger(), Getenv: func(string) string { return "" }, Version: "test", Web: w})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline stopped with %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// serveAll runs every role with the web server and waits until /-/ready
// answers 200; it returns the server's address.
func serveAll(t *testing.T, cfg config.Config) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	start(t, cfg, []string{"ingest", "transform", "export"}, testenv.WebFlags(addr))
	waitFor(t, 60*time.Second, "/-/ready", func() bool {
		res, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return addr
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// TestPrometheusScrapesKPIsComputedFromGeneratedEvents runs the whole slice:
// generated events → embedded broker → ingest → ClickHouse → transform →
// export → the real Prometheus server, and finds the transform's values in
// Prometheus's query API.
func TestPrometheusScrapesKPIsComputedFromGeneratedEvents(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	brokerAddr := testenv.Broker(t, 3)

	gcfg := generate.DefaultConfig()
	gcfg.Customers, gcfg.Days = 300, 30
	gcfg.End = time.Now().UTC().AddDate(0, 0, -1)
	sink, err := generate.NewKafkaSink(generate.KafkaConfig{Brokers: []string{brokerAddr}})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := generate.Run(ctx, gcfg, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.ClickHouse.DSN = target.DSN
	cfg.Ingest.Batch.MaxWait = 200 * time.Millisecond
	// Ingest everything first, so the transform's first evaluation sees it all.
	stopIngest := start(t, cfg, []string{"ingest"}, nil)
	waitFor(t, 60*time.Second, fmt.Sprintf("%d distinct events in ClickHouse", sum.Valid), func() bool {
		var n uint64
		_ = conn.QueryRow(ctx, "SELECT uniqExact(event_id) FROM events").Scan(&n)
		return int64(n) == sum.Valid
	})
	stopIngest()

	exporterAddr := serveAll(t, cfg)
	// What the transform computed and stored.
	var want float64
	if err := conn.QueryRow(ctx, "SELECT argMax(value, computed_at) FROM kpi_values WHERE kpi = 'orders' AND dimension = ''").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if want <= 0 {
		t.Fatalf("transform computed %v orders from %d generated events", want, sum.Valid)
	}

	promAddr := testenv.StartPrometheus(t, exporterAddr)

	var got float64
	waitFor(t, 60*time.Second, "Prometheus to have scraped kpibridge_kpi_value{kpi=\"orders\"}", func() bool {
		v, ok := promQuery(t, promAddr, `kpibridge_kpi_value{kpi="orders",order_channel=""}`)
		got = v
		return ok
	})
	if got != want {
		t.Errorf("Prometheus has orders = %v, transform computed %v", got, want)
	}
	// Ratios re-aggregate from their parts: sum(numerator)/sum(denominator) over channels equals the total.
	total, ok1 := promQuery(t, promAddr, `kpibridge_kpi_value{kpi="aov",order_channel=""}`)
	reagg, ok2 := promQuery(t, promAddr, `sum(kpibridge_kpi_numerator{kpi="aov",order_channel!=""}) / sum(kpibridge_kpi_denominator{kpi="aov",order_channel!=""})`)
	if !ok1 || !ok2 || diff(total, reagg) > 1e-9*total {
		t.Errorf("aov total %v (%v) but re-aggregated from channels %v (%v)", total, ok1, reagg, ok2)
	}
	if up, ok := promQuery(t, promAddr, `up{job="kpibridge"}`); !ok || up != 1 {
		t.Errorf("up = %v (%v)", up, ok)
	}
}

func diff(a, b float64) float64 {
	if a > b {
		return a - b
	}
	return b - a
}

// promQuery returns the single value of an instant query.
func promQuery(t *testing.T, addr, q string) (float64, bool) {
	t.Helper()
	res, err := testenv.PromQuery(context.Background(), addr, q)
	if err != nil || len(res) != 1 {
		return 0, false
	}
	return res[0].Value, true
}
