package ingest

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

// Headers set on every message of a dead-letter topic, so it can be replayed
// to where it came from after a fix.
const (
	HeaderReason            = "kpibridge-reason"
	HeaderField             = "kpibridge-field"
	HeaderDetail            = "kpibridge-detail"
	HeaderOriginalTopic     = "kpibridge-original-topic"
	HeaderOriginalPartition = "kpibridge-original-partition"
	HeaderOriginalOffset    = "kpibridge-original-offset"
	HeaderOriginalTimestamp = "kpibridge-original-timestamp"
)

// KafkaDLQ publishes dead letters to <topic><suffix> with their key and
// value — email addresses redacted, unless dlq.keep_original kept the
// message as consumed — and headers that say why and where from.
type KafkaDLQ struct {
	w      *kafka.Writer
	suffix string
}

// NewKafkaDLQ returns a DLQ publisher on brokers, connecting as sec says (nil: plain text).
func NewKafkaDLQ(brokers []string, suffix string, sec *kafkaconn.Security) *KafkaDLQ {
	return &KafkaDLQ{
		suffix: suffix,
		w: &kafka.Writer{
			Addr:                   kafka.TCP(brokers...),
			Transport:              sec.Transport(),
			Balancer:               &kafka.Hash{},
			BatchTimeout:           5 * time.Millisecond,
			BatchSize:              1000,
			RequiredAcks:           kafka.RequireAll,
			AllowAutoTopicCreation: true,
		},
	}
}

// Topic is the dead-letter topic of topic.
func (d *KafkaDLQ) Topic(topic string) string { return topic + d.suffix }

// Publish writes the dead letters and returns once the broker acknowledged all of them.
func (d *KafkaDLQ) Publish(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(dls))
	for i, dl := range dls {
		key, value := dl.Key, dl.Value
		if dl.Unredacted != nil {
			key, value = dl.Unredacted.Key, dl.Unredacted.Value
		}
		msgs[i] = kafka.Message{
			Topic: d.Topic(dl.Topic),
			Key:   key,
			Value: value,
			Headers: []kafka.Header{
				{Key: HeaderReason, Value: []byte(dl.Reason)},
				{Key: HeaderField, Value: []byte(dl.Field)},
				{Key: HeaderDetail, Value: []byte(dl.Detail)},
				{Key: HeaderOriginalTopic, Value: []byte(dl.Topic)},
				{Key: HeaderOriginalPartition, Value: []byte(strconv.Itoa(dl.Partition))},
				{Key: HeaderOriginalOffset, Value: []byte(strconv.FormatInt(dl.Offset, 10))},
				{Key: HeaderOriginalTimestamp, Value: []byte(dl.Time.UTC().Format(time.RFC3339Nano))},
			},
		}
	}
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d dead letters to %s: %w", len(msgs), d.Topic(dls[0].Topic), err)
	}
	return nil
}

// Close flushes and closes the producer.
func (d *KafkaDLQ) Close() error { return d.w.Close() }
