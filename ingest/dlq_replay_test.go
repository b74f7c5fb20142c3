package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// TestReplayAfterFixStoresTheEvent is the DLQ's reason to exist: a message
// with a currency the deployment did not know is dead-lettered; the rate is
// configured; replaying the DLQ (only that reason) sends it back to its
// topic, and ingest stores it. A message of another reason stays put.
func TestReplayAfterFixStoresTheEvent(t *testing.T) {
	e := setup(t, 2)
	ctx := context.Background()
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	for i := range 20 {
		msgs = append(msgs, orderMsg(fmt.Sprint(i), base))
	}
	msgs = append(msgs,
		kafka.Message{Topic: topic, Key: []byte("k-currency"), Value: []byte(poison[events.ReasonUnknownCurrency])},
		kafka.Message{Topic: topic, Key: []byte("k-type"), Value: []byte(poison[events.ReasonUnknownType])})
	testenv.Produce(t, e.addr, msgs...)

	cfg := testConfig()
	r := e.start(cfg, nil)
	e.waitCount(30*time.Second, 20, distinctEvents)
	e.waitCount(30*time.Second, 2, "SELECT count() FROM dead_letters FINAL")
	r.stop(t)
	dlqTopic := topic + cfg.DLQ.Suffix

	// dlq list: both dead letters, with where they came from.
	var listed []ingest.DLQMessage
	if err := ingest.ReadDLQ(ctx, []string{e.addr}, nil, dlqTopic, func(d ingest.DLQMessage) error {
		listed = append(listed, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]ingest.DLQMessage{}
	for _, d := range listed {
		reasons[d.Reason] = d
	}
	cur, ok := reasons[string(events.ReasonUnknownCurrency)]
	if len(listed) != 2 || !ok || reasons[string(events.ReasonUnknownType)].OriginalTopic != topic {
		t.Fatalf("DLQ lists %+v, want one unknown_currency and one unknown_type from %s", listed, topic)
	}
	if cur.OriginalTopic != topic || cur.OriginalPartition < 0 || cur.OriginalOffset < 0 || cur.OriginalTime.IsZero() ||
		string(cur.Key) != "k-currency" || string(cur.Value) != poison[events.ReasonUnknownCurrency] || cur.Field != "properties.currency" {
		t.Errorf("unknown_currency dead letter read back as %+v", cur)
	}

	tests := []struct {
		name         string
		opts         ingest.ReplayOptions
		wantReplayed map[ingest.ReplayKey]int
		wantFiltered map[string]int
		wantProduced int64
	}{
		{"dry run of everything", ingest.ReplayOptions{DryRun: true},
			map[ingest.ReplayKey]int{{string(events.ReasonUnknownCurrency), topic}: 1, {string(events.ReasonUnknownType), topic}: 1}, map[string]int{}, 0},
		{"only the fixed reason", ingest.ReplayOptions{Reason: string(events.ReasonUnknownCurrency)},
			map[ingest.ReplayKey]int{{string(events.ReasonUnknownCurrency), topic}: 1}, map[string]int{string(events.ReasonUnknownType): 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := sum(testenv.EndOffsets(t, e.addr, topic))
			opts := tt.opts
			opts.Brokers, opts.Topic = []string{e.addr}, dlqTopic
			s, err := ingest.ReplayDLQ(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if s.Read != 2 || fmt.Sprint(s.Replayed) != fmt.Sprint(tt.wantReplayed) || fmt.Sprint(s.Filtered) != fmt.Sprint(tt.wantFiltered) || s.NoTarget != 0 {
				t.Errorf("summary read %d, replayed %v, filtered %v, no target %d; want 2, %v, %v, 0", s.Read, s.Replayed, s.Filtered, s.NoTarget, tt.wantReplayed, tt.wantFiltered)
			}
			if got := sum(testenv.EndOffsets(t, e.addr, topic)) - before; got != tt.wantProduced {
				t.Errorf("%d messages produced to %s, want %d", got, topic, tt.wantProduced)
			}
		})
	}

	// The fix: the currency now has a rate. The same group resumes after its
	// committed offsets, so it reads exactly the replayed message.
	fixed, err := events.NewDecoder(events.Config{EmailHashKey: []byte("test-key-0123456789"), ReportingCurrency: "EUR",
		Rates: map[string]float64{"USD": 0.5, "XYZ": 2}})
	if err != nil {
		t.Fatal(err)
	}
	r = e.startWith(cfg, nil, fixed)
	e.waitCount(30*time.Second, 21, distinctEvents)
	r.stop(t)
	var amount float64
	var currency string
	if err := e.conn.QueryRow(ctx, "SELECT amount, currency FROM events FINAL WHERE event_id = 'p6'").Scan(&amount, &currency); err != nil {
		t.Fatalf("the replayed event p6 is not in events: %v", err)
	}
	if amount != 2 || currency != "XYZ" {
		t.Errorf("replayed event stored with amount %v %s, want 2 (1 XYZ at rate 2)", amount, currency)
	}
	if got := testutil.ToFloat64(r.metrics.Messages.WithLabelValues(topic, ingest.OutcomeValid)); got != 1 {
		t.Errorf("after the fix ingest consumed %v valid messages, want just the replayed one", got)
	}
	if n := e.count("SELECT count() FROM dead_letters FINAL"); n != 2 {
		t.Errorf("dead_letters has %d rows after the replay, want the original 2", n)
	}
}

func sum(offsets map[int]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

func TestReadDLQOfMissingTopicSaysWhatToCheck(t *testing.T) {
	addr := testenv.Broker(t, 1)
	err := ingest.ReadDLQ(context.Background(), []string{addr}, nil, "no.such.topic.dlq", func(ingest.DLQMessage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no.such.topic.dlq") || !strings.Contains(err.Error(), "<topic>.dlq") {
		t.Fatalf("error %v; want one naming the topic and how DLQ topics are named", err)
	}
}
