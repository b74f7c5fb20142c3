package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/store"
)

// Row is a valid event with where it came from in Kafka.
type Row struct {
	events.Event
	Topic     string
	Partition int
	Offset    int64
}

// DeadLetter is a message that can never succeed, with why and where.
type DeadLetter struct {
	Reason    events.Reason
	Field     string
	Detail    string
	Topic     string
	Partition int
	Offset    int64
	// Key and Value are the message's with every email address redacted
	// (events.Decoder.Redact): what dead_letters stores and, by default,
	// what the DLQ topic gets.
	Key   []byte
	Value []byte
	// Unredacted is the message as consumed, for the DLQ topic; set only
	// with dlq.keep_original.
	Unredacted *RawMessage
	Time       time.Time // the message's Kafka timestamp
	EventType  string    // best effort, from the payload
	Source     string    // best effort, from the payload
}

// RawMessage is a Kafka message's key and value as consumed.
type RawMessage struct {
	Key, Value []byte
}

// Duplicate is a re-sent event whose event_id was already seen.
type Duplicate struct {
	EventID   string
	Type      events.Type
	Source    string
	Topic     string
	Partition int
	Offset    int64
}

// ClickHouseWriter writes batches to the events, dead_letters and duplicates
// tables with columnar inserts that name every column. A retried insert is
// harmless: the ReplacingMergeTree keys and the documented read patterns
// (FINAL, uniqExact(event_id)) count a repeated row once.
//
// One INSERT is sent as data blocks of at most blockRows rows. The driver
// keeps a block's column buffers from one block to the next, so a batch of
// any size goes through buffers of blockRows rows instead of growing thirty
// columns to the size of the batch, which cost more CPU (growth and garbage)
// than everything else in the write. ClickHouse squashes the blocks of one
// INSERT into one part per partition (min_insert_block_size_rows, 1 M rows by
// default), and acknowledges the INSERT only once all of them are stored.
//
// Each of the three Insert methods reuses buffers of its own: they may run
// concurrently with one another, but none concurrently with itself.
type ClickHouseWriter struct {
	conn            store.Conn
	maxPayloadBytes int
	now             func() time.Time
	events          *table[Row]
	deadLetters     *table[DeadLetter]
	duplicates      *table[Duplicate]
}

// blockRows is the most rows in one data block of an INSERT.
const blockRows = 2048

// NewClickHouseWriter returns a writer over conn; maxPayloadBytes truncates dead-letter payloads.
func NewClickHouseWriter(conn store.Conn, maxPayloadBytes int) *ClickHouseWriter {
	return &ClickHouseWriter{conn: conn, maxPayloadBytes: maxPayloadBytes, now: time.Now,
		events: newTable[Row]("events", eventColumns, &eventBlock{}), deadLetters: newColumnTable("dead_letters", deadLetterColumns),
		duplicates: newColumnTable("duplicates", duplicateColumns)}
}

// WithClock sets the clock that stamps ingested_at, failed_at and seen_at;
// tests use it to place a fixture in time.
func (w *ClickHouseWriter) WithClock(now func() time.Time) *ClickHouseWriter {
	w.now = now
	return w
}

// InsertEvents writes rows to events in one INSERT.
func (w *ClickHouseWriter) InsertEvents(ctx context.Context, rows []Row) error {
	return w.events.insert(ctx, w.conn, rows, w.stamp())
}

// InsertDeadLetters writes dead letters with truncated payloads in one INSERT.
func (w *ClickHouseWriter) InsertDeadLetters(ctx context.Context, dls []DeadLetter) error {
	return w.deadLetters.insert(ctx, w.conn, dls, w.stamp())
}

// InsertDuplicates records re-sent events that were not written again, in one INSERT.
func (w *ClickHouseWriter) InsertDuplicates(ctx context.Context, dups []Duplicate) error {
	return w.duplicates.insert(ctx, w.conn, dups, w.stamp())
}

func (w *ClickHouseWriter) stamp() *stamp {
	return &stamp{now: w.now().UTC(), maxPayloadBytes: w.maxPayloadBytes}
}

// stamp is what every row of one INSERT shares.
type stamp struct {
	now             time.Time
	maxPayloadBytes int
}

var epoch = time.Unix(0, 0).UTC()

// eventColumns are the columns of events, in INSERT order; eventBlock fills them.
var eventColumns = []string{"event_id", "type", "occurred_at", "source", "crm_contact_id", "anonymous_id", "email_hash",
	"campaign_id", "channel", "amount", "amount_original", "currency", "entity_id", "stage", "outcome", "order_channel",
	"platform", "segment", "country", "vendor", "url", "referrer", "stat_date", "impressions", "clicks", "properties",
	"topic", "partition", "offset", "ingested_at"}

// eventBlock is one data block of events, filled in one pass over the rows:
// events are nearly all of the volume, so they skip the per-cell function
// calls of the generic columns below.
type eventBlock struct {
	eventID, typ, source, crm, anon, email, campaign, channel []string
	currency, entity, stage, outcome, orderCh, platform       []string
	segment, country, vendor, url, referrer, props, topic     []string
	occurred, statDate, ingested                              []time.Time
	amount, amountOrig                                        []float64
	impressions, clicks                                       []uint64
	partition                                                 []int32
	offset                                                    []int64
}

func (c *eventBlock) fill(rows []Row, s *stamp) {
	c.eventID, c.typ, c.source, c.crm, c.anon, c.email, c.campaign, c.channel = c.eventID[:0], c.typ[:0], c.source[:0], c.crm[:0], c.anon[:0], c.email[:0], c.campaign[:0], c.channel[:0]
	c.currency, c.entity, c.stage, c.outcome, c.orderCh, c.platform = c.currency[:0], c.entity[:0], c.stage[:0], c.outcome[:0], c.orderCh[:0], c.platform[:0]
	c.segment, c.country, c.vendor, c.url, c.referrer, c.props, c.topic = c.segment[:0], c.country[:0], c.vendor[:0], c.url[:0], c.referrer[:0], c.props[:0], c.topic[:0]
	c.occurred, c.statDate, c.ingested = c.occurred[:0], c.statDate[:0], c.ingested[:0]
	c.amount, c.amountOrig, c.impressions, c.clicks, c.partition, c.offset = c.amount[:0], c.amountOrig[:0], c.impressions[:0], c.clicks[:0], c.partition[:0], c.offset[:0]
	for i := range rows {
		r := &rows[i]
		c.eventID, c.typ, c.occurred, c.source = append(c.eventID, r.EventID), append(c.typ, string(r.Type)), append(c.occurred, r.OccurredAt), append(c.source, r.Source)
		c.crm, c.anon, c.email = append(c.crm, r.CRMContactID), append(c.anon, r.AnonymousID), append(c.email, r.EmailHash)
		c.campaign, c.channel = append(c.campaign, r.CampaignID), append(c.channel, r.Channel)
		c.amount, c.amountOrig, c.currency, c.entity = append(c.amount, r.Amount), append(c.amountOrig, r.AmountOriginal), append(c.currency, r.Currency), append(c.entity, r.EntityID)
		c.stage, c.outcome, c.orderCh, c.platform = append(c.stage, r.Stage), append(c.outcome, r.Outcome), append(c.orderCh, r.OrderChannel), append(c.platform, r.Platform)
		c.segment, c.country, c.vendor, c.url, c.referrer = append(c.segment, r.Segment), append(c.country, r.Country), append(c.vendor, r.Vendor), append(c.url, r.URL), append(c.referrer, r.Referrer)
		statDate := r.StatDate
		if statDate.IsZero() {
			statDate = epoch
		}
		c.statDate, c.impressions, c.clicks = append(c.statDate, statDate), append(c.impressions, r.Impressions), append(c.clicks, r.Clicks)
		c.props, c.topic = append(c.props, string(r.Properties)), append(c.topic, r.Topic)
		c.partition, c.offset, c.ingested = append(c.partition, int32(r.Partition)), append(c.offset, r.Offset), append(c.ingested, s.now)
	}
}

func (c *eventBlock) columns() []any {
	return []any{c.eventID, c.typ, c.occurred, c.source, c.crm, c.anon, c.email, c.campaign, c.channel, c.amount, c.amountOrig,
		c.currency, c.entity, c.stage, c.outcome, c.orderCh, c.platform, c.segment, c.country, c.vendor, c.url, c.referrer,
		c.statDate, c.impressions, c.clicks, c.props, c.topic, c.partition, c.offset, c.ingested}
}

// deadLetterColumns are the columns of dead_letters, in INSERT order.
var deadLetterColumns = []column[DeadLetter]{
	col("reason", func(d *DeadLetter, _ *stamp) string { return string(d.Reason) }),
	col("field", func(d *DeadLetter, _ *stamp) string { return d.Field }),
	col("detail", func(d *DeadLetter, _ *stamp) string { return d.Detail }),
	col("topic", func(d *DeadLetter, _ *stamp) string { return d.Topic }),
	col("partition", func(d *DeadLetter, _ *stamp) int32 { return int32(d.Partition) }),
	col("offset", func(d *DeadLetter, _ *stamp) int64 { return d.Offset }),
	col("message_key", func(d *DeadLetter, _ *stamp) []byte { return d.Key }),
	col("payload", func(d *DeadLetter, s *stamp) []byte { return d.Value[:min(len(d.Value), s.maxPayloadBytes)] }),
	col("payload_bytes", func(d *DeadLetter, _ *stamp) uint32 { return uint32(len(d.Value)) }),
	col("event_type", func(d *DeadLetter, _ *stamp) string { return d.EventType }),
	col("source", func(d *DeadLetter, _ *stamp) string { return d.Source }),
	col("failed_at", func(_ *DeadLetter, s *stamp) time.Time { return s.now }),
}

// duplicateColumns are the columns of duplicates, in INSERT order.
var duplicateColumns = []column[Duplicate]{
	col("event_id", func(d *Duplicate, _ *stamp) string { return d.EventID }),
	col("type", func(d *Duplicate, _ *stamp) string { return string(d.Type) }),
	col("source", func(d *Duplicate, _ *stamp) string { return d.Source }),
	col("topic", func(d *Duplicate, _ *stamp) string { return d.Topic }),
	col("partition", func(d *Duplicate, _ *stamp) int32 { return int32(d.Partition) }),
	col("offset", func(d *Duplicate, _ *stamp) int64 { return d.Offset }),
	col("seen_at", func(_ *Duplicate, s *stamp) time.Time { return s.now }),
}

// column is one column of a table: its name and how to get its value from a row.
type column[R any] struct {
	name   string
	buffer func() columnBuffer[R]
}

// columnBuffer collects one column of a block.
type columnBuffer[R any] interface {
	fill(rows []R, s *stamp) // replaces the content with the column of rows
	values() any             // a slice the driver appends as a whole column
}

func col[R, T any](name string, get func(*R, *stamp) T) column[R] {
	return column[R]{name: name, buffer: func() columnBuffer[R] { return &typedBuffer[R, T]{get: get} }}
}

type typedBuffer[R, T any] struct {
	get func(*R, *stamp) T
	v   []T
}

func (b *typedBuffer[R, T]) fill(rows []R, s *stamp) {
	b.v = b.v[:0]
	for i := range rows {
		b.v = append(b.v, b.get(&rows[i], s))
	}
}

func (b *typedBuffer[R, T]) values() any { return b.v }

// block is the reusable columns of one data block.
type block[R any] interface {
	fill(rows []R, s *stamp)
	columns() []any // in INSERT order
}

// columnBlock is a block made of column descriptors.
type columnBlock[R any] []columnBuffer[R]

func (b columnBlock[R]) fill(rows []R, s *stamp) {
	for _, c := range b {
		c.fill(rows, s)
	}
}

func (b columnBlock[R]) columns() []any {
	out := make([]any, len(b))
	for i, c := range b {
		out[i] = c.values()
	}
	return out
}

// table is an INSERT statement with a reusable block.
type table[R any] struct {
	name    string
	query   string
	columns []string
	block   block[R]
}

func newTable[R any](name string, columns []string, b block[R]) *table[R] {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = "`" + c + "`"
	}
	return &table[R]{name: name, query: "INSERT INTO " + name + " (" + strings.Join(quoted, ", ") + ")", columns: columns, block: b}
}

func newColumnTable[R any](name string, columns []column[R]) *table[R] {
	names := make([]string, len(columns))
	b := make(columnBlock[R], len(columns))
	for i, c := range columns {
		names[i], b[i] = c.name, c.buffer()
	}
	return newTable[R](name, names, b)
}

// insert writes rows in one INSERT, sent in blocks of at most blockRows rows.
func (t *table[R]) insert(ctx context.Context, conn store.Conn, rows []R, s *stamp) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, t.query)
	if err != nil {
		return fmt.Errorf("prepare insert of %d rows into %s: %w", len(rows), t.name, err)
	}
	for from := 0; from < len(rows); from += blockRows {
		to := min(from+blockRows, len(rows))
		t.block.fill(rows[from:to], s)
		for i, values := range t.block.columns() {
			if err := batch.Column(i).Append(values); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("insert %d rows into %s: column %s: %w", len(rows), t.name, t.columns[i], err)
			}
		}
		if to == len(rows) {
			break
		}
		// Send this block; the driver resets its columns, keeping their capacity.
		if err := batch.Flush(); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("insert %d rows into %s: send rows %d-%d: %w", len(rows), t.name, from, to-1, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", len(rows), t.name, err)
	}
	return nil
}
