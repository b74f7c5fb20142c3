package main

import (
	"context"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/kpibridge/kpibridge/exporter"
	"github.com/kpibridge/kpibridge/pipeline"
)

func registerRun(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("run", "Run pipeline roles (ingest, transform, export) until SIGTERM or Ctrl-C; SIGTERM drains cleanly.")
	roles := cmd.Flag("role", "Comma-separated roles to run: ingest, transform, export (default: every role).").String()
	a.addBrokersFlag(cmd)
	a.addClickHouseFlag(cmd)
	webFlags := kingpinflag.AddFlags(cmd, exporter.DefaultListenAddress)
	return cmd.FullCommand(), func(ctx context.Context) error {
		rs, err := pipeline.ParseRoles(*roles)
		if err != nil {
			return err
		}
		cfg, err := a.config()
		if err != nil {
			return err
		}
		version.Version = buildVersion
		return pipeline.Run(ctx, cfg, pipeline.Options{Roles: rs, Logger: a.logger(), Getenv: a.getenv, Version: buildVersion, Web: webFlags})
	}
}
