package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

const topic = "crm.events"

// env is one test's real components: an embedded broker and a fresh,
// migrated ClickHouse database.
type env struct {
	t      *testing.T
	addr   string
	target store.Target
	conn   store.Conn
	log    *slog.Logger // where ingest logs; nil: logger(t)
}

func setup(t *testing.T, partitions int) *env {
	t.Helper()
	target, conn := testenv.MigratedClickHouse(t)
	addr := testenv.Broker(t, partitions)
	return &env{t: t, addr: addr, target: target, conn: conn}
}

func testConfig() ingest.Config {
	cfg := ingest.Default()
	cfg.GroupID = "test-ingest"
	cfg.Batch.MaxWait = 200 * time.Millisecond
	cfg.Retry.InitialBackoff = 50 * time.Millisecond
	cfg.Retry.MaxBackoff = 500 * time.Millisecond
	cfg.ShutdownTimeout = 20 * time.Second
	return cfg
}

func decoder(t testing.TB) *events.Decoder {
	d, err := events.NewDecoder(events.Config{EmailHashKey: []byte("test-key-0123456789"), ReportingCurrency: "EUR", Rates: map[string]float64{"USD": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// running is one ingest process in the test.
type running struct {
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run returned; err is then set
	err     error
	metrics *ingest.Metrics
	reg     *prometheus.Registry
	in      *ingest.Ingester
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("ingest did not drain cleanly: %v", r.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("ingest did not stop within 60s")
	}
}

// start runs an Ingester over real Kafka and ClickHouse; conn may point at a proxy.
func (e *env) start(cfg ingest.Config, conn store.Conn) *running {
	e.t.Helper()
	return e.startWith(cfg, conn, decoder(e.t))
}

// startWith is start with a given decoder.
func (e *env) startWith(cfg ingest.Config, conn store.Conn, dec ingest.Decoder) *running {
	e.t.Helper()
	if conn == nil {
		conn = e.conn
	}
	return e.startWriter(cfg, ingest.NewClickHouseWriter(conn, cfg.DLQ.MaxPayloadBytes), dec)
}

// startWriter is start with a given writer and decoder.
func (e *env) startWriter(cfg ingest.Config, w ingest.Writer, dec ingest.Decoder) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	m := ingest.NewMetrics(reg, []string{topic})
	log := e.log
	if log == nil {
		log = logger(e.t)
	}
	src, err := ingest.NewKafkaSource(ingest.SourceConfig{Brokers: []string{e.addr}, Topics: []string{topic}, GroupID: cfg.GroupID,
		SessionTimeout: cfg.SessionTimeout, Logger: log, Metrics: m})
	if err != nil {
		e.t.Fatal(err)
	}
	dlq := ingest.NewKafkaDLQ([]string{e.addr}, cfg.DLQ, nil)
	in, err := ingest.New(cfg, src, w, dlq, dec, m, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), metrics: m, reg: reg, in: in}
	go func() {
		defer close(r.done)
		defer dlq.Close()
		r.err = in.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

func (e *env) count(query string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitCount waits until query returns want, failing after timeout.
func (e *env) waitCount(timeout time.Duration, want uint64, query string, args ...any) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var got uint64
	for time.Now().Before(deadline) {
		if got = e.count(query, args...); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("%s = %d after %s, want %d", query, got, timeout, want)
}

const distinctEvents = "SELECT uniqExact(event_id) FROM events"

// orderMsg is a valid order.placed event.
func orderMsg(id string, occurred time.Time) kafka.Message {
	v := fmt.Sprintf(`{"event_id":%q,"type":"order.placed","occurred_at":%q,"source":"shopify",
"identity":{"crm_contact_id":"c-%s"},"properties":{"order_id":"o-%s","amount":12.5,"currency":"USD","channel":"web"}}`,
		id, occurred.UTC().Format(time.RFC3339), id, id)
	return kafka.Message{Topic: topic, Key: []byte("c-" + id), Value: []byte(strings.ReplaceAll(v, "\n", ""))}
}

// poison is one message per reason, each invalid for exactly that reason.
var poison = map[events.Reason]string{
	events.ReasonInvalidJSON:     `{"event_id": "p1", "type": `,
	events.ReasonMissingField:    `{"type":"order.placed","occurred_at":"2026-01-01T00:00:00Z","source":"shopify","identity":{"crm_contact_id":"c"},"properties":{"order_id":"o","amount":1,"currency":"EUR","channel":"web"}}`,
	events.ReasonInvalidField:    `{"event_id":"p3","type":"order.placed","occurred_at":"2026-01-01T00:00:00Z","source":"shopify","identity":{"crm_contact_id":"c"},"properties":{"order_id":"o","amount":1,"currency":"EUR","channel":"fax"}}`,
	events.ReasonUnknownType:     `{"event_id":"p4","type":"order.exploded","occurred_at":"2026-01-01T00:00:00Z","source":"shopify","identity":{"crm_contact_id":"c"}}`,
	events.ReasonBadTimestamp:    `{"event_id":"p5","type":"email.sent","occurred_at":"2026-01-01 00:00:00","source":"mailchimp","identity":{"anonymous_id":"a"}}`,
	events.ReasonUnknownCurrency: `{"event_id":"p6","type":"order.placed","occurred_at":"2026-01-01T00:00:00Z","source":"shopify","identity":{"crm_contact_id":"c"},"properties":{"order_id":"o","amount":1,"currency":"XYZ","channel":"web"}}`,
	events.ReasonMissingIdentity: `{"event_id":"p7","type":"email.sent","occurred_at":"2026-01-01T00:00:00Z","source":"mailchimp","identity":{}}`,
}

func TestPoisonIsDeadLetteredWithReasonAndNeverStopsItsPartition(t *testing.T) {
	e := setup(t, 1) // one partition: every poison message sits in front of valid ones
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	i := 0
	for reason, v := range poison {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte("k-" + string(reason)), Value: []byte(v)})
		for range 3 {
			i++
			msgs = append(msgs, orderMsg(fmt.Sprintf("ok-%d", i), base))
		}
	}
	testenv.Produce(t, e.addr, msgs...)
	r := e.start(testConfig(), nil)
	e.waitCount(30*time.Second, uint64(i), distinctEvents)
	e.waitCount(30*time.Second, uint64(len(poison)), "SELECT count() FROM dead_letters FINAL")
	for reason := range poison {
		if n := e.count("SELECT count() FROM dead_letters FINAL WHERE reason = ?", string(reason)); n != 1 {
			t.Errorf("dead_letters has %d rows of reason %s, want 1", n, reason)
		}
	}
	// The dead letter names where it came from and keeps the payload.
	var field, payload string
	var offset int64
	if err := e.conn.QueryRow(context.Background(), "SELECT field, payload, `offset` FROM dead_letters FINAL WHERE reason = 'invalid_field'").Scan(&field, &payload, &offset); err != nil {
		t.Fatal(err)
	}
	if field != "properties.channel" || payload != poison[events.ReasonInvalidField] {
		t.Errorf("dead letter field %q payload %q", field, payload)
	}
	// Amounts are converted to the reporting currency.
	var amount float64
	if err := e.conn.QueryRow(context.Background(), "SELECT sum(amount) FROM events FINAL").Scan(&amount); err != nil {
		t.Fatal(err)
	}
	if want := float64(i) * 12.5 * 0.5; amount != want {
		t.Errorf("sum(amount) = %v, want %v EUR", amount, want)
	}
	r.stop(t)

	// The DLQ topic holds each poison message with its original key, value and where it came from.
	dl := readAll(t, e.addr, topic+".dlq", len(poison))
	for _, m := range dl {
		h := headers(m)
		reason := events.Reason(h[ingest.HeaderReason])
		if string(m.Value) != poison[reason] || string(m.Key) != "k-"+string(reason) {
			t.Errorf("DLQ message for %s has key %q value %q", reason, m.Key, m.Value)
		}
		if h[ingest.HeaderOriginalTopic] != topic || h[ingest.HeaderOriginalPartition] != "0" || h[ingest.HeaderOriginalOffset] == "" || h[ingest.HeaderOriginalTimestamp] == "" {
			t.Errorf("DLQ headers incomplete: %v", h)
		}
	}
	if got := testutil.ToFloat64(r.metrics.Messages.WithLabelValues(topic, ingest.OutcomeInvalid)); got != float64(len(poison)) {
		t.Errorf("invalid messages metric = %v, want %d", got, len(poison))
	}
	// Everything consumed was committed.
	if got, want := testenv.CommittedOffsets(t, e.addr, "test-ingest", topic), testenv.EndOffsets(t, e.addr, topic); got[0] != want[0] {
		t.Errorf("committed %v, end %v", got, want)
	}
}

func TestDuplicatesAndRedeliveryCountOnce(t *testing.T) {
	e := setup(t, 3)
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	for i := range 200 {
		msgs = append(msgs, orderMsg(fmt.Sprint(i), base))
	}
	// 50 re-sent duplicates of events already sent.
	msgs = append(msgs, msgs[:50]...)
	testenv.Produce(t, e.addr, msgs...)
	cfg := testConfig()
	r := e.start(cfg, nil)
	e.waitCount(30*time.Second, 200, "SELECT count() FROM events")
	e.waitCount(30*time.Second, 50, "SELECT count() FROM duplicates FINAL")
	r.stop(t)
	if got := e.count("SELECT count() FROM events"); got != 200 {
		t.Errorf("events has %d rows, want 200: duplicates within the dedupe window must not be written again", got)
	}

	// A second group re-reads the whole topic: a full re-delivery. With the
	// dedupe memory gone (a new process), rows are written again, and the
	// documented read patterns still count each event once.
	cfg.GroupID = "second-group"
	r2 := e.start(cfg, nil)
	e.waitCount(30*time.Second, 400, "SELECT count() FROM events")
	r2.stop(t)
	if got := e.count(distinctEvents); got != 200 {
		t.Errorf("uniqExact(event_id) = %d after re-delivery, want 200", got)
	}
	if got := e.count("SELECT count() FROM events FINAL"); got != 200 {
		t.Errorf("count() FROM events FINAL = %d after re-delivery, want 200", got)
	}
}

func TestBatchesCloseOnRowsBytesOrTime(t *testing.T) {
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		tune        func(*ingest.BatchConfig)
		messages    int
		wantBatches func(n uint64) bool
		want        string
	}{
		{"rows", func(b *ingest.BatchConfig) { b.MaxRows = 10; b.MaxWait = time.Minute }, 100, func(n uint64) bool { return n == 10 }, "10 batches of 10 rows"},
		{"bytes", func(b *ingest.BatchConfig) { b.MaxBytes = 1000; b.MaxWait = time.Minute }, 100, func(n uint64) bool { return n >= 20 && n <= 40 }, "one batch per ~4 messages of ~270 bytes"},
		{"time", func(b *ingest.BatchConfig) { b.MaxWait = 300 * time.Millisecond }, 7, func(n uint64) bool { return n >= 1 && n <= 7 }, "the open batch flushed by max_wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, 1)
			var msgs []kafka.Message
			for i := range tt.messages {
				msgs = append(msgs, orderMsg(fmt.Sprint(i), base))
			}
			testenv.Produce(t, e.addr, msgs...)
			cfg := testConfig()
			tt.tune(&cfg.Batch)
			r := e.start(cfg, nil)
			// With max_wait of a minute, rows and bytes alone must have closed every batch.
			e.waitCount(10*time.Second, uint64(tt.messages), "SELECT count() FROM events")
			batches := histogramCount(t, r.reg, "kpibridge_ingest_batch_rows")
			if !tt.wantBatches(batches) {
				t.Errorf("%d batches flushed, want %s", batches, tt.want)
			}
			r.stop(t)
		})
	}
}

func TestClickHouseOutageRetriesWithoutCommitOrDeadLetter(t *testing.T) {
	e := setup(t, 3)
	u, _ := url.Parse(e.target.DSN)
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	viaProxy, err := store.ParseDSN(u.String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(context.Background(), viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	batch := func(from, n int) []kafka.Message {
		var msgs []kafka.Message
		for i := from; i < from+n; i++ {
			msgs = append(msgs, orderMsg(fmt.Sprint(i), base))
		}
		return msgs
	}
	testenv.Produce(t, e.addr, batch(0, 300)...)
	r := e.start(testConfig(), conn)
	e.waitCount(30*time.Second, 300, distinctEvents)
	before := testenv.CommittedOffsets(t, e.addr, "test-ingest", topic)

	outage := 30 * time.Second
	if testing.Short() {
		outage = 5 * time.Second
	}
	proxy.Down()
	testenv.Produce(t, e.addr, batch(300, 700)...)
	time.Sleep(outage)
	if got := testenv.CommittedOffsets(t, e.addr, "test-ingest", topic); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("offsets moved while ClickHouse was down: before %v, during %v", before, got)
	}
	if n := e.count("SELECT count() FROM dead_letters"); n != 0 {
		t.Errorf("%d messages dead-lettered during the outage, want 0", n)
	}
	retries := testutil.ToFloat64(r.metrics.Retries.WithLabelValues("clickhouse"))
	if retries < 2 {
		t.Errorf("retries during a %s outage = %v, want several", outage, retries)
	}
	proxy.Up()
	e.waitCount(60*time.Second, 1000, distinctEvents)
	r.stop(t)
	if got, want := testenv.CommittedOffsets(t, e.addr, "test-ingest", topic), testenv.EndOffsets(t, e.addr, topic); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after recovery committed %v, end offsets %v", got, want)
	}
}

func TestGroupMembersShareAndHandOverPartitions(t *testing.T) {
	e := setup(t, 6)
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	produceRange := func(from, n int) {
		var msgs []kafka.Message
		for i := from; i < from+n; i++ {
			msgs = append(msgs, orderMsg(fmt.Sprint(i), base))
		}
		testenv.Produce(t, e.addr, msgs...)
	}
	cfg := testConfig()
	a := e.start(cfg, nil)
	b := e.start(cfg, nil)
	testenv.WaitGroupMembers(t, e.addr, cfg.GroupID, 2)
	produceRange(0, 2000)
	e.waitCount(60*time.Second, 2000, distinctEvents)
	gotA := testutil.ToFloat64(a.metrics.Messages.WithLabelValues(topic, ingest.OutcomeValid))
	gotB := testutil.ToFloat64(b.metrics.Messages.WithLabelValues(topic, ingest.OutcomeValid))
	if gotA == 0 || gotB == 0 {
		t.Errorf("partitions not shared: member a stored %v, member b %v", gotA, gotB)
	}
	// One member leaves; the other takes its partitions over with nothing lost.
	a.stop(t)
	produceRange(2000, 2000)
	e.waitCount(90*time.Second, 4000, distinctEvents)
	// A third joins; still nothing lost, nothing double counted.
	c := e.start(cfg, nil)
	testenv.WaitGroupMembers(t, e.addr, cfg.GroupID, 2)
	produceRange(4000, 1000)
	e.waitCount(90*time.Second, 5000, distinctEvents)
	b.stop(t)
	c.stop(t)
	if got := e.count("SELECT count() FROM events FINAL"); got != 5000 {
		t.Errorf("events FINAL = %d, want 5000", got)
	}
}

func readAll(t *testing.T, addr, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	conn, err := kafka.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []kafka.Message
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range parts {
		pr := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		end := testenv.EndOffsets(t, addr, topic)[p.ID]
		for off := int64(0); off < end; off++ {
			m, err := pr.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read %s/%d: %v", topic, p.ID, err)
			}
			out = append(out, m)
		}
		pr.Close()
	}
	if len(out) != n {
		t.Fatalf("%s holds %d messages, want %d", topic, len(out), n)
	}
	return out
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// TestWriterSendsLargeBatchAsOneInsert writes a batch of several blocks and
// checks every row arrives once, with its columns, as one part: ClickHouse
// squashes the blocks of one INSERT, so block size costs no extra merges.
func TestWriterSendsLargeBatchAsOneInsert(t *testing.T) {
	e := setup(t, 1)
	ctx := context.Background()
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	w := ingest.NewClickHouseWriter(e.conn, 16).WithClock(func() time.Time { return at })
	const n = 20000 // more than two blocks
	rows := make([]ingest.Row, n)
	for i := range rows {
		rows[i] = ingest.Row{Event: events.Event{EventID: fmt.Sprintf("e-%d", i), Type: events.TypeOrderPlaced,
			OccurredAt: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), Source: "shopify", Amount: float64(i),
			Properties: []byte(fmt.Sprintf(`{"n":%d}`, i))}, Topic: topic, Partition: i % 3, Offset: int64(i)}
	}
	if err := w.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		query string
		want  uint64
	}{
		{"SELECT count() FROM events", n},
		{"SELECT uniqExact(event_id) FROM events", n},
		{"SELECT toUInt64(sum(amount)) FROM events", n * (n - 1) / 2},
		{"SELECT toUInt64(sum(`offset`)) FROM events", n * (n - 1) / 2},
		{"SELECT count() FROM events WHERE properties = concat('{\"n\":', toString(`offset`), '}')", n},
		{"SELECT count() FROM events WHERE ingested_at = toDateTime('2026-02-03 04:05:06', 'UTC') AND stat_date = toDate('1970-01-01')", n},
		{"SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active", 1},
	}
	for _, c := range checks {
		if got := e.count(c.query); got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}

	// Dead letters keep the key, truncate the payload and record its size.
	dl := ingest.DeadLetter{Reason: events.ReasonInvalidJSON, Topic: topic, Partition: 2, Offset: 7, Key: []byte("k-1"),
		Value: []byte(`{"event_id": "a-long-payload-of-more-than-16-bytes"`)}
	if err := w.InsertDeadLetters(ctx, []ingest.DeadLetter{dl}); err != nil {
		t.Fatal(err)
	}
	var key, payload string
	var size uint32
	if err := e.conn.QueryRow(ctx, "SELECT message_key, payload, payload_bytes FROM dead_letters").Scan(&key, &payload, &size); err != nil {
		t.Fatal(err)
	}
	if key != "k-1" || payload != string(dl.Value[:16]) || size != uint32(len(dl.Value)) {
		t.Errorf("dead letter stored as key %q payload %q size %d", key, payload, size)
	}
}
