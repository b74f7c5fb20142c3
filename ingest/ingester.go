package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/internal/lograte"
	"github.com/kpibridge/kpibridge/store"
)

// Source is a consumer-group member; *KafkaSource is the real one.
type Source interface {
	// Fetch returns the next message and the group generation it was fetched in.
	Fetch(ctx context.Context) (kafka.Message, int32, error)
	// Commit commits offsets (the next offset to read, by topic and
	// partition) of messages fetched in generation gen, or returns
	// ErrGenerationEnded when a rebalance has ended gen (and its grace).
	Commit(ctx context.Context, gen int32, offsets map[string]map[int]int64) error
	// Close leaves the group.
	Close() error
}

// Writer stores batches; *ClickHouseWriter is the real one. The Ingester
// calls its three methods concurrently, never one method concurrently with itself.
type Writer interface {
	InsertEvents(ctx context.Context, rows []Row) error
	InsertDeadLetters(ctx context.Context, dls []DeadLetter) error
	InsertDuplicates(ctx context.Context, dups []Duplicate) error
}

// Publisher sends dead letters to the Kafka dead-letter topics; *KafkaDLQ is the real one.
type Publisher interface {
	Publish(ctx context.Context, dls []DeadLetter) error
}

// Decoder turns a message value into an event or an *events.Error, and
// redacts the email addresses of a message that is kept as received (a
// dead letter); *events.Decoder is the real one.
type Decoder interface {
	Decode(data []byte) (events.Event, error)
	Redact(data []byte) []byte
}

// Ingester moves messages from one consumer-group member into ClickHouse.
// Each batch is stored — events, dead letters, duplicates, DLQ topic — before
// the offsets it holds are committed, so a crash at any point re-delivers
// messages instead of losing them, and idempotent storage absorbs the re-delivery.
//
// Two stages run at once: one goroutine fetches and decodes the next batch
// while another stores the previous one and commits its offsets. Batches are
// stored and committed in the order they were fetched, and at most two exist
// (one filling, one storing), so memory is bounded by backpressure: while a
// batch is being stored, the next one fills up and then waits, and so does
// the Kafka reader behind it.
type Ingester struct {
	cfg  Config
	src  Source
	w    Writer
	dlq  Publisher // nil when the DLQ topics are disabled
	dec  Decoder
	m    *Metrics
	log  *slog.Logger
	seen *seenSet // used by the fetching stage only
	// fetchLog writes a failing fetch once a minute, with a count.
	fetchLog *lograte.Limiter
	newest   map[string]time.Time // newest stored occurred_at by source; storing stage only

	mu       sync.Mutex
	problems map[string]string // why the process is not ready, by target; see Health
}

// Health is nil while ingest works as it should, else why not: ClickHouse
// refuses its writes for a reason no retry fixes (the schema, a column's
// type, the user's grants), or a DLQ topic refuses dead letters. Readiness
// (/-/ready) reports it; it clears with the next write that succeeds.
func (in *Ingester) Health() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(in.problems)) {
		errs = append(errs, errors.New(in.problems[k]))
	}
	return errors.Join(errs...)
}

func (in *Ingester) setProblem(target, problem string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if problem == "" {
		delete(in.problems, target)
		return
	}
	in.problems[target] = problem
}

// dlqUnwritable: the DLQ topic refused a batch's dead letters past
// dlq.max_wait, or for good; the batch is committed without them.
type dlqUnwritable struct{ err error }

func (e *dlqUnwritable) Error() string { return e.err.Error() }
func (e *dlqUnwritable) Unwrap() error { return e.err }

// New wires an Ingester. dlq may be nil (DLQ topics disabled).
func New(cfg Config, src Source, w Writer, dlq Publisher, dec Decoder, m *Metrics, logger *slog.Logger) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil || w == nil || dec == nil || m == nil || logger == nil {
		return nil, errors.New("ingest.New: source, writer, decoder, metrics and logger are required")
	}
	return &Ingester{cfg: cfg, src: src, w: w, dlq: dlq, dec: dec, m: m, log: logger, seen: newSeenSet(cfg.Dedupe.Window), newest: map[string]time.Time{},
		fetchLog: lograte.New(logger, time.Minute), problems: map[string]string{}}, nil
}

// topicSeed hashes topic names for partitionSpan.place.
var topicSeed = maphash.MakeSeed()

// partitionSpan is what a batch holds of one partition from one group generation.
type partitionSpan struct {
	topic                 string
	partition             int
	gen                   int32
	first, last           int64  // offsets
	topicHash             uint64 // of topic, for place
	valid, invalid, dupes int
}

// place is a 32-bit hash of where the message at offset is: the dedupe
// memory tells a re-delivery (read again at the same place) from a re-send.
func (s *partitionSpan) place(offset int64) uint32 {
	return uint32((s.topicHash ^ uint64(s.partition)<<48 ^ uint64(offset)) * 0x9E3779B97F4A7C15 >> 32)
}

// sourceTime is the newest occurred_at of one source in a batch.
type sourceTime struct {
	source string
	t      time.Time
}

// batch is what has been fetched since the last hand-over to the storing stage.
type batch struct {
	rows   []Row
	dead   []DeadLetter
	dups   []Duplicate
	msgs   int
	bytes  int
	spans  []partitionSpan // a handful: the partitions this member owns
	cur    int             // index in spans of the last message's partition
	newest []sourceTime    // a handful: the producing systems
}

func newBatch(maxRows int) *batch {
	// Room for a whole batch up front: growing a slice of 50 000 rows of
	// ~500 bytes costs copies and page faults on every first batch.
	return &batch{rows: make([]Row, 0, min(maxRows, 1<<16))}
}

func (b *batch) reset() {
	clear(b.rows) // drop references to decoded strings before reuse
	clear(b.dead)
	b.rows, b.dead, b.dups = b.rows[:0], b.dead[:0], b.dups[:0]
	b.msgs, b.bytes, b.cur = 0, 0, 0
	b.spans, b.newest = b.spans[:0], b.newest[:0]
}

// span returns the batch's span of m's partition and generation, adding it if new.
func (b *batch) span(m *kafka.Message, gen int32) *partitionSpan {
	if b.cur < len(b.spans) {
		if s := &b.spans[b.cur]; s.partition == m.Partition && s.gen == gen && s.topic == m.Topic {
			return s
		}
	}
	for i := range b.spans {
		if s := &b.spans[i]; s.partition == m.Partition && s.gen == gen && s.topic == m.Topic {
			b.cur = i
			return s
		}
	}
	b.spans = append(b.spans, partitionSpan{topic: m.Topic, partition: m.Partition, gen: gen, first: m.Offset, last: m.Offset,
		topicHash: maphash.String(topicSeed, m.Topic)})
	b.cur = len(b.spans) - 1
	return &b.spans[b.cur]
}

func (b *batch) observe(source string, t time.Time) {
	for i := range b.newest {
		if b.newest[i].source == source {
			if t.After(b.newest[i].t) {
				b.newest[i].t = t
			}
			return
		}
	}
	b.newest = append(b.newest, sourceTime{source, t})
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

	// The storing stage: stores and commits batches in hand-over order and
	// gives each back for reuse. It stops at the first batch it cannot store,
	// which happens only when writeCtx ends.
	full := make(chan *batch)
	free := make(chan *batch, 2)
	free <- newBatch(in.cfg.Batch.MaxRows)
	free <- newBatch(in.cfg.Batch.MaxRows)
	storeDone := make(chan struct{})
	var storeErr error
	go func() {
		defer close(storeDone)
		for b := range full {
			if err := in.flush(writeCtx, b); err != nil {
				storeErr = err
				return
			}
			free <- b
		}
	}()
	// handOver passes a non-empty batch to the storing stage and returns the
	// next one to fill, or nil when the storing stage has stopped.
	handOver := func(b *batch) *batch {
		if b.msgs == 0 {
			return b
		}
		select {
		case full <- b:
		case <-storeDone:
			return nil
		}
		select {
		case b = <-free:
			return b
		case <-storeDone:
			return nil
		}
	}

	b := <-free
	var (
		batchCtx                       = ctx
		cancelBatch context.CancelFunc = func() {}
		fetchErrs   int
	)
	for b != nil {
		m, gen, err := in.src.Fetch(batchCtx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if batchCtx != ctx && batchCtx.Err() != nil { // the batch's max_wait passed
				cancelBatch()
				batchCtx = ctx
				b = handOver(b)
				continue
			}
			fetchErrs++
			in.fetchLog.Log(slog.LevelError, "fetch", "fetch from Kafka failed; retrying", "err", err, "attempt", fetchErrs)
			if !sleep(ctx, in.backoff(fetchErrs)) {
				break
			}
			continue
		}
		fetchErrs = 0
		if b.msgs == 0 {
			batchCtx, cancelBatch = context.WithTimeout(ctx, in.cfg.Batch.MaxWait)
		}
		in.add(b, &m, gen)
		if b.msgs >= in.cfg.Batch.MaxRows || b.bytes >= in.cfg.Batch.MaxBytes {
			cancelBatch()
			batchCtx = ctx
			b = handOver(b)
		}
	}
	cancelBatch()
	drained := 0
	if b != nil {
		drained = b.msgs
		handOver(b)
	}
	close(full)
	<-storeDone
	if storeErr != nil {
		return in.closeWith(fmt.Errorf("drain on shutdown: %w (uncommitted messages will be re-delivered)", storeErr))
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

// add decodes one message of generation gen into the batch.
func (in *Ingester) add(b *batch, m *kafka.Message, gen int32) {
	s := b.span(m, gen)
	s.last = m.Offset
	b.msgs++
	b.bytes += len(m.Key) + len(m.Value)

	ev, err := in.dec.Decode(m.Value)
	if err != nil {
		var de *events.Error
		if !errors.As(err, &de) {
			de = &events.Error{Reason: events.ReasonInvalidJSON, Detail: err.Error()}
		}
		// No raw email address is stored or forwarded: the key and value
		// are kept with every address in its redacted form.
		key, value := in.dec.Redact(m.Key), in.dec.Redact(m.Value)
		typ, source := peekTypeSource(value)
		dl := DeadLetter{
			Reason: de.Reason, Field: de.Field, Detail: de.Detail,
			Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
			Key: key, Value: value, Time: m.Time, EventType: typ, Source: source,
		}
		if in.cfg.DLQ.KeepOriginal {
			dl.Unredacted = &RawMessage{Key: m.Key, Value: m.Value}
		}
		b.dead = append(b.dead, dl)
		s.invalid++
		return
	}
	// A report re-sent with new figures is a correction, not a duplicate:
	// its content is part of what was seen (events.Correctable).
	key := ev.EventID
	if events.Correctable(ev.Type) {
		key = ev.EventID + "\x00" + string(m.Value)
	}
	seen, again := in.seen.add(key, s.place(m.Offset))
	if again {
		// Read again at the same place, from the last commit after a
		// rebalance gave the partition back: its first read is stored (or
		// being stored) already, as an event or a duplicate. Writing it
		// again could put an old version after its correction.
		return
	}
	if seen {
		b.dups = append(b.dups, Duplicate{EventID: ev.EventID, Type: ev.Type, Source: ev.Source, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
		s.dupes++
		return
	}
	b.rows = append(b.rows, Row{Event: ev, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset})
	s.valid++
	b.observe(ev.Source, ev.OccurredAt)
}

// flush stores the batch, then commits its offsets. The four writes run
// at once, each retried with backoff until it succeeds or ctx ends; nothing
// is committed before all of them succeeded.
func (in *Ingester) flush(ctx context.Context, b *batch) error {
	if b.msgs == 0 {
		return nil
	}
	where := b.where()
	type step struct {
		target, table string
		n             int
		fn            func(context.Context) error
	}
	steps := []step{
		{"clickhouse", "events", len(b.rows), func(ctx context.Context) error { return in.w.InsertEvents(ctx, b.rows) }},
		{"clickhouse", "dead_letters", len(b.dead), func(ctx context.Context) error { return in.w.InsertDeadLetters(ctx, b.dead) }},
		{"clickhouse", "duplicates", len(b.dups), func(ctx context.Context) error { return in.w.InsertDuplicates(ctx, b.dups) }},
	}
	if in.dlq != nil {
		steps = append(steps, step{"kafka", "dlq", len(b.dead), func(ctx context.Context) error { return in.dlq.Publish(ctx, b.dead) }})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(steps))
	for i, s := range steps {
		if s.n == 0 {
			continue
		}
		wg.Go(func() { errs[i] = in.retry(ctx, s.target, s.table, s.n, where, s.fn) })
	}
	wg.Wait()
	dlqFailed := false
	for i, err := range errs {
		var unwritable *dlqUnwritable
		if errors.As(err, &unwritable) {
			// Stalling every partition behind a topic that refuses is worse
			// than a DLQ topic missing a few messages dead_letters holds.
			errs[i], dlqFailed = nil, true
			topics := map[string]int{}
			for _, d := range b.dead {
				topics[d.Topic+in.cfg.DLQ.Suffix]++
			}
			for t, n := range topics {
				in.m.DLQFailures.WithLabelValues(t).Add(float64(n))
			}
			in.log.Error("dead-letter topic refuses the batch's dead letters; committing without them: they stay in ClickHouse dead_letters only",
				"dead_letters", len(b.dead), "offsets", where, "err", unwritable.err,
				"next", "fix the topic (create it, grant WRITE, raise max.message.bytes or lower ingest.dlq.max_message_bytes)")
			in.setProblem("kafka", fmt.Sprintf("dead-letter topic unwritable (%v): %d dead letters kept in ClickHouse dead_letters only", unwritable.err, len(b.dead)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if in.dlq != nil && len(b.dead) > 0 && !dlqFailed {
		in.setProblem("kafka", "")
	}
	in.commit(ctx, b, where)

	for _, s := range b.spans {
		in.m.Messages.WithLabelValues(s.topic, OutcomeValid).Add(float64(s.valid))
		in.m.Messages.WithLabelValues(s.topic, OutcomeInvalid).Add(float64(s.invalid))
		in.m.Messages.WithLabelValues(s.topic, OutcomeDuplicate).Add(float64(s.dupes))
	}
	in.logDeadLetters(b.dead)
	for _, d := range b.dead {
		in.m.DeadLetters.WithLabelValues(d.Topic, string(d.Reason)).Inc()
		if in.dlq != nil && !dlqFailed {
			in.m.DLQWrites.WithLabelValues(d.Topic + in.cfg.DLQ.Suffix).Inc()
		}
	}
	for _, st := range b.newest {
		if st.t.After(in.newest[st.source]) {
			in.newest[st.source] = st.t
			in.m.LastEventTime.WithLabelValues(st.source).Set(float64(st.t.Unix()))
		}
	}
	in.m.BatchRows.Observe(float64(b.msgs))
	in.m.LastIngestTime.SetToCurrentTime()
	in.log.Debug("batch stored and committed", "messages", b.msgs, "events", len(b.rows), "dead_letters", len(b.dead), "duplicates", len(b.dups), "offsets", where)
	b.reset()
	return nil
}

// retry runs fn until it succeeds, backing off exponentially with jitter.
//
// A ClickHouse error no retry fixes (store.Permanent) is logged as an
// error with what to do and makes the process not ready, and is still
// retried: once the schema or grants are fixed, ingest resumes by itself.
// A DLQ publish gives up after dlq.max_wait, or at once when the topic
// refuses for good (a *dlqUnwritable).
func (in *Ingester) retry(ctx context.Context, target, table string, n int, where string, fn func(context.Context) error) error {
	first := time.Now()
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := fn(ctx)
		if err == nil {
			in.m.InsertDuration.WithLabelValues(table).Observe(time.Since(start).Seconds())
			if attempt > 1 {
				in.log.Info("write recovered", "target", target, "table", table, "rows", n, "attempts", attempt)
				if target == "clickhouse" {
					in.setProblem(target+" "+table, "")
				}
			}
			return nil
		}
		if target == "clickhouse" {
			in.m.InsertErrors.WithLabelValues(table).Inc()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write %d rows to %s %s (%s): %w", n, target, table, where, err)
		}
		if target == "kafka" && (PermanentDLQError(err) || time.Since(first) >= in.cfg.DLQ.MaxWait) {
			return &dlqUnwritable{err}
		}
		wait := in.backoff(attempt)
		if hint, ok := store.Permanent(err); ok && target == "clickhouse" {
			in.setProblem(target+" "+table, fmt.Sprintf("ClickHouse refuses writes to %s: %v: %s", table, err, hint))
			in.log.Error("ClickHouse refuses the write for a reason retrying cannot fix; offsets stay uncommitted, retrying until it is fixed",
				"table", table, "rows", n, "offsets", where, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err, "fix", hint)
			in.m.Retries.WithLabelValues(target).Inc()
			if !sleep(ctx, wait) {
				return fmt.Errorf("write %d rows to %s %s (%s): gave up on shutdown: %w", n, target, table, where, err)
			}
			continue
		}
		in.log.Warn("write failed; offsets stay uncommitted, retrying", "target", target, "table", table, "rows", n,
			"offsets", where, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		in.m.Retries.WithLabelValues(target).Inc()
		if !sleep(ctx, wait) {
			return fmt.Errorf("write %d rows to %s %s (%s): gave up on shutdown: %w", n, target, table, where, err)
		}
	}
}

// commit commits the offsets after every partition in the batch, with the
// generation each was fetched in. Offsets of a generation a rebalance has
// ended are committed only within the source's grace, before the next
// generation forms; after it they are not: the partition's owner now (this
// process or another) reads on from the last commit, and a commit behind
// its own would move the group back. A failed commit is logged and left: the
// messages are stored, and re-delivering them is harmless.
func (in *Ingester) commit(ctx context.Context, b *batch, where string) {
	byGen := map[int32]map[string]map[int]int64{}
	for _, s := range b.spans {
		if byGen[s.gen] == nil {
			byGen[s.gen] = map[string]map[int]int64{}
		}
		if byGen[s.gen][s.topic] == nil {
			byGen[s.gen][s.topic] = map[int]int64{}
		}
		byGen[s.gen][s.topic][s.partition] = s.last + 1
	}
	for _, gen := range slices.Sorted(maps.Keys(byGen)) {
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			if err = in.src.Commit(ctx, gen, byGen[gen]); err == nil || errors.Is(err, ErrGenerationEnded) {
				break
			}
			if !sleep(ctx, in.backoff(attempt)) {
				break
			}
		}
		switch {
		case err == nil:
			in.m.Commits.Inc()
		case errors.Is(err, ErrGenerationEnded):
			in.m.CommitsSkipped.Inc()
			in.log.Info("offsets fetched before a rebalance not committed; the partitions' owners read on from the last commit",
				"offsets", b.where(gen), "generation", gen)
		default:
			in.m.CommitErrors.Inc()
			in.log.Warn("offset commit failed; the stored messages will be re-delivered and deduplicated", "offsets", where, "err", err)
		}
	}
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

// where says which offsets a batch holds, for logs: topic/partition:first-last, …;
// only those fetched in the given generations, if any are given.
func (b *batch) where(gens ...int32) string {
	var spans []partitionSpan
	for _, s := range b.spans {
		if len(gens) == 0 || slices.Contains(gens, s.gen) {
			spans = append(spans, s)
		}
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].topic != spans[j].topic {
			return spans[i].topic < spans[j].topic
		}
		return spans[i].partition < spans[j].partition
	})
	var s strings.Builder
	for i, sp := range spans {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "%s/%d:%d-%d", sp.topic, sp.partition, sp.first, sp.last)
	}
	return s.String()
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
