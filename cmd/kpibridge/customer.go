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
	"github.com/kpibridge/kpibridge/display"
	"github.com/kpibridge/kpibridge/identity"
)

func registerCustomer(k *kingpin.Application, a *app) []registered {
	cmd := k.Command("customer", "Print one customer's 360 and timeline. ID is a customer id, a CRM contact id, an anonymous id, or an email address (hashed with the configured key).")
	a.addClickHouseFlag(cmd)
	id := cmd.Arg("id", "crm:<id>, email:<hash>, anon:<id>, a bare CRM contact id, anonymous id, or an email address.").Required().String()
	limit := cmd.Flag("limit", "Timeline events to show (newest last).").Default("50").Int()
	format := cmd.Flag("format", "Output format: table or json.").Default("table").Enum("table", "json")
	return []registered{{cmd.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		key, _, err := cfg.EmailHashKey(a.getenv)
		if err != nil {
			return err
		}
		conn, err := a.openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		c, err := identity.LookupCustomer(ctx, conn, *id, key, *limit)
		if err != nil {
			return err
		}
		if *format == "json" {
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(c)
		}
		w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		printCustomer(w, c, cfg.Events.ReportingCurrency)
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "\ntimeline (%d most recent events):\n", len(c.Timeline))
		w = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		for _, e := range c.Timeline {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.OccurredAt.Format("2006-01-02 15:04:05"), e.Type, e.Source, e.Summary)
		}
		return w.Flush()
	}}}
}

// printCustomer writes the customer's 360, one attribute a line; attributes
// with no value are left out.
func printCustomer(w io.Writer, c identity.Customer, currency string) {
	line := func(label, value string) {
		if value != "" {
			fmt.Fprintf(w, "%s\t%s\n", label, value)
		}
	}
	seen := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	line("customer", c.CustomerID)
	line("identity keys", strings.Join(c.Keys, ", "))
	line("crm contact", c.CRMContactID)
	line("segment", c.Segment)
	line("country", c.Country)
	line("first seen", seen(c.FirstSeen))
	line("last seen", seen(c.LastSeen))
	line("lead credited to", credited(c.LeadChannel, c.LeadClass, c.LeadCampaign))
	line("first order credited to", credited(c.AcquisitionChannel, c.AcquisitionClass, c.AcquisitionCampaign))
	line("funnel stage", c.Stage)
	line("orders", display.Count(float64(c.Orders)))
	line("revenue", display.Currency(c.Revenue, currency))
	line("order channels", strings.Join(c.OrderChannels, ", "))
	line("channels touched", strings.Join(c.Channels, ", "))
	line("campaigns touched", strings.Join(c.Campaigns, ", "))
	churned := "no"
	if c.Churned {
		churned = "yes"
	}
	line("churned", churned)
}

// credited says which touch a conversion is credited to, or why none.
func credited(channel, class, campaign string) string {
	if channel == "" {
		return catalog.Unattributed + " (no campaign touch in the lookback, or no such conversion yet)"
	}
	return fmt.Sprintf("%s (%s, campaign %s)", channel, class, campaign)
}
