package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/store"
)

// Customer is one customer's 360: identity keys, profile, value, and recent events.
type Customer struct {
	CustomerID          string    `json:"customer_id"`
	Keys                []string  `json:"identity_keys"`
	CRMContactID        string    `json:"crm_contact_id"`
	Segment             string    `json:"segment"`
	Country             string    `json:"country"`
	AcquisitionChannel  string    `json:"acquisition_channel"`
	AcquisitionCampaign string    `json:"acquisition_campaign"`
	AcquisitionClass    string    `json:"acquisition_class"`
	LeadChannel         string    `json:"lead_channel"`
	LeadCampaign        string    `json:"lead_campaign"`
	LeadClass           string    `json:"lead_class"`
	Stage               string    `json:"stage"`
	Orders              uint32    `json:"orders"`
	Revenue             float64   `json:"revenue"`
	OrderChannels       []string  `json:"order_channels"`
	Channels            []string  `json:"channels"`
	Campaigns           []string  `json:"campaigns"`
	Churned             bool      `json:"churned"`
	FirstSeen           time.Time `json:"first_seen"`
	LastSeen            time.Time `json:"last_seen"`
	// Timeline is oldest first; events of the same instant in event_id
	// order, so every run and every node of a cluster print it alike.
	Timeline []TimelineEvent `json:"timeline"`
}

// TimelineEvent is one event of a customer's timeline.
type TimelineEvent struct {
	OccurredAt time.Time `json:"occurred_at"`
	Type       string    `json:"type"`
	Source     string    `json:"source"`
	Summary    string    `json:"summary"`
}

// ErrNoCustomer means no identity key matched.
var ErrNoCustomer = errors.New("no such customer")

// LookupCustomer finds a customer by any of its keys: a customer id or key
// (crm:…, email:…, anon:…), a bare CRM contact id or anonymous id, or an email
// address (hashed with key, never stored or logged).
func LookupCustomer(ctx context.Context, conn store.Conn, id string, key []byte, limit int) (Customer, error) {
	var c Customer
	var err error
	if c.CustomerID, _, err = findCustomer(ctx, conn, id, key); err != nil {
		return c, err
	}
	keys, err := conn.Query(ctx, "SELECT identifier FROM identity_map FINAL WHERE customer_id = ? ORDER BY identifier", c.CustomerID)
	if err != nil {
		return c, fmt.Errorf("keys of %s: %w", c.CustomerID, err)
	}
	for keys.Next() {
		var k string
		if err := keys.Scan(&k); err != nil {
			keys.Close()
			return c, err
		}
		c.Keys = append(c.Keys, k)
	}
	keys.Close()
	var churned uint8
	err = conn.QueryRow(ctx, `SELECT crm_contact_id, segment, country, acquisition_channel, acquisition_campaign, acquisition_class,
  lead_channel, lead_campaign, lead_class, stage, orders, revenue, order_channels, channels, campaigns, churned, first_seen, last_seen
FROM customers FINAL WHERE customer_id = ? AND merged_into = ''`, c.CustomerID).Scan(&c.CRMContactID, &c.Segment, &c.Country,
		&c.AcquisitionChannel, &c.AcquisitionCampaign, &c.AcquisitionClass, &c.LeadChannel, &c.LeadCampaign, &c.LeadClass, &c.Stage, &c.Orders, &c.Revenue, &c.OrderChannels, &c.Channels, &c.Campaigns,
		&churned, &c.FirstSeen, &c.LastSeen)
	if err != nil {
		return c, fmt.Errorf("360 of %s: %w", c.CustomerID, err)
	}
	c.Churned = churned == 1
	ph := make([]string, len(c.Keys))
	args := make([]any, 0, len(c.Keys)+1)
	for i, k := range c.Keys {
		ph[i] = "?"
		args = append(args, k)
	}
	args = append(args, limit)
	rows, err := conn.Query(ctx, `SELECT occurred_at, type, source, amount, currency, channel, campaign_id, stage, outcome, order_channel, platform, entity_id
FROM (SELECT *, `+catalog.IdentifierExpr+` AS identifier FROM events LIMIT 1 BY event_id)
WHERE identifier IN (`+strings.Join(ph, ", ")+`)
ORDER BY occurred_at DESC, event_id DESC LIMIT ?`, args...)
	if err != nil {
		return c, fmt.Errorf("timeline of %s: %w", c.CustomerID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e TimelineEvent
		var amount float64
		var currency, channel, campaign, stage, outcome, orderCh, platform, entity string
		if err := rows.Scan(&e.OccurredAt, &e.Type, &e.Source, &amount, &currency, &channel, &campaign, &stage, &outcome, &orderCh, &platform, &entity); err != nil {
			return c, err
		}
		var parts []string
		for _, p := range [][2]string{{"entity", entity}, {"stage", stage}, {"outcome", outcome}, {"order channel", orderCh}, {"platform", platform}, {"channel", channel}, {"campaign", campaign}} {
			if p[1] != "" {
				parts = append(parts, p[0]+" "+p[1])
			}
		}
		if amount != 0 {
			parts = append(parts, fmt.Sprintf("amount %.2f", amount))
		}
		e.Summary = strings.Join(parts, ", ")
		c.Timeline = append(c.Timeline, e)
	}
	slices.Reverse(c.Timeline)
	return c, rows.Err()
}

// findCustomer returns the customer id that id names (as LookupCustomer
// reads it) and the identity key that matched.
func findCustomer(ctx context.Context, conn store.Conn, id string, key []byte) (customer, matched string, err error) {
	var candidates []string
	switch {
	case strings.HasPrefix(id, "crm:"), strings.HasPrefix(id, "email:"), strings.HasPrefix(id, "anon:"):
		candidates = []string{id}
	case strings.Contains(id, "@"):
		candidates = []string{"email:" + events.HashEmail(key, id)}
	default:
		candidates = []string{"crm:" + id, "anon:" + id}
	}
	for _, k := range candidates {
		rows, err := conn.Query(ctx, "SELECT customer_id FROM identity_map FINAL WHERE identifier = ?", k)
		if err != nil {
			return "", "", fmt.Errorf("look up %s: %w", redactEmail(k), err)
		}
		if rows.Next() {
			err = rows.Scan(&customer)
		}
		rows.Close()
		if err != nil {
			return "", "", fmt.Errorf("look up %s: %w", redactEmail(k), err)
		}
		if customer != "" {
			return customer, k, nil
		}
	}
	return "", "", fmt.Errorf("%w: no identity key matches %q (the identity graph is updated every transform.identity_interval; is the transform role running?)", ErrNoCustomer, redactEmail(id))
}

func redactEmail(id string) string {
	if strings.Contains(id, "@") {
		return "<email address>"
	}
	return id
}
