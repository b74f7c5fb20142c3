package generate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

// KafkaConfig configures a KafkaSink.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Compression is none, gzip, snappy, lz4 or zstd; empty means
	// DefaultCompression.
	Compression string
	// Security says how to connect (TLS, SASL); nil: plain text.
	Security *kafkaconn.Security
}

// DefaultCompression is the compression the sink uses unless told
// otherwise. Measured with 10000 customers × 90 days (130k messages) into
// the embedded broker on 2 cores: lz4 and snappy took about 15 % less wall
// time than none and lz4 halved the broker's memory, so lz4 it is; every
// client here (kafka-go, franz-go, kcat) reads it.
const DefaultCompression = "lz4"

var compressions = map[string]kafka.Compression{
	"none": 0, "gzip": kafka.Gzip, "snappy": kafka.Snappy, "lz4": kafka.Lz4, "zstd": kafka.Zstd,
}

// KafkaSink produces records to Kafka with a kafka-go Writer: keyed by
// customer (hash balancer, so one customer's events stay in order on one
// partition), acknowledged by all in-sync replicas, topics auto-created.
type KafkaSink struct {
	w       *kafka.Writer
	brokers []string
	sec     *kafkaconn.Security
	checked bool // the brokers accepted the connection once
	msgs    []kafka.Message
}

// NewKafkaSink returns a sink producing to cfg.Brokers.
func NewKafkaSink(cfg KafkaConfig) (*KafkaSink, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("--brokers: at least one host:port is required")
	}
	name := cfg.Compression
	if name == "" {
		name = DefaultCompression
	}
	codec, ok := compressions[name]
	if !ok {
		return nil, fmt.Errorf("--compression: must be one of none, gzip, snappy, lz4, zstd, got %q", cfg.Compression)
	}
	return &KafkaSink{brokers: cfg.Brokers, sec: cfg.Security, w: &kafka.Writer{
		Addr:      kafka.TCP(cfg.Brokers...),
		Transport: cfg.Security.Transport(),
		Balancer:  &kafka.Hash{},
		// Run writes whole batches synchronously: a partition's batch is
		// sent when it holds BatchSize messages or after BatchTimeout, so
		// a short timeout keeps the tail of each write from waiting (the
		// default of 1 s would make the producer crawl).
		BatchSize:              2000,
		BatchBytes:             1 << 20,
		BatchTimeout:           5 * time.Millisecond,
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
		Compression:            codec,
		MaxAttempts:            10,
		WriteTimeout:           30 * time.Second,
	}}, nil
}

// Write produces the records and returns once every one is acknowledged.
func (s *KafkaSink) Write(ctx context.Context, recs []Record) error {
	if !s.checked {
		// A refused password or certificate is said once, plainly, instead
		// of after the writer's ten attempts as a bare EOF.
		if err := s.sec.Check(ctx, s.brokers); err != nil {
			return fmt.Errorf("produce to %s: %w", strings.Join(s.brokers, ","), err)
		}
		s.checked = true
	}
	s.msgs = s.msgs[:0]
	for i := range recs {
		s.msgs = append(s.msgs, kafka.Message{Topic: recs[i].Topic, Key: recs[i].Key, Value: recs[i].Value})
	}
	if err := s.w.WriteMessages(ctx, s.msgs...); err != nil {
		return fmt.Errorf("produce %d messages to %s: %w", len(s.msgs), strings.Join(s.brokers, ","), err)
	}
	return nil
}

// Close flushes and closes the producer.
func (s *KafkaSink) Close() error {
	return s.w.Close()
}
