package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/internal/kafkaconn"
)

// The demo simulates its history up to now and a few days past it. What
// happened before now is back-filled at once; what the simulation has
// after now is the live stream: the same customers, journeys and channel
// mix, released as the clock runs Speed times faster than real time, with
// each event dated when it is sent (so nothing lies in the future and
// freshness stays current). KPIs over 30 days then drift by about
// Speed/30 days of activity per real day, instead of jumping.

// splitSink passes events up to cut to the back-fill sink and keeps the
// later ones for the live stream.
type splitSink struct {
	cut      time.Time
	backfill generate.Sink
	held     []heldRecord
	valid    map[string]bool // valid event ids sent to the back-fill
}

// heldRecord is a record of the simulated future, with its simulated time.
type heldRecord struct {
	at  time.Time
	rec generate.Record
}

func newSplitSink(cut time.Time, backfill generate.Sink) *splitSink {
	return &splitSink{cut: cut, backfill: backfill, valid: map[string]bool{}}
}

// occurredAt reads a message's occurred_at; false for one that has none readable.
func occurredAt(v []byte) (time.Time, bool) {
	var m struct {
		OccurredAt string `json:"occurred_at"`
	}
	if json.Unmarshal(v, &m) != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m.OccurredAt)
	return t, err == nil
}

func (s *splitSink) Write(ctx context.Context, recs []generate.Record) error {
	now := make([]generate.Record, 0, len(recs))
	for _, r := range recs {
		if at, ok := occurredAt(r.Value); ok && at.After(s.cut) {
			r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value) // valid only until Write returns
			s.held = append(s.held, heldRecord{at: at, rec: r})
			continue
		}
		if r.Valid && !r.Duplicate {
			s.valid[r.EventID] = true
		}
		now = append(now, r)
	}
	if len(now) == 0 {
		return nil
	}
	return s.backfill.Write(ctx, now)
}

func (s *splitSink) Close() error { return s.backfill.Close() }

// live releases the held records as the simulated clock passes them.
type live struct {
	w       *kafka.Writer
	held    []heldRecord
	start   time.Time // when the stream started, in both clocks
	speed   float64
	sent    int
	resends map[string][]byte // rewritten values by event id, so a duplicate stays exact
	mu      sync.Mutex
}

func newLive(brokers []string, sec *kafkaconn.Security, held []heldRecord, start time.Time, speed float64) *live {
	sort.SliceStable(held, func(i, j int) bool { return held[i].at.Before(held[j].at) })
	return &live{
		w: &kafka.Writer{Addr: kafka.TCP(brokers...), Transport: sec.Transport(), Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond,
			RequiredAcks: kafka.RequireAll, AllowAutoTopicCreation: true},
		held: held, start: start, speed: speed, resends: map[string][]byte{},
	}
}

// simulated is the simulation's clock at wall time now.
func (l *live) simulated(now time.Time) time.Time {
	return l.start.Add(time.Duration(float64(now.Sub(l.start)) * l.speed))
}

// left says how many events of the simulated future are still to send.
func (l *live) left() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.held) - l.sent }

// tick sends every held record the simulated clock has passed, dated now.
func (l *live) tick(ctx context.Context, now time.Time) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sim := l.simulated(now)
	var msgs []kafka.Message
	for l.sent < len(l.held) && !l.held[l.sent].at.After(sim) {
		r := l.held[l.sent].rec
		l.sent++
		v := r.Value
		if r.Valid {
			if prev, ok := l.resends[r.EventID]; ok && r.Duplicate {
				v = prev
			} else {
				v = redate(r.Value, now)
				l.resends[r.EventID] = v
			}
		}
		msgs = append(msgs, kafka.Message{Topic: r.Topic, Key: r.Key, Value: v})
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	return len(msgs), l.w.WriteMessages(ctx, msgs...)
}

// redate moves a message to now: occurred_at, and the day or month a
// report is for, so that spend lands on the days it is sent.
func redate(v []byte, now time.Time) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return v
	}
	m["occurred_at"], _ = json.Marshal(now.UTC().Format(time.RFC3339))
	var props map[string]json.RawMessage
	if p, ok := m["properties"]; ok && json.Unmarshal(p, &props) == nil {
		if _, ok := props["date"]; ok {
			props["date"], _ = json.Marshal(now.UTC().Format("2006-01-02"))
		}
		if _, ok := props["month"]; ok {
			props["month"], _ = json.Marshal(now.UTC().Format("2006-01"))
		}
		m["properties"], _ = json.Marshal(props)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return v
	}
	return out
}

func (l *live) close() error { return l.w.Close() }
