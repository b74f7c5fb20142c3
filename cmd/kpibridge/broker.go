package main

import (
	"context"
	"fmt"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/broker"
)

func registerBroker(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("broker", "Run the embedded Kafka-protocol broker (development and demo only, not for production). With broker.tls it serves TLS; with broker.sasl.enabled it requires the SASL user of kafka.sasl (password from KPIBRIDGE_KAFKA_SASL_PASSWORD or kafka.sasl.password_file).")
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
		if bc.TLS, err = cfg.Broker.TLS.ServerConfig(); err != nil {
			return err
		}
		if cfg.Broker.SASL.Enabled {
			// The user kpibridge's own clients log in as: one configuration serves both sides.
			password, err := cfg.KafkaSASLPassword(a.getenv)
			if err != nil {
				return err
			}
			bc.Users = []broker.User{{Mechanism: cfg.Kafka.SASL.Mechanism, Name: cfg.Kafka.SASL.Username, Password: password}}
		}
		b, err := broker.Start(bc, a.logger())
		if err != nil {
			return err
		}
		defer b.Close()
		security := ""
		if bc.TLS != nil {
			security += ", TLS"
		}
		if len(bc.Users) > 0 {
			security += ", SASL " + bc.Users[0].Mechanism + " user " + bc.Users[0].Name
		}
		fmt.Fprintf(a.stdout, "kpibridge broker: Kafka protocol on %s%s (development broker; Ctrl-C stops it)\n", b.Addr(), security)
		<-ctx.Done()
		return nil
	}
}
