package ingest

import (
	"context"
	"fmt"
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
	Key       []byte
	Value     []byte
	Time      time.Time // the message's Kafka timestamp
	EventType string    // best effort, from the payload
	Source    string    // best effort, from the payload
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
// tables with columnar inserts that name every column. Each insert is one
// block, so a retried insert is either wholly there or wholly absent, and the
// ReplacingMergeTree keys make a repeated one harmless.
type ClickHouseWriter struct {
	conn            store.Conn
	maxPayloadBytes int
	now             func() time.Time
}

// NewClickHouseWriter returns a writer over conn; maxPayloadBytes truncates dead-letter payloads.
func NewClickHouseWriter(conn store.Conn, maxPayloadBytes int) *ClickHouseWriter {
	return &ClickHouseWriter{conn: conn, maxPayloadBytes: maxPayloadBytes, now: time.Now}
}

// WithClock sets the clock that stamps ingested_at, failed_at and seen_at;
// tests use it to place a fixture in time.
func (w *ClickHouseWriter) WithClock(now func() time.Time) *ClickHouseWriter {
	w.now = now
	return w
}

const insertEvents = `INSERT INTO events (event_id, type, occurred_at, source, crm_contact_id, anonymous_id, email_hash,
 campaign_id, channel, amount, amount_original, currency, entity_id, stage, outcome, order_channel, platform,
 segment, country, vendor, url, referrer, stat_date, impressions, clicks, properties, topic, ` + "`partition`, `offset`" + `, ingested_at)`

// InsertEvents writes rows to events in one block.
func (w *ClickHouseWriter) InsertEvents(ctx context.Context, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	var (
		eventID, typ, source, crm, anon, email, campaign, channel = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		currency, entity, stage, outcome, orderCh, platform      = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		segment, country, vendor, url, referrer, props, topic    = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		occurred, statDate, ingested                             = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		amount, amountOrig                                       = make([]float64, n), make([]float64, n)
		impressions, clicks                                      = make([]uint64, n), make([]uint64, n)
		partition                                                = make([]int32, n)
		offset                                                   = make([]int64, n)
	)
	now := w.now().UTC()
	for i := range rows {
		r := &rows[i]
		eventID[i], typ[i], occurred[i], source[i] = r.EventID, string(r.Type), r.OccurredAt, r.Source
		crm[i], anon[i], email[i] = r.CRMContactID, r.AnonymousID, r.EmailHash
		campaign[i], channel[i] = r.CampaignID, r.Channel
		amount[i], amountOrig[i], currency[i], entity[i] = r.Amount, r.AmountOriginal, r.Currency, r.EntityID
		stage[i], outcome[i], orderCh[i], platform[i] = r.Stage, r.Outcome, r.OrderChannel, r.Platform
		segment[i], country[i], vendor[i], url[i], referrer[i] = r.Segment, r.Country, r.Vendor, r.URL, r.Referrer
		statDate[i], impressions[i], clicks[i] = r.StatDate, r.Impressions, r.Clicks
		props[i], topic[i], partition[i], offset[i], ingested[i] = string(r.Properties), r.Topic, int32(r.Partition), r.Offset, now
		if statDate[i].IsZero() {
			statDate[i] = time.Unix(0, 0).UTC()
		}
	}
	return w.sendColumns(ctx, "events", insertEvents, n,
		eventID, typ, occurred, source, crm, anon, email, campaign, channel, amount, amountOrig, currency, entity,
		stage, outcome, orderCh, platform, segment, country, vendor, url, referrer, statDate, impressions, clicks,
		props, topic, partition, offset, ingested)
}

const insertDeadLetters = `INSERT INTO dead_letters (reason, field, detail, topic, ` + "`partition`, `offset`" + `, message_key,
 payload, payload_bytes, event_type, source, failed_at)`

// InsertDeadLetters writes dead letters with truncated payloads in one block.
func (w *ClickHouseWriter) InsertDeadLetters(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	n := len(dls)
	reason, field, detail, topic, key, payload, typ, source := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	partition, offset, size, failed := make([]int32, n), make([]int64, n), make([]uint32, n), make([]time.Time, n)
	now := w.now().UTC()
	for i, d := range dls {
		reason[i], field[i], detail[i], topic[i] = string(d.Reason), d.Field, d.Detail, d.Topic
		partition[i], offset[i], key[i] = int32(d.Partition), d.Offset, string(d.Key)
		p := d.Value
		if len(p) > w.maxPayloadBytes {
			p = p[:w.maxPayloadBytes]
		}
		payload[i], size[i], typ[i], source[i], failed[i] = string(p), uint32(len(d.Value)), d.EventType, d.Source, now
	}
	return w.sendColumns(ctx, "dead_letters", insertDeadLetters, n,
		reason, field, detail, topic, partition, offset, key, payload, size, typ, source, failed)
}

const insertDuplicates = "INSERT INTO duplicates (event_id, type, source, topic, `partition`, `offset`, seen_at)"

// InsertDuplicates records re-sent events that were not written again.
func (w *ClickHouseWriter) InsertDuplicates(ctx context.Context, dups []Duplicate) error {
	if len(dups) == 0 {
		return nil
	}
	n := len(dups)
	id, typ, source, topic := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	partition, offset, seen := make([]int32, n), make([]int64, n), make([]time.Time, n)
	now := w.now().UTC()
	for i, d := range dups {
		id[i], typ[i], source[i], topic[i] = d.EventID, string(d.Type), d.Source, d.Topic
		partition[i], offset[i], seen[i] = int32(d.Partition), d.Offset, now
	}
	return w.sendColumns(ctx, "duplicates", insertDuplicates, n, id, typ, source, topic, partition, offset, seen)
}

// sendColumns appends whole columns to one prepared batch and sends it.
func (w *ClickHouseWriter) sendColumns(ctx context.Context, table, query string, rows int, cols ...any) error {
	batch, err := w.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("prepare insert of %d rows into %s: %w", rows, table, err)
	}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("insert %d rows into %s: column %d: %w", rows, table, i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", rows, table, err)
	}
	return nil
}
