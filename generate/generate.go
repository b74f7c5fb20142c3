// Package generate owns kpibridge's synthetic data: a seeded simulation of
// customers and campaigns that produces every event type of contract v1,
// with a chosen share of invalid messages (one per events.Reason) and of
// duplicate re-sends, and the sinks that write it to Kafka or to NDJSON
// files. The same Config always yields the same bytes, and the Summary it
// returns counts exactly what was written, so that tests of ingest and of
// the KPIs can assert against it.
package generate

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/kpibridge/kpibridge/events"
)

// Record is one Kafka message the generator produces, with what it knows
// about it.
type Record struct {
	// Topic is the Kafka topic the message belongs to.
	Topic string
	// Key is the best customer key of the message (crm_contact_id, else
	// anonymous_id, else email); nil when the message carries no identity.
	Key []byte
	// Value is the message: one JSON object without newlines, or for some
	// invalid messages something that is not one.
	Value []byte
	// Type is the event type the message was made as; an invalid message
	// may claim another type, or none.
	Type events.Type
	// Valid says whether a decoder configured like the generator accepts
	// the message.
	Valid bool
	// Reason is the events.Reason an invalid message is refused for; empty
	// when Valid.
	Reason string
	// Duplicate marks an exact re-send of an earlier valid message (same
	// event_id and bytes; Valid is true).
	Duplicate bool
	// EventID is the event_id the message carries; empty for an invalid
	// message that carries none readable.
	EventID string
}

// Sink receives the generated records in order. Write gets each batch once;
// the records, keys and values are only valid until Write returns. Run
// never calls Close: whoever made the sink closes it after Run returns.
type Sink interface {
	Write(ctx context.Context, recs []Record) error
	Close() error
}

// Summary counts what a run wrote. The counts are exact: Valid equals the
// sum of Topics, and Total equals Valid plus every Invalid count plus
// Duplicates, and the sum of Messages.
type Summary struct {
	// Seed, Customers and Days echo the Config.
	Seed      int64 `json:"seed"`
	Customers int   `json:"customers"`
	Days      int   `json:"days"`
	// Start and End are the first and last simulated days, YYYY-MM-DD (UTC).
	Start string `json:"start"`
	End   string `json:"end"`
	// Total is the number of messages written.
	Total int64 `json:"total"`
	// Topics counts the distinct valid events by topic and type; every type
	// of contract v1 is listed, zero or not.
	Topics map[string]map[string]int64 `json:"topics"`
	// Messages counts every message written per topic: valid, invalid and
	// duplicate.
	Messages map[string]int64 `json:"messages"`
	// Valid is the number of distinct valid events (distinct event_ids).
	Valid int64 `json:"valid"`
	// Invalid counts invalid messages by events.Reason; every reason is
	// listed, zero or not.
	Invalid map[string]int64 `json:"invalid"`
	// Duplicates is the number of exact re-sends of valid messages.
	Duplicates int64 `json:"duplicates"`
	// DurationSeconds is the wall time of the run, sinks included.
	DurationSeconds float64 `json:"duration_seconds"`
}

// Seeds of the two random streams and of the id spaces; fixed so that a
// seed means the same thing in every version that keeps them.
const (
	streamSim   = 0x6b70696272696467 // "kpibridg"
	streamNoise = 0x6e6f697365000001
	saltEvent   = 0x01
	saltInvalid = 0x02
	saltOrder   = 0x03
	saltOpp     = 0x04
	saltSub     = 0x05
	saltAnon    = 0x06
	saltCRM     = 0x07
	saltEmail   = 0x08
	saltMsg     = 0x09
)

// Run simulates cfg.Days days and writes every message to sink in batches
// of at most cfg.BatchSize, generating the next batch while the sink
// writes the last. Memory is bounded by the number of customers, not of
// events. When progress is not nil and the run takes longer than a second,
// a progress line is written to it about once a second. Run does not close
// sink.
func Run(ctx context.Context, cfg Config, sink Sink, progress io.Writer) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	began := time.Now()
	g := newGen(cfg)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *batch, 2)
	free := make(chan *batch, 3)
	for range cap(free) {
		free <- &batch{}
	}
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range work {
			if ctx.Err() == nil {
				if err := sink.Write(ctx, b.recs); err != nil {
					cancel(fmt.Errorf("sink: %w", err))
				} else {
					written.Add(int64(len(b.recs)))
				}
			}
			b.recs, b.buf = b.recs[:0], b.buf[:0]
			free <- b
		}
	}()

	last := began
	g.batch = <-free
	g.flush = func() {
		if g.err != nil { // stopping: drop what is left
			g.batch.recs, g.batch.buf = g.batch.recs[:0], g.batch.buf[:0]
			return
		}
		select {
		case work <- g.batch:
		case <-ctx.Done():
			g.err = context.Cause(ctx)
			return
		}
		// The writer owns the batch now; never touch it again.
		select {
		case g.batch = <-free:
		case <-ctx.Done():
			g.err = context.Cause(ctx)
			g.batch = &batch{}
			return
		}
		if now := time.Now(); progress != nil && now.Sub(last) >= time.Second {
			last = now
			n := written.Load()
			fmt.Fprintf(progress, "generate: %d messages written, %.0f/s, day %d/%d (%s)\n",
				n, float64(n)/now.Sub(began).Seconds(), g.d+1, cfg.Days,
				time.Unix(g.dayStart, 0).UTC().Format(time.DateOnly))
		}
	}
	for d := 0; d < cfg.Days && g.err == nil; d++ {
		g.simulateDay(d)
	}
	if g.err == nil && len(g.batch.recs) > 0 {
		g.flush()
	}
	close(work)
	<-done
	if err := context.Cause(ctx); err != nil {
		return Summary{}, err
	}
	if g.err != nil {
		return Summary{}, g.err
	}
	s := g.summary()
	s.DurationSeconds = time.Since(began).Seconds()
	return s, nil
}

// batch is a slice of records and the bytes their keys and values live in.
type batch struct {
	recs []Record
	buf  []byte
}

// gen is the state of one run.
type gen struct {
	cfg        Config
	r, nr      *rand.Rand // simulation, and noise (invalid and duplicate messages)
	start      int64      // Unix second of the first simulated day
	startDay   int64      // Unix day of the first simulated day
	summer     []bool     // per day: is it summer time in the northern hemisphere
	cur        *currencies
	countries  countryTable
	camps      []campaign
	vendors    []vendor
	cust       []customer
	acq        []*activeSet
	retarget   []*activeSet
	emailCamps [][]int32
	topics     [2]string

	evtKey, badKey, ordKey, oppKey, subKey, anonKey, crmKey, emailKey, msgKey uint64
	nEvt, nBad, nOrd, nOpp, nSub                                              uint64

	// Today.
	d         int
	dayStart  int64
	cursor    int64
	cursorSet bool
	m, bad    msg

	batch *batch
	flush func()
	err   error

	ring     ring
	nInvalid int
	unknown  []string // currency codes the deployment does not know
	scratch  []byte

	valid      [2][numTypes]int64
	messages   [2]int64
	invalid    []int64 // by index in allReasons
	duplicates int64
}

func newGen(cfg Config) *gen {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultConfig().BatchSize
	}
	end := day(cfg.End)
	first := end.AddDate(0, 0, 1-cfg.Days)
	seed := uint64(cfg.Seed)
	g := &gen{
		cfg:        cfg,
		r:          rand.New(rand.NewPCG(seed, streamSim)),
		nr:         rand.New(rand.NewPCG(seed, streamNoise)),
		start:      first.Unix(),
		startDay:   first.Unix() / 86400,
		topics:     [2]string{cfg.CRMTopic, cfg.CampaignTopic},
		acq:        make([]*activeSet, cfg.Days),
		retarget:   make([]*activeSet, cfg.Days),
		emailCamps: make([][]int32, cfg.Days),
		summer:     make([]bool, cfg.Days),
		invalid:    make([]int64, len(allReasons)),
	}
	g.countries.index = map[string]uint8{}
	for d := range g.summer {
		m := first.AddDate(0, 0, d).Month()
		g.summer[d] = m >= time.April && m <= time.October
	}
	key := func(salt uint64) uint64 { return mix(seed ^ mix(salt)) }
	g.evtKey, g.badKey, g.ordKey, g.oppKey, g.subKey = key(saltEvent), key(saltInvalid), key(saltOrder), key(saltOpp), key(saltSub)
	g.anonKey, g.crmKey, g.emailKey, g.msgKey = key(saltAnon), key(saltCRM), key(saltEmail), key(saltMsg)
	g.cur = newCurrencies(&cfg)
	g.unknown = g.cur.unknown()
	g.camps = newCampaigns(g.r, cfg.Campaigns, cfg.Days, g.cur)
	g.vendors = newVendors(g.cur)
	g.newCustomers()
	if cfg.DuplicateRate > 0 {
		g.ring.entries = make([]ringEntry, ringSize)
	}
	return g
}

// nextID returns a fresh id in the space of counter n.
func (g *gen) nextID(n *uint64) uint64 {
	var k uint64
	switch n {
	case &g.nOrd:
		k = g.ordKey
	case &g.nOpp:
		k = g.oppKey
	case &g.nSub:
		k = g.subKey
	}
	id := mix(k + *n)
	*n++
	return id
}

func (g *gen) weekday(d int) int { return int((g.startDay + int64(d) + 4) % 7) } // 1970-01-01 was a Thursday

func (g *gen) dayOfMonth(d int) int { return time.Unix(g.start+int64(d)*86400, 0).UTC().Day() }

func topicIndex(t events.Type) int {
	if t.Topic() == events.TopicCRM {
		return 0
	}
	return 1
}

// emit writes a valid event, then, by the noise stream, maybe an invalid
// message made from it and a duplicate of a recent valid message.
func (g *gen) emit(m *msg) {
	m.id = mix(g.evtKey + g.nEvt)
	g.nEvt++
	topic := topicIndex(m.typ)
	b := g.batch
	start := len(b.buf)
	b.buf = g.appendKey(b.buf, &m.ident)
	mid := len(b.buf)
	b.buf = g.encode(b.buf, m)
	end := len(b.buf)
	const idAt = len(`{"event_id":"`)
	rec := Record{
		Topic:   g.topics[topic],
		Key:     b.buf[start:mid:mid],
		Value:   b.buf[mid:end:end],
		Type:    m.typ,
		Valid:   true,
		EventID: string(b.buf[mid+idAt : mid+idAt+20]),
	}
	b.recs = append(b.recs, rec)
	g.valid[topic][typeIndex(m.typ)]++
	g.messages[topic]++
	if g.cfg.DuplicateRate > 0 {
		g.ring.push(topic, &rec)
	}
	if g.cfg.InvalidRate > 0 && g.nr.Float64() < g.cfg.InvalidRate {
		g.emitInvalid(m, topic)
	}
	if g.cfg.DuplicateRate > 0 && g.nr.Float64() < g.cfg.DuplicateRate {
		g.emitDuplicate()
	}
	if len(b.recs) >= g.cfg.BatchSize {
		g.flush()
	}
}

// appendRecord adds a record whose value is v to the batch, copying key and v.
func (g *gen) appendRecord(topic int, key, v []byte, rec Record) {
	b := g.batch
	start := len(b.buf)
	b.buf = append(b.buf, key...)
	mid := len(b.buf)
	b.buf = append(b.buf, v...)
	end := len(b.buf)
	rec.Topic = g.topics[topic]
	rec.Value = b.buf[mid:end:end]
	if len(key) > 0 {
		rec.Key = b.buf[start:mid:mid]
	}
	b.recs = append(b.recs, rec)
	g.messages[topic]++
}

// ring keeps copies of recent valid messages to re-send as duplicates, the
// way a producer retries a send whose acknowledgement it missed.
type ring struct {
	entries []ringEntry
	next, n int
}

const ringSize = 1024

type ringEntry struct {
	topic      int
	typ        events.Type
	id         string
	key, value []byte
}

func (r *ring) push(topic int, rec *Record) {
	e := &r.entries[r.next]
	e.topic, e.typ, e.id = topic, rec.Type, rec.EventID
	e.key = append(e.key[:0], rec.Key...)
	e.value = append(e.value[:0], rec.Value...)
	r.next = (r.next + 1) % len(r.entries)
	r.n = min(r.n+1, len(r.entries))
}

func (g *gen) emitDuplicate() {
	e := &g.ring.entries[g.nr.IntN(g.ring.n)]
	g.appendRecord(e.topic, e.key, e.value, Record{Type: e.typ, Valid: true, Duplicate: true, EventID: e.id})
	g.duplicates++
}

// All types and reasons, for the summary.
var (
	allTypes   = append(append([]events.Type{}, events.CRMTypes...), events.CampaignTypes...)
	allReasons = events.Reasons()
)

const numTypes = 15

func typeIndex(t events.Type) int {
	for i, x := range allTypes {
		if x == t {
			return i
		}
	}
	panic("generate: unknown type " + string(t))
}

func (g *gen) summary() Summary {
	s := Summary{
		Seed:       g.cfg.Seed,
		Customers:  g.cfg.Customers,
		Days:       g.cfg.Days,
		Start:      time.Unix(g.start, 0).UTC().Format(time.DateOnly),
		End:        day(g.cfg.End).Format(time.DateOnly),
		Topics:     map[string]map[string]int64{},
		Messages:   map[string]int64{},
		Invalid:    map[string]int64{},
		Duplicates: g.duplicates,
	}
	for topic, name := range g.topics {
		counts := map[string]int64{}
		for i, t := range allTypes {
			if topicIndex(t) == topic {
				counts[string(t)] = g.valid[topic][i]
				s.Valid += g.valid[topic][i]
			}
		}
		s.Topics[name] = counts
		s.Messages[name] = g.messages[topic]
		s.Total += g.messages[topic]
	}
	for i, r := range allReasons {
		s.Invalid[string(r)] = g.invalid[i]
	}
	return s
}
