// Package demo runs the whole kpibridge pipeline on one machine for a first
// look: the embedded broker, a private ClickHouse server (or a given one),
// migrations, generated history back-filled up to now, the simulated
// company going on live (time-compressed), and every role with /metrics and
// the landing page.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	// Speed is how much faster than real time the simulation continues
	// after the back-fill (the live stream); 0 turns it off.
	Speed   float64
	Web     *web.FlagConfig
	Version string
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
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: is another demo running? Choose a free port with --clickhouse.port, or use a running server with --clickhouse", err)
		}
		if err != nil {
			return err
		}
		defer srv.Stop()
		dsn = srv.DSN("kpibridge")
		// The private server has no TLS port and no password.
		base.ClickHouse.TLS, base.ClickHouse.User, base.ClickHouse.PasswordFile = config.TLS{}, "", ""
	}
	base.ClickHouse.DSN = dsn
	// Like the pipeline below: the demo reads no secrets from the environment.
	target, err := base.ClickHouseTarget(func(string) string { return "" })
	if err != nil {
		return err
	}
	if o.ClickHouseDSN == "" {
		// The embedded broker starts empty each run: so does the private
		// database, or a second run would add its history to the first's.
		if err := store.DropDatabase(ctx, target); err != nil {
			return err
		}
	}
	if _, err := store.Migrate(ctx, target, logger); err != nil {
		return err
	}

	// The simulation runs to a few days past now: the days up to now are
	// back-filled, the rest is the live stream (two hours of it at the
	// default speed; a week of simulated future at most, so that the
	// simulated company's life does not stretch far past its history).
	cut := time.Now().UTC().Truncate(time.Second)
	future := 0
	if o.Speed > 0 {
		future = min(int(math.Ceil(o.Speed*2/24))+1, 7)
	}
	gcfg := generate.DefaultConfig()
	gcfg.Seed, gcfg.Customers, gcfg.Days = o.Seed, o.Customers, o.Days+future
	gcfg.End = cut.AddDate(0, 0, future)
	gcfg.ReportingCurrency, gcfg.Rates = base.Events.ReportingCurrency, base.Events.CurrencyRates
	// The embedded broker speaks plain text without SASL, whatever the
	// configuration says about a real Kafka.
	base.Kafka.TLS, base.Kafka.SASL = config.TLS{}, config.KafkaSASL{}
	sec, err := base.KafkaSecurity(func(string) string { return "" })
	if err != nil {
		return err
	}
	ksink, err := generate.NewKafkaSink(generate.KafkaConfig{Brokers: []string{b.Addr()}, Security: sec})
	if err != nil {
		return err
	}
	sink := newSplitSink(cut, ksink)
	fmt.Fprintf(out, "back-filling %d days of history up to now for %d customers…\n", o.Days, o.Customers)
	_, err = generate.Run(ctx, gcfg, sink, out)
	if cerr := sink.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("back-fill: %w", err)
	}
	backfilled := int64(len(sink.valid))
	fmt.Fprintf(out, "back-filled %d valid events up to %s", backfilled, cut.Format(time.RFC3339))
	if o.Speed > 0 {
		fmt.Fprintf(out, "; %d more messages of the simulated future wait for the live stream", len(sink.held))
	}
	fmt.Fprintln(out)

	cfg := base
	cfg.Kafka.Brokers = []string{b.Addr()}
	cfg.ClickHouse.DSN = dsn
	// The demo refreshes faster than production so the live stream shows.
	if cfg.Transform.MaxRefresh == 0 {
		cfg.Transform.MaxRefresh = DemoRefresh
	}
	cfg.Transform.IdentityInterval = min(cfg.Transform.IdentityInterval, 10*time.Second)
	popts := pipeline.Options{Logger: logger, Getenv: func(string) string { return "" }, Version: o.Version}
	// Ingest the back-fill first, so the KPIs' first evaluation sees all of it.
	if err := ingestBackfill(ctx, cfg, popts, target, backfilled, out); err != nil {
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
	var dlqs []string
	for _, t := range cfg.Kafka.Topics {
		dlqs = append(dlqs, t+cfg.Ingest.DLQ.Suffix)
	}
	fmt.Fprintf(out, `
kpibridge demo is running:
  landing page     http://%[1]s/   (KPIs refresh every %[5]s in the demo; the live stream runs %[6]g× real time)
  metrics          http://%[1]s/metrics
  Kafka (embedded) %[2]s            try: kcat -b %[2]s -L
  ClickHouse       %[3]s
  dead letters     topics %[4]s    try: kpibridge dlq list --brokers %[2]s --topic %[7]s
`, host, b.Addr(), target.Redacted(), strings.Join(dlqs, ", "), DemoRefresh, o.Speed, dlqs[0])
	if mon != nil {
		fmt.Fprintf(out, `  Prometheus       http://%[1]s/alerts   (rules generated from the catalog into %[3]s; demo KPIs alert after %[4]s off target)
  Alertmanager     http://%[2]s/         (routes by team, wins to "celebrate")
  Grafana          not packaged for Debian: import dashboards/grafana/*.json into a Grafana 10+ with a Prometheus
                   datasource (uid prometheus) at http://%[1]s — see docs/DASHBOARDS.md
`, o.PrometheusListen, o.AlertmanagerListen, filepath.Join(o.Dir, "dashboards"), DemoAlertFor)
	} else {
		fmt.Fprintf(out, "  alerts           run `kpibridge demo --prometheus` for Prometheus and Alertmanager with the generated rules\n")
	}
	fmt.Fprintf(out, `Next, in another shell:
  export KPIBRIDGE_CLICKHOUSE_DSN=%[1]s
  kpibridge kpis list
  kpibridge kpis query cac --by channel
  kpibridge customer %[2]s
`, target.Redacted(), sampleCustomer(ctx, target))
	fmt.Fprintf(out, "Ctrl-C stops everything the demo started.\n")

	var lv *live
	if o.Speed > 0 {
		lv = newLive([]string{b.Addr()}, sec, sink.held, time.Now(), o.Speed)
		defer lv.close()
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
		case now := <-tick.C:
			if lv == nil {
				continue
			}
			if _, err := lv.tick(ctx, now); err != nil && ctx.Err() == nil {
				logger.Warn("live stream could not send; retrying next second", "err", err)
			}
			if lv.left() == 0 {
				fmt.Fprintf(out, "the live stream has sent the whole simulated future (%d messages); KPIs stay as they are now — restart the demo for more\n", len(sink.held))
				lv.close()
				lv = nil
			}
		case <-ctx.Done():
			return <-done
		}
	}
}

// DemoRefresh caps every KPI's refresh in the demo (production: the catalog's, 5m by default).
const DemoRefresh = 30 * time.Second

// sampleCustomer is a CRM contact with orders, for the banner's example.
func sampleCustomer(ctx context.Context, target store.Target) string {
	conn, err := store.Open(ctx, target)
	if err != nil {
		return "<crm contact id>"
	}
	defer conn.Close()
	var id string
	if err := conn.QueryRow(ctx, "SELECT any(crm_contact_id) FROM events WHERE type = 'order.placed' AND crm_contact_id != ''").Scan(&id); err != nil || id == "" {
		return "<crm contact id>"
	}
	return id
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
