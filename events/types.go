// Package events owns kpibridge's event contract v1: the wire format that
// producers write to Kafka (Message), the validated and normalised form that
// ingest stores in ClickHouse (Event), the decoder between the two, and the
// typed errors that say why a message was refused.
package events

import "time"

// Default topics of contract v1.
const (
	TopicCRM      = "crm.events"
	TopicCampaign = "campaign.events"
)

// Type is an event type of contract v1.
type Type string

// CRM topic types.
const (
	TypeContactUpserted     Type = "contact.upserted"
	TypeLeadStageChanged    Type = "lead.stage_changed"
	TypeOpportunityClosed   Type = "opportunity.closed"
	TypeOrderPlaced         Type = "order.placed"
	TypeOrderRefunded       Type = "order.refunded"
	TypeSubscriptionStarted Type = "subscription.started"
	TypeSubscriptionCancel  Type = "subscription.cancelled"
)

// Campaign topic types.
const (
	TypeCampaignDailyStats Type = "campaign.daily_stats"
	TypeEmailSent          Type = "email.sent"
	TypeEmailOpened        Type = "email.opened"
	TypeEmailClicked       Type = "email.clicked"
	TypeWebVisit           Type = "web.visit"
	TypeAppSession         Type = "app.session"
	TypeFormSubmitted      Type = "form.submitted"
	TypeMartechCost        Type = "martech.cost"
)

// CRMTypes and CampaignTypes list the types each default topic carries.
var (
	CRMTypes = []Type{
		TypeContactUpserted, TypeLeadStageChanged, TypeOpportunityClosed, TypeOrderPlaced,
		TypeOrderRefunded, TypeSubscriptionStarted, TypeSubscriptionCancel,
	}
	CampaignTypes = []Type{
		TypeCampaignDailyStats, TypeEmailSent, TypeEmailOpened, TypeEmailClicked,
		TypeWebVisit, TypeAppSession, TypeFormSubmitted, TypeMartechCost,
	}
)

// Channels are the marketing channels a campaign block may name.
var Channels = []string{
	"paid_search", "paid_social", "display", "email", "organic_search",
	"social", "referral", "direct", "affiliate", "events",
}

// ReservedValue is the one campaign id the contract refuses: KPI
// breakdowns show rows without a campaign or channel under it.
const ReservedValue = "(none)"

// Correctable reports whether a re-send of an event of type t under the
// same event_id may carry new figures that replace the old: the reports of
// campaign.daily_stats and martech.cost. Any other type re-sent under its
// id is the same event again.
func Correctable(t Type) bool { return t == TypeCampaignDailyStats || t == TypeMartechCost }

// CorrectableTypes lists the types Correctable accepts.
func CorrectableTypes() []string {
	return []string{string(TypeCampaignDailyStats), string(TypeMartechCost)}
}

// Stages are the funnel stages of lead.stage_changed, in funnel order
// (disqualified is a terminal exit, not a step).
var Stages = []string{"lead", "mql", "sql", "opportunity", "customer", "disqualified"}

// Outcomes are the outcomes of opportunity.closed.
var Outcomes = []string{"won", "lost"}

// OrderChannels are where an order can be placed.
var OrderChannels = []string{"web", "mobile_app", "store", "phone", "partner"}

// Platforms are the app platforms of app.session.
var Platforms = []string{"ios", "android"}

// Message is one event as producers write it to Kafka: contract v1 on the
// wire. Email is the raw address; it never leaves the decoder unhashed.
type Message struct {
	EventID    string         `json:"event_id"`
	Type       Type           `json:"type"`
	OccurredAt string         `json:"occurred_at"`
	Source     string         `json:"source"`
	Identity   Identity       `json:"identity"`
	Campaign   *Campaign      `json:"campaign,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Identity holds the keys that tie an event to a person.
type Identity struct {
	CRMContactID string `json:"crm_contact_id,omitempty"`
	AnonymousID  string `json:"anonymous_id,omitempty"`
	Email        string `json:"email,omitempty"`
}

// Campaign names the campaign and channel an event belongs to.
type Campaign struct {
	CampaignID string `json:"campaign_id"`
	Channel    string `json:"channel"`
}

// Event is a validated, normalised event: the row ingest writes to the
// ClickHouse events table. Fields that a type does not carry are zero.
// Amounts are in the deployment's reporting currency.
type Event struct {
	EventID    string
	Type       Type
	OccurredAt time.Time
	Source     string

	CRMContactID string
	AnonymousID  string
	EmailHash    string // hex HMAC-SHA256 of the trimmed, lower-cased email

	CampaignID string
	Channel    string

	// Amount is order/refund/opportunity amount, subscription MRR,
	// campaign cost or martech cost, converted to the reporting currency.
	Amount         float64
	AmountOriginal float64
	Currency       string // currency of AmountOriginal as sent

	// EntityID is the order_id, opportunity_id, subscription_id or form_id.
	EntityID string

	Stage        string // lead.stage_changed
	Outcome      string // opportunity.closed: won|lost
	OrderChannel string // order.placed
	Platform     string // app.session
	Segment      string // contact.upserted
	Country      string // contact.upserted
	Vendor       string // martech.cost
	URL          string // web.visit
	Referrer     string // web.visit

	StatDate    time.Time // campaign.daily_stats date, martech.cost month (first day), UTC midnight
	Impressions uint64
	Clicks      uint64

	// Properties is the JSON object of properties as sent, unknown extra
	// fields included, compacted; members named email (any case, any
	// depth) are removed, so it never contains a raw email. It is {} when
	// the message had no properties.
	Properties []byte
}
