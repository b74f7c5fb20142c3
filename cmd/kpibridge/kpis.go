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
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/display"
	"github.com/kpibridge/kpibridge/scorecard"
	"github.com/kpibridge/kpibridge/transform"
)

func registerKPIs(k *kingpin.Application, a *app) []registered {
	kpis := k.Command("kpis", "Inspect the KPI catalog and compute KPIs on demand.")
	catalogFile := addCatalogFlag(kpis)
	// load reads the configuration and the catalog it names (or --catalog).
	load := func() (*catalog.Catalog, config.Config, error) { return a.loadCatalog(*catalogFile) }

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

	backfill := kpis.Command("backfill", "Compute KPI history for past days from the stored events, so trends, week-over-week changes and baselines exist from day one. Idempotent.")
	a.addClickHouseFlag(backfill)
	bfFrom := backfill.Flag("from", "First day to compute (YYYY-MM-DD, 00:00 UTC).").Required().String()
	bfTo := backfill.Flag("to", "Last day to compute (YYYY-MM-DD; default: today).").String()
	bfStep := backfill.Flag("step", "Time between two computations.").Default("24h").Duration()

	baseline := kpis.Command("baseline", "Record or list KPI baselines, the starting points progress to target is measured from.")
	blSet := baseline.Command("set", "Record a KPI's value on a date (from its history) as its baseline; kept with who set it and what it replaced.")
	a.addClickHouseFlag(blSet)
	blName := blSet.Arg("name", "KPI name (see kpis list).").Required().String()
	blAt := blSet.Flag("at", "Date whose value becomes the baseline (YYYY-MM-DD).").Required().String()
	blBy := blSet.Flag("by", "Who sets it, for the audit trail (default: $USER).").String()
	blList := baseline.Command("list", "List every recorded baseline: KPI, value, date, who, when, and the value it replaced.")
	a.addClickHouseFlag(blList)

	return []registered{
		{list.FullCommand(), func(ctx context.Context) error {
			c, cfg, err := load()
			if err != nil {
				return err
			}
			return printCatalog(a.stdout, c, *listFormat, cfg.Events.ReportingCurrency)
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
			c, cfg, err := load()
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
			return printResult(a.stdout, k, res, *format, cfg.Events.ReportingCurrency)
		}},
		{backfill.FullCommand(), func(ctx context.Context) error {
			c, cfg, err := load()
			if err != nil {
				return err
			}
			from, err := time.Parse("2006-01-02", *bfFrom)
			if err != nil {
				return fmt.Errorf("--from: want a date YYYY-MM-DD, got %q", *bfFrom)
			}
			to := time.Now().UTC().Truncate(24 * time.Hour)
			if *bfTo != "" {
				if to, err = time.Parse("2006-01-02", *bfTo); err != nil {
					return fmt.Errorf("--to: want a date YYYY-MM-DD, got %q", *bfTo)
				}
			}
			if to.After(time.Now()) {
				return fmt.Errorf("--to %s is in the future", to.Format("2006-01-02"))
			}
			conn, err := a.openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close()
			st, err := transform.Backfill(ctx, conn, c, from, to, *bfStep, a.stdout)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "backfilled %d points in time: %d KPI evaluations written, %d already there, %d failed (their errors are in kpi_runs)\n",
				st.Points, st.Computed, st.Skipped, st.Failed)
			return nil
		}},
		{blSet.FullCommand(), func(ctx context.Context) error {
			c, cfg, err := load()
			if err != nil {
				return err
			}
			day, err := time.Parse("2006-01-02", *blAt)
			if err != nil {
				return fmt.Errorf("--at: want a date YYYY-MM-DD, got %q", *blAt)
			}
			by := *blBy
			if by == "" {
				by = a.getenv("USER")
			}
			if by == "" {
				by = "unknown"
			}
			conn, err := a.openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close()
			ch, err := scorecard.SetBaseline(ctx, conn, c, *blName, day, by, time.Now())
			if err != nil {
				return err
			}
			k, _ := c.Get(ch.KPI)
			was := "none"
			if ch.Previous != nil {
				was = display.Value(*ch.Previous, k, cfg.Events.ReportingCurrency)
			}
			fmt.Fprintf(a.stdout, "baseline of %s set to %s (its value on %s) by %s; it was %s\n", ch.KPI,
				display.Value(ch.Value, k, cfg.Events.ReportingCurrency), day.Format("2006-01-02"), by, was)
			return nil
		}},
		{blList.FullCommand(), func(ctx context.Context) error {
			c, cfg, err := load()
			if err != nil {
				return err
			}
			conn, err := a.openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.Close()
			log, err := scorecard.BaselineLog(ctx, conn)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KPI\tBASELINE\tVALUE ON\tSET BY\tSET AT\tREPLACED")
			for _, ch := range log {
				k, _ := c.Get(ch.KPI)
				was := "—"
				if ch.Previous != nil {
					was = display.Value(*ch.Previous, k, cfg.Events.ReportingCurrency)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ch.KPI, display.Value(ch.Value, k, cfg.Events.ReportingCurrency),
					ch.At.Format("2006-01-02"), ch.SetBy, ch.SetAt.UTC().Format(time.RFC3339), was)
			}
			return tw.Flush()
		}},
		{docs.FullCommand(), func(ctx context.Context) error {
			c, _, err := load()
			if err != nil {
				return err
			}
			_, err = io.WriteString(a.stdout, catalog.Markdown(c))
			return err
		}},
	}
}

// printCatalog lists the catalog; targets read in the reporting currency.
func printCatalog(w io.Writer, c *catalog.Catalog, format, currency string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(c.KPIs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tOWNER\tUNIT\tWINDOW\tTARGET\tDIRECTION\tDIMENSIONS\tAUDIENCE")
	for _, k := range c.KPIs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Type, k.Owner.Team, k.Unit, k.Window, display.Target(k, currency),
			strings.TrimSuffix(string(k.Direction), "_is_better"), strings.Join(k.Dimensions, ","), strings.Join(k.Audience, ","))
	}
	return tw.Flush()
}

// printResult prints one computed KPI: values in the reporting currency, the
// target and status on the total only.
func printResult(w io.Writer, k catalog.KPI, r transform.Result, format, currency string) error {
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
	unit := string(k.Unit)
	if k.Unit == catalog.UnitCurrency {
		unit += " " + currency
	}
	fmt.Fprintf(w, "%s — %s (%s, window %s: %s to %s), computed at %s\n", k.Name, k.Title, unit, r.Window,
		r.WindowStart.UTC().Format(time.RFC3339), r.WindowEnd.UTC().Format(time.RFC3339), r.ComputedAt.UTC().Format(time.RFC3339))
	if len(r.Series) == 0 {
		fmt.Fprintln(w, "no value (no data in the window, or a zero denominator)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIMENSION\tVALUE\tRESULT\tNUMERATOR\tDENOMINATOR\tTARGET\tSTATUS")
	for _, s := range r.Series {
		dim, val, target, status := s.Dimension, s.Value, "", ""
		if dim == "" {
			dim, val, target = "(total)", "", display.Target(k, currency)
			status, _ = display.Status(k, s.Result)
		}
		n, d := "", ""
		if s.HasParts {
			n, d = display.Part(s.Numerator, k.Numerator), display.Part(s.Denominator, k.Denominator)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dim, val, display.Value(s.Result, k, currency), n, d, target, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if k.RequireNumerator && len(r.Series) > 1 {
		// Say where the missing groups went: "no spend", not a silent gap.
		_, err := fmt.Fprintln(w, "groups whose numerator has no rows (a channel without spend) have no value and are not listed")
		return err
	}
	return nil
}
