package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

// LagInterval is how often the ingest role measures its consumer group's lag.
const LagInterval = 5 * time.Second

// LagMonitor measures the consumer group's lag: for every partition of the
// topics, the high watermark minus the group's committed offset (or minus
// the first offset still held, before the group's first commit there). It
// asks the brokers, not the local consumer, so every ingest process of a
// group reports the same, whole-group figure, including partitions that no
// member is reading; take max(), not sum(), across processes.
type LagMonitor struct {
	client   *kafka.Client
	group    string
	topics   []string
	interval time.Duration
	m        *Metrics
	log      *slog.Logger
	failing  bool
}

// NewLagMonitor returns a monitor of group over topics that updates m's
// ConsumerLag every interval, connecting as sec says (nil: plain text).
func NewLagMonitor(brokers []string, sec *kafkaconn.Security, group string, topics []string, interval time.Duration, m *Metrics, logger *slog.Logger) *LagMonitor {
	return &LagMonitor{client: &kafka.Client{Addr: kafka.TCP(brokers...), Transport: sec.Transport(), Timeout: 10 * time.Second},
		group: group, topics: topics, interval: interval, m: m, log: logger}
}

// Run polls until ctx ends. A failed poll is logged once (and again when it
// recovers) and leaves the gauges at their last values.
func (l *LagMonitor) Run(ctx context.Context) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		err := l.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !l.failing:
			l.failing = true
			l.log.Warn("consumer lag unknown: cannot read offsets from Kafka; retrying every poll", "group", l.group, "err", err, "interval", l.interval)
		case err == nil && l.failing:
			l.failing = false
			l.log.Info("consumer lag measured again", "group", l.group)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll measures the lag of every partition once and sets the gauges.
func (l *LagMonitor) Poll(ctx context.Context) error {
	meta, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: l.topics})
	if err != nil {
		return fmt.Errorf("metadata of %v: %w", l.topics, err)
	}
	partitions := map[string][]int{}
	offsets := map[string][]kafka.OffsetRequest{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			continue // not created yet: nothing to lag behind
		}
		for _, p := range t.Partitions {
			partitions[t.Name] = append(partitions[t.Name], p.ID)
			offsets[t.Name] = append(offsets[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(partitions) == 0 {
		return nil
	}
	ends, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: offsets})
	if err != nil {
		return fmt.Errorf("list offsets of %v: %w", l.topics, err)
	}
	committed, err := l.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: l.group, Topics: partitions})
	if err != nil {
		return fmt.Errorf("committed offsets of group %s: %w", l.group, err)
	}
	done := map[string]map[int]int64{}
	switch {
	case errors.Is(committed.Error, kafka.GroupIdNotFound):
		committed.Topics = nil // a group that never committed: some brokers say so with this error
	case committed.Error != nil:
		return fmt.Errorf("committed offsets of group %s: %w", l.group, committed.Error)
	}
	for topic, ps := range committed.Topics {
		done[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error == nil {
				done[topic][p.Partition] = p.CommittedOffset
			}
		}
	}
	for topic, ps := range ends.Topics {
		for _, p := range ps {
			if p.Error != nil {
				continue
			}
			from, ok := done[topic][p.Partition]
			if !ok || from < 0 {
				from = p.FirstOffset // no commit yet: a new group starts at the first offset
			}
			l.m.ConsumerLag.WithLabelValues(topic, strconv.Itoa(p.Partition)).Set(float64(max(p.LastOffset-from, 0)))
		}
	}
	return nil
}
