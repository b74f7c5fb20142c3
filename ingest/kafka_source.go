package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/internal/lograte"
)

// ErrGenerationEnded: offsets fetched in a consumer-group generation that
// has ended were not committed. A rebalance may have given their
// partitions to another member, which reads on from the last commit; a
// commit now could land behind that member's and move the group back.
var ErrGenerationEnded = errors.New("the consumer-group generation these messages were fetched in has ended")

// SourceConfig says how to join the ingest consumer group.
type SourceConfig struct {
	Brokers []string
	Topics  []string
	GroupID string
	// SessionTimeout (ingest.session_timeout) is how long a member that
	// stopped heartbeating (killed, hung, cut off) keeps its partitions
	// before the group hands them to another: the failover time after a kill -9.
	SessionTimeout time.Duration
	Security       *kafkaconn.Security // nil: plain text
	Logger         *slog.Logger
	Metrics        *Metrics // nil: not instrumented
}

// KafkaSource is a member of the ingest consumer group. It is built on
// kafka-go's ConsumerGroup rather than its group Reader because the Reader
// commits every offset with the current generation: a batch fetched
// before a rebalance and committed after it overwrote the commit of the
// partition's new owner, moving the group's offsets back. Here each
// message carries the generation it was fetched in, and Commit refuses
// offsets of an ended generation (ErrGenerationEnded); Kafka's own
// generation check backs that up at the broker.
//
// Each assigned partition has its own kafka-go Reader, started at the
// group's committed offset (or the earliest one for a new group, so
// nothing produced before the first start is skipped), and stopped with
// the generation. Messages still queued from an ended generation are
// dropped: their partition's owner in the new generation reads them again.
//
// When a rebalance ends a generation, the member still takes that
// generation's commits for a short grace (commitGrace) before it joins
// the next one, until every message it fetched is committed. The broker
// accepts them, as the group is only preparing its rebalance and no
// partition has a new owner yet; the others wait for this member to join.
// So a rebalance no longer leaves the batches being stored uncommitted,
// to be read again, and members coming and going cannot starve the group.
type KafkaSource struct {
	cfg       SourceConfig
	cg        *kafka.ConsumerGroup
	msgs      chan fetched
	commits   chan commitRequest
	gen       atomic.Pointer[generation] // the newest generation; nil before the first
	grace     time.Duration
	closing   chan struct{} // closed when Close starts: no more commits come
	closeOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
	log       *slog.Logger
	errLog    *lograte.Limiter
}

// generation is what the source tracks of one consumer-group generation:
// by partition, the offset after the newest message Fetch returned and the
// offset committed.
type generation struct {
	id        int32
	mu        sync.Mutex
	ended     bool // a rebalance ended it: Fetch returns none of its messages
	closed    bool // its commit grace is over: Commit refuses its offsets
	fetched   map[topicPartition]int64
	committed map[topicPartition]int64
}

type topicPartition struct {
	topic     string
	partition int
}

// uncommitted is how many partitions have fetched messages not committed.
func (g *generation) uncommitted() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for tp, off := range g.fetched {
		if g.committed[tp] < off {
			n++
		}
	}
	return n
}

// fetched is one message, or a partition reader's error, from a generation.
type fetched struct {
	m   kafka.Message
	gen int32
	err error
}

type commitRequest struct {
	gen     int32
	offsets map[string]map[int]int64
	errc    chan error
}

// NewKafkaSource joins the consumer group; partitions arrive once the
// group has balanced.
//
// Fetches return as soon as a partition has data (MinBytes 1) and at most
// 4 MiB; MaxWait is also kafka-go's read deadline for a fetch response, and
// at 250 ms a busy broker answering a dozen partitions at once missed it,
// which showed as "i/o timeout" warnings and reconnects on every start.
func NewKafkaSource(cfg SourceConfig) (*KafkaSource, error) {
	lim := lograte.New(cfg.Logger, time.Minute)
	// While Kafka is unreachable kafka-go reports every retry: one line per
	// kind of failure a minute, with a count, is enough.
	errorLogger := kafka.LoggerFunc(func(msg string, args ...any) {
		lim.Log(slog.LevelWarn, msg, "kafka consumer", "detail", fmt.Sprintf(msg, args...))
	})
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     cfg.GroupID,
		Brokers:                cfg.Brokers,
		Dialer:                 cfg.Security.Dialer(),
		Topics:                 cfg.Topics,
		HeartbeatInterval:      min(3*time.Second, cfg.SessionTimeout/3),
		SessionTimeout:         cfg.SessionTimeout,
		RebalanceTimeout:       30 * time.Second,
		JoinGroupBackoff:       2 * time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 10 * time.Second,
		StartOffset:            kafka.FirstOffset,
		ErrorLogger:            errorLogger,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka consumer group %s: %w", cfg.GroupID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &KafkaSource{cfg: cfg, cg: cg, msgs: make(chan fetched, 1024), commits: make(chan commitRequest),
		grace: commitGrace(cfg.SessionTimeout), closing: make(chan struct{}),
		cancel: cancel, done: make(chan struct{}), log: cfg.Logger, errLog: lim}
	go s.run(ctx, errorLogger)
	return s, nil
}

// commitGrace is how long a member that a rebalance stopped waits for the
// commits of what it fetched before it joins the next generation: a third
// of the session timeout, as it sends no heartbeats meanwhile (each commit
// renews its session), and at most 10 s, as the other members wait too.
func commitGrace(session time.Duration) time.Duration {
	return min(session/3, 10*time.Second)
}

// run follows the group from generation to generation until Close.
func (s *KafkaSource) run(ctx context.Context, errorLogger kafka.Logger) {
	defer close(s.done)
	for {
		gen, err := s.cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			// kafka-go backs off before it tries to join again.
			s.errLog.Log(slog.LevelWarn, "join", "joining the ingest consumer group failed; retrying", "group", s.cfg.GroupID, "err", err)
			continue
		}
		s.startGeneration(gen, errorLogger)
	}
}

func (s *KafkaSource) startGeneration(gen *kafka.Generation, errorLogger kafka.Logger) {
	var assigned []string
	n := 0
	s.clearAssigned()
	for topic, parts := range gen.Assignments {
		ids := make([]string, len(parts))
		for i, p := range parts {
			ids[i] = fmt.Sprint(p.ID)
		}
		sort.Strings(ids)
		if len(ids) == 0 {
			ids = []string{"none"}
		}
		assigned = append(assigned, topic+"/"+strings.Join(ids, ","))
		n += len(parts)
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Assigned.WithLabelValues(topic).Set(float64(len(parts)))
		}
	}
	sort.Strings(assigned)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Rebalances.Inc()
	}
	s.log.Info("consumer group balanced", "group", s.cfg.GroupID, "generation", gen.ID, "partitions", strings.Join(assigned, " "))
	g := &generation{id: gen.ID, fetched: map[topicPartition]int64{}, committed: map[topicPartition]int64{}}
	s.gen.Store(g)

	// Commits of this generation go through this routine, so the group does
	// not move to the next generation while one is in flight, nor before
	// the grace for those fetched in it is over.
	gen.Start(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				s.endGeneration(gen, g)
				return
			case req := <-s.commits:
				_ = s.commitTo(gen, g, req)
			}
		}
	})
	queue := max(100, 10000/max(n, 1)) // about 10,000 messages queued in all
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			gen.Start(func(ctx context.Context) {
				s.readPartition(ctx, gen.ID, topic, p.ID, p.Offset, queue, errorLogger)
			})
		}
	}
}

// endGeneration stops Fetch returning messages of gen, then takes gen's
// commits until all it fetched is committed, commitGrace passes or Close
// starts.
func (s *KafkaSource) endGeneration(gen *kafka.Generation, g *generation) {
	// Under g.mu, so Fetch records nothing of g once the grace counts
	// what is left.
	g.set(&g.ended)
	defer g.set(&g.closed)
	s.clearAssigned()
	start := time.Now()
	deadline := time.NewTimer(s.grace)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n := g.uncommitted(); n > 0; n = g.uncommitted() {
		select {
		case req := <-s.commits:
			if err := s.commitTo(gen, g, req); errors.Is(err, ErrGenerationEnded) {
				// The broker says the group has moved on: no commit of g can land.
				s.log.Info("rebalance: the broker refused the offsets fetched before it; joining the next generation without them",
					"generation", g.id, "err", err)
				return
			}
		case <-tick.C:
		case <-deadline.C:
			s.log.Info("rebalance: offsets fetched before it still not committed; joining the next generation without them",
				"generation", g.id, "partitions", n, "waited", s.grace)
			return
		case <-s.closing:
			return
		}
	}
	s.log.Debug("rebalance: every offset fetched before it committed", "generation", g.id, "took", time.Since(start))
}

// commitTo commits req for gen, tracked in g, and returns what it answered.
func (s *KafkaSource) commitTo(gen *kafka.Generation, g *generation, req commitRequest) error {
	if req.gen != gen.ID {
		req.errc <- ErrGenerationEnded
		return nil // not gen's: says nothing of gen
	}
	err := gen.CommitOffsets(req.offsets)
	// The broker's word for the same: the group has moved on.
	if errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.RebalanceInProgress) {
		err = fmt.Errorf("%w (%w)", ErrGenerationEnded, err)
	}
	if err == nil {
		g.mu.Lock()
		for topic, parts := range req.offsets {
			for p, off := range parts {
				tp := topicPartition{topic, p}
				g.committed[tp] = max(g.committed[tp], off)
			}
		}
		g.mu.Unlock()
	}
	req.errc <- err
	return err
}

// set sets flag, one of g's, under g.mu.
func (g *generation) set(flag *bool) {
	g.mu.Lock()
	*flag = true
	g.mu.Unlock()
}

// takesCommits says whether generation id is current or in its grace.
func (s *KafkaSource) takesCommits(id int32) bool {
	g := s.gen.Load()
	if g == nil || g.id != id {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.closed
}

// readPartition reads one partition from offset until its generation ends.
func (s *KafkaSource) readPartition(ctx context.Context, gen int32, topic string, partition int, offset int64, queue int, errorLogger kafka.Logger) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:          s.cfg.Brokers,
		Dialer:           s.cfg.Security.Dialer(),
		Topic:            topic,
		Partition:        partition,
		MinBytes:         1,
		MaxBytes:         4 << 20,
		MaxWait:          time.Second,
		QueueCapacity:    queue,
		ReadBatchTimeout: 10 * time.Second,
		ErrorLogger:      errorLogger,
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		s.send(ctx, fetched{gen: gen, err: fmt.Errorf("%s/%d: start at offset %d: %w", topic, partition, offset, err)})
		<-ctx.Done()
		return
	}
	for attempt := 0; ; {
		m, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			attempt++
			if !s.send(ctx, fetched{gen: gen, err: fmt.Errorf("%s/%d: %w", topic, partition, err)}) || !sleep(ctx, min(time.Duration(attempt)*time.Second, 10*time.Second)) {
				return
			}
			continue
		}
		attempt = 0
		if !s.send(ctx, fetched{m: m, gen: gen}) {
			return
		}
	}
}

func (s *KafkaSource) send(ctx context.Context, f fetched) bool {
	select {
	case s.msgs <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

// Fetch returns the next message and the generation it was fetched in.
func (s *KafkaSource) Fetch(ctx context.Context) (kafka.Message, int32, error) {
	for {
		select {
		case f := <-s.msgs:
			g := s.gen.Load()
			if g == nil || f.gen != g.id {
				continue // fetched before a rebalance: the partition's owner reads it again
			}
			g.mu.Lock()
			ended := g.ended
			if !ended && f.err == nil {
				g.fetched[topicPartition{f.m.Topic, f.m.Partition}] = f.m.Offset + 1
			}
			g.mu.Unlock()
			if ended {
				continue
			}
			return f.m, f.gen, f.err
		case <-ctx.Done():
			return kafka.Message{}, 0, ctx.Err()
		}
	}
}

// Commit commits offsets (the next offset to read, by topic and partition)
// of messages fetched in generation gen. It returns ErrGenerationEnded,
// and commits nothing, when gen is neither the current generation nor one
// in its commit grace.
func (s *KafkaSource) Commit(ctx context.Context, gen int32, offsets map[string]map[int]int64) error {
	if !s.takesCommits(gen) {
		return ErrGenerationEnded
	}
	req := commitRequest{gen: gen, offsets: offsets, errc: make(chan error, 1)}
	// Between generations no one takes commits; gen may end meanwhile.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for sent := false; !sent; {
		select {
		case s.commits <- req:
			sent = true
		case <-tick.C:
			if !s.takesCommits(gen) {
				return ErrGenerationEnded
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case err := <-req.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close leaves the group: its partitions go to the other members at once.
func (s *KafkaSource) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	err := s.cg.Close()
	s.cancel()
	<-s.done
	s.clearAssigned()
	return err
}

// clearAssigned sets the partitions-held gauge of every topic to 0:
// between generations, and once out of the group.
func (s *KafkaSource) clearAssigned() {
	if s.cfg.Metrics == nil {
		return
	}
	for _, t := range s.cfg.Topics {
		s.cfg.Metrics.Assigned.WithLabelValues(t).Set(0)
	}
}

var _ Source = (*KafkaSource)(nil)
