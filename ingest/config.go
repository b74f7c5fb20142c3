// Package ingest owns the Kafka → ClickHouse path: a kafka-go consumer group
// over the event topics, decoding and validation (package events), batching
// that closes on rows, bytes or time, the ClickHouse writer for events and
// dead letters, the <topic>.dlq dead-letter topics, and offset commits that
// happen only once everything up to them is stored.
package ingest

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the ingest role. Zero fields take the values of Default.
type Config struct {
	// GroupID is the Kafka consumer group; every ingest process of one
	// deployment uses the same group so partitions are shared between them.
	GroupID string `yaml:"group_id"`
	// Batch says when a batch closes: whichever limit is reached first.
	Batch BatchConfig `yaml:"batch"`
	// DLQ configures dead-lettering of messages that can never succeed.
	DLQ DLQConfig `yaml:"dlq"`
	// Retry configures how writes are retried while ClickHouse or Kafka is unavailable.
	Retry RetryConfig `yaml:"retry"`
	// Dedupe remembers recently seen event_ids to count and drop re-sent duplicates.
	Dedupe DedupeConfig `yaml:"dedupe"`
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating before it moves the member's partitions to the others:
	// the failover time after a kill -9 or a hang. Brokers accept 6s to 5m
	// by default (group.min/max.session.timeout.ms).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ShutdownTimeout bounds the drain on SIGTERM: flush the open batch, commit, leave the group.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// BatchConfig limits one batch.
type BatchConfig struct {
	MaxRows  int           `yaml:"max_rows"`
	MaxBytes int           `yaml:"max_bytes"`
	MaxWait  time.Duration `yaml:"max_wait"`
}

// DLQConfig configures dead letters.
type DLQConfig struct {
	// Topic suffix: an invalid message of topic T goes to T + Suffix.
	Suffix string `yaml:"suffix"`
	// Disabled turns off the Kafka dead-letter topics (dead_letters rows are always written).
	Disabled bool `yaml:"disabled"`
	// MaxPayloadBytes truncates the payload stored in ClickHouse's dead_letters.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxMessageBytes caps a message to a DLQ topic, key, value and headers
	// together: a longer value is truncated (header kpibridge-truncated-from
	// says its size) so that the broker's max.message.bytes never refuses it.
	// Set it at or below the DLQ topics' max.message.bytes.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxWait bounds how long a batch waits for its dead letters to be
	// published while the DLQ topic refuses them. After it (at once, for an
	// error no retry can fix: topic not authorized, message too large) the
	// batch is committed without them: they stay in dead_letters, and the
	// process is not ready until a later publish succeeds.
	MaxWait time.Duration `yaml:"max_wait"`
	// KeepOriginal publishes dead letters to the DLQ topics as consumed,
	// raw email addresses included, for teams whose Kafka is the system of
	// record; by default every address is redacted there too. dead_letters
	// is always redacted.
	KeepOriginal bool `yaml:"keep_original"`
}

// RetryConfig is an exponential backoff with jitter.
type RetryConfig struct {
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// DedupeConfig sizes the in-process memory of event_ids.
type DedupeConfig struct {
	// Window is how many recent event_ids are remembered; 0 disables it.
	Window int `yaml:"window"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		GroupID:         "kpibridge-ingest",
		Batch:           BatchConfig{MaxRows: 50000, MaxBytes: 32 << 20, MaxWait: time.Second},
		DLQ:             DLQConfig{Suffix: ".dlq", MaxPayloadBytes: 16 << 10, MaxMessageBytes: 1_000_000, MaxWait: 30 * time.Second},
		Retry:           RetryConfig{InitialBackoff: 250 * time.Millisecond, MaxBackoff: 15 * time.Second},
		Dedupe:          DedupeConfig{Window: 1 << 20},
		SessionTimeout:  30 * time.Second,
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate names the first wrong field, prefixed with "ingest.".
func (c Config) Validate() error {
	var errs []error
	if c.GroupID == "" {
		errs = append(errs, errors.New("ingest.group_id: must not be empty"))
	}
	if c.Batch.MaxRows <= 0 {
		errs = append(errs, fmt.Errorf("ingest.batch.max_rows: must be > 0, got %d", c.Batch.MaxRows))
	}
	if c.Batch.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("ingest.batch.max_bytes: must be > 0, got %d", c.Batch.MaxBytes))
	}
	if c.Batch.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("ingest.batch.max_wait: must be > 0, got %s", c.Batch.MaxWait))
	}
	if !c.DLQ.Disabled && c.DLQ.Suffix == "" {
		errs = append(errs, errors.New("ingest.dlq.suffix: must not be empty unless dlq.disabled"))
	}
	if c.DLQ.MaxPayloadBytes <= 0 {
		errs = append(errs, fmt.Errorf("ingest.dlq.max_payload_bytes: must be > 0, got %d", c.DLQ.MaxPayloadBytes))
	}
	if c.DLQ.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Errorf("ingest.dlq.max_message_bytes: must be >= 1024 (the headers need room), got %d", c.DLQ.MaxMessageBytes))
	}
	if c.DLQ.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("ingest.dlq.max_wait: must be > 0, got %s", c.DLQ.MaxWait))
	}
	if c.Retry.InitialBackoff <= 0 || c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		errs = append(errs, fmt.Errorf("ingest.retry: need 0 < initial_backoff <= max_backoff, got %s and %s", c.Retry.InitialBackoff, c.Retry.MaxBackoff))
	}
	if c.Dedupe.Window < 0 {
		errs = append(errs, fmt.Errorf("ingest.dedupe.window: must be >= 0, got %d", c.Dedupe.Window))
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("ingest.session_timeout: must be from 6s to 5m (what brokers accept by default), got %s", c.SessionTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("ingest.shutdown_timeout: must be > 0, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
