package main

import (
	"context"
	"fmt"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/store"
)

func registerMigrate(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("migrate", "Create or update the ClickHouse schema (idempotent; running it twice is a no-op).")
	a.addClickHouseFlag(cmd)
	cluster := cmd.Flag("cluster", "ClickHouse cluster (remote_servers) to create the schema on, ON CLUSTER: replicated tables, Distributed over the sharded ones (overrides clickhouse.cluster; docs/SCALING.md).").String()
	return cmd.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		if *cluster != "" {
			cfg.ClickHouse.Cluster = *cluster
			if err := cfg.Validate(); err != nil {
				return err
			}
		}
		target, err := cfg.ClickHouseTarget(a.getenv)
		if err != nil {
			return err
		}
		res, err := store.Migrate(ctx, target, a.logger())
		if err != nil {
			return err
		}
		if len(res.Applied) == 0 {
			fmt.Fprintf(a.stdout, "schema of %s is up to date (version %d)\n", target.Database, res.Current)
			return nil
		}
		where := target.Database
		if target.Cluster() != "" {
			where += " on every node of cluster " + target.Cluster()
		}
		fmt.Fprintf(a.stdout, "applied %d migration(s) to %s, now at version %d\n", len(res.Applied), where, res.Current)
		return nil
	}
}
