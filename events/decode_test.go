package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey is the email hash key of the test decoder.
var testKey = []byte("test-key")

// testNow is the test decoder's clock: a few days after the samples.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testConfig is the configuration of the test decoder: EUR reporting, USD
// and GBP rates that are exact in binary.
func testConfig() Config {
	return Config{
		EmailHashKey:      testKey,
		ReportingCurrency: "EUR",
		Rates:             map[string]float64{"USD": 0.5, "GBP": 1.25},
		Now:               func() time.Time { return testNow },
	}
}

func newTestDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder(testConfig())
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

func readSample(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestDecodeValidTypes(t *testing.T) {
	const (
		jane    = "0035g00000XyZ12AAB"
		lm      = "0035g00000LmNoP9AAB"
		rs      = "0035g00000RsTuV1AAB"
		visitor = "c0a8012e-6f1d-4a4b-9b3e-2f7d1c9e8a10"
	)
	janeHash := HashEmail(testKey, "jane.doe@example.com")
	tests := []struct {
		file  string
		want  Event
		props string
	}{
		{
			file: "contact.upserted.json",
			want: Event{EventID: "hubspot-contact-90211-1748336101", Type: TypeContactUpserted,
				OccurredAt: utc("2025-05-27T08:55:01Z"), Source: "hubspot", CRMContactID: jane, EmailHash: janeHash,
				Segment: "smb", Country: "DE"},
			props: `{"segment":"smb","country":"DE","lifecycle_stage":"lead","company":"Doe Logistics GmbH","employees":42,"tags":["newsletter","webinar-2025-05"]}`,
		},
		{
			file: "lead.stage_changed.json",
			want: Event{EventID: "sf-lead-00Q5g00000AbCdE-stage-3", Type: TypeLeadStageChanged,
				OccurredAt: utc("2025-05-27T08:12:44.512Z"), Source: "salesforce", CRMContactID: jane,
				CampaignID: "spring-webinar-2025", Channel: "events", Stage: "mql"},
			props: `{"stage":"mql","previous_stage":"lead","lead_id":"00Q5g00000AbCdE","score":74,"owner":"sdr-team-emea","reason":"attended webinar and downloaded pricing sheet"}`,
		},
		{
			file: "opportunity.closed.json",
			want: Event{EventID: "sf-opp-0065g00000QwErT-closed", Type: TypeOpportunityClosed,
				OccurredAt: utc("2025-05-26T20:40:00Z"), Source: "salesforce", CRMContactID: jane,
				CampaignID: "spring-webinar-2025", Channel: "events",
				EntityID: "0065g00000QwErT", Outcome: "won", Amount: 12000, AmountOriginal: 24000, Currency: "USD"},
			props: `{"opportunity_id":"0065g00000QwErT","outcome":"won","amount":24000,"currency":"USD","product_line":"platform-annual","sales_cycle_days":38,"discount_pct":7.5}`,
		},
		{
			file: "order.placed.json",
			want: Event{EventID: "shopify-order-5523101893-created", Type: TypeOrderPlaced,
				OccurredAt: utc("2025-05-27T18:03:22Z"), Source: "shopify", CRMContactID: lm, AnonymousID: visitor,
				CampaignID: "summer-sale-2025", Channel: "paid_social",
				EntityID: "5523101893", Amount: 129.9 * 1.25, AmountOriginal: 129.9, Currency: "GBP", OrderChannel: "web"},
			props: `{"order_id":"5523101893","amount":129.9,"currency":"GBP","channel":"web","items":3,"discount_code":"SUMMER15","shipping":4.95}`,
		},
		{
			file: "order.refunded.json",
			want: Event{EventID: "shopify-refund-88130021", Type: TypeOrderRefunded,
				OccurredAt: utc("2025-05-28T09:15:00Z"), Source: "shopify", CRMContactID: lm,
				EntityID: "5523101893", Amount: 43.3 * 1.25, AmountOriginal: 43.3, Currency: "GBP"},
			props: `{"order_id":"5523101893","amount":43.3,"currency":"GBP","refund_id":"88130021","reason":"item damaged in transit","restock":false,"line_items":[{"sku":"TSHIRT-BLU-M","quantity":1}]}`,
		},
		{
			file: "subscription.started.json",
			want: Event{EventID: "stripe-evt_1PQxYz2eZvKYlo2CQ8n1aB3c", Type: TypeSubscriptionStarted,
				OccurredAt: utc("2025-05-27T12:00:03Z"), Source: "stripe", CRMContactID: rs,
				EmailHash: HashEmail(testKey, "ops@acme.example"), CampaignID: "trial-nurture-q2", Channel: "email",
				EntityID: "sub_1PQxYz2eZvKYlo2C", Amount: 249, AmountOriginal: 249, Currency: "EUR"},
			props: `{"subscription_id":"sub_1PQxYz2eZvKYlo2C","mrr":249,"currency":"EUR","plan":"team-monthly","seats":10,"trial_days":14}`,
		},
		{
			file: "subscription.cancelled.json",
			want: Event{EventID: "stripe-evt_1PRaBc2eZvKYlo2CdEfGhIjK", Type: TypeSubscriptionCancel,
				OccurredAt: utc("2025-05-28T07:45:10Z"), Source: "stripe", CRMContactID: rs,
				EntityID: "sub_1PQxYz2eZvKYlo2C"},
			props: `{"subscription_id":"sub_1PQxYz2eZvKYlo2C","plan":"team-monthly","reason":"too_expensive","feedback":"We moved to a cheaper tier elsewhere.","cancel_at_period_end":true,"months_active":13}`,
		},
		{
			file: "campaign.daily_stats.json",
			want: Event{EventID: "google_ads-1234567890-summer-sale-2025-2025-05-27", Type: TypeCampaignDailyStats,
				OccurredAt: utc("2025-05-28T03:00:00Z"), Source: "google_ads", AnonymousID: "system:google_ads",
				CampaignID: "summer-sale-2025", Channel: "paid_search",
				StatDate: utc("2025-05-27T00:00:00Z"), Impressions: 182340, Clicks: 4211,
				Amount: 1893.42 * 0.5, AmountOriginal: 1893.42, Currency: "USD"},
			props: `{"date":"2025-05-27","impressions":182340,"clicks":4211,"cost":1893.42,"currency":"USD","conversions":87,"ad_group":"brand-exact"}`,
		},
		{
			file: "email.sent.json",
			want: Event{EventID: "mailchimp-send-7f3a9c21-0035g00000XyZ12AAB", Type: TypeEmailSent,
				OccurredAt: utc("2025-05-27T06:00:00Z"), Source: "mailchimp", CRMContactID: jane, EmailHash: janeHash,
				CampaignID: "newsletter-2025-05", Channel: "email"},
			props: `{"message_id":"7f3a9c21","subject":"Your May product update","list_id":"a1b2c3d4e5","template":"newsletter-v3"}`,
		},
		{
			file: "email.opened.json",
			want: Event{EventID: "mailchimp-open-7f3a9c21-0035g00000XyZ12AAB-1", Type: TypeEmailOpened,
				OccurredAt: utc("2025-05-27T07:31:18Z"), Source: "mailchimp", CRMContactID: jane, EmailHash: janeHash,
				CampaignID: "newsletter-2025-05", Channel: "email"},
			props: `{"message_id":"7f3a9c21","client":"Apple Mail","device":"mobile","ip_country":"DE"}`,
		},
		{
			file: "email.clicked.json",
			want: Event{EventID: "mailchimp-click-7f3a9c21-0035g00000XyZ12AAB-1", Type: TypeEmailClicked,
				OccurredAt: utc("2025-05-27T07:32:02Z"), Source: "mailchimp", CRMContactID: jane, EmailHash: janeHash,
				CampaignID: "newsletter-2025-05", Channel: "email"},
			props: `{"message_id":"7f3a9c21","link_url":"https://shop.example.com/new?utm_source=newsletter&utm_medium=email","link_position":2}`,
		},
		{
			file: "web.visit.json",
			want: Event{EventID: "segment-ajs-1c9f0e2b-8f4d-4d1e-9a7c-5b3e2d1f0a9b", Type: TypeWebVisit,
				OccurredAt: utc("2025-05-27T07:32:05.331Z"), Source: "segment", AnonymousID: visitor,
				CampaignID: "newsletter-2025-05", Channel: "email",
				URL: "https://shop.example.com/new?utm_source=newsletter&utm_medium=email", Referrer: "https://mail.google.com/"},
			props: `{"url":"https://shop.example.com/new?utm_source=newsletter&utm_medium=email","referrer":"https://mail.google.com/","title":"New arrivals","user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)"}`,
		},
		{
			file: "app.session.json",
			want: Event{EventID: "firebase-session-3f9b2a7c41d04e", Type: TypeAppSession,
				OccurredAt: utc("2025-05-27T19:14:09Z"), Source: "firebase", CRMContactID: lm, AnonymousID: "ios-7B1D5C9A-2E4F-4C3B",
				Platform: "ios"},
			props: `{"platform":"ios","app_version":"4.12.1","os_version":"17.5","duration_s":312,"screens":["home","product","cart"]}`,
		},
		{
			file: "form.submitted.json",
			want: Event{EventID: "hubspot-form-d8b3c1a0-submission-771", Type: TypeFormSubmitted,
				OccurredAt: utc("2025-05-27T14:22:47Z"), Source: "hubspot", AnonymousID: visitor,
				EmailHash: HashEmail(testKey, "new.lead@example.org"), CampaignID: "spring-webinar-2025", Channel: "paid_social",
				EntityID: "d8b3c1a0-webinar-signup"},
			props: `{"form_id":"d8b3c1a0-webinar-signup","page_url":"https://www.example.com/webinar","consent_marketing":true,"company_size":"11-50"}`,
		},
		{
			file: "martech.cost.json",
			want: Event{EventID: "finance-invoice-hubspot-2025-05", Type: TypeMartechCost,
				OccurredAt: utc("2025-05-31T21:59:00Z"), Source: "netsuite", AnonymousID: "system:netsuite",
				Vendor: "hubspot", StatDate: utc("2025-05-01T00:00:00Z"), Amount: 3600, AmountOriginal: 3600, Currency: "EUR"},
			props: `{"vendor":"hubspot","month":"2025-05","amount":3600,"currency":"EUR","invoice_id":"INV-2025-0531-117","cost_center":"marketing-ops","seats":12}`,
		},
	}
	d := newTestDecoder(t)
	seen := map[Type]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := d.Decode(readSample(t, filepath.Join("testdata", "good", tt.file)))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(got.Properties) != tt.props {
				t.Errorf("Properties:\n got %s\nwant %s", got.Properties, tt.props)
			}
			if math.Abs(got.Amount-tt.want.Amount) > 1e-9 {
				t.Errorf("Amount = %v, want %v", got.Amount, tt.want.Amount)
			}
			got.Properties, got.Amount, tt.want.Amount = nil, 0, 0
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Event:\n got %+v\nwant %+v", got, tt.want)
			}
			if got.OccurredAt.Location() != time.UTC {
				t.Errorf("OccurredAt location = %v, want UTC", got.OccurredAt.Location())
			}
			seen[got.Type] = true
		})
	}
	for _, typ := range append(append([]Type{}, CRMTypes...), CampaignTypes...) {
		if !seen[typ] {
			t.Errorf("no valid case for type %s", typ)
		}
	}
}

// orderPlaced is the base message the error cases edit.
const orderPlaced = `{"event_id":"e-1","type":"order.placed","occurred_at":"2025-05-27T19:03:22+01:00","source":"shopify",` +
	`"identity":{"crm_contact_id":"c-1","anonymous_id":"a-1","email":"x@example.com"},` +
	`"campaign":{"campaign_id":"summer","channel":"paid_social"},` +
	`"properties":{"order_id":"o-1","amount":129.9,"currency":"GBP","channel":"web"}}`

// minimal returns a valid message of type typ with the given properties
// object, for the per-type error cases.
func minimal(typ Type, props string) string {
	return `{"event_id":"e-1","type":"` + string(typ) + `","occurred_at":"2025-05-27T19:03:22Z","source":"test",` +
		`"identity":{"crm_contact_id":"c-1"},"campaign":{"campaign_id":"summer","channel":"paid_search"},` +
		`"properties":` + props + `}`
}

// deleted is the value that makes edit remove a field.
var deleted = &struct{}{}

// edit returns base with the fields at the dotted paths set to the values
// (deleted removes the field). Values are marshalled as JSON; a
// json.RawMessage is inserted as is.
func edit(base string, pathValues ...any) string {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(base))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	for i := 0; i < len(pathValues); i += 2 {
		path := strings.Split(pathValues[i].(string), ".")
		obj := m
		for _, p := range path[:len(path)-1] {
			next, ok := obj[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[p] = next
			}
			obj = next
		}
		last := path[len(path)-1]
		if pathValues[i+1] == deleted {
			delete(obj, last)
		} else {
			obj[last] = pathValues[i+1]
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(out)
}

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		reason Reason
		field  string
	}{
		// invalid_json
		{"empty message", "", ReasonInvalidJSON, ""},
		{"only white space", " \n\t", ReasonInvalidJSON, ""},
		{"array", `[{"event_id":"e-1"}]`, ReasonInvalidJSON, ""},
		{"string", `"order.placed"`, ReasonInvalidJSON, ""},
		{"null", `null`, ReasonInvalidJSON, ""},
		{"truncated", orderPlaced[:len(orderPlaced)/2], ReasonInvalidJSON, ""},
		{"data after the object", orderPlaced + `x`, ReasonInvalidJSON, ""},
		{"two objects", orderPlaced + orderPlaced, ReasonInvalidJSON, ""},
		{"trailing comma", `{"event_id":"e-1",}`, ReasonInvalidJSON, ""},
		{"single quotes", `{'event_id':'e-1'}`, ReasonInvalidJSON, ""},
		{"leading zero", `{"n":01}`, ReasonInvalidJSON, ""},
		{"NaN", `{"n":NaN}`, ReasonInvalidJSON, ""},
		{"bad escape", `{"event_id":"a\qb"}`, ReasonInvalidJSON, ""},
		{"bad unicode escape", `{"event_id":"a\u12G4"}`, ReasonInvalidJSON, ""},
		{"raw control character", "{\"event_id\":\"a\tb\"}", ReasonInvalidJSON, ""},
		{"invalid UTF-8", "{\"event_id\":\"\xff\xfe\"}", ReasonInvalidJSON, ""},
		{"invalid UTF-8 in skipped value", "{\"x\":\"\xc3\x28\"}", ReasonInvalidJSON, ""},
		{"unterminated string", `{"event_id":"e-1`, ReasonInvalidJSON, ""},
		{"nesting too deep", edit(orderPlaced, "properties.deep", json.RawMessage(nested(70))), ReasonInvalidJSON, ""},
		{"syntax error beats missing fields", `{"properties":{"a":tru}}`, ReasonInvalidJSON, ""},

		// missing_field, envelope
		{"event_id absent", edit(orderPlaced, "event_id", deleted), ReasonMissingField, "event_id"},
		{"event_id null", edit(orderPlaced, "event_id", nil), ReasonMissingField, "event_id"},
		{"event_id empty", edit(orderPlaced, "event_id", ""), ReasonMissingField, "event_id"},
		{"type absent", edit(orderPlaced, "type", deleted), ReasonMissingField, "type"},
		{"occurred_at absent", edit(orderPlaced, "occurred_at", deleted), ReasonMissingField, "occurred_at"},
		{"source absent", edit(orderPlaced, "source", deleted), ReasonMissingField, "source"},
		{"campaign_id absent", edit(orderPlaced, "campaign.campaign_id", deleted), ReasonMissingField, "campaign.campaign_id"},
		{"campaign channel absent", edit(orderPlaced, "campaign.channel", deleted), ReasonMissingField, "campaign.channel"},
		{"campaign absent for daily stats", edit(minimal(TypeCampaignDailyStats,
			`{"date":"2025-05-27","impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), "campaign", deleted),
			ReasonMissingField, "campaign"},
		{"campaign null for daily stats", edit(minimal(TypeCampaignDailyStats,
			`{"date":"2025-05-27","impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), "campaign", nil),
			ReasonMissingField, "campaign"},
		{"first missing field wins", edit(orderPlaced, "event_id", deleted, "source", deleted), ReasonMissingField, "event_id"},

		// missing_field, properties of each type
		{"properties absent", edit(orderPlaced, "properties", deleted), ReasonMissingField, "properties.order_id"},
		{"order_id absent", edit(orderPlaced, "properties.order_id", deleted), ReasonMissingField, "properties.order_id"},
		{"order amount absent", edit(orderPlaced, "properties.amount", deleted), ReasonMissingField, "properties.amount"},
		{"order amount null", edit(orderPlaced, "properties.amount", nil), ReasonMissingField, "properties.amount"},
		{"order currency absent", edit(orderPlaced, "properties.currency", deleted), ReasonMissingField, "properties.currency"},
		{"order channel absent", edit(orderPlaced, "properties.channel", deleted), ReasonMissingField, "properties.channel"},
		{"stage absent", minimal(TypeLeadStageChanged, `{}`), ReasonMissingField, "properties.stage"},
		{"opportunity_id absent", minimal(TypeOpportunityClosed, `{"outcome":"won","amount":1,"currency":"EUR"}`), ReasonMissingField, "properties.opportunity_id"},
		{"outcome absent", minimal(TypeOpportunityClosed, `{"opportunity_id":"o","amount":1,"currency":"EUR"}`), ReasonMissingField, "properties.outcome"},
		{"opportunity amount absent", minimal(TypeOpportunityClosed, `{"opportunity_id":"o","outcome":"lost","currency":"EUR"}`), ReasonMissingField, "properties.amount"},
		{"refund order_id absent", minimal(TypeOrderRefunded, `{"amount":1,"currency":"EUR"}`), ReasonMissingField, "properties.order_id"},
		{"refund amount absent", minimal(TypeOrderRefunded, `{"order_id":"o","currency":"EUR"}`), ReasonMissingField, "properties.amount"},
		{"subscription_id absent on start", minimal(TypeSubscriptionStarted, `{"mrr":1,"currency":"EUR"}`), ReasonMissingField, "properties.subscription_id"},
		{"mrr absent", minimal(TypeSubscriptionStarted, `{"subscription_id":"s","currency":"EUR"}`), ReasonMissingField, "properties.mrr"},
		{"mrr currency absent", minimal(TypeSubscriptionStarted, `{"subscription_id":"s","mrr":1}`), ReasonMissingField, "properties.currency"},
		{"subscription_id absent on cancel", minimal(TypeSubscriptionCancel, `{"reason":"x"}`), ReasonMissingField, "properties.subscription_id"},
		{"date absent", minimal(TypeCampaignDailyStats, `{"impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonMissingField, "properties.date"},
		{"impressions absent", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","clicks":0,"cost":1,"currency":"EUR"}`), ReasonMissingField, "properties.impressions"},
		{"clicks absent", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":1,"cost":1,"currency":"EUR"}`), ReasonMissingField, "properties.clicks"},
		{"cost absent", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":1,"clicks":0,"currency":"EUR"}`), ReasonMissingField, "properties.cost"},
		{"url absent", minimal(TypeWebVisit, `{"referrer":"https://a.example/"}`), ReasonMissingField, "properties.url"},
		{"url empty", minimal(TypeWebVisit, `{"url":""}`), ReasonMissingField, "properties.url"},
		{"platform absent", minimal(TypeAppSession, `{}`), ReasonMissingField, "properties.platform"},
		{"form_id absent", minimal(TypeFormSubmitted, `{}`), ReasonMissingField, "properties.form_id"},
		{"vendor absent", minimal(TypeMartechCost, `{"month":"2025-05","amount":1,"currency":"EUR"}`), ReasonMissingField, "properties.vendor"},
		{"month absent", minimal(TypeMartechCost, `{"vendor":"v","amount":1,"currency":"EUR"}`), ReasonMissingField, "properties.month"},
		{"martech amount absent", minimal(TypeMartechCost, `{"vendor":"v","month":"2025-05","currency":"EUR"}`), ReasonMissingField, "properties.amount"},

		// invalid_field
		{"event_id a number", edit(orderPlaced, "event_id", 42), ReasonInvalidField, "event_id"},
		{"event_id 129 characters", edit(orderPlaced, "event_id", strings.Repeat("e", 129)), ReasonInvalidField, "event_id"},
		{"event_id duplicated", `{"event_id":"a","event_id":"b"}`, ReasonInvalidField, "event_id"},
		{"type a number", edit(orderPlaced, "type", 3), ReasonInvalidField, "type"},
		{"source upper case", edit(orderPlaced, "source", "Shopify"), ReasonInvalidField, "source"},
		{"source with a space", edit(orderPlaced, "source", "google ads"), ReasonInvalidField, "source"},
		{"source 65 characters", edit(orderPlaced, "source", strings.Repeat("s", 65)), ReasonInvalidField, "source"},
		{"identity a string", edit(orderPlaced, "identity", "c-1"), ReasonInvalidField, "identity"},
		{"identity duplicated", `{"event_id":"e","type":"email.sent","occurred_at":"2025-05-27T19:03:22Z","source":"s",` +
			`"identity":{"crm_contact_id":"a"},"identity":{"crm_contact_id":"b"}}`, ReasonInvalidField, "identity"},
		{"crm_contact_id a number", edit(orderPlaced, "identity.crm_contact_id", 7), ReasonInvalidField, "identity.crm_contact_id"},
		{"anonymous_id an object", edit(orderPlaced, "identity.anonymous_id", map[string]any{}), ReasonInvalidField, "identity.anonymous_id"},
		{"anonymous_id 257 characters", edit(orderPlaced, "identity.anonymous_id", strings.Repeat("a", 257)), ReasonInvalidField, "identity.anonymous_id"},
		{"email without @", edit(orderPlaced, "identity.email", "jane.example.com"), ReasonInvalidField, "identity.email"},
		{"email with two @", edit(orderPlaced, "identity.email", "jane@doe@example.com"), ReasonInvalidField, "identity.email"},
		{"email without local part", edit(orderPlaced, "identity.email", "@example.com"), ReasonInvalidField, "identity.email"},
		{"email without domain", edit(orderPlaced, "identity.email", "jane@"), ReasonInvalidField, "identity.email"},
		{"email with inner space", edit(orderPlaced, "identity.email", "jane doe@example.com"), ReasonInvalidField, "identity.email"},
		{"email a number", edit(orderPlaced, "identity.email", 1), ReasonInvalidField, "identity.email"},
		{"campaign a string", edit(orderPlaced, "campaign", "summer"), ReasonInvalidField, "campaign"},
		{"campaign channel out of enum", edit(orderPlaced, "campaign.channel", "tv"), ReasonInvalidField, "campaign.channel"},
		{"campaign channel wrong case", edit(orderPlaced, "campaign.channel", "Email"), ReasonInvalidField, "campaign.channel"},
		{"properties an array", edit(orderPlaced, "properties", []any{}), ReasonInvalidField, "properties"},
		{"properties a string", edit(orderPlaced, "properties", "{}"), ReasonInvalidField, "properties"},
		{"amount a string", edit(orderPlaced, "properties.amount", "129.90"), ReasonInvalidField, "properties.amount"},
		{"amount negative", edit(orderPlaced, "properties.amount", -1), ReasonInvalidField, "properties.amount"},
		{"amount out of range", edit(orderPlaced, "properties.amount", json.RawMessage("1e400")), ReasonInvalidField, "properties.amount"},
		{"amount duplicated", `{"event_id":"e","type":"order.refunded","occurred_at":"2025-05-27T19:03:22Z","source":"s",` +
			`"identity":{"crm_contact_id":"a"},"properties":{"order_id":"o","amount":1,"amount":2,"currency":"EUR"}}`,
			ReasonInvalidField, "properties.amount"},
		{"order_id a number", edit(orderPlaced, "properties.order_id", 5523101893), ReasonInvalidField, "properties.order_id"},
		{"order channel out of enum", edit(orderPlaced, "properties.channel", "fax"), ReasonInvalidField, "properties.channel"},
		{"currency lower case", edit(orderPlaced, "properties.currency", "gbp"), ReasonInvalidField, "properties.currency"},
		{"currency too long", edit(orderPlaced, "properties.currency", "EURO"), ReasonInvalidField, "properties.currency"},
		{"currency a number", edit(orderPlaced, "properties.currency", 978), ReasonInvalidField, "properties.currency"},
		{"stage out of enum", minimal(TypeLeadStageChanged, `{"stage":"won"}`), ReasonInvalidField, "properties.stage"},
		{"outcome out of enum", minimal(TypeOpportunityClosed, `{"opportunity_id":"o","outcome":"tie","amount":1,"currency":"EUR"}`), ReasonInvalidField, "properties.outcome"},
		{"platform out of enum", minimal(TypeAppSession, `{"platform":"windows"}`), ReasonInvalidField, "properties.platform"},
		{"segment a number", minimal(TypeContactUpserted, `{"segment":3}`), ReasonInvalidField, "properties.segment"},
		{"country an array", minimal(TypeContactUpserted, `{"country":["DE"]}`), ReasonInvalidField, "properties.country"},
		{"referrer a boolean", minimal(TypeWebVisit, `{"url":"https://a.example/","referrer":false}`), ReasonInvalidField, "properties.referrer"},
		{"url too long", minimal(TypeWebVisit, `{"url":"https://a.example/`+strings.Repeat("p", 8192)+`"}`), ReasonInvalidField, "properties.url"},
		{"impressions negative", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":-1,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.impressions"},
		{"impressions fractional", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":1.5,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.impressions"},
		{"impressions a string", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":"100","clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.impressions"},
		{"impressions too large", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":18446744073709551616,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.impressions"},
		{"clicks negative", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":1,"clicks":-3,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.clicks"},
		{"cost negative", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":1,"clicks":0,"cost":-0.01,"currency":"EUR"}`), ReasonInvalidField, "properties.cost"},
		{"date impossible", minimal(TypeCampaignDailyStats, `{"date":"2025-02-29","impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.date"},
		{"date with slashes", minimal(TypeCampaignDailyStats, `{"date":"2025/05/27","impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.date"},
		{"date with a time", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27T00:00:00Z","impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.date"},
		{"date before 1970", minimal(TypeCampaignDailyStats, `{"date":"1969-12-31","impressions":1,"clicks":0,"cost":1,"currency":"EUR"}`), ReasonInvalidField, "properties.date"},
		{"month 13", minimal(TypeMartechCost, `{"vendor":"v","month":"2025-13","amount":1,"currency":"EUR"}`), ReasonInvalidField, "properties.month"},
		{"month with a day", minimal(TypeMartechCost, `{"vendor":"v","month":"2025-05-01","amount":1,"currency":"EUR"}`), ReasonInvalidField, "properties.month"},
		{"vendor a number", minimal(TypeMartechCost, `{"vendor":1,"month":"2025-05","amount":1,"currency":"EUR"}`), ReasonInvalidField, "properties.vendor"},

		// unknown_type
		{"type not in contract", edit(orderPlaced, "type", "order.created"), ReasonUnknownType, "type"},
		{"type wrong case", edit(orderPlaced, "type", "ORDER.PLACED"), ReasonUnknownType, "type"},
		{"type very long", edit(orderPlaced, "type", strings.Repeat("t", 200)), ReasonUnknownType, "type"},

		// bad_timestamp
		{"no offset", edit(orderPlaced, "occurred_at", "2025-05-27T19:03:22"), ReasonBadTimestamp, "occurred_at"},
		{"no offset with fraction", edit(orderPlaced, "occurred_at", "2025-05-27T19:03:22.123"), ReasonBadTimestamp, "occurred_at"},
		{"date only", edit(orderPlaced, "occurred_at", "2025-05-27"), ReasonBadTimestamp, "occurred_at"},
		{"space separator", edit(orderPlaced, "occurred_at", "2025-05-27 19:03:22Z"), ReasonBadTimestamp, "occurred_at"},
		{"offset without colon", edit(orderPlaced, "occurred_at", "2025-05-27T19:03:22+0100"), ReasonBadTimestamp, "occurred_at"},
		{"impossible day", edit(orderPlaced, "occurred_at", "2025-02-30T10:00:00Z"), ReasonBadTimestamp, "occurred_at"},
		{"hour 24", edit(orderPlaced, "occurred_at", "2025-05-27T24:00:00Z"), ReasonBadTimestamp, "occurred_at"},
		{"unix seconds as string", edit(orderPlaced, "occurred_at", "1748336101"), ReasonBadTimestamp, "occurred_at"},
		{"unix seconds as number", edit(orderPlaced, "occurred_at", 1748336101), ReasonBadTimestamp, "occurred_at"},
		{"before 1970", edit(orderPlaced, "occurred_at", "1969-12-31T23:59:59Z"), ReasonBadTimestamp, "occurred_at"},
		{"in the far future", edit(orderPlaced, "occurred_at", "2030-01-01T00:00:00Z"), ReasonBadTimestamp, "occurred_at"},

		// unknown_currency
		{"order in yen", edit(orderPlaced, "properties.currency", "JPY"), ReasonUnknownCurrency, "properties.currency"},
		{"mrr in francs", minimal(TypeSubscriptionStarted, `{"subscription_id":"s","mrr":10,"currency":"CHF"}`), ReasonUnknownCurrency, "properties.currency"},
		{"cost in crowns", minimal(TypeCampaignDailyStats, `{"date":"2025-05-27","impressions":1,"clicks":0,"cost":1,"currency":"SEK"}`), ReasonUnknownCurrency, "properties.currency"},
		{"martech in zloty", minimal(TypeMartechCost, `{"vendor":"v","month":"2025-05","amount":1,"currency":"PLN"}`), ReasonUnknownCurrency, "properties.currency"},

		// missing_identity
		{"identity absent", edit(orderPlaced, "identity", deleted), ReasonMissingIdentity, "identity"},
		{"identity null", edit(orderPlaced, "identity", nil), ReasonMissingIdentity, "identity"},
		{"identity empty", edit(orderPlaced, "identity", map[string]any{}), ReasonMissingIdentity, "identity"},
		{"identity all empty strings", edit(orderPlaced, "identity", map[string]any{"crm_contact_id": "", "anonymous_id": "", "email": ""}), ReasonMissingIdentity, "identity"},
		{"identity all null", edit(orderPlaced, "identity", map[string]any{"crm_contact_id": nil, "email": nil}), ReasonMissingIdentity, "identity"},
		{"identity with only other keys", edit(orderPlaced, "identity", map[string]any{"user_id": "u-1"}), ReasonMissingIdentity, "identity"},
	}
	d := newTestDecoder(t)
	names := map[string]bool{}
	for _, tt := range tests {
		if names[tt.name] {
			t.Fatalf("duplicate case name %q", tt.name)
		}
		names[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded with %+v, want %s at %q", ev, tt.reason, tt.field)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not *Error", err, err)
			}
			if e.Reason != tt.reason || e.Field != tt.field {
				t.Errorf("got %s at %q (%v), want %s at %q", e.Reason, e.Field, err, tt.reason, tt.field)
			}
			if e.Detail == "" {
				t.Errorf("empty Detail in %v", err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
			if !reflect.DeepEqual(ev, Event{}) {
				t.Errorf("Event on error = %+v, want zero", ev)
			}
		})
	}
}

func TestDecodeAcceptsEdges(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, ev Event)
	}{
		{"event_id 128 characters", edit(orderPlaced, "event_id", strings.Repeat("e", 128)), func(t *testing.T, ev Event) {
			if len(ev.EventID) != 128 {
				t.Errorf("EventID length %d", len(ev.EventID))
			}
		}},
		{"event_id 128 multi-byte characters", edit(orderPlaced, "event_id", strings.Repeat("é", 128)), func(t *testing.T, ev Event) {
			if ev.EventID != strings.Repeat("é", 128) {
				t.Errorf("EventID = %q", ev.EventID)
			}
		}},
		{"escapes in strings", edit(orderPlaced, "event_id", json.RawMessage(`"a\"b\\c\/d\u00e9\ud83d\ude00\n"`)), func(t *testing.T, ev Event) {
			if want := "a\"b\\c/dé😀\n"; ev.EventID != want {
				t.Errorf("EventID = %q, want %q", ev.EventID, want)
			}
		}},
		{"lone surrogate becomes U+FFFD", edit(orderPlaced, "event_id", json.RawMessage(`"x\ud800y"`)), func(t *testing.T, ev Event) {
			if want := "x\uFFFDy"; ev.EventID != want {
				t.Errorf("EventID = %q, want %q", ev.EventID, want)
			}
		}},
		{"escaped key", strings.Replace(orderPlaced, `"event_id"`, `"event\u005fid"`, 1), func(t *testing.T, ev Event) {
			if ev.EventID != "e-1" {
				t.Errorf("EventID = %q", ev.EventID)
			}
		}},
		{"lower-case t and z", edit(orderPlaced, "occurred_at", "2025-05-27t19:03:22z"), func(t *testing.T, ev Event) {
			if !ev.OccurredAt.Equal(utc("2025-05-27T19:03:22Z")) {
				t.Errorf("OccurredAt = %v", ev.OccurredAt)
			}
		}},
		{"negative offset and nanoseconds", edit(orderPlaced, "occurred_at", "2025-05-27T19:03:22.123456789-05:30"), func(t *testing.T, ev Event) {
			if want := utc("2025-05-28T00:33:22.123456789Z"); !ev.OccurredAt.Equal(want) {
				t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, want)
			}
		}},
		{"leap day", edit(orderPlaced, "occurred_at", "2024-02-29T00:00:00Z"), func(t *testing.T, ev Event) {
			if ev.OccurredAt.Day() != 29 {
				t.Errorf("OccurredAt = %v", ev.OccurredAt)
			}
		}},
		{"amount zero", edit(orderPlaced, "properties.amount", 0), func(t *testing.T, ev Event) {
			if ev.Amount != 0 || ev.AmountOriginal != 0 {
				t.Errorf("Amount = %v, AmountOriginal = %v", ev.Amount, ev.AmountOriginal)
			}
		}},
		{"amount minus zero", edit(orderPlaced, "properties.amount", json.RawMessage("-0")), func(t *testing.T, ev Event) {
			if math.Signbit(ev.AmountOriginal) || math.Signbit(ev.Amount) {
				t.Errorf("Amount = %v, AmountOriginal = %v, want +0", ev.Amount, ev.AmountOriginal)
			}
		}},
		{"amount in exponent form", edit(orderPlaced, "properties.amount", json.RawMessage("1.5e3")), func(t *testing.T, ev Event) {
			if ev.AmountOriginal != 1500 {
				t.Errorf("AmountOriginal = %v", ev.AmountOriginal)
			}
		}},
		{"counts in exponent form, clicks above impressions", minimal(TypeCampaignDailyStats,
			`{"date":"2024-02-29","impressions":1.2e3,"clicks":1300,"cost":0,"currency":"EUR"}`), func(t *testing.T, ev Event) {
			if ev.Impressions != 1200 || ev.Clicks != 1300 || !ev.StatDate.Equal(utc("2024-02-29T00:00:00Z")) {
				t.Errorf("Impressions %d, Clicks %d, StatDate %v", ev.Impressions, ev.Clicks, ev.StatDate)
			}
		}},
		{"largest count", minimal(TypeCampaignDailyStats,
			`{"date":"2025-05-27","impressions":18446744073709551615,"clicks":0,"cost":0,"currency":"EUR"}`), func(t *testing.T, ev Event) {
			if ev.Impressions != math.MaxUint64 {
				t.Errorf("Impressions = %d", ev.Impressions)
			}
		}},
		{"email only identity", edit(orderPlaced, "identity", map[string]any{"email": "x@example.com"}), func(t *testing.T, ev Event) {
			if ev.EmailHash != HashEmail(testKey, "x@example.com") || ev.CRMContactID != "" || ev.AnonymousID != "" {
				t.Errorf("identity columns %q %q %q", ev.CRMContactID, ev.AnonymousID, ev.EmailHash)
			}
		}},
		{"null optionals", edit(orderPlaced, "campaign", nil, "identity.email", nil), func(t *testing.T, ev Event) {
			if ev.CampaignID != "" || ev.Channel != "" || ev.EmailHash != "" {
				t.Errorf("campaign %q %q, email hash %q", ev.CampaignID, ev.Channel, ev.EmailHash)
			}
		}},
		{"unknown top-level and nested fields ignored", edit(orderPlaced, "schema_version", 1, "identity.user_id", "u",
			"campaign.utm_source", "x"), func(t *testing.T, ev Event) {
			if ev.EventID != "e-1" || bytes.Contains(ev.Properties, []byte("schema_version")) {
				t.Errorf("EventID %q, Properties %s", ev.EventID, ev.Properties)
			}
		}},
		{"no properties for email.sent", `{"event_id":"e","type":"email.sent","occurred_at":"2025-05-27T19:03:22Z",` +
			`"source":"mailchimp","identity":{"anonymous_id":"a"}}`, func(t *testing.T, ev Event) {
			if string(ev.Properties) != "{}" {
				t.Errorf("Properties = %s, want {}", ev.Properties)
			}
		}},
		{"null properties", `{"event_id":"e","type":"email.opened","occurred_at":"2025-05-27T19:03:22Z",` +
			`"source":"mailchimp","identity":{"anonymous_id":"a"},"properties":null}`, func(t *testing.T, ev Event) {
			if string(ev.Properties) != "{}" {
				t.Errorf("Properties = %s, want {}", ev.Properties)
			}
		}},
		{"duplicate unknown property kept", minimal(TypeEmailSent, `{"x":1,"x":2}`), func(t *testing.T, ev Event) {
			if string(ev.Properties) != `{"x":1,"x":2}` {
				t.Errorf("Properties = %s", ev.Properties)
			}
		}},
		{"pretty-printed message", "{\r\n  \"event_id\" : \"e\" ,\n\t\"type\":\"app.session\",\"occurred_at\":\"2025-05-27T19:03:22Z\"," +
			"\"source\":\"firebase\",\"identity\":{ \"anonymous_id\" : \"a\" },\n\"properties\" : { \"platform\" : \"android\" , " +
			"\"tags\" : [ 1 , { } , [ ] , \"a b\" ] }\n}\n", func(t *testing.T, ev Event) {
			if want := `{"platform":"android","tags":[1,{},[],"a b"]}`; string(ev.Properties) != want {
				t.Errorf("Properties = %s, want %s", ev.Properties, want)
			}
			if ev.Platform != "android" {
				t.Errorf("Platform = %q", ev.Platform)
			}
		}},
		{"nesting at the limit", edit(orderPlaced, "properties.deep", json.RawMessage(nested(maxDepth-2))), func(t *testing.T, ev Event) {
			if !bytes.Contains(ev.Properties, []byte(nested(maxDepth-2))) {
				t.Errorf("Properties = %s", ev.Properties)
			}
		}},
	}
	d := newTestDecoder(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.check(t, ev)
		})
	}
}

func TestCurrencyConversion(t *testing.T) {
	d := newTestDecoder(t)
	tests := []struct {
		name       string
		amount     string
		currency   string
		wantAmount float64
	}{
		{"reporting currency is rate 1", "200", "EUR", 200},
		{"USD at 0.5", "200", "USD", 100},
		{"GBP at 1.25", "80.4", "GBP", 100.5},
		{"zero stays zero", "0", "USD", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := edit(orderPlaced, "properties.amount", json.RawMessage(tt.amount), "properties.currency", tt.currency)
			ev, err := d.Decode([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(ev.Amount-tt.wantAmount) > 1e-9 {
				t.Errorf("Amount = %v, want %v", ev.Amount, tt.wantAmount)
			}
			if ev.Currency != tt.currency {
				t.Errorf("Currency = %q, want %q", ev.Currency, tt.currency)
			}
			if want := mustFloat(tt.amount); ev.AmountOriginal != want {
				t.Errorf("AmountOriginal = %v, want %v", ev.AmountOriginal, want)
			}
		})
	}

	t.Run("rates are copied at NewDecoder", func(t *testing.T) {
		cfg := testConfig()
		d, err := NewDecoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Rates["USD"] = 100
		ev, err := d.Decode([]byte(edit(orderPlaced, "properties.amount", 10, "properties.currency", "USD")))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Amount != 5 {
			t.Errorf("Amount = %v after changing the caller's map, want 5", ev.Amount)
		}
	})
}

func mustFloat(s string) float64 {
	var f float64
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		panic(err)
	}
	return f
}

func TestEmailHashing(t *testing.T) {
	t.Run("known value", func(t *testing.T) {
		// Computed independently with:
		// printf %s jane@example.com | openssl dgst -sha256 -hmac key
		const want = "43c915a5fb2a55c3ccab3ef8b4ceec305b515df308878ece0d42526f5e24484a"
		for _, raw := range []string{"jane@example.com", " Jane@Example.COM\n"} {
			if got := HashEmail([]byte("key"), raw); got != want {
				t.Errorf("HashEmail(%q) = %s, want %s", raw, got, want)
			}
		}
	})
	t.Run("key changes the hash", func(t *testing.T) {
		if HashEmail([]byte("k1"), "jane@example.com") == HashEmail([]byte("k2"), "jane@example.com") {
			t.Error("two keys give the same hash")
		}
	})
	t.Run("different emails differ", func(t *testing.T) {
		if HashEmail(testKey, "jane@example.com") == HashEmail(testKey, "john@example.com") {
			t.Error("two emails give the same hash")
		}
	})

	d := newTestDecoder(t)
	norm := HashEmail(testKey, "jane.doe@example.com")
	for _, raw := range []string{
		"jane.doe@example.com", "Jane.Doe@Example.com", "JANE.DOE@EXAMPLE.COM",
		"  jane.doe@example.com", "jane.doe@example.com\t\n", "\u00a0Jane.Doe@example.com\u2003",
	} {
		t.Run("normalises "+raw, func(t *testing.T) {
			ev, err := d.Decode([]byte(edit(orderPlaced, "identity.email", raw)))
			if err != nil {
				t.Fatal(err)
			}
			if ev.EmailHash != norm {
				t.Errorf("EmailHash = %s, want %s", ev.EmailHash, norm)
			}
			if ev.EmailHash != HashEmail(testKey, raw) {
				t.Errorf("decoder and HashEmail disagree for %q", raw)
			}
		})
	}
	t.Run("non-ASCII email is lower-cased like strings.ToLower", func(t *testing.T) {
		ev, err := d.Decode([]byte(edit(orderPlaced, "identity.email", "ÉLODIE@Exemple.fr")))
		if err != nil {
			t.Fatal(err)
		}
		if ev.EmailHash != HashEmail(testKey, "élodie@exemple.fr") {
			t.Errorf("EmailHash = %s", ev.EmailHash)
		}
	})

	t.Run("raw email is nowhere in the Event", func(t *testing.T) {
		const addr = "Secret.Person@Example.net"
		in := edit(orderPlaced, "identity.email", addr,
			"properties.email", addr,
			"properties.EMAIL", addr,
			"properties.contact", map[string]any{"Email": addr, "name": "kept", "list": []any{map[string]any{"email": addr}}})
		// The same key written with an escape must be caught too.
		in = strings.Replace(in, `"properties":{`, `"properties":{"\u0065mail":"`+addr+`",`, 1)
		ev, err := d.Decode([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{addr, strings.ToLower(addr), "secret.person"} {
			if where := findString(reflect.ValueOf(ev), needle); where != "" {
				t.Errorf("raw email %q found in Event.%s", needle, where)
			}
		}
		if !json.Valid(ev.Properties) {
			t.Fatalf("Properties not valid JSON: %s", ev.Properties)
		}
		if want := `"contact":{"list":[{}],"name":"kept"}`; !bytes.Contains(ev.Properties, []byte(want)) {
			t.Errorf("Properties = %s, want it to contain %s", ev.Properties, want)
		}
		if ev.EmailHash != HashEmail(testKey, addr) {
			t.Errorf("EmailHash = %s", ev.EmailHash)
		}
	})

	t.Run("error details do not repeat the email", func(t *testing.T) {
		_, err := d.Decode([]byte(edit(orderPlaced, "identity.email", "secret person@example.net")))
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("error %v", err)
		}
	})
}

// findString returns the name of the field of v whose text contains needle
// (case-insensitively), looking into strings and byte slices.
func findString(v reflect.Value, needle string) string {
	needle = strings.ToLower(needle)
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		var s string
		switch {
		case f.Kind() == reflect.String:
			s = f.String()
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
			s = string(f.Bytes())
		default:
			continue
		}
		if strings.Contains(strings.ToLower(s), needle) {
			return v.Type().Field(i).Name
		}
	}
	return ""
}

func TestFutureSkew(t *testing.T) {
	tests := []struct {
		name     string
		skew     time.Duration
		occurred time.Time
		ok       bool
	}{
		{"now", 0, testNow, true},
		{"in the past", 0, testNow.Add(-365 * 24 * time.Hour), true},
		{"exactly the default skew ahead", 0, testNow.Add(time.Hour), true},
		{"a second past the default skew", 0, testNow.Add(time.Hour + time.Second), false},
		{"a nanosecond past the default skew", 0, testNow.Add(time.Hour + time.Nanosecond), false},
		{"within a custom skew", 5 * time.Minute, testNow.Add(5 * time.Minute), true},
		{"past a custom skew", 5 * time.Minute, testNow.Add(5*time.Minute + time.Second), false},
		{"within a long custom skew", 48 * time.Hour, testNow.Add(47 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxFutureSkew = tt.skew
			d, err := NewDecoder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// An offset other than Z checks the comparison is in absolute time.
			ts := tt.occurred.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
			ev, err := d.Decode([]byte(edit(orderPlaced, "occurred_at", ts)))
			if tt.ok {
				if err != nil {
					t.Fatalf("Decode(%s): %v", ts, err)
				}
				if !ev.OccurredAt.Equal(tt.occurred) {
					t.Errorf("OccurredAt = %v, want %v", ev.OccurredAt, tt.occurred)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonBadTimestamp || e.Field != "occurred_at" {
				t.Errorf("Decode(%s) = %v, want bad_timestamp at occurred_at", ts, err)
			}
		})
	}

	t.Run("clock is read per message", func(t *testing.T) {
		now := testNow
		cfg := testConfig()
		cfg.Now = func() time.Time { return now }
		d, err := NewDecoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte(edit(orderPlaced, "occurred_at", testNow.Add(2*time.Hour).Format(time.RFC3339)))
		if _, err := d.Decode(msg); err == nil {
			t.Fatal("accepted 2 h ahead")
		}
		now = now.Add(time.Hour)
		if _, err := d.Decode(msg); err != nil {
			t.Fatalf("refused 1 h ahead after the clock moved: %v", err)
		}
	})
}

func TestUnknownPropertiesKept(t *testing.T) {
	d := newTestDecoder(t)
	props := `{"order_id":"o-1","amount":129.90,"currency":"GBP","channel":"web",` +
		`"utm":{"source":"newsletter","medium":"email","ids":[1,2.50,-3e2,true,false,null]},` +
		`"note":"caf\u00e9 \"quoted\" \\ back","empty":{},"list":[],"unicode":"日本"}`
	in := orderPlaced[:strings.Index(orderPlaced, `"properties":`)] + `"properties":` + props + `}`
	ev, err := d.Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Properties) != props {
		t.Errorf("Properties:\n got %s\nwant %s (byte for byte as sent)", ev.Properties, props)
	}
	if ev.AmountOriginal != 129.9 {
		t.Errorf("AmountOriginal = %v", ev.AmountOriginal)
	}
}

func TestDecodeDoesNotRetainInput(t *testing.T) {
	d := newTestDecoder(t)
	msg := readSample(t, filepath.Join("testdata", "good", "order.placed.json"))
	msg = compactJSON(t, msg)
	ev, err := d.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := ev
	want.Properties = bytes.Clone(ev.Properties)
	for i := range msg {
		msg[i] = 'X'
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("Event changed when the input buffer was overwritten:\n got %+v\nwant %+v", ev, want)
	}
}

func compactJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeConcurrent(t *testing.T) {
	d := newTestDecoder(t)
	msgs, _ := filepath.Glob(filepath.Join("testdata", "good", "*.json"))
	want := map[string]Event{}
	for _, f := range msgs {
		ev, err := d.Decode(readSample(t, f))
		if err != nil {
			t.Fatal(err)
		}
		want[f] = ev
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				for _, f := range msgs {
					ev, err := d.Decode(readSample(t, f))
					if err != nil || !reflect.DeepEqual(ev, want[f]) {
						t.Errorf("%s: concurrent decode gave %+v, %v", f, ev, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeAllocations(t *testing.T) {
	d := newTestDecoder(t)
	msg := compactJSON(t, readSample(t, filepath.Join("testdata", "good", "form.submitted.json")))
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.Decode(msg); err != nil {
			t.Fatal(err)
		}
	})
	// One for all the strings, one for Properties: the hot path budget.
	if allocs > 2 {
		t.Errorf("Decode allocates %v times per message, want <= 2", allocs)
	}
}

func TestNewDecoderConfig(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"no rates", func(c *Config) { c.Rates = nil }, ""},
		{"reporting currency in rates at 1", func(c *Config) { c.Rates["EUR"] = 1 }, ""},
		{"empty key", func(c *Config) { c.EmailHashKey = nil }, "events.email_hash_key: required, got an empty key"},
		{"reporting currency lower case", func(c *Config) { c.ReportingCurrency = "eu" }, `events.reporting_currency: must be 3 upper-case letters, got "eu"`},
		{"reporting currency empty", func(c *Config) { c.ReportingCurrency = "" }, `events.reporting_currency: must be 3 upper-case letters, got ""`},
		{"rate key malformed", func(c *Config) { c.Rates["usd"] = 1 }, `events.rates: currency must be 3 upper-case letters, got "usd"`},
		{"rate zero", func(c *Config) { c.Rates["USD"] = 0 }, "events.rates.USD: must be a finite number > 0, got 0"},
		{"rate negative", func(c *Config) { c.Rates["GBP"] = -1 }, "events.rates.GBP: must be a finite number > 0, got -1"},
		{"rate NaN", func(c *Config) { c.Rates["GBP"] = math.NaN() }, "events.rates.GBP: must be a finite number > 0, got NaN"},
		{"rate infinite", func(c *Config) { c.Rates["GBP"] = math.Inf(1) }, "events.rates.GBP: must be a finite number > 0, got +Inf"},
		{"reporting currency rate not 1", func(c *Config) { c.Rates["EUR"] = 1.1 }, "events.rates.EUR: the reporting currency's rate is 1, got 1.1"},
		{"negative skew", func(c *Config) { c.MaxFutureSkew = -time.Second }, "events.max_future_skew: must be >= 0, got -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			d, err := NewDecoder(cfg)
			if tt.wantErr == "" {
				if err != nil || d == nil {
					t.Fatalf("NewDecoder: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("NewDecoder error = %v, want %q", err, tt.wantErr)
			}
			if d != nil {
				t.Error("NewDecoder returned a decoder with an error")
			}
		})
	}

	t.Run("key is copied", func(t *testing.T) {
		key := []byte("mutable-key")
		cfg := testConfig()
		cfg.EmailHashKey = key
		d, err := NewDecoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		copy(key, "XXXXXXX")
		ev, err := d.Decode([]byte(edit(orderPlaced, "identity.email", "a@b.c")))
		if err != nil {
			t.Fatal(err)
		}
		if ev.EmailHash != HashEmail([]byte("mutable-key"), "a@b.c") {
			t.Error("decoder used the caller's key after it changed")
		}
	})
}

func TestErrorFormat(t *testing.T) {
	d := newTestDecoder(t)
	_, err := d.Decode([]byte(edit(orderPlaced, "properties.channel", "fax")))
	want := `invalid_field: properties.channel: "fax" is not one of web, mobile_app, store, phone, partner`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	e := &Error{Reason: ReasonInvalidJSON, Detail: "empty message"}
	if got := e.Error(); got != "invalid_json: empty message" {
		t.Errorf("Error() without field = %q", got)
	}
	if errors.Is(errors.New("other"), ErrInvalid) {
		t.Error("errors.Is matched a foreign error")
	}
	long := strings.Repeat("x", 500)
	_, err = d.Decode([]byte(edit(orderPlaced, "type", long)))
	if err == nil || strings.Contains(err.Error(), long[:100]) || !strings.Contains(err.Error(), "…") {
		t.Errorf("long value not cut in %v", err)
	}
}

func TestReasons(t *testing.T) {
	want := []Reason{"invalid_json", "missing_field", "invalid_field", "unknown_type",
		"bad_timestamp", "unknown_currency", "missing_identity"}
	if got := Reasons(); !reflect.DeepEqual(got, want) {
		t.Errorf("Reasons() = %v, want %v", got, want)
	}
	Reasons()[0] = "changed"
	if Reasons()[0] != ReasonInvalidJSON {
		t.Error("Reasons() shares its slice with callers")
	}
}

func TestTopicAndKey(t *testing.T) {
	for _, typ := range CRMTypes {
		if typ.Topic() != TopicCRM {
			t.Errorf("%s.Topic() = %q, want %q", typ, typ.Topic(), TopicCRM)
		}
	}
	for _, typ := range CampaignTypes {
		if typ.Topic() != TopicCampaign {
			t.Errorf("%s.Topic() = %q, want %q", typ, typ.Topic(), TopicCampaign)
		}
	}
	if Type("order.created").Topic() != "" {
		t.Error("unknown type has a topic")
	}
	keys := []struct {
		id   Identity
		want string
	}{
		{Identity{CRMContactID: "c", AnonymousID: "a", Email: "e@x"}, "c"},
		{Identity{AnonymousID: "a", Email: "e@x"}, "a"},
		{Identity{Email: "e@x"}, "e@x"},
		{Identity{}, ""},
	}
	for _, k := range keys {
		if got := k.id.Key(); got != k.want {
			t.Errorf("%+v.Key() = %q, want %q", k.id, got, k.want)
		}
	}
}

// TestMessageRoundTrip checks that what producers build with Message is
// accepted by the decoder.
func TestMessageRoundTrip(t *testing.T) {
	m := Message{
		EventID: "e-9", Type: TypeOrderPlaced, OccurredAt: "2025-05-27T10:00:00+02:00", Source: "shop",
		Identity:   Identity{AnonymousID: "a-9", Email: "Buyer@Example.com"},
		Campaign:   &Campaign{CampaignID: "c", Channel: "affiliate"},
		Properties: map[string]any{"order_id": "o-9", "amount": 10.5, "currency": "USD", "channel": "mobile_app"},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := newTestDecoder(t).Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Amount != 5.25 || ev.OrderChannel != "mobile_app" || ev.EmailHash != HashEmail(testKey, "buyer@example.com") ||
		ev.Channel != "affiliate" || !ev.OccurredAt.Equal(utc("2025-05-27T08:00:00Z")) {
		t.Errorf("Event = %+v", ev)
	}
}

// TestTestdata decodes every sample under testdata: good/*.json must
// decode, bad/NAME.json must fail with the "reason field" in bad/NAME.want.
func TestTestdata(t *testing.T) {
	d := newTestDecoder(t)
	good, _ := filepath.Glob(filepath.Join("testdata", "good", "*.json"))
	bad, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.json"))
	if len(good) != 15 || len(bad) == 0 {
		t.Fatalf("found %d good and %d bad samples", len(good), len(bad))
	}
	for _, f := range good {
		t.Run(f, func(t *testing.T) {
			if _, err := d.Decode(readSample(t, f)); err != nil {
				t.Error(err)
			}
		})
	}
	for _, f := range bad {
		t.Run(f, func(t *testing.T) {
			want := strings.TrimSpace(string(readSample(t, strings.TrimSuffix(f, ".json")+".want")))
			_, err := d.Decode(readSample(t, f))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode = %v, want %s", err, want)
			}
			if got := strings.TrimSpace(string(e.Reason) + " " + e.Field); got != want {
				t.Errorf("got %q (%v), want %q", got, err, want)
			}
		})
	}
}
