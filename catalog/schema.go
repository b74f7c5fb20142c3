package catalog

import "time"

// ColumnKind is what a column holds, which decides the conditions and
// aggregates it takes.
type ColumnKind string

// Column kinds.
const (
	String ColumnKind = "string"
	Number ColumnKind = "number"
	Time   ColumnKind = "time"
)

// Column is one column a measure can filter, group or aggregate on.
type Column struct {
	Kind ColumnKind
	// Expr is the ClickHouse expression of the column at its Layer: a
	// constant of the schema, never user data.
	Expr string
	// Layer 1 is the event's own row; 2 needs its customer (the measure
	// reads resolved_events); 3 needs the customer's attributes (a join
	// with customers).
	Layer int
	// Uses are the raw columns Expr reads.
	Uses []string
	// OnlyTypes, when set, are the event types for which Expr can be
	// non-empty: a condition that cannot match '' implies them, which lets
	// the sorting key (type first) skip every other type.
	OnlyTypes []string
	Doc       string
}

// Source is a table (or view) measures aggregate over.
type Source struct {
	Doc       string
	TimeField string
	Columns   map[string]Column
}

// Never is the time the customers table uses for "has not happened".
const Never = "2100-01-01 00:00:00"

// NeverTime is Never as a time.
func NeverTime() time.Time { return time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) }

// IdentifierExpr picks an event's best identity key; system identities of
// spend events (anonymous_id "system:…") identify no one.
const IdentifierExpr = `if(crm_contact_id != '', concat('crm:', crm_contact_id), if(email_hash != '', concat('email:', email_hash), if(anonymous_id != '' AND substring(anonymous_id, 1, 7) != 'system:', concat('anon:', anonymous_id), '')))`

// TouchTypes are the events that are a customer's own action: visits,
// app sessions, email opens and clicks, forms. An outbound send
// (email.sent) is not a touch and earns no attribution credit.
func TouchTypes() []string {
	return []string{"web.visit", "app.session", "email.opened", "email.clicked", "form.submitted"}
}

// ChannelClassExpr classes a campaign channel as paid, owned or earned by
// the catalog's settings.channels (” for no channel); the compiler binds
// the placeholders.
const ChannelClassExpr = "transform(channel, $class_channels, $class_names, '')"

// ProratedAmountExpr spreads a martech.cost over the month it is for and
// keeps the part of that month inside the window; any other amount is
// kept whole. The compiler binds the window placeholders.
const ProratedAmountExpr = "if(type = 'martech.cost', amount * greatest(0, least(toInt64(toUInt32(addMonths(toDateTime(stat_date, 'UTC'), 1))), toInt64(toUInt32($window_end))) - greatest(toInt64(toUInt32(toDateTime(stat_date, 'UTC'))), toInt64(toUInt32($window_start)))) / (toUInt32(addMonths(toDateTime(stat_date, 'UTC'), 1)) - toUInt32(toDateTime(stat_date, 'UTC'))), amount)"

// TouchChannelExpr says where an event shows the customer engaging.
const TouchChannelExpr = "multiIf(type IN ('web.visit', 'form.submitted'), 'web', type = 'app.session', 'mobile_app', type IN ('email.opened', 'email.clicked'), 'email', type = 'order.placed', order_channel, '')"

func raw(kind ColumnKind, doc string) Column { return Column{Kind: kind, Layer: 1, Doc: doc} }

// Sources are the tables a measure can read. Column names are the names in
// kpis.yaml; Expr, when set, is how the column is computed.
var Sources = map[string]Source{
	"events": {
		Doc:       "valid events, each event_id counted once (deduplicated before ClickHouse merges)",
		TimeField: "occurred_at",
		Columns: map[string]Column{
			"event_id":       raw(String, "the event's id"),
			"type":           raw(String, "event type"),
			"source":         raw(String, "producing system"),
			"channel":        raw(String, "campaign channel of the event's campaign block"),
			"campaign_id":    raw(String, "campaign of the event's campaign block"),
			"order_channel":  raw(String, "order.placed: web, mobile_app, store, phone, partner"),
			"platform":       raw(String, "app.session: ios, android"),
			"stage":          raw(String, "lead.stage_changed: funnel stage"),
			"outcome":        raw(String, "opportunity.closed: won, lost"),
			"segment":        raw(String, "contact.upserted: segment"),
			"country":        raw(String, "contact.upserted: country"),
			"vendor":         raw(String, "martech.cost: vendor"),
			"currency":       raw(String, "currency the amount was sent in"),
			"entity_id":      raw(String, "order_id, opportunity_id, subscription_id or form_id"),
			"crm_contact_id": raw(String, "CRM contact id"),
			"email_hash":     raw(String, "HMAC of the email"),
			"anonymous_id":   raw(String, "anonymous (device/cookie) id"),
			"topic":          raw(String, "Kafka topic"),
			"amount":         raw(Number, "amount in the reporting currency"),
			"impressions":    raw(Number, "campaign.daily_stats impressions"),
			"clicks":         raw(Number, "campaign.daily_stats clicks"),
			"occurred_at":    raw(Time, "when it happened"),
			"ingested_at":    raw(Time, "when kpibridge stored it"),
			"signed_amount": {Kind: Number, Layer: 1, Expr: "if(type = 'order.refunded', -amount, amount)", Uses: []string{"type", "amount"},
				Doc: "amount, negative for refunds: sum over order.placed and order.refunded is net revenue"},
			"touch_channel": {Kind: String, Layer: 1, Expr: TouchChannelExpr, Uses: []string{"type", "order_channel"},
				OnlyTypes: []string{"web.visit", "form.submitted", "app.session", "email.opened", "email.clicked", "order.placed"},
				Doc:       "where the customer engaged: web, mobile_app, email, or the order channel"},
			"period_start": {Kind: Time, Layer: 1, Expr: "toDateTime(stat_date, 'UTC')", Uses: []string{"stat_date"},
				Doc: "the day (campaign.daily_stats date) or month (martech.cost month) a report's figures belong to, at 00:00 UTC"},
			"channel_class": {Kind: String, Layer: 1, Expr: ChannelClassExpr, Uses: []string{"channel"},
				Doc: "class of the campaign channel by settings.channels: paid, owned or earned"},
			"prorated_amount": {Kind: Number, Layer: 1, Expr: ProratedAmountExpr, Uses: []string{"type", "amount", "stat_date"},
				Doc: "amount, with a martech.cost spread evenly over its month and only the part of the month inside the window kept"},
			"identifier":                   {Kind: String, Layer: 1, Expr: IdentifierExpr, Uses: []string{"crm_contact_id", "email_hash", "anonymous_id"}, Doc: "the event's best identity key (crm:, email:, anon:)"},
			"customer":                     {Kind: String, Layer: 2, Doc: "the resolved customer id (one view of the customer)"},
			"customer.acquisition_channel": {Kind: String, Layer: 3, Expr: "c_acquisition_channel", Doc: "channel credited with the customer's first order (settings.attribution)"},
			"customer.acquisition_class":   {Kind: String, Layer: 3, Expr: "c_acquisition_class", Doc: "class (paid, owned, earned) of customer.acquisition_channel"},
			"customer.lead_channel":        {Kind: String, Layer: 3, Expr: "c_lead_channel", Doc: "channel credited with the customer becoming a lead (settings.attribution)"},
			"customer.lead_class":          {Kind: String, Layer: 3, Expr: "c_lead_class", Doc: "class (paid, owned, earned) of customer.lead_channel"},
			"customer.subscribed_at":       {Kind: Time, Layer: 3, Expr: "c_subscribed_at", Doc: "start of the customer's subscription ($never if none)"},
			"customer.churned_at":          {Kind: Time, Layer: 3, Expr: "c_churned_at", Doc: "cancellation of the customer's subscription ($never if active or never subscribed)"},
			"customer.segment":             {Kind: String, Layer: 3, Expr: "c_segment", Doc: "the customer's CRM segment"},
			"customer.country":             {Kind: String, Layer: 3, Expr: "c_country", Doc: "the customer's country"},
			// The canonical id of a customer known to the CRM is its CRM key.
			"customer.is_crm": {Kind: Number, Layer: 2, Expr: "toUInt8(substring(customer, 1, 4) = 'crm:')", Doc: "1 when the customer is known to the CRM"},
		},
	},
	"customers": {
		Doc:       "one row per resolved customer (customer 360)",
		TimeField: "first_seen",
		Columns: map[string]Column{
			"customer_id":            raw(String, "canonical customer id"),
			"crm_contact_id":         raw(String, "CRM contact id, if known"),
			"acquisition_channel":    raw(String, "channel credited with the first order (settings.attribution; '' if no touch in the lookback)"),
			"acquisition_campaign":   raw(String, "campaign credited with the first order"),
			"acquisition_class":      raw(String, "class of acquisition_channel: paid, owned or earned"),
			"lead_channel":           raw(String, "channel credited with reaching stage lead (settings.attribution)"),
			"lead_campaign":          raw(String, "campaign credited with reaching stage lead"),
			"lead_class":             raw(String, "class of lead_channel: paid, owned or earned"),
			"segment":                raw(String, "CRM segment"),
			"country":                raw(String, "country"),
			"stage":                  raw(String, "furthest funnel stage reached"),
			"orders":                 raw(Number, "distinct orders"),
			"revenue":                raw(Number, "net revenue (orders − refunds)"),
			"channels_count":         raw(Number, "distinct touch channels"),
			"is_crm":                 raw(Number, "1 when known to the CRM"),
			"churned":                raw(Number, "1 when the subscription was cancelled"),
			"first_seen":             raw(Time, "first event"),
			"last_seen":              raw(Time, "last event"),
			"first_order_at":         raw(Time, "first order ($never if none)"),
			"last_order_at":          raw(Time, "last order ($never if none)"),
			"reached_lead_at":        raw(Time, "first reached stage lead ($never if not)"),
			"reached_mql_at":         raw(Time, "first reached stage mql ($never if not)"),
			"reached_sql_at":         raw(Time, "first reached stage sql ($never if not)"),
			"reached_opportunity_at": raw(Time, "first reached stage opportunity ($never if not)"),
			"reached_customer_at":    raw(Time, "first reached stage customer ($never if not)"),
			"won_at":                 raw(Time, "first won opportunity ($never if none)"),
			"subscribed_at":          raw(Time, "first subscription start ($never if none)"),
			"churned_at":             raw(Time, "subscription cancellation ($never if none)"),
		},
	},
	"dead_letters": {
		Doc:       "messages refused at ingest, one per Kafka message",
		TimeField: "failed_at",
		Columns: map[string]Column{
			"reason":     raw(String, "why it was refused"),
			"field":      raw(String, "offending field"),
			"topic":      raw(String, "Kafka topic"),
			"source":     raw(String, "producing system, if readable"),
			"event_type": raw(String, "event type, if readable"),
			"failed_at":  raw(Time, "when it was refused"),
		},
	},
	"duplicates": {
		Doc:       "re-sent events recognised at ingest, one per Kafka message",
		TimeField: "seen_at",
		Columns: map[string]Column{
			"event_id": raw(String, "the repeated event_id"),
			"type":     raw(String, "event type"),
			"source":   raw(String, "producing system"),
			"topic":    raw(String, "Kafka topic"),
			"seen_at":  raw(Time, "when it was seen"),
		},
	},
	"messages": {
		Doc:       "every consumed message: valid events (by ingest time), dead letters and duplicates",
		TimeField: "at",
		Columns: map[string]Column{
			"source":  raw(String, "producing system"),
			"topic":   raw(String, "Kafka topic"),
			"outcome": raw(String, "valid, invalid or duplicate"),
			"at":      raw(Time, "when kpibridge received it"),
		},
	},
}
