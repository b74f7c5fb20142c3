package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// testKey is the email hash key of decoder(t).
var testKey = []byte("test-key-0123456789")

// Messages with email addresses everywhere a producer may put one. Each
// address is distinct so that a finding names where it came from.
var privacyMessages = []kafka.Message{
	// Valid: the identity's address, one in a note, one under an email
	// property, one in a URL.
	{Topic: topic, Key: []byte("c-1"), Value: []byte(`{"event_id":"v1","type":"order.placed","occurred_at":"2026-01-10T12:00:00Z","source":"shopify",` +
		`"identity":{"crm_contact_id":"c-1","email":"Alice.Valid@Example.com"},` +
		`"properties":{"order_id":"o-1","amount":10,"currency":"EUR","channel":"web","note":"cc Carol.Note@Example.org","email":"alice.prop@example.com"}}`)},
	{Topic: topic, Key: []byte("a-2"), Value: []byte(`{"event_id":"v2","type":"web.visit","occurred_at":"2026-01-10T12:00:00Z","source":"web",` +
		`"identity":{"anonymous_id":"a-2"},"properties":{"url":"https://shop.example/?ref=dave.url@example.net","referrer":"mailto:Dave.Ref@Example.net"}}`)},
	// Invalid: a currency not configured (replayable after the fix), with
	// the raw address as the message key, as docs/EVENTS.md allows.
	{Topic: topic, Key: []byte("Erin.Dead@Example.com"), Value: []byte(`{"event_id":"d1","type":"order.placed","occurred_at":"2026-01-10T12:00:00Z","source":"shopify",` +
		`"identity":{"email":" Erin.Dead@Example.com"},"properties":{"order_id":"o-2","amount":1,"currency":"XYZ","channel":"web","note":"from erin.note@example.com"}}`)},
	// Invalid: broken JSON, an identity that holds an address but is not one,
	// an address where the type goes (error details quote types), not JSON.
	{Topic: topic, Key: []byte("k-broken"), Value: []byte(`{"event_id":"d2","identity":{"email":"frank.broken@example.com","crm_contact_id":`)},
	{Topic: topic, Key: []byte("k-angle"), Value: []byte(`{"event_id":"d3","type":"email.sent","occurred_at":"2026-01-10T12:00:00Z","source":"crm","identity":{"email":"Grace <grace.angle@example.com>"}}`)},
	{Topic: topic, Key: []byte("k-type"), Value: []byte(`{"event_id":"d4","type":"heidi.type@example.com","occurred_at":"2026-01-10T12:00:00Z","source":"crm","identity":{"crm_contact_id":"c-4"}}`)},
	{Topic: topic, Key: []byte("k-text"), Value: []byte(`plain text from ivan.text@example.com`)},
}

// privacyAddresses are every address in privacyMessages.
var privacyAddresses = []string{"alice.valid@example.com", "carol.note@example.org", "alice.prop@example.com", "dave.url@example.net", "dave.ref@example.net",
	"erin.dead@example.com", "erin.note@example.com", "frank.broken@example.com", "grace.angle@example.com", "heidi.type@example.com", "ivan.text@example.com"}

// TestNoRawEmailAtRest runs ingest over valid and invalid messages that
// hold email addresses (in identity.email, in properties, in broken JSON,
// in a message key), then searches every String column of every table and
// every log line for them; the DLQ topic must hold none either. Replaying
// the redacted dead letter after the fix stores the event under the same
// email hash as the original message would have had.
func TestNoRawEmailAtRest(t *testing.T) {
	e := setup(t, 2)
	var logs testenv.Output
	e.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	msgs := append(append([]kafka.Message(nil), privacyMessages...), privacyMessages[0]) // and a re-sent duplicate
	testenv.Produce(t, e.addr, msgs...)
	cfg := testConfig()
	r := e.start(cfg, nil)
	e.waitCount(30*time.Second, 2, distinctEvents)
	e.waitCount(30*time.Second, 5, "SELECT count() FROM dead_letters FINAL")
	e.waitCount(30*time.Second, 1, "SELECT count() FROM duplicates FINAL")
	r.stop(t)

	for _, f := range testenv.FindInTables(t, e.conn, e.target.Database, privacyAddresses, false) {
		t.Errorf("raw address at rest: %s", f)
	}
	for _, a := range privacyAddresses {
		if strings.Contains(strings.ToLower(logs.String()), a) {
			t.Errorf("raw address %s in the logs", a)
		}
	}
	if !strings.Contains(logs.String(), "dead-lettered invalid message") {
		t.Fatalf("no dead letter was logged; the log search proves nothing:\n%s", logs.String())
	}
	// What is stored instead: the redacted form, the identity's as the decoder hashes it.
	erin := events.RedactEmail(testKey, "erin.dead@example.com")
	var key, payload string
	if err := e.conn.QueryRow(context.Background(), "SELECT message_key, payload FROM dead_letters FINAL WHERE reason = 'unknown_currency'").Scan(&key, &payload); err != nil {
		t.Fatal(err)
	}
	if key != erin || !strings.Contains(payload, `"email":"`+erin+`"`) || !strings.Contains(payload, "from "+events.RedactEmail(testKey, "erin.note@example.com")) {
		t.Errorf("dead letter stored with key %q payload %s; want the addresses redacted as %s", key, payload, erin)
	}
	var note string
	if err := e.conn.QueryRow(context.Background(), "SELECT properties FROM events FINAL WHERE event_id = 'v1'").Scan(&note); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, `"note":"cc `+events.RedactEmail(testKey, "carol.note@example.org")+`"`) {
		t.Errorf("properties stored as %s, want the note's address redacted", note)
	}

	// The DLQ topic is redacted too, by default.
	dlqTopic := topic + cfg.DLQ.Suffix
	var dls []ingest.DLQMessage
	if err := ingest.ReadDLQ(context.Background(), []string{e.addr}, nil, dlqTopic, func(d ingest.DLQMessage) error {
		dls = append(dls, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(dls) != 5 {
		t.Fatalf("%s holds %d dead letters, want 5", dlqTopic, len(dls))
	}
	for _, d := range dls {
		all := strings.ToLower(string(d.Key) + string(d.Value) + d.Detail + d.Field)
		for _, a := range privacyAddresses {
			if strings.Contains(all, a) {
				t.Errorf("DLQ message %d/%d holds the raw address %s", d.Partition, d.Offset, a)
			}
		}
	}

	// The fix (a rate for XYZ), then replay: the redacted message resolves
	// to the customer the original named.
	s, err := ingest.ReplayDLQ(context.Background(), ingest.ReplayOptions{Brokers: []string{e.addr}, Topic: dlqTopic, Reason: string(events.ReasonUnknownCurrency)})
	if err != nil || s.Total() != 1 {
		t.Fatalf("replay: %d replayed, %v", s.Total(), err)
	}
	fixed, err := events.NewDecoder(events.Config{EmailHashKey: testKey, ReportingCurrency: "EUR", Rates: map[string]float64{"USD": 0.5, "XYZ": 2}})
	if err != nil {
		t.Fatal(err)
	}
	r = e.startWith(cfg, nil, fixed)
	e.waitCount(30*time.Second, 3, distinctEvents)
	r.stop(t)
	var hash string
	if err := e.conn.QueryRow(context.Background(), "SELECT email_hash FROM events FINAL WHERE event_id = 'd1'").Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if want := events.HashEmail(testKey, "Erin.Dead@Example.com"); hash != want {
		t.Errorf("replayed event has email_hash %s, want %s (the original's)", hash, want)
	}
	for _, f := range testenv.FindInTables(t, e.conn, e.target.Database, privacyAddresses, false) {
		t.Errorf("raw address at rest after the replay: %s", f)
	}
}

// The DLQ topic gets the message as consumed only with dlq.keep_original;
// dead_letters is redacted either way.
func TestDLQKeepOriginalSetting(t *testing.T) {
	e := setup(t, 1)
	msg := privacyMessages[2]
	testenv.Produce(t, e.addr, msg)
	tests := []struct {
		name, group, suffix string
		keep                bool
	}{
		{"redacted by default", "redacting", ".dlq", false},
		{"original with keep_original", "keeping", ".original", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.GroupID, cfg.DLQ.Suffix, cfg.DLQ.KeepOriginal = tt.group, tt.suffix, tt.keep
			r := e.start(cfg, nil)
			var got []ingest.DLQMessage
			deadline := time.Now().Add(30 * time.Second)
			for len(got) == 0 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				_ = ingest.ReadDLQ(context.Background(), []string{e.addr}, nil, topic+tt.suffix, func(d ingest.DLQMessage) error {
					got = append(got, d)
					return nil
				})
			}
			r.stop(t)
			if len(got) != 1 {
				t.Fatalf("%s holds %d messages, want 1", topic+tt.suffix, len(got))
			}
			original := bytes.Equal(got[0].Value, msg.Value) && bytes.Equal(got[0].Key, msg.Key)
			redacted := !bytes.Contains(bytes.ToLower(got[0].Value), []byte("erin.dead@")) && string(got[0].Key) == events.RedactEmail(testKey, string(msg.Key))
			if tt.keep && !original || !tt.keep && !redacted {
				t.Errorf("keep_original %v: DLQ message key %q value %s", tt.keep, got[0].Key, got[0].Value)
			}
			for _, f := range testenv.FindInTables(t, e.conn, e.target.Database, []string{"erin.dead@example.com"}, false) {
				t.Errorf("raw address at rest: %s", f)
			}
		})
	}
}
