package main

import (
	"context"
	"fmt"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/broker"
)

func registerBroker(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("broker", "Run the embedded Kafka-protocol broker (development and demo only, not for production).")
	listen := cmd.Flag("listen", "host:port to serve Kafka on; the host is advertised to clients (default broker.listen, 127.0.0.1:9092).").String()
	partitions := cmd.Flag("partitions", "Partitions of auto-created topics (default broker.partitions, 6).").Int()
	dataDir := cmd.Flag("data-dir", "Keep topics, records and consumer offsets in this directory across restarts (default: in memory).").String()
	return cmd.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		bc := broker.Config{Listen: cfg.Broker.Listen, Partitions: cfg.Broker.Partitions, DataDir: cfg.Broker.DataDir, Topics: cfg.Kafka.Topics}
		if *listen != "" {
			bc.Listen = *listen
		}
		if *partitions != 0 {
			bc.Partitions = *partitions
		}
		if *dataDir != "" {
			bc.DataDir = *dataDir
		}
		b, err := broker.Start(bc, a.logger())
		if err != nil {
			return err
		}
		defer b.Close()
		fmt.Fprintf(a.stdout, "kpibridge broker: Kafka protocol on %s (development broker; Ctrl-C stops it)\n", b.Addr())
		<-ctx.Done()
		return nil
	}
}
