package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/broker"
)

// Broker starts the embedded Kafka-protocol broker on a free loopback port
// for the test and returns its address.
func Broker(t testing.TB, partitions int) string {
	t.Helper()
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", Partitions: partitions}, nil)
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// Produce writes messages synchronously, retrying while topics auto-create.
func Produce(t testing.TB, addr string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, BatchTimeout: 2 * time.Millisecond, BatchSize: 5000,
		AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	for range 50 {
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("produce %d messages: %v", len(msgs), err)
}

// CommittedOffsets returns the group's committed offset (the next offset to
// read) per partition of topic; partitions without a commit are absent.
func CommittedOffsets(t testing.TB, addr, group, topic string) map[int]int64 {
	t.Helper()
	return CommittedOffsetsVia(t, nil, addr, group, topic)
}

// CommittedOffsetsVia is CommittedOffsets over transport (TLS, SASL); nil is plain text.
func CommittedOffsetsVia(t testing.TB, transport kafka.RoundTripper, addr, group, topic string) map[int]int64 {
	t.Helper()
	c, ctx, cancel := client(addr)
	defer cancel()
	if transport != nil {
		c.Transport = transport
	}
	parts := partitions(t, ctx, c, topic)
	res, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		t.Fatalf("offset fetch for group %s: %v", group, err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// EndOffsets returns the high watermark of every partition of topic.
func EndOffsets(t testing.TB, addr, topic string) map[int]int64 {
	t.Helper()
	c, ctx, cancel := client(addr)
	defer cancel()
	req := map[string][]kafka.OffsetRequest{}
	for _, p := range partitions(t, ctx, c, topic) {
		req[topic] = append(req[topic], kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.LastOffset
	}
	return out
}

// WaitGroupMembers waits until the consumer group has n members with partitions assigned.
func WaitGroupMembers(t testing.TB, addr, group string, n int) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	got := -1
	for time.Now().Before(deadline) {
		res, err := c.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(res.Groups) == 1 && res.Groups[0].GroupState == "Stable" {
			got = 0
			for _, m := range res.Groups[0].Members {
				if len(m.MemberAssignments.Topics) > 0 {
					got++
				}
			}
			if got == n {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s has %d members with partitions after 60s, want %d", group, got, n)
}

func client(addr string) (*kafka.Client, context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	return &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}, ctx, cancel
}

// partitions lists the partition ids of topic.
func partitions(t testing.TB, ctx context.Context, c *kafka.Client, topic string) []int {
	t.Helper()
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	var ids []int
	for _, p := range meta.Topics[0].Partitions {
		ids = append(ids, p.ID)
	}
	return ids
}
