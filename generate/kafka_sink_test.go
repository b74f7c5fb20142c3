package generate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/broker"
	"github.com/kpibridge/kpibridge/events"
)

// TestKafkaSinkRoundTrip produces a run to the embedded broker (topics
// auto-created) and reads every message back with kafka-go: per topic the
// messages, distinct valid events by type and dead-letter reasons equal the
// summary, and each customer key stays on one partition.
func TestKafkaSinkRoundTrip(t *testing.T) {
	for _, compression := range []string{"lz4", "none"} {
		t.Run(compression, func(t *testing.T) {
			b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Partitions: 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			sink, err := NewKafkaSink(KafkaConfig{Brokers: []string{b.Addr()}, Compression: compression})
			if err != nil {
				t.Fatal(err)
			}
			cfg := smallConfig()
			cfg.Customers, cfg.Days, cfg.InvalidRate = 1000, 30, 0.05
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sum, err := Run(ctx, cfg, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := sink.Close(); err != nil {
				t.Fatal(err)
			}

			dec := decoderFor(t, cfg)
			seen := map[string]bool{}
			invalid := map[string]int64{}
			var duplicates int64
			for _, topic := range []string{cfg.CRMTopic, cfg.CampaignTopic} {
				msgs := readAll(ctx, t, b.Addr(), topic)
				if int64(len(msgs)) != sum.Messages[topic] {
					t.Errorf("%s: read %d messages, summary says %d", topic, len(msgs), sum.Messages[topic])
				}
				types := map[string]int64{}
				partitionOf := map[string]int{}
				for _, m := range msgs {
					if len(m.Key) > 0 {
						if p, ok := partitionOf[string(m.Key)]; ok && p != m.Partition {
							t.Fatalf("%s: key %s on partitions %d and %d", topic, m.Key, p, m.Partition)
						}
						partitionOf[string(m.Key)] = m.Partition
					}
					ev, err := dec.Decode(m.Value)
					var e *events.Error
					switch {
					case errors.As(err, &e):
						invalid[string(e.Reason)]++
					case err != nil:
						t.Fatal(err)
					case seen[ev.EventID]:
						duplicates++
					default:
						seen[ev.EventID] = true
						types[string(ev.Type)]++
					}
				}
				for typ, n := range sum.Topics[topic] {
					if types[typ] != n {
						t.Errorf("%s: %d distinct valid %s, summary says %d", topic, types[typ], typ, n)
					}
				}
			}
			if int64(len(seen)) != sum.Valid || duplicates != sum.Duplicates {
				t.Errorf("read %d valid and %d duplicates, summary says %d and %d", len(seen), duplicates, sum.Valid, sum.Duplicates)
			}
			for reason, n := range sum.Invalid {
				if invalid[reason] != n {
					t.Errorf("read %d %s, summary says %d", invalid[reason], reason, n)
				}
			}
		})
	}
}

// readAll reads every message of topic, partition by partition, up to the
// high watermark.
func readAll(ctx context.Context, t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, meta)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range meta.Topics[0].Partitions {
		req[topic] = append(req[topic], kafka.LastOffsetOf(p.ID))
	}
	offs, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	var out []kafka.Message
	for _, p := range offs.Topics[topic] {
		if p.LastOffset == 0 {
			continue
		}
		// A short MaxWait: the default (10 s) is paid on every partition.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.Partition, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d: %v", topic, p.Partition, err)
			}
			out = append(out, m)
			if m.Offset == p.LastOffset-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

func TestNewKafkaSinkErrors(t *testing.T) {
	tests := []struct {
		cfg     KafkaConfig
		wantErr string
	}{
		{KafkaConfig{}, "--brokers"},
		{KafkaConfig{Brokers: []string{"h:1"}, Compression: "brotli"}, "--compression"},
	}
	for _, tt := range tests {
		if _, err := NewKafkaSink(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("NewKafkaSink(%+v) = %v, want an error naming %s", tt.cfg, err, tt.wantErr)
		}
	}
}
