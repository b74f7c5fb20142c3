package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/display"
	"github.com/kpibridge/kpibridge/identity"
)

func registerCustomer(k *kingpin.Application, a *app) []registered {
	cmd := k.Command("customer", "One customer: their 360 and timeline (customer show, the default: kpibridge customer ID), or their erasure (customer forget ID).")
	show := cmd.Command("show", "Print one customer's 360 and timeline. ID is a customer id, a CRM contact id, an anonymous id, or an email address (hashed with the configured key).").Default()
	a.addClickHouseFlag(show)
	id := show.Arg("id", "crm:<id>, email:<hash>, anon:<id>, a bare CRM contact id, anonymous id, or an email address.").Required().String()
	limit := show.Flag("limit", "Timeline events to show (newest last).").Default("50").Int()
	format := show.Flag("format", "Output format: table or json.").Default("table").Enum("table", "json")
	showDev := show.Flag("allow-dev-key", "Hash an email address with the public development key, as the demo's data is.").Bool()

	forget := cmd.Command("forget", "Remove one customer everywhere (right to erasure): events, duplicates, dead letters, identity keys, resolved events, merges and 360. KPIs computed afterwards no longer count them. ID as for customer show.")
	a.addClickHouseFlag(forget)
	forgetID := forget.Arg("id", "crm:<id>, email:<hash>, anon:<id>, a bare CRM contact id, anonymous id, or an email address.").Required().String()
	var settleSet bool
	settle := forget.Flag("settle", "How long to keep checking that an identity update running meanwhile did not write the customer back (default: transform.identity_interval).").IsSetByUser(&settleSet).Duration()
	timeout := forget.Flag("timeout", "How long ClickHouse may take to apply the deletions.").Default("10m").Duration()
	forgetDev := forget.Flag("allow-dev-key", "Hash an email address with the public development key, as the demo's data is.").Bool()

	return []registered{{show.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		key, err := a.customerKey(cfg, *id, *showDev)
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
	}}, {forget.FullCommand(), func(ctx context.Context) error {
		cfg, err := a.config()
		if err != nil {
			return err
		}
		key, err := a.customerKey(cfg, *forgetID, *forgetDev)
		if err != nil {
			return err
		}
		target, err := cfg.ClickHouseTarget(a.getenv)
		if err != nil {
			return err
		}
		conn, err := a.openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		if !settleSet {
			*settle = cfg.Transform.IdentityInterval
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout+*settle)
		defer cancel()
		f, err := identity.Forget(ctx, conn, target, *forgetID, key, identity.ForgetOptions{Settle: *settle})
		if err != nil {
			return err
		}
		// The log line says what went, never who: counts, no id or address.
		attrs := []any{"identity_keys", f.Keys}
		tables := slices.Sorted(maps.Keys(f.Rows))
		for _, t := range tables {
			attrs = append(attrs, t, f.Rows[t])
		}
		a.logger().Info("customer forgotten", attrs...)
		fmt.Fprintf(a.stdout, "forgot customer %s (%d identity keys); rows removed:\n", f.CustomerID, f.Keys)
		w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		for _, t := range tables {
			fmt.Fprintf(w, "  %s\t%d\n", t, f.Rows[t])
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "KPIs computed from now on no longer count this customer; stored KPI history holds only totals and is kept.")
		return nil
	}}}
}

// customerKey is the email hash key to look up id with. An email address
// is not hashed with the public development key unless allowDev: the
// lookup would silently find no one in data hashed with the real key.
func (a *app) customerKey(cfg config.Config, id string, allowDev bool) ([]byte, error) {
	key, dev, err := cfg.EmailHashKey(a.getenv)
	if err != nil {
		return nil, err
	}
	if dev && strings.Contains(id, "@") && !allowDev {
		return nil, errors.New("refusing to hash an email address with the public development key: set KPIBRIDGE_EMAIL_HASH_KEY (at least 16 bytes) " +
			"or events.email_hash_key_file to the key ingest runs with, or name the customer by a CRM, anonymous or customer id; " +
			"for the demo's data, which is hashed with the development key, add --allow-dev-key")
	}
	return key, nil
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
