package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

// HeaderReplayedFrom is set on every message that `kpibridge dlq replay`
// re-produces: the dead-letter topic, partition and offset it came from
// (crm.events.dlq/3/17), so a replayed message can be traced back.
const HeaderReplayedFrom = "kpibridge-replayed-from"

// DLQMessage is one message of a dead-letter topic with its headers parsed.
type DLQMessage struct {
	// Partition and Offset locate the message in the dead-letter topic.
	Partition int
	Offset    int64
	// Reason, Field and Detail say why it was dead-lettered.
	Reason string
	Field  string
	Detail string
	// OriginalTopic, OriginalPartition and OriginalOffset say where it was
	// consumed from; OriginalTime is its Kafka timestamp there.
	OriginalTopic     string
	OriginalPartition int
	OriginalOffset    int64
	OriginalTime      time.Time
	// Key and Value are the dead-lettered message's: its email addresses
	// redacted (the decoder reads a redacted identity.email as its hash),
	// or as consumed with dlq.keep_original.
	Key   []byte
	Value []byte
}

// ParseDLQMessage reads the kpibridge headers of a dead-letter message. A
// message without them (not written by kpibridge) parses with empty fields
// and OriginalPartition and OriginalOffset of -1.
func ParseDLQMessage(m kafka.Message) DLQMessage {
	d := DLQMessage{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, OriginalPartition: -1, OriginalOffset: -1}
	for _, h := range m.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderReason:
			d.Reason = v
		case HeaderField:
			d.Field = v
		case HeaderDetail:
			d.Detail = v
		case HeaderOriginalTopic:
			d.OriginalTopic = v
		case HeaderOriginalPartition:
			if p, err := strconv.Atoi(v); err == nil {
				d.OriginalPartition = p
			}
		case HeaderOriginalOffset:
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.OriginalOffset = o
			}
		case HeaderOriginalTimestamp:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				d.OriginalTime = t
			}
		}
	}
	return d
}

// ReadDLQ reads a dead-letter topic from the beginning of every partition to
// its end at the time of the call, in partition order, and calls fn for each
// message; an error from fn stops the read. It uses a plain reader with
// explicit offsets, no consumer group: it commits nothing, so every call sees
// everything the topic still holds (retention decides what that is). It
// connects as sec says (nil: plain text).
func ReadDLQ(ctx context.Context, brokers []string, sec *kafkaconn.Security, topic string, fn func(DLQMessage) error) error {
	bounds, err := partitionBounds(ctx, brokers, sec, topic)
	if err != nil {
		return err
	}
	for _, b := range bounds {
		if b.first >= b.end {
			continue
		}
		if err := readPartition(ctx, brokers, sec, topic, b, fn); err != nil {
			return err
		}
	}
	return nil
}

// bounds are the offsets of one partition: the first still held, and the end (next to be written).
type bounds struct {
	partition  int
	first, end int64
}

func partitionBounds(ctx context.Context, brokers []string, sec *kafkaconn.Security, topic string) ([]bounds, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no Kafka brokers configured")
	}
	// First make sure the brokers accept the connection, so a refused
	// password or certificate is reported as such, not as a bare EOF.
	if err := sec.Check(ctx, brokers); err != nil {
		return nil, fmt.Errorf("read %s: %w", topic, err)
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: sec.Transport(), Timeout: 10 * time.Second}
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s from %v: %w", topic, brokers, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		terr := errors.New("not in the cluster's metadata")
		if len(meta.Topics) == 1 {
			terr = meta.Topics[0].Error
		}
		return nil, fmt.Errorf("topic %s: %w (a dead-letter topic is named <topic>%s and appears with the first dead letter)", topic, terr, Default().DLQ.Suffix)
	}
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range meta.Topics[0].Partitions {
		req[topic] = append(req[topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	var out []bounds
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		out = append(out, bounds{partition: p.Partition, first: p.FirstOffset, end: p.LastOffset})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out, nil
}

func readPartition(ctx context.Context, brokers []string, sec *kafkaconn.Security, topic string, b bounds, fn func(DLQMessage) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Dialer: sec.Dialer(), Topic: topic, Partition: b.partition,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(b.first); err != nil {
		return fmt.Errorf("seek %s/%d to offset %d: %w", topic, b.partition, b.first, err)
	}
	for next := b.first; next < b.end; {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d at offset %d (end %d): %w", topic, b.partition, next, b.end, err)
		}
		if m.Offset >= b.end {
			break
		}
		next = m.Offset + 1
		if err := fn(ParseDLQMessage(m)); err != nil {
			return err
		}
	}
	return nil
}

// ReplayOptions says which dead letters to replay.
type ReplayOptions struct {
	Brokers []string
	// Security says how to connect (nil: plain text).
	Security *kafkaconn.Security
	// Topic is the dead-letter topic to read, e.g. crm.events.dlq.
	Topic string
	// Reason, when set, replays only dead letters of that reason (kpibridge-reason header).
	Reason string
	// DryRun reads and counts but produces nothing.
	DryRun bool
}

// ReplayKey groups a replay summary: why the messages were dead-lettered
// and the topic they go back to.
type ReplayKey struct {
	Reason      string
	TargetTopic string
}

// ReplaySummary counts what a replay read and did.
type ReplaySummary struct {
	Topic string
	// Read is every message read from the dead-letter topic.
	Read int
	// Replayed counts the messages re-produced (or, in a dry run, that would be).
	Replayed map[ReplayKey]int
	// Filtered counts the messages skipped because their reason is not the requested one, by reason.
	Filtered map[string]int
	// NoTarget counts messages without a usable kpibridge-original-topic header, which cannot be replayed.
	NoTarget int
	DryRun   bool
}

// Total is the number of messages replayed.
func (s ReplaySummary) Total() int {
	n := 0
	for _, v := range s.Replayed {
		n += v
	}
	return n
}

// Keys returns the replay groups sorted by target topic, then reason.
func (s ReplaySummary) Keys() []ReplayKey {
	keys := make([]ReplayKey, 0, len(s.Replayed))
	for k := range s.Replayed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].TargetTopic != keys[j].TargetTopic {
			return keys[i].TargetTopic < keys[j].TargetTopic
		}
		return keys[i].Reason < keys[j].Reason
	})
	return keys
}

// ReplayDLQ reads a dead-letter topic from the beginning to its current end
// and re-produces each message's key and value to the topic named
// in its kpibridge-original-topic header (only messages of opts.Reason, when
// set), with a kpibridge-replayed-from header. Ingest then consumes them
// like any other message: fixed ones are stored, still-invalid ones are
// dead-lettered again (a new DLQ message). Replaying twice is harmless for
// the events table — storage counts each event_id once — but it repeats the
// messages, so replay after the fix is deployed, and narrow it with Reason.
//
// Messages are produced in batches as they are read; if producing fails,
// the summary counts what was acknowledged before the error.
func ReplayDLQ(ctx context.Context, opts ReplayOptions) (ReplaySummary, error) {
	sum := ReplaySummary{Topic: opts.Topic, Replayed: map[ReplayKey]int{}, Filtered: map[string]int{}, DryRun: opts.DryRun}
	var w *kafka.Writer
	if !opts.DryRun {
		w = &kafka.Writer{Addr: kafka.TCP(opts.Brokers...), Transport: opts.Security.Transport(), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
			BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
		defer w.Close()
	}
	var (
		pending     []kafka.Message
		pendingKeys []ReplayKey
	)
	send := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, pending...); err != nil {
			return fmt.Errorf("replay %d messages from %s (to %s): %w", len(pending), opts.Topic, pending[0].Topic, err)
		}
		for _, k := range pendingKeys {
			sum.Replayed[k]++
		}
		pending, pendingKeys = pending[:0], pendingKeys[:0]
		return nil
	}
	err := ReadDLQ(ctx, opts.Brokers, opts.Security, opts.Topic, func(d DLQMessage) error {
		sum.Read++
		if opts.Reason != "" && d.Reason != opts.Reason {
			sum.Filtered[d.Reason]++
			return nil
		}
		if d.OriginalTopic == "" || d.OriginalTopic == opts.Topic {
			sum.NoTarget++
			return nil
		}
		key := ReplayKey{Reason: d.Reason, TargetTopic: d.OriginalTopic}
		if opts.DryRun {
			sum.Replayed[key]++
			return nil
		}
		pending = append(pending, kafka.Message{Topic: d.OriginalTopic, Key: d.Key, Value: d.Value,
			Headers: []kafka.Header{{Key: HeaderReplayedFrom, Value: fmt.Appendf(nil, "%s/%d/%d", opts.Topic, d.Partition, d.Offset)}}})
		pendingKeys = append(pendingKeys, key)
		if len(pending) >= 1000 {
			return send()
		}
		return nil
	})
	if err == nil && !opts.DryRun {
		err = send()
	}
	return sum, err
}
