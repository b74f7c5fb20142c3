// Package demo runs the whole kpibridge pipeline on one machine for a first
// look: the embedded broker, a private ClickHouse server (or a given one),
// migrations, back-filled generated history, a live trickle of events, and
// every role with /metrics and the landing page.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kpibridge/kpibridge/broker"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/internal/chserver"
	"github.com/kpibridge/kpibridge/pipeline"
	"github.com/kpibridge/kpibridge/store"
)

// Options configure a demo run.
type Options struct {
	BrokerListen   string // embedded broker address
	ClickHouseDSN  string // empty: start a private server
	ClickHouseDir  string // its data directory
	ClickHousePort int
	Customers      int
	Days           int
	Seed           int64
	TrickleRate    int // live events per second; 0 turns the trickle off
	Web            *web.FlagConfig
	Version        string
	// Prometheus starts Debian's prometheus and prometheus-alertmanager
	// with the rules and routes generated from the catalog, on
	// PrometheusListen and AlertmanagerListen, with their data under Dir.
	Prometheus         bool
	PrometheusListen   string
	AlertmanagerListen string
	Dir                string
}

// Run starts everything, prints where to look, and stops it all when ctx ends.
func Run(ctx context.Context, base config.Config, o Options, out io.Writer, logger *slog.Logger) error {
	b, err := broker.Start(broker.Config{Listen: o.BrokerListen, Partitions: base.Broker.Partitions, Topics: base.Kafka.Topics}, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	dsn := o.ClickHouseDSN
	if dsn == "" {
		fmt.Fprintf(out, "starting a private ClickHouse server on 127.0.0.1:%d (data in %s)…\n", o.ClickHousePort, o.ClickHouseDir)
		srv, err := chserver.Start(ctx, o.ClickHouseDir, o.ClickHousePort)
		if err != nil {
			return err
		}
		defer srv.Stop()
		dsn = srv.DSN("kpibridge")
	}
	target, err := store.ParseDSN(dsn)
	if err != nil {
		return err
	}
	if _, err := store.Migrate(ctx, target, logger); err != nil {
		return err
	}

	gcfg := generate.DefaultConfig()
	gcfg.Seed, gcfg.Customers, gcfg.Days = o.Seed, o.Customers, o.Days
	gcfg.End = time.Now().UTC().AddDate(0, 0, -1)
	gcfg.ReportingCurrency, gcfg.Rates = base.Events.ReportingCurrency, base.Events.CurrencyRates
	sink, err := generate.NewKafkaSink(generate.KafkaConfig{Brokers: []string{b.Addr()}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "back-filling %d days of history for %d customers…\n", o.Days, o.Customers)
	sum, err := generate.Run(ctx, gcfg, sink, out)
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("back-fill: %w", err)
	}
	fmt.Fprintf(out, "back-filled %d messages (%d valid events, %d invalid, %d duplicates)\n", sum.Total, sum.Valid, invalid(sum), sum.Duplicates)

	cfg := base
	cfg.Kafka.Brokers = []string{b.Addr()}
	cfg.ClickHouse.DSN = dsn
	popts := pipeline.Options{Logger: logger, Getenv: func(string) string { return "" }, Version: o.Version}
	// Ingest the back-fill first, so the KPIs' first evaluation sees all of it.
	if err := ingestBackfill(ctx, cfg, popts, target, sum.Valid, out); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	popts.Roles, popts.Web = pipeline.Roles, o.Web
	go func() { done <- pipeline.Run(ctx, cfg, popts) }()

	addr := (*o.Web.WebListenAddresses)[0]
	host := addr
	if host != "" && host[0] == ':' {
		host = "127.0.0.1" + host
	}
	var mon *monitoring
	if o.Prometheus {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return err
		}
		if mon, err = startMonitoring(ctx, cfg, o.Dir, host, o.PrometheusListen, o.AlertmanagerListen); err != nil {
			cancel()
			<-done
			return err
		}
		defer mon.stop()
	}
	fmt.Fprintf(out, `
kpibridge demo is running:
  landing page     http://%[1]s/
  metrics          http://%[1]s/metrics
  Kafka (embedded) %[2]s            try: kcat -b %[2]s -L
  ClickHouse       %[3]s
`, host, b.Addr(), target.Redacted())
	if mon != nil {
		fmt.Fprintf(out, `  Prometheus       http://%[1]s/alerts   (rules generated from the catalog into %[3]s; demo KPIs alert after %[4]s off target)
  Alertmanager     http://%[2]s/         (routes by team, wins to "celebrate")
  Grafana          not packaged for Debian: import dashboards/grafana/*.json into a Grafana 10+ with a Prometheus
                   datasource (uid prometheus) at http://%[1]s — see docs/DASHBOARDS.md
`, o.PrometheusListen, o.AlertmanagerListen, filepath.Join(o.Dir, "dashboards"), DemoAlertFor)
	} else {
		fmt.Fprintf(out, "  alerts           run `kpibridge demo --prometheus` for Prometheus and Alertmanager with the generated rules\n")
	}
	fmt.Fprintf(out, "Ctrl-C stops everything the demo started.\n")

	var tr *trickle
	if o.TrickleRate > 0 {
		tr = newTrickle([]string{b.Addr()}, o.Seed)
		defer tr.close()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case <-tick.C:
			if tr != nil {
				if err := tr.tick(ctx, o.TrickleRate); err != nil && ctx.Err() == nil {
					logger.Warn("live trickle could not send; retrying next second", "err", err)
				}
			}
		case <-ctx.Done():
			return <-done
		}
	}
}

func invalid(s generate.Summary) int64 {
	var n int64
	for _, v := range s.Invalid {
		n += v
	}
	return n
}

// ingestBackfill runs the ingest role until every back-filled event is stored.
func ingestBackfill(ctx context.Context, cfg config.Config, popts pipeline.Options, target store.Target, want int64, out io.Writer) error {
	conn, err := store.Open(ctx, target)
	if err != nil {
		return err
	}
	defer conn.Close()
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	popts.Roles = []string{"ingest"}
	done := make(chan error, 1)
	go func() { done <- pipeline.Run(ictx, cfg, popts) }()
	last := time.Now()
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT uniqExact(event_id) FROM events").Scan(&n); err != nil && ctx.Err() == nil {
			return err
		}
		if int64(n) >= want {
			fmt.Fprintf(out, "ingested the back-fill: %d events in ClickHouse\n", n)
			stop()
			return <-done
		}
		if time.Since(last) > time.Second {
			fmt.Fprintf(out, "ingesting the back-fill: %d of %d events stored\n", n, want)
			last = time.Now()
		}
		select {
		case err := <-done:
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("ingest stopped before the back-fill was stored: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
