package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// TestConsumerLagIsHighWatermarkMinusCommitted checks the lag gauge before
// the group's first commit (everything is lag), after it commits part of
// the stream, and after it commits all of it.
func TestConsumerLagIsHighWatermarkMinusCommitted(t *testing.T) {
	addr := testenv.Broker(t, 2)
	const group = "lag-test"
	var msgs []kafka.Message
	for i := range 40 {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(fmt.Sprint("k", i)), Value: []byte("{}")})
	}
	testenv.Produce(t, addr, msgs...)
	ends := testenv.EndOffsets(t, addr, topic)
	if ends[0] == 0 || ends[1] == 0 {
		t.Fatalf("the keys did not spread over both partitions: %v", ends)
	}

	reg := prometheus.NewRegistry()
	m := ingest.NewMetrics(reg, []string{topic})
	lag := ingest.NewLagMonitor([]string{addr}, nil, group, []string{topic}, time.Second, m, logger(t))
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: group, GroupTopics: []string{topic},
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consume := func(n int) {
		for range n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}

	tests := []struct {
		name    string
		consume int
	}{
		{"no commit yet", 0},
		{"part committed", 25},
		{"all committed", 15},
	}
	consumed := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			consume(tt.consume)
			consumed += tt.consume
			if err := lag.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			committed := testenv.CommittedOffsets(t, addr, group, topic)
			var want strings.Builder
			want.WriteString("# HELP kpibridge_ingest_consumer_lag_messages Messages not yet committed by the ingest consumer group (high watermark - committed offset), by topic and partition; the same whole-group figure from every ingest process.\n")
			want.WriteString("# TYPE kpibridge_ingest_consumer_lag_messages gauge\n")
			total := int64(0)
			for p := range 2 {
				l := ends[p] - committed[p] // a missing commit is 0: the first offset of a fresh topic
				total += l
				fmt.Fprintf(&want, "kpibridge_ingest_consumer_lag_messages{partition=\"%d\",topic=%q} %d\n", p, topic, l)
			}
			if wantTotal := int64(len(msgs) - consumed); total != wantTotal {
				t.Fatalf("test setup: committed offsets %v leave %d to consume, want %d", committed, total, wantTotal)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "kpibridge_ingest_consumer_lag_messages"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestConsumerLagOfUnreachableBrokerIsAnError(t *testing.T) {
	m := ingest.NewMetrics(nil, []string{topic})
	lag := ingest.NewLagMonitor([]string{"127.0.0.1:1"}, nil, "g", []string{topic}, time.Second, m, logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lag.Poll(ctx); err == nil || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Poll = %v, want an error naming the topics", err)
	}
}
