package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/dashboards"
)

func registerDashboards(k *kingpin.Application, a *app) []registered {
	cmd := k.Command("dashboards", "Generate Grafana dashboards, Prometheus rules and the Alertmanager configuration from the KPI catalog.")
	catalogFile := addCatalogFlag(cmd)
	configFile := cmd.Flag("config", "Generator settings (datasource uids, Grafana URL, pipeline alert thresholds); default: dashboards/config.yaml's values.").String()
	load := func() (*catalog.Catalog, dashboards.Config, error) {
		c, _, err := a.loadCatalog(*catalogFile)
		if err != nil {
			return nil, dashboards.Config{}, err
		}
		dc := dashboards.DefaultConfig()
		if *configFile != "" {
			if dc, err = dashboards.LoadConfig(*configFile); err != nil {
				return nil, dc, err
			}
		}
		return c, dc, nil
	}
	gen := cmd.Command("generate", "Write the dashboards (grafana/), their provisioning, rules.yaml, alerts.yaml and alertmanager.yml into a folder.")
	out := gen.Flag("out", "Folder to write into (the committed defaults are in dashboards/).").Required().String()
	docs := cmd.Command("docs", "Print the panel reference of docs/DASHBOARDS.md.")
	return []registered{
		{gen.FullCommand(), func(ctx context.Context) error {
			c, dc, err := load()
			if err != nil {
				return err
			}
			written, err := dashboards.Write(*out, c, dc)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %d files into %s for %d KPIs\n", len(written), *out, len(c.KPIs))
			return nil
		}},
		{docs.FullCommand(), func(ctx context.Context) error {
			c, dc, err := load()
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, dashboards.Markdown(c, dc))
			return err
		}},
	}
}
