package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// HeaderTruncatedFrom is set on a message whose value was cut to fit
	// dlq.max_message_bytes: the size of the whole value.
	HeaderTruncatedFrom = "kpibridge-truncated-from"
)

// KafkaDLQ publishes dead letters to <topic><suffix> with their key and
// value — email addresses redacted, unless dlq.keep_original kept the
// message as consumed — and headers that say why and where from.
type KafkaDLQ struct {
	w        *kafka.Writer
	admin    *kafka.Client
	suffix   string
	maxBytes int
}

// NewKafkaDLQ returns a DLQ publisher on brokers, connecting as sec says (nil: plain text).
func NewKafkaDLQ(brokers []string, cfg DLQConfig, sec *kafkaconn.Security) *KafkaDLQ {
	return &KafkaDLQ{
		suffix:   cfg.Suffix,
		maxBytes: cfg.MaxMessageBytes,
		admin:    &kafka.Client{Addr: kafka.TCP(brokers...), Transport: sec.Transport(), Timeout: 10 * time.Second},
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

// EnsureTopics creates the dead-letter topic of each source topic that has
// none, with as many partitions as its source, so that a broker with topic
// auto-creation off accepts dead letters. It returns the topics it created.
func (d *KafkaDLQ) EnsureTopics(ctx context.Context, sources []string) ([]string, error) {
	all := slices.Clone(sources)
	for _, t := range sources {
		all = append(all, d.Topic(t))
	}
	meta, err := d.admin.Metadata(ctx, &kafka.MetadataRequest{Topics: all})
	if err != nil {
		return nil, fmt.Errorf("read metadata of the dead-letter topics: %w", err)
	}
	parts := map[string]int{}
	for _, t := range meta.Topics {
		if t.Error == nil {
			parts[t.Name] = len(t.Partitions)
		}
	}
	var want []kafka.TopicConfig
	for _, t := range sources {
		if _, ok := parts[d.Topic(t)]; ok {
			continue
		}
		n := parts[t]
		if n == 0 {
			n = -1 // the source is missing too: the broker's default
		}
		want = append(want, kafka.TopicConfig{Topic: d.Topic(t), NumPartitions: n, ReplicationFactor: -1})
	}
	if len(want) == 0 {
		return nil, nil
	}
	res, err := d.admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: want})
	if err != nil {
		return nil, fmt.Errorf("create the dead-letter topics: %w", err)
	}
	var created []string
	var errs []error
	for _, tc := range want {
		switch err := res.Errors[tc.Topic]; {
		case err == nil:
			created = append(created, tc.Topic)
		case errors.Is(err, kafka.TopicAlreadyExists):
		default:
			errs = append(errs, fmt.Errorf("create dead-letter topic %s: %w", tc.Topic, err))
		}
	}
	return created, errors.Join(errs...)
}

// fit truncates m's value so that the message stays within maxBytes,
// saying so in a header. The size counts key, value and headers, plus room
// for the record's framing.
func fit(m *kafka.Message, maxBytes int) {
	const framing = 128
	size := framing + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		size += len(h.Key) + len(h.Value) + 8
	}
	if size <= maxBytes {
		return
	}
	header := kafka.Header{Key: HeaderTruncatedFrom, Value: []byte(strconv.Itoa(len(m.Value)))}
	over := size - maxBytes + len(header.Key) + len(header.Value) + 8
	m.Value = m.Value[:max(0, len(m.Value)-over)]
	m.Headers = append(m.Headers, header)
}

// PermanentDLQError says whether a DLQ publish failed for a reason no
// retry fixes: the topic is not authorized, does not exist and cannot be
// created, or refuses the message as too large or invalid.
func PermanentDLQError(err error) bool {
	for _, code := range []kafka.Error{kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed, kafka.MessageSizeTooLarge,
		kafka.RecordListTooLarge, kafka.InvalidTopic, kafka.InvalidRecord, kafka.PolicyViolation} {
		if errors.Is(err, code) {
			return true
		}
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && PermanentDLQError(e) {
				return true
			}
		}
	}
	return false
}

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
		fit(&msgs[i], d.maxBytes)
	}
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d dead letters to %s: %w", len(msgs), d.Topic(dls[0].Topic), err)
	}
	return nil
}

// Close flushes and closes the producer.
func (d *KafkaDLQ) Close() error { return d.w.Close() }
