package main

import (
	"context"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/kpibridge/kpibridge/demo"
	"github.com/kpibridge/kpibridge/exporter"
)

func registerDemo(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("demo", "Run the whole pipeline locally on embedded defaults: broker, ClickHouse, generated history up to now, the simulated company going on live, every role.")
	a.addClickHouseFlag(cmd)
	brokerListen := cmd.Flag("broker.listen", "Address of the embedded Kafka broker.").Default("127.0.0.1:9092").String()
	chDir := cmd.Flag("clickhouse.dir", "Data directory of the private ClickHouse server (when --clickhouse is not given).").Default(".run/demo/clickhouse").String()
	chPort := cmd.Flag("clickhouse.port", "Native port of the private ClickHouse server.").Default("19010").Int()
	customers := cmd.Flag("customers", "Customers in the back-filled history.").Default("2000").Int()
	days := cmd.Flag("days", "Days of back-filled history, ending now.").Default("90").Int()
	seed := cmd.Flag("seed", "Seed of the generated history.").Default("42").Int64()
	speed := cmd.Flag("speed", "After the back-fill, the simulated company goes on this many times faster than real time (0: no live events).").Default("48").Float64()
	prom := cmd.Flag("prometheus", "Also start Debian's prometheus and prometheus-alertmanager with the rules and routes generated from the catalog.").Bool()
	promListen := cmd.Flag("prometheus.listen", "Address of the demo's Prometheus (with --prometheus).").Default("127.0.0.1:9090").String()
	amListen := cmd.Flag("alertmanager.listen", "Address of the demo's Alertmanager (with --prometheus).").Default("127.0.0.1:9093").String()
	monDir := cmd.Flag("prometheus.dir", "Where the demo's Prometheus and Alertmanager keep their configuration, data and logs.").Default(".run/demo/monitoring").String()
	webFlags := kingpinflag.AddFlags(cmd, exporter.DefaultListenAddress)
	return cmd.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		return demo.Run(ctx, cfg, demo.Options{
			BrokerListen: *brokerListen, ClickHouseDSN: a.clickhouse, ClickHouseDir: *chDir, ClickHousePort: *chPort,
			Customers: *customers, Days: *days, Seed: *seed, Speed: *speed, Web: webFlags, Version: buildVersion,
			Prometheus: *prom, PrometheusListen: *promListen, AlertmanagerListen: *amListen, Dir: *monDir,
		}, a.stdout, a.logger())
	}
}
