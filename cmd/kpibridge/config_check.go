package main

import (
	"context"
	"fmt"

	"github.com/alecthomas/kingpin/v2"
	"go.yaml.in/yaml/v3"

	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

func registerConfigCheck(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("check-config", "Validate the configuration (file, environment and flags) and print the result with defaults filled in.")
	return cmd.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		// The catalog the configuration names is part of it: its problems too.
		if _, err := transform.LoadCatalog(cfg.Transform); err != nil {
			return err
		}
		t, err := store.ParseDSN(cfg.ClickHouse.DSN)
		if err != nil {
			return err
		}
		cfg.ClickHouse.DSN = t.Redacted()
		out, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "# configuration is valid\n%s", out)
		return nil
	}
}
