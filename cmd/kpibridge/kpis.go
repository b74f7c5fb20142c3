package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/transform"
)

func registerKPIs(k *kingpin.Application, a *app) []registered {
	kpis := k.Command("kpis", "Inspect the KPI catalog and compute KPIs on demand.")
	catalogFile := kpis.Flag("catalog", "KPI catalog file (default transform.catalog_file, else the embedded default).").String()
	load := func() (*catalog.Catalog, error) {
		cfg, err := a.config()
		if err != nil {
			return nil, err
		}
		if *catalogFile != "" {
			cfg.Transform.CatalogFile = *catalogFile
		}
		return transform.LoadCatalog(cfg.Transform)
	}

	list := kpis.Command("list", "List every KPI with its owner, unit, window, target and dimensions.")
	listFormat := list.Flag("format", "Output format: table or json.").Default("table").Enum("table", "json")

	check := kpis.Command("check", "Validate a KPI catalog file; every problem is reported with file:line, KPI and field.")
	checkFile := check.Arg("file", "Catalog file to check.").Required().String()

	query := kpis.Command("query", "Compute one KPI now from ClickHouse (not from history) and print it.")
	a.addClickHouseFlag(query)
	name := query.Arg("name", "KPI name (see kpis list).").Required().String()
	by := query.Flag("by", "Break the KPI down by this dimension (one of the KPI's dimensions).").String()
	window := query.Flag("window", "Override the KPI's window: 7d, 30d, 90d, 12h, calendar_month or lifetime.").String()
	format := query.Flag("format", "Output format: table or json.").Default("table").Enum("table", "json")

	docs := kpis.Command("docs", "Print the catalog as Markdown (docs/KPIS.md is generated with this).")

	return []registered{
		{list.FullCommand(), func(ctx context.Context) error {
			c, err := load()
			if err != nil {
				return err
			}
			return printCatalog(a.stdout, c, *listFormat)
		}},
		{check.FullCommand(), func(ctx context.Context) error {
			c, err := catalog.Load(*checkFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: %d KPIs, valid\n", *checkFile, len(c.KPIs))
			return nil
		}},
		{query.FullCommand(), func(ctx context.Context) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if *catalogFile != "" {
				cfg.Transform.CatalogFile = *catalogFile
			}
			c, err := transform.LoadCatalog(cfg.Transform)
			if err != nil {
				return err
			}
			conn, err := a.openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := transform.QueryKPI(ctx, conn, c, *name, *by, *window, time.Now())
			if err != nil {
				return err
			}
			k, _ := c.Get(*name)
			if transform.ReadsCustomers(c, k) {
				// Customer measures see what the transform role has resolved; say so when that lags.
				if resolved, stored, err := transform.ResolvedUpTo(ctx, conn); err == nil && stored.Sub(resolved) > 2*cfg.Transform.IdentityInterval {
					when := "none yet"
					if resolved.Unix() > 0 {
						when = "up to " + resolved.Format(time.RFC3339)
					}
					fmt.Fprintf(a.stderr, "note: %s counts customers over events the transform role has resolved (%s); events are stored up to %s. Run `kpibridge run --role transform` to keep them current.\n",
						*name, when, stored.Format(time.RFC3339))
				}
			}
			return printResult(a.stdout, k, res, *format)
		}},
		{docs.FullCommand(), func(ctx context.Context) error {
			c, err := load()
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, catalog.Markdown(c))
			return err
		}},
	}
}

func printCatalog(w io.Writer, c *catalog.Catalog, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(c.KPIs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tOWNER\tUNIT\tWINDOW\tTARGET\tDIRECTION\tDIMENSIONS\tAUDIENCE")
	for _, k := range c.KPIs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Type, k.Owner.Team, k.Unit, k.Window, num(k.Target),
			strings.TrimSuffix(string(k.Direction), "_is_better"), strings.Join(k.Dimensions, ","), strings.Join(k.Audience, ","))
	}
	return tw.Flush()
}

func num(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%g", *f)
}

func printResult(w io.Writer, k catalog.KPI, r transform.Result, format string) error {
	if format == "json" {
		type series struct {
			Dimension   string   `json:"dimension,omitempty"`
			Value       string   `json:"value,omitempty"`
			Result      float64  `json:"result"`
			Numerator   *float64 `json:"numerator,omitempty"`
			Denominator *float64 `json:"denominator,omitempty"`
		}
		out := struct {
			KPI         string    `json:"kpi"`
			Unit        string    `json:"unit"`
			Window      string    `json:"window"`
			WindowStart time.Time `json:"window_start"`
			WindowEnd   time.Time `json:"window_end"`
			Target      *float64  `json:"target,omitempty"`
			Series      []series  `json:"series"`
		}{KPI: r.KPI, Unit: string(k.Unit), Window: r.Window, WindowStart: r.WindowStart, WindowEnd: r.WindowEnd, Target: k.Target, Series: []series{}}
		for _, s := range r.Series {
			x := series{Dimension: s.Dimension, Value: s.Value, Result: s.Result}
			if s.HasParts {
				x.Numerator, x.Denominator = &s.Numerator, &s.Denominator
			}
			out.Series = append(out.Series, x)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "%s — %s (%s, window %s: %s to %s)\n", k.Name, k.Title, k.Unit, r.Window,
		r.WindowStart.Format(time.RFC3339), r.WindowEnd.Format(time.RFC3339))
	if len(r.Series) == 0 {
		fmt.Fprintln(w, "no value (no data in the window, or a zero denominator)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIMENSION\tVALUE\tRESULT\tNUMERATOR\tDENOMINATOR\tTARGET")
	for _, s := range r.Series {
		dim, val := s.Dimension, s.Value
		if dim == "" {
			dim, val = "(total)", ""
		}
		n, d := "", ""
		if s.HasParts {
			n, d = fmt.Sprintf("%.4g", s.Numerator), fmt.Sprintf("%.4g", s.Denominator)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.4f\t%s\t%s\t%s\n", dim, val, s.Result, n, d, num(k.Target))
	}
	return tw.Flush()
}
