package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// heldWriter stores like the real writer, but once held it blocks every
// events insert until released: a member whose batches are still being
// stored when the group rebalances.
type heldWriter struct {
	ingest.Writer
	mu      sync.Mutex
	hold    chan struct{} // nil: not held
	blocked chan struct{} // closed when an insert first waits on hold
	once    sync.Once
}

func (w *heldWriter) InsertEvents(ctx context.Context, rows []ingest.Row) error {
	w.mu.Lock()
	hold := w.hold
	w.mu.Unlock()
	if hold != nil {
		w.once.Do(func() { close(w.blocked) })
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.Writer.InsertEvents(ctx, rows)
}

// watchCommits polls group's committed offsets until the returned function
// is called, which returns every time a partition's commit went back.
func watchCommits(t *testing.T, addr, group string) func() []string {
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var back []string
		last := map[int]int64{}
		for {
			select {
			case <-stop:
				done <- back
				return
			case <-time.After(20 * time.Millisecond):
			}
			for p, off := range testenv.CommittedOffsets(t, addr, group, topic) {
				if off < last[p] {
					back = append(back, fmt.Sprintf("partition %d: %d after %d", p, off, last[p]))
				}
				last[p] = max(last[p], off)
			}
		}
	}()
	return func() []string { close(stop); return <-done }
}

// A member that lost partitions in a rebalance while its batches were
// still being stored must not commit those batches' offsets: the
// partitions' new owner has read and committed past them, and a commit
// behind it would move the group's offsets back (lag reads high, and the
// group never reaches the end if nothing more arrives). Re-reading its own
// partitions after the rebalance is a re-delivery, not a re-send: no
// message may be counted in duplicates.
func TestRebalanceNeverMovesCommitsBack(t *testing.T) {
	r := startHeldRebalance(t, "r", 6*time.Second) // a 2 s grace
	e, cfg, a, end := r.e, r.cfg, r.a, r.end

	// B joins, takes half the partitions and reads them to the end.
	b := e.start(cfg, nil)
	for deadline := time.Now().Add(60 * time.Second); atEnd(testenv.CommittedOffsets(t, e.addr, cfg.GroupID, topic), end) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the second member committed no partition to its end in 60 s: committed %v, end %v",
				testenv.CommittedOffsets(t, e.addr, cfg.GroupID, topic), end)
		}
	}
	// A's held batches, fetched before the rebalance, are stored now.
	close(r.release)
	r.waitEnd()
	if n := testutil.ToFloat64(a.metrics.CommitsSkipped); n == 0 {
		t.Error("kpibridge_ingest_offset_commits_skipped_total = 0: the held batches of the first generation were committed")
	}
	if n := e.count("SELECT count() FROM duplicates FINAL"); n != 0 {
		t.Errorf("%d messages re-read after the rebalance were counted as duplicates; no event was re-sent", n)
	}
	held1 := testutil.ToFloat64(a.metrics.Assigned.WithLabelValues(topic))
	held2 := testutil.ToFloat64(b.metrics.Assigned.WithLabelValues(topic))
	if held1+held2 != heldPartitions || held1 == 0 || held2 == 0 {
		t.Errorf("kpibridge_ingest_assigned_partitions: %v and %v, want the %d partitions shared", held1, held2, heldPartitions)
	}
	a.stop(t)
	if held := testutil.ToFloat64(a.metrics.Assigned.WithLabelValues(topic)); held != 0 {
		t.Errorf("kpibridge_ingest_assigned_partitions = %v after leaving the group, want 0", held)
	}
	b.stop(t)
}

// A rebalance does not leave the batches a member is storing uncommitted:
// the member takes its ended generation's commits for a grace before it
// joins the next, while the group prepares the rebalance and no partition
// has a new owner yet. Before, every rebalance skipped those commits, and
// the messages were read again; members coming and going faster than a
// batch is stored could stop the group moving forward.
func TestRebalanceCommitsWhatWasFetchedBeforeIt(t *testing.T) {
	const session = 12 * time.Second
	r := startHeldRebalance(t, "g", session)
	a := r.a
	grace := session / 3

	// B joins; A's generation ends while its batch is being stored.
	b := r.e.start(r.cfg, nil)
	for deadline := time.Now().Add(30 * time.Second); testutil.ToFloat64(a.metrics.Assigned.WithLabelValues(topic)) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first member's generation did not end in 30 s after a second member joined")
		}
	}
	time.Sleep(200 * time.Millisecond)
	commits := testutil.ToFloat64(a.metrics.Commits)
	released := time.Now()
	close(r.release)
	// The grace ends once all is committed, not when it runs out.
	for testutil.ToFloat64(a.metrics.Rebalances) < 2 {
		if time.Since(released) > grace-time.Second {
			t.Fatalf("the first member had not joined the next generation %s after its batches were released: the grace did not end when everything was committed", time.Since(released).Round(time.Millisecond))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if testutil.ToFloat64(a.metrics.Commits) <= commits {
		t.Error("the first member committed nothing of its held batches before joining the next generation")
	}
	r.waitEnd()
	if n := testutil.ToFloat64(a.metrics.CommitErrors); n != 0 {
		t.Errorf("kpibridge_ingest_offset_commit_errors_total = %v", n)
	}
	if n := testutil.ToFloat64(a.metrics.CommitsSkipped); n != 0 {
		t.Errorf("kpibridge_ingest_offset_commits_skipped_total = %v: batches fetched before the rebalance and stored within the grace were not committed", n)
	}
	if n := r.e.count("SELECT count() FROM duplicates FINAL"); n != 0 {
		t.Errorf("%d messages counted as duplicates; no event was re-sent", n)
	}
	a.stop(t)
	b.stop(t)
}

// heldRebalance is a stream of heldPartitions partitions of heldPerPartition
// messages each and a first member, a, whose batches are held in storage
// until release closes.
type heldRebalance struct {
	t        *testing.T
	e        *env
	cfg      ingest.Config
	a        *running
	end      map[int]int64
	release  chan struct{}
	wentBack func() []string
}

const heldPartitions, heldPerPartition = 4, 1500

// startHeldRebalance produces the stream (event ids prefixed by prefix),
// starts a with the given session timeout, lets it store and commit a little, then
// holds its batches and returns once one waits in storage. Commits are
// watched from the start: no partition's may ever go back.
func startHeldRebalance(t *testing.T, prefix string, session time.Duration) *heldRebalance {
	r := &heldRebalance{t: t, e: setup(t, heldPartitions), cfg: testConfig(), release: make(chan struct{})}
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var msgs []kafka.Message
	for i := range heldPartitions * heldPerPartition {
		msgs = append(msgs, orderMsg(fmt.Sprintf("%s%05d", prefix, i), base.Add(time.Duration(i)*time.Second)))
	}
	testenv.Produce(t, r.e.addr, msgs...)
	r.end = testenv.EndOffsets(t, r.e.addr, topic)
	r.wentBack = watchCommits(t, r.e.addr, r.cfg.GroupID)

	r.cfg.Batch.MaxRows = 300
	r.cfg.SessionTimeout = session
	held := &heldWriter{Writer: ingest.NewClickHouseWriter(r.e.conn, r.cfg.DLQ.MaxPayloadBytes), blocked: make(chan struct{})}
	r.a = r.e.startWriter(r.cfg, held, decoder(t))
	for deadline := time.Now().Add(30 * time.Second); len(testenv.CommittedOffsets(t, r.e.addr, r.cfg.GroupID, topic)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first member committed nothing in 30 s")
		}
	}
	held.mu.Lock()
	held.hold = r.release
	held.mu.Unlock()
	select {
	case <-held.blocked:
	case <-time.After(30 * time.Second):
		t.Fatal("the first member stored no batch after being held")
	}
	return r
}

// waitEnd waits until every event is stored once and the group has
// committed every partition to its end, then checks no commit went back.
func (r *heldRebalance) waitEnd() {
	t := r.t
	t.Helper()
	r.e.waitCount(60*time.Second, heldPartitions*heldPerPartition, distinctEvents)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := testenv.CommittedOffsets(t, r.e.addr, r.cfg.GroupID, topic)
		if atEnd(got, r.end) == heldPartitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed %v, end %v: the group's commits stay short of the end", got, r.end)
		}
	}
	if back := r.wentBack(); len(back) > 0 {
		t.Errorf("committed offsets went back: %v", back)
	}
}

// atEnd is how many partitions are committed to their end.
func atEnd(committed, end map[int]int64) (n int) {
	for p, o := range committed {
		if o == end[p] {
			n++
		}
	}
	return n
}
