// Package leader elects the one process that holds the transform role
// (identity resolver and KPI scheduler) when several run against one
// database: they join one Kafka consumer group on a one-partition control
// topic, and the member assigned partition 0 is active. The others stand
// by and take over when the group coordinator gives the partition to one
// of them: at once when the active process stops, within the session
// timeout when it dies. Writers check with the coordinator before they
// write (Check), so a process that lost the role without noticing yet (a
// long pause) does not write after the new one started.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/internal/lograte"
)

// ErrNotActive marks a write refused because this process does not hold
// the transform role (any more).
var ErrNotActive = errors.New("this process does not hold the transform role")

// Elector is one process's member of the election.
type Elector struct {
	cfg      Config
	brokers  []string
	sec      *kafkaconn.Security
	log      *slog.Logger
	client   *kafka.Client
	clientID string

	mu       sync.Mutex
	held     *kafka.Generation // the generation this process is active in; nil on standby
	heldCtx  context.Context   // ends with that generation
	lastHeld int32             // the last generation it was active in, -1 for never
	since    time.Time         // when the current state began
	status   string            // "active: …" or "standby: …", what /-/ready says about the role
	holder   string            // on standby, who holds the role as last logged
	problem  error             // why the election cannot proceed now (Kafka unreachable), nil when it can
}

// New prepares a member; Run joins the election.
func New(cfg Config, brokers []string, sec *kafkaconn.Security, logger *slog.Logger) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(brokers) == 0 {
		return nil, errors.New("transform.leader.election: kafka needs kafka.brokers (or set it to none for a single transform process)")
	}
	host, _ := os.Hostname()
	return &Elector{cfg: cfg, brokers: brokers, sec: sec, log: logger, lastHeld: -1, since: time.Now(),
		status:   "standby: joining the election",
		clientID: fmt.Sprintf("kpibridge-transform@%s/%d", host, os.Getpid()),
		client:   &kafka.Client{Addr: kafka.TCP(brokers...), Transport: sec.Transport(), Timeout: min(5*time.Second, cfg.SessionTimeout/2)},
	}, nil
}

// Active reports whether this process holds the transform role now.
func (e *Elector) Active() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held != nil
}

// Status says whether this process is active or on standby, since when and why.
func (e *Elector) Status() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	state, detail, _ := strings.Cut(e.status, ": ")
	return fmt.Sprintf("transform %s since %s: %s", state, e.since.UTC().Format(time.RFC3339), detail)
}

// Err is why the election cannot proceed now (no Kafka broker answers,
// the group cannot be joined), nil while it can.
func (e *Elector) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.problem
}

// Check returns nil when the group coordinator confirms, now, that this
// process holds the role; an error wrapping ErrNotActive otherwise. A
// writer calls it right before each write it must not make twice: while
// the group rebalances, or when the coordinator cannot be asked, the
// answer is no.
func (e *Elector) Check(ctx context.Context) error {
	e.mu.Lock()
	gen, gctx := e.held, e.heldCtx
	e.mu.Unlock()
	if gen == nil || gctx.Err() != nil {
		return ErrNotActive
	}
	res, err := e.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{e.cfg.GroupID}})
	if err == nil && len(res.Groups) != 1 {
		err = fmt.Errorf("asked for group %s, got %d groups", e.cfg.GroupID, len(res.Groups))
	}
	if err == nil {
		err = res.Groups[0].Error
	}
	if err != nil {
		return fmt.Errorf("%w: cannot confirm it with the Kafka group coordinator: %v", ErrNotActive, err)
	}
	g := res.Groups[0]
	if g.GroupState != "Stable" {
		return fmt.Errorf("%w: group %s is %s (a process joins or leaves)", ErrNotActive, e.cfg.GroupID, g.GroupState)
	}
	for _, m := range g.Members {
		if m.MemberID == gen.MemberID && holds(m.MemberAssignments.Topics, e.cfg.Topic) {
			return nil
		}
	}
	return fmt.Errorf("%w: the group coordinator gives it to another member than %s", ErrNotActive, gen.MemberID)
}

func holds(topics []kafka.GroupMemberTopic, topic string) bool {
	return slices.ContainsFunc(topics, func(t kafka.GroupMemberTopic) bool { return t.Topic == topic && slices.Contains(t.Partitions, 0) })
}

// Run takes part in the election until ctx ends: while this process holds
// the role, active runs with a context that ends when it loses it, and a
// new generation of the group is not joined before active has returned.
// Losing the role is not an error: Run waits to be elected again. Any
// other error of active ends Run with it. When ctx ends, Run leaves the
// group, so that a standby takes over at once.
func (e *Elector) Run(ctx context.Context, active func(context.Context) error) error {
	if !e.ensureTopic(ctx) {
		return nil
	}
	lim := lograte.New(e.log, time.Minute)
	dialer := e.sec.Dialer()
	dialer.ClientID = e.clientID
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                e.cfg.GroupID,
		Brokers:           e.brokers,
		Dialer:            dialer,
		Topics:            []string{e.cfg.Topic},
		GroupBalancers:    []kafka.GroupBalancer{balancer{e}},
		HeartbeatInterval: e.cfg.HeartbeatInterval,
		SessionTimeout:    e.cfg.SessionTimeout,
		// Members rejoin within this after a rebalance starts; the active
		// one first steps down, which takes at most one write.
		RebalanceTimeout:       e.cfg.SessionTimeout,
		JoinGroupBackoff:       time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 10 * time.Second,
		Timeout:                min(5*time.Second, e.cfg.SessionTimeout/2),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			lim.Log(slog.LevelWarn, msg, "transform leader election: Kafka consumer group", "group", e.cfg.GroupID, "detail", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("transform leader election: %w", err)
	}
	defer group.Close()
	nctx, stop := context.WithCancel(ctx)
	defer stop()
	var failed error // an error of active other than losing the role
	var failedMu sync.Mutex
	for {
		gen, err := group.Next(nctx)
		failedMu.Lock()
		ferr := failed
		failedMu.Unlock()
		switch {
		case ferr != nil:
			return ferr
		case ctx.Err() != nil:
			return nil
		case err != nil:
			e.setProblem(fmt.Errorf("cannot take part in the transform leader election (group %s on %s): %w", e.cfg.GroupID, strings.Join(e.brokers, ","), err))
			lim.Log(slog.LevelWarn, "election", "transform on standby: cannot take part in the leader election; retrying", "group", e.cfg.GroupID,
				"brokers", strings.Join(e.brokers, ","), "err", e.sec.Explain(strings.Join(e.brokers, ","), err))
			continue
		}
		e.setProblem(nil)
		if !slices.ContainsFunc(gen.Assignments[e.cfg.Topic], func(p kafka.PartitionAssignment) bool { return p.ID == 0 }) {
			e.standby(ctx, gen)
			continue // Next returns when this generation ends
		}
		gen.Start(func(gctx context.Context) {
			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(gctx, cancel)()
			e.activate(gen, gctx)
			started := time.Now()
			err := active(actx)
			e.stepDown(ctx, gctx, err, time.Since(started))
			if err != nil && !errors.Is(err, ErrNotActive) && ctx.Err() == nil {
				failedMu.Lock()
				failed = err
				failedMu.Unlock()
				stop()
			}
		})
	}
}

// ensureTopic creates the control topic with one partition unless it
// exists, retrying until it does; false when ctx ends first. Without it
// the group would assign nothing, and no process would be active.
func (e *Elector) ensureTopic(ctx context.Context) bool {
	last := ""
	for delay := time.Second; ; delay = min(2*delay, 10*time.Second) {
		err := e.createTopic(ctx)
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil:
			return true
		case err.Error() != last:
			last = err.Error()
			e.log.Warn("transform on standby: cannot reach Kafka for the leader election; the KPI scheduler and identity resolver do not run until it can (or set transform.leader.election: none for a single transform process)",
				"brokers", strings.Join(e.brokers, ","), "topic", e.cfg.Topic, "err", err)
		}
		e.setProblem(fmt.Errorf("cannot reach Kafka for the transform leader election: %w", err))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

func (e *Elector) createTopic(ctx context.Context) error {
	if err := e.sec.Check(ctx, e.brokers); err != nil {
		return err
	}
	// Look first: a deployment may create the topic itself and grant no Create.
	meta, err := e.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{e.cfg.Topic}})
	if err == nil && len(meta.Topics) == 1 && meta.Topics[0].Error == nil && len(meta.Topics[0].Partitions) > 0 {
		return nil
	}
	res, err := e.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: e.cfg.Topic, NumPartitions: 1, ReplicationFactor: -1}}})
	if err != nil {
		return fmt.Errorf("create control topic %s: %w", e.cfg.Topic, err)
	}
	switch err := res.Errors[e.cfg.Topic]; {
	case err == nil:
		e.log.Info("created the transform leader election's control topic", "topic", e.cfg.Topic)
	case errors.Is(err, kafka.TopicAlreadyExists):
	default:
		return fmt.Errorf("create control topic %s: %w", e.cfg.Topic, err)
	}
	return nil
}

func (e *Elector) setProblem(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.problem = err
	if err != nil && e.held == nil {
		e.status = "standby: " + err.Error()
	}
}

// activate records that this process holds the role in gen.
func (e *Elector) activate(gen *kafka.Generation, gctx context.Context) {
	e.mu.Lock()
	prev := e.lastHeld
	e.held, e.heldCtx, e.lastHeld, e.holder = gen, gctx, gen.ID, ""
	e.since = time.Now()
	e.status = fmt.Sprintf("active: this process holds the role (group %s, generation %d)", e.cfg.GroupID, gen.ID)
	e.mu.Unlock()
	how := "elected: no other process held the role"
	if prev >= 0 {
		how = fmt.Sprintf("kept the role it held in generation %d across a rebalance", prev)
	}
	e.log.Info("transform role active: this process runs the identity resolver and the KPI scheduler", "why", how,
		"group", e.cfg.GroupID, "generation", gen.ID, "member", gen.MemberID)
}

// stepDown records that active returned, and why.
func (e *Elector) stepDown(ctx, gctx context.Context, err error, held time.Duration) {
	e.mu.Lock()
	gen := e.held
	e.held, e.heldCtx = nil, nil
	e.since = time.Now()
	why := "the process stops"
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, ErrNotActive):
		why = err.Error()
	case gctx.Err() != nil:
		why = "the group rebalances (a transform process joined or left) or this process lost contact with the Kafka group coordinator"
	case err != nil:
		why = "the transform role failed: " + err.Error()
	default:
		why = "the transform role returned"
	}
	e.status = "standby: stepped down: " + why
	e.mu.Unlock()
	e.log.Info("transform role stepped down: the KPI scheduler and identity resolver stopped before writing anything more", "why", why,
		"group", e.cfg.GroupID, "generation", gen.ID, "held_for", held.Round(time.Millisecond))
}

// standby records that another member holds the role in gen, and names it
// when the coordinator says who it is.
func (e *Elector) standby(ctx context.Context, gen *kafka.Generation) {
	holder := "another member"
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if res, err := e.client.DescribeGroups(dctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{e.cfg.GroupID}}); err == nil && len(res.Groups) == 1 {
		for _, m := range res.Groups[0].Members {
			if holds(m.MemberAssignments.Topics, e.cfg.Topic) {
				holder = fmt.Sprintf("%s (%s)", m.ClientID, m.ClientHost)
			}
		}
	}
	e.mu.Lock()
	changed := e.holder != holder
	if changed {
		e.holder, e.since = holder, time.Now()
	}
	e.status = fmt.Sprintf("standby: %s holds the role (group %s, generation %d)", holder, e.cfg.GroupID, gen.ID)
	e.mu.Unlock()
	if changed {
		e.log.Info("transform on standby: another process holds the role; this one takes over when it stops, or within transform.leader.session_timeout when it dies",
			"active", holder, "group", e.cfg.GroupID, "generation", gen.ID, "session_timeout", e.cfg.SessionTimeout)
	}
}

// balancer gives partition 0 of the control topic to one member: the one
// that held it last (highest generation), so that a process joining or
// leaving does not move the role; to the member with the smallest id when
// none did. Every member sends the generation it last held the role in as
// its user data.
type balancer struct{ e *Elector }

func (b balancer) ProtocolName() string { return "kpibridge-transform-leader" }

func (b balancer) UserData() ([]byte, error) {
	b.e.mu.Lock()
	defer b.e.mu.Unlock()
	return encodeHeld(b.e.lastHeld), nil
}

func (b balancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	return assign(b.e.cfg.Topic, members, partitions)
}

// assign is the balancer's decision, apart for tests.
func assign(topic string, members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	for _, m := range members {
		out[m.ID] = map[string][]int{topic: {}}
	}
	if len(members) == 0 || !slices.ContainsFunc(partitions, func(p kafka.Partition) bool { return p.Topic == topic && p.ID == 0 }) {
		return out
	}
	best, bestHeld := "", int64(-2)
	for _, m := range members {
		h := int64(decodeHeld(m.UserData))
		if h > bestHeld || (h == bestHeld && m.ID < best) {
			best, bestHeld = m.ID, h
		}
	}
	out[best][topic] = []int{0}
	return out
}

func encodeHeld(gen int32) []byte {
	if gen < 0 {
		return nil
	}
	return []byte{byte(gen >> 24), byte(gen >> 16), byte(gen >> 8), byte(gen)}
}

func decodeHeld(b []byte) int32 {
	if len(b) != 4 {
		return -1
	}
	return int32(b[0])<<24 | int32(b[1])<<16 | int32(b[2])<<8 | int32(b[3])
}
