package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/catalog"
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
		fmt.Fprintf(w, "customer\t%s\n", c.CustomerID)
		fmt.Fprintf(w, "identity keys\t%v\n", c.Keys)
		fmt.Fprintf(w, "crm contact\t%s\n", c.CRMContactID)
		fmt.Fprintf(w, "segment / country\t%s / %s\n", c.Segment, c.Country)
		fmt.Fprintf(w, "first / last seen\t%s / %s\n", c.FirstSeen.Format("2006-01-02 15:04"), c.LastSeen.Format("2006-01-02 15:04"))
		fmt.Fprintf(w, "lead credited to\t%s\n", credited(c.LeadChannel, c.LeadClass, c.LeadCampaign))
		fmt.Fprintf(w, "first order credited to\t%s\n", credited(c.AcquisitionChannel, c.AcquisitionClass, c.AcquisitionCampaign))
		fmt.Fprintf(w, "funnel stage\t%s\n", c.Stage)
		fmt.Fprintf(w, "orders / revenue\t%d / %.2f\n", c.Orders, c.Revenue)
		fmt.Fprintf(w, "order channels\t%v\n", c.OrderChannels)
		fmt.Fprintf(w, "channels touched\t%v\n", c.Channels)
		fmt.Fprintf(w, "campaigns touched\t%v\n", c.Campaigns)
		fmt.Fprintf(w, "churned\t%v\n", c.Churned)
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

// credited says which touch a conversion is credited to, or why none.
func credited(channel, class, campaign string) string {
	if channel == "" {
		return catalog.Unattributed + " (no campaign touch in the lookback, or no such conversion yet)"
	}
	return fmt.Sprintf("%s (%s, campaign %s)", channel, class, campaign)
}
