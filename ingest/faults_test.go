package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// waitHealth waits until ok accepts the ingester's health.
func waitHealth(t *testing.T, r *running, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(r.in.Health()) {
		if time.Now().After(deadline) {
			t.Fatalf("health %v, want %s", r.in.Health(), what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A DLQ topic that refuses dead letters (here: smaller max.message.bytes
// than a poison message) does not stall the partition: the batch is
// committed, the poison stays in dead_letters, the process says why it is
// not ready. With dlq.max_message_bytes under the topic's limit the
// message is truncated to fit and published, with its original size.
func TestUnwritableDLQDoesNotStallIngest(t *testing.T) {
	e := setup(t, 1)
	c := &kafka.Client{Addr: kafka.TCP(e.addr), Timeout: 10 * time.Second}
	res, err := c.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic + ".dlq", NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "4000"}}}}})
	if err != nil || res.Errors[topic+".dlq"] != nil {
		t.Fatalf("create the DLQ topic: %v %v", err, res.Errors)
	}
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	big := `{"event_id": "` + strings.Repeat("x", 10_000) + `"` // invalid JSON, 10 kB
	testenv.Produce(t, e.addr, orderMsg("before", base), kafka.Message{Topic: topic, Key: []byte("big"), Value: []byte(big)}, orderMsg("after", base))

	cfg := testConfig()
	cfg.DLQ.MaxWait = 2 * time.Second
	r := e.start(cfg, nil)
	e.waitCount(30*time.Second, 2, distinctEvents)
	e.waitCount(30*time.Second, 1, "SELECT count() FROM dead_letters FINAL")
	waitHealth(t, r, "the DLQ topic named", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "dead-letter topic unwritable") && strings.Contains(err.Error(), "kept in ClickHouse dead_letters only")
	})
	if got := testutil.ToFloat64(r.metrics.DLQFailures.WithLabelValues(topic + ".dlq")); got != 1 {
		t.Errorf("kpibridge_ingest_dlq_failures_total = %v, want 1", got)
	}
	// Committed past the poison: not stalled.
	deadline := time.Now().Add(30 * time.Second)
	for got, want := testenv.CommittedOffsets(t, e.addr, cfg.GroupID, topic), testenv.EndOffsets(t, e.addr, topic); got[0] != want[0]; got = testenv.CommittedOffsets(t, e.addr, cfg.GroupID, topic) {
		if time.Now().After(deadline) {
			t.Fatalf("committed %v, end %v: the unwritable DLQ stalled the partition", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.stop(t)

	// Capped below the topic's limit, the same message is published, truncated.
	cfg.GroupID = "test-ingest-capped"
	cfg.DLQ.MaxMessageBytes = 3000
	r = e.start(cfg, nil)
	for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(r.metrics.DLQWrites.WithLabelValues(topic+".dlq")) < 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter published with dlq.max_message_bytes under the topic's limit; health: %v", r.in.Health())
		}
	}
	dl := readAll(t, e.addr, topic+".dlq", 1)
	h := headers(dl[0])
	if h[ingest.HeaderTruncatedFrom] != fmt.Sprint(len(big)) || len(dl[0].Value) >= 3000 || !strings.HasPrefix(big, string(dl[0].Value)) {
		t.Errorf("DLQ message of %d bytes, headers %v: want the poison's first bytes, truncated from %d", len(dl[0].Value), h, len(big))
	}
	waitHealth(t, r, "healthy", func(err error) bool { return err == nil })
	r.stop(t)
}

// A ClickHouse error no retry fixes (a column's type changed by hand) is
// reported with its cause and what to do, and the process is not ready;
// nothing is committed or lost, and once the column is fixed ingest
// resumes by itself.
func TestPermanentClickHouseErrorIsReported(t *testing.T) {
	e := setup(t, 1)
	ctx := context.Background()
	if err := e.conn.Exec(ctx, "ALTER TABLE events MODIFY COLUMN amount String"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	testenv.Produce(t, e.addr, orderMsg("o1", base), orderMsg("o2", base))
	r := e.start(testConfig(), nil)
	waitHealth(t, r, "the events table's column type named", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "ClickHouse refuses writes to events") && strings.Contains(err.Error(), "column's type differs")
	})
	if got := testenv.CommittedOffsets(t, e.addr, "test-ingest", topic); len(got) != 0 {
		t.Errorf("committed %v while ClickHouse refused the batch", got)
	}
	if err := e.conn.Exec(ctx, "ALTER TABLE events MODIFY COLUMN amount Float64"); err != nil {
		t.Fatal(err)
	}
	e.waitCount(30*time.Second, 2, distinctEvents)
	waitHealth(t, r, "healthy once fixed", func(err error) bool { return err == nil })
	r.stop(t)
}

// The dead-letter topics are created at start with their source's
// partition count, so a broker with auto-creation off accepts dead letters;
// a second start creates nothing.
func TestDLQTopicsAreCreatedAtStart(t *testing.T) {
	addr := testenv.Broker(t, 3)
	testenv.Produce(t, addr, orderMsg("o1", time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)))
	d := ingest.NewKafkaDLQ([]string{addr}, ingest.Default().DLQ, nil)
	defer d.Close()
	ctx := context.Background()
	created, err := d.EnsureTopics(ctx, []string{topic})
	if err != nil || len(created) != 1 || created[0] != topic+".dlq" {
		t.Fatalf("EnsureTopics = %v, %v; want %s.dlq created", created, err, topic)
	}
	if parts := testenv.EndOffsets(t, addr, topic+".dlq"); len(parts) != 3 {
		t.Errorf("%s.dlq has %d partitions, want its source's 3", topic, len(parts))
	}
	if created, err := d.EnsureTopics(ctx, []string{topic}); err != nil || len(created) != 0 {
		t.Errorf("second EnsureTopics = %v, %v; want nothing created", created, err)
	}
}
