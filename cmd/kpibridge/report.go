package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/scorecard"
)

func registerReport(k *kingpin.Application, a *app) []registered {
	cmd := k.Command("report", "Write the executive scorecard for a week or a month, from the stored KPI history, as one self-contained HTML page (or PDF).")
	a.addClickHouseFlag(cmd)
	period := cmd.Flag("period", "week or month.").Default("week").Enum(scorecard.Week, scorecard.Month)
	at := cmd.Flag("at", "Last day of the period (YYYY-MM-DD; default: now).").String()
	out := cmd.Flag("out", "File to write.").Required().String()
	format := cmd.Flag("format", "html, or pdf (rendered with headless Chromium, Debian package chromium).").Default("html").Enum("html", "pdf")
	catalogFile := addCatalogFlag(cmd)
	return []registered{{cmd.FullCommand(), func(ctx context.Context) error {
		end := time.Now().UTC()
		if *at != "" {
			day, err := time.Parse("2006-01-02", *at)
			if err != nil {
				return fmt.Errorf("--at: want a date YYYY-MM-DD, got %q", *at)
			}
			if day.After(end) {
				return fmt.Errorf("--at %s is in the future: a report covers stored history", *at)
			}
			end = day.Add(24*time.Hour - time.Second)
		}
		var chromium string
		if *format == "pdf" {
			var err error
			if chromium, err = findChromium(); err != nil {
				return err
			}
		}
		cat, cfg, err := a.loadCatalog(*catalogFile)
		if err != nil {
			return err
		}
		conn, err := a.openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		r, err := scorecard.Build(ctx, conn, cat, scorecard.Options{At: end, Period: *period, Currency: cfg.Events.ReportingCurrency, Staleness: cfg.Export.StaleAfterRefreshes})
		if err != nil {
			return err
		}
		var page bytes.Buffer
		if err := scorecard.Render(&page, r); err != nil {
			return err
		}
		if *format == "html" {
			if err := os.WriteFile(*out, page.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %s (%d bytes): the %s to %s\n", *out, page.Len(), *period, end.Format("2006-01-02"))
			return nil
		}
		tmp, err := os.MkdirTemp("", "kpibridge-report-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		html := filepath.Join(tmp, "report.html")
		if err := os.WriteFile(html, page.Bytes(), 0o644); err != nil {
			return err
		}
		pdf, err := filepath.Abs(*out)
		if err != nil {
			return err
		}
		c := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(tmp, "profile"),
			"--no-pdf-header-footer", "--print-to-pdf="+pdf, "file://"+html)
		if msg, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("chromium could not print the report: %w\n%s", err, msg)
		}
		fmt.Fprintf(a.stdout, "wrote %s: the %s to %s\n", *out, *period, end.Format("2006-01-02"))
		return nil
	}}}
}

// findChromium finds Debian's chromium (or Chrome) for PDF output.
func findChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("--format pdf needs headless Chromium: apt-get install chromium (or write --format html and print it from a browser)")
}
