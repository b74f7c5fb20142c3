package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
)

// Source is a consumer-group member: kafka-go's *kafka.Reader with a GroupID.
type Source interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// Writer stores batches; *ClickHouseWriter is the real one.
type Writer interface {
	InsertEvents(ctx context.Context, rows []Row) error
	InsertDeadLetters(ctx context.Context, dls []DeadLetter) error
	InsertDuplicates(ctx context.Context, dups []Duplicate) error
}

// Publisher sends dead letters to the Kafka dead-letter topics; *KafkaDLQ is the real one.
type Publisher interface {
	Publish(ctx context.Context, dls []DeadLetter) error
}

// Decoder turns a message value into an event or an *events.Error.
type Decoder interface {
	Decode(data []byte) (events.Event, error)
}

// Ingester moves messages from one consumer-group member into ClickHouse.
// Each batch is stored — events, dead letters, duplicates, DLQ topic — before
// the offsets it holds are committed, so a crash at any point re-delivers
// messages instead of losing them, and idempotent storage absorbs the re-delivery.
type Ingester struct {
	cfg     Config
	src     Source
	w       Writer
	dlq     Publisher // nil when the DLQ topics are disabled
	dec     Decoder
	m       *Metrics
	log     *slog.Logger
	seen    *seenSet
	newest  map[string]time.Time // newest stored occurred_at by source
}

// New wires an Ingester. dlq may be nil (DLQ topics disabled).
func New(cfg Config, src Source, w Writer, dlq Publisher, dec Decoder, m *Metrics, logger *slog.Logger) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || w == nil || dec == nil || m == nil || logger == nil {
		return nil, errors.New("ingest.New: source, writer, decoder, metrics and logger are required")
	}
	return &Ingester{cfg: cfg, src: src, w: w, dlq: dlq, dec: dec, m: m, log: logger, seen: newSeenSet(cfg.Dedupe.Window), newest: map[string]time.Time{}}, nil
}

type topicPartition struct {
	topic     string
	partition int
}

// batch is what has been fetched since the last flush.
type batch struct {
	rows     []Row
	dead     []DeadLetter
	dups     []Duplicate
	msgs     int
	bytes    int
	last     map[topicPartition]kafka.Message
	first    map[topicPartition]int64
	outcomes map[[2]string]int
	newest   map[string]time.Time // newest occurred_at by source
}

func newBatch() *batch {
	return &batch{last: map[topicPartition]kafka.Message{}, first: map[topicPartition]int64{}, outcomes: map[[2]string]int{}, newest: map[string]time.Time{}}
}

func (b *batch) reset() {
	b.rows, b.dead, b.dups = b.rows[:0], b.dead[:0], b.dups[:0]
	b.msgs, b.bytes = 0, 0
	clear(b.last)
	clear(b.first)
	clear(b.outcomes)
	clear(b.newest)
}

// Run consumes until ctx is cancelled, then drains: the open batch is stored
// and committed within ShutdownTimeout, and the group is left. It returns nil
// after a clean drain.
func (in *Ingester) Run(ctx context.Context) error {
	// Writes outlive ctx so a SIGTERM never cuts an insert in half; they give
	// up ShutdownTimeout after ctx ends.
	writeCtx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(in.cfg.ShutdownTimeout, cancelWrites) })
	defer stop()

	b := newBatch()
	var (
		batchCtx    context.Context = ctx
		cancelBatch context.CancelFunc
		fetchErrs   int
	)
	for {
		m, err := in.src.FetchMessage(batchCtx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if batchCtx != ctx && batchCtx.Err() != nil { // the batch's max_wait passed
				cancelBatch()
				batchCtx = ctx
				if err := in.flush(writeCtx, b); err != nil {
					return in.closeWith(err)
				}
				continue
			}
			fetchErrs++
			in.log.Error("fetch from Kafka failed; retrying", "err", err, "attempt", fetchErrs)
			if !sleep(ctx, in.backoff(fetchErrs)) {
				break
			}
			continue
		}
		fetchErrs = 0
		if b.msgs == 0 {
			batchCtx, cancelBatch = context.WithTimeout(ctx, in.cfg.Batch.MaxWait)
		}
		in.add(b, m)
		if b.msgs >= in.cfg.Batch.MaxRows || b.bytes >= in.cfg.Batch.MaxBytes {
			cancelBatch()
			batchCtx = ctx
			if err := in.flush(writeCtx, b); err != nil {
				return in.closeWith(err)
			}
		}
	}
	if cancelBatch != nil {
		cancelBatch()
	}
	drained := b.msgs
	if err := in.flush(writeCtx, b); err != nil {
		return in.closeWith(fmt.Errorf("drain on shutdown: %w (the %d uncommitted messages will be re-delivered)", err, drained))
	}
	in.log.Info("ingest stopped cleanly", "drained_messages", drained)
	return in.closeWith(nil)
}

func (in *Ingester) closeWith(err error) error {
	start := time.Now()
	cerr := in.src.Close()
	in.log.Debug("left consumer group", "took", time.Since(start))
	if cerr != nil && err == nil {
		return fmt.Errorf("leave consumer group: %w", cerr)
	}
	return err
}

// add decodes one message into the batch.
func (in *Ingester) add(b *batch, m kafka.Message) {
	tp := topicPartition{m.Topic, m.Partition}
	if _, ok := b.first[tp]; !ok {
		b.first[tp] = m.Offset
	}
	b.last[tp] = m
	b.msgs++
	b.bytes += len(m.Key) + len(m.Value)

	ev, err := in.dec.Decode(m.Value)
	if err != nil {
		var de *events.Error
		if !errors.As(err, &de) {
			de = &events.Error{Reason: events.ReasonInvalidJSON, Detail: err.Error()}
		}
		typ, source := peekTypeSource(m.Value)
		b.dead = append(b.dead, DeadLetter{
			Reason: de.Reason, Field: de.Field, Detail: de.Detail,
			Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
			Key: m.Key, Value: m.Value, Time: m.Time, EventType: typ, Source: source,
		})
		b.outcomes[[2]string{m.Topic, OutcomeInvalid}]++
		return
	}
	if in.seen.add(ev.EventID) {
		b.dups = append(b.dups, Duplicate{EventID: ev.EventID, Type: ev.Type, Source: ev.Source, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
		b.outcomes[[2]string{m.Topic, OutcomeDuplicate}]++
		return
	}
	b.rows = append(b.rows, Row{Event: ev, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
	b.outcomes[[2]string{m.Topic, OutcomeValid}]++
	if ev.OccurredAt.After(b.newest[ev.Source]) {
		b.newest[ev.Source] = ev.OccurredAt
	}
}

// flush stores the batch, then commits its offsets. Store failures are
// retried with backoff until they succeed or ctx ends; nothing is committed
// before everything is stored.
func (in *Ingester) flush(ctx context.Context, b *batch) error {
	if b.msgs == 0 {
		return nil
	}
	where := b.where()
	steps := []struct {
		target, table string
		n             int
		fn            func(context.Context) error
	}{
		{"clickhouse", "events", len(b.rows), func(ctx context.Context) error { return in.w.InsertEvents(ctx, b.rows) }},
		{"clickhouse", "dead_letters", len(b.dead), func(ctx context.Context) error { return in.w.InsertDeadLetters(ctx, b.dead) }},
		{"clickhouse", "duplicates", len(b.dups), func(ctx context.Context) error { return in.w.InsertDuplicates(ctx, b.dups) }},
	}
	if in.dlq != nil {
		steps = append(steps, struct {
			target, table string
			n             int
			fn            func(context.Context) error
		}{"kafka", "dlq", len(b.dead), func(ctx context.Context) error { return in.dlq.Publish(ctx, b.dead) }})
	}
	for _, s := range steps {
		if s.n == 0 {
			continue
		}
		if err := in.retry(ctx, s.target, s.table, s.n, where, s.fn); err != nil {
			return err
		}
	}
	in.commit(ctx, b)

	for k, n := range b.outcomes {
		in.m.Messages.WithLabelValues(k[0], k[1]).Add(float64(n))
	}
	in.logDeadLetters(b.dead)
	for _, d := range b.dead {
		in.m.DeadLetters.WithLabelValues(d.Topic, string(d.Reason)).Inc()
		if in.dlq != nil {
			in.m.DLQWrites.WithLabelValues(d.Topic + in.cfg.DLQ.Suffix).Inc()
		}
	}
	for source, t := range b.newest {
		if t.After(in.newest[source]) {
			in.newest[source] = t
			in.m.LastEventTime.WithLabelValues(source).Set(float64(t.Unix()))
		}
	}
	in.m.BatchRows.Observe(float64(b.msgs))
	in.m.LastIngestTime.SetToCurrentTime()
	in.log.Debug("batch stored and committed", "messages", b.msgs, "events", len(b.rows), "dead_letters", len(b.dead), "duplicates", len(b.dups), "offsets", where)
	b.reset()
	return nil
}

// retry runs fn until it succeeds, backing off exponentially with jitter.
func (in *Ingester) retry(ctx context.Context, target, table string, n int, where string, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := fn(ctx)
		if err == nil {
			in.m.InsertDuration.WithLabelValues(table).Observe(time.Since(start).Seconds())
			if attempt > 1 {
				in.log.Info("write recovered", "target", target, "table", table, "rows", n, "attempts", attempt)
			}
			return nil
		}
		if target == "clickhouse" {
			in.m.InsertErrors.WithLabelValues(table).Inc()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write %d rows to %s %s (%s): %w", n, target, table, where, err)
		}
		wait := in.backoff(attempt)
		in.log.Warn("write failed; offsets stay uncommitted, retrying", "target", target, "table", table, "rows", n,
			"offsets", where, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		in.m.Retries.WithLabelValues(target).Inc()
		if !sleep(ctx, wait) {
			return fmt.Errorf("write %d rows to %s %s (%s): gave up on shutdown: %w", n, target, table, where, err)
		}
	}
}

// commit commits the last offset of every partition in the batch. A failed
// commit (say, after a rebalance moved the partition) is logged and left:
// the new owner re-reads those messages and storage deduplicates them.
func (in *Ingester) commit(ctx context.Context, b *batch) {
	msgs := make([]kafka.Message, 0, len(b.last))
	for _, m := range b.last {
		msgs = append(msgs, m)
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = in.src.CommitMessages(ctx, msgs...); err == nil {
			in.m.Commits.Inc()
			return
		}
		if !sleep(ctx, in.backoff(attempt)) {
			break
		}
	}
	in.m.CommitErrors.Inc()
	in.log.Warn("offset commit failed; the stored messages will be re-delivered and deduplicated", "offsets", b.where(), "err", err)
}

// logDeadLetters logs the first dead letter of each reason in a batch, with a count.
func (in *Ingester) logDeadLetters(dls []DeadLetter) {
	first := map[events.Reason]int{}
	count := map[events.Reason]int{}
	for i, d := range dls {
		if _, ok := first[d.Reason]; !ok {
			first[d.Reason] = i
		}
		count[d.Reason]++
	}
	for r, i := range first {
		d := dls[i]
		in.log.Warn("dead-lettered invalid message", "topic", d.Topic, "partition", d.Partition, "offset", d.Offset,
			"reason", r, "field", d.Field, "detail", d.Detail, "same_reason_in_batch", count[r],
			"next", "stored in dead_letters and "+d.Topic+in.cfg.DLQ.Suffix+"; fix the producer, then replay")
	}
}

// peekTypeSource pulls type and source out of an invalid message, best effort, for dead_letters.
func peekTypeSource(value []byte) (typ, source string) {
	var v struct {
		Type   any `json:"type"`
		Source any `json:"source"`
	}
	if json.Unmarshal(value, &v) != nil {
		return "", ""
	}
	typ, _ = v.Type.(string)
	source, _ = v.Source.(string)
	return truncate(typ, 64), truncate(source, 64)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// where says which offsets a batch holds, for logs: topic/partition:first-last, ….
func (b *batch) where() string {
	tps := make([]topicPartition, 0, len(b.last))
	for tp := range b.last {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].topic != tps[j].topic {
			return tps[i].topic < tps[j].topic
		}
		return tps[i].partition < tps[j].partition
	})
	s := ""
	for i, tp := range tps {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s/%d:%d-%d", tp.topic, tp.partition, b.first[tp], b.last[tp].Offset)
	}
	return s
}

func (in *Ingester) backoff(attempt int) time.Duration {
	d := in.cfg.Retry.InitialBackoff << min(attempt-1, 20)
	if d > in.cfg.Retry.MaxBackoff || d <= 0 {
		d = in.cfg.Retry.MaxBackoff
	}
	// Full jitter on the upper half keeps several ingest processes from retrying in step.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
