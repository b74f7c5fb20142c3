package main

import (
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// dlqMessage is a dead letter as ingest writes it.
func dlqMessage(reason, key, value string) kafka.Message {
	return kafka.Message{Topic: "crm.events.dlq", Key: []byte(key), Value: []byte(value), Headers: []kafka.Header{
		{Key: ingest.HeaderReason, Value: []byte(reason)},
		{Key: ingest.HeaderField, Value: []byte("properties.currency")},
		{Key: ingest.HeaderDetail, Value: []byte(`"XYZ" is neither the reporting currency nor in the configured rates`)},
		{Key: ingest.HeaderOriginalTopic, Value: []byte("crm.events")},
		{Key: ingest.HeaderOriginalPartition, Value: []byte("0")},
		{Key: ingest.HeaderOriginalOffset, Value: []byte("41")},
		{Key: ingest.HeaderOriginalTimestamp, Value: []byte("2026-01-10T12:00:00Z")},
	}}
}

func TestDLQListAndReplayCommands(t *testing.T) {
	addr := testenv.Broker(t, 1)
	testenv.Produce(t, addr,
		dlqMessage("unknown_currency", "c-1", `{"event_id":"e1"}`),
		dlqMessage("unknown_currency", "c-2", `{"event_id":"e2"}`),
		dlqMessage("unknown_type", "c-3", `{"event_id":"e3"}`))
	testenv.Produce(t, addr, kafka.Message{Topic: "crm.events", Value: []byte(`{}`)}) // the target topic exists
	env := map[string]string{"KPIBRIDGE_BROKERS": addr}
	tests := []struct {
		name         string
		args         []string
		wantOut      []string
		wantProduced int64
	}{
		{"list", []string{"dlq", "list", "--topic", "crm.events.dlq"},
			[]string{"unknown_currency  crm.events/0:41", `"c-2"`, "properties.currency: \"XYZ\" is neither", "3 dead letters in crm.events.dlq"}, 0},
		{"list summary", []string{"dlq", "list", "--topic", "crm.events.dlq", "--summary"},
			[]string{"unknown_currency  crm.events      2", "unknown_type      crm.events      1"}, 0},
		{"dry run", []string{"dlq", "replay", "--topic", "crm.events.dlq", "--dry-run"},
			[]string{"would replay", "read 3 dead letters from crm.events.dlq; would replay 3"}, 0},
		{"one reason", []string{"dlq", "replay", "--topic", "crm.events.dlq", "--reason", "unknown_currency"},
			[]string{"unknown_currency  crm.events    2", "replayed 2; skipped 1 of other reasons"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testenv.EndOffsets(t, addr, "crm.events")[0]
			code, out, errOut := runCLI(t, env, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if got := testenv.EndOffsets(t, addr, "crm.events")[0] - before; got != tt.wantProduced {
				t.Errorf("%d messages produced to crm.events, want %d", got, tt.wantProduced)
			}
		})
	}
}

func TestDLQListOfMissingTopicFails(t *testing.T) {
	addr := testenv.Broker(t, 1)
	code, out, errOut := runCLI(t, map[string]string{"KPIBRIDGE_BROKERS": addr}, "dlq", "list", "--topic", "crm.events.dlq")
	if code != 1 || !strings.Contains(errOut, "crm.events.dlq") || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 naming the topic and no table", code, out, errOut)
	}
}
