package main

import (
	"context"
	"fmt"

	"github.com/alecthomas/kingpin/v2"
	"go.yaml.in/yaml/v3"
)

func registerConfigCheck(k *kingpin.Application, a *app) (string, action) {
	cmd := k.Command("check-config", "Validate the configuration (file, environment and flags) and print the result with defaults filled in.")
	return cmd.FullCommand(), func(ctx context.Context) error {
		// The catalog the configuration names is part of it: its problems too.
		_, cfg, err := a.loadCatalog("")
		if err != nil {
			return err
		}
		// Certificates and password files are read as a run would read them.
		t, err := cfg.ClickHouseTarget(a.getenv)
		if err != nil {
			return err
		}
		if _, err := cfg.KafkaSecurity(a.getenv); err != nil {
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
