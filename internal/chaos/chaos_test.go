package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/internal/chserver"
	"github.com/kpibridge/kpibridge/internal/kpitest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// size is how hard the suite pushes: the short form runs in `make test`,
// the long one (KPIBRIDGE_CHAOS=long) in `make chaos`.
type size struct {
	customers      int           // ≈ 11.7 valid events each over 90 days
	kills          int           // kill -9 of ingest
	clickhouseDown time.Duration // how long ClickHouse is stopped
	transformKills int           // kill -9 of the transform
}

var (
	short = size{customers: 3000, kills: 3, clickhouseDown: 5 * time.Second, transformKills: 3}
	long  = size{customers: 17500, kills: 10, clickhouseDown: 60 * time.Second, transformKills: 5}
)

// hashKey is the email hash key of every process of the suite.
const hashKey = "chaos-suite-key-0123456789abcdef"

// end is the last generated day; KPIs are compared at the day after.
var end = time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)

// proc is a kpibridge child process, killed when the test ends.
type proc = testenv.Process

// start runs kpibridge with args and the suite's hash key.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return testenv.StartProcess(t, name, []string{"KPIBRIDGE_EMAIL_HASH_KEY=" + hashKey}, args...)
}

// stop sends SIGTERM and waits for the drain.
func stop(t *testing.T, p *proc) {
	t.Helper()
	if !p.Stop(30 * time.Second) {
		t.Errorf("%s did not exit within 30s of SIGTERM", p.Name)
	}
}

// suite is one generated stream in one broker process, and the reference:
// the same stream stored by an undisturbed ingest, its KPIs.
type suite struct {
	top       *testing.T
	size      size
	dir       string
	broker    *proc
	addr      string
	sum       generate.Summary
	invalid   uint64
	reference map[string]float64
	refConn   store.Conn
	results   []result
}

// result is one scenario's figures.
type result struct {
	scenario       string
	messages       int64
	lost, doubled  int64
	deadLetters    string          // "= poison" or the difference
	kpis           string          // "identical" or how many differ
	recovery       []time.Duration // fault cleared → stored count grows again
	caughtUp       time.Duration   // last fault cleared → everything stored
	totalStoreTime time.Duration
}

// startBroker starts the broker for the whole suite (a scenario that
// restarts it must not stop it when the scenario ends).
func (s *suite) startBroker() {
	t := s.top
	t.Helper()
	s.broker = start(t, "broker", "broker", "--listen", s.addr, "--partitions", "6", "--data-dir", filepath.Join(s.dir, "broker"))
	waitFor(t, 30*time.Second, "the broker to listen on "+s.addr, func() bool {
		return strings.Contains(s.broker.Out.String(), "listening")
	})
}

// config writes a configuration for one scenario: its own consumer group,
// small batches so that a kill lands between many commits.
func (s *suite) config(t *testing.T, name string) string {
	t.Helper()
	f := filepath.Join(s.dir, name+".yml")
	cfg := fmt.Sprintf(`ingest:
  group_id: chaos-%s
  batch: {max_rows: 2000, max_wait: 200ms}
  retry: {initial_backoff: 100ms, max_backoff: 2s}
  shutdown_timeout: 10s
transform:
  identity_interval: 1s
  leader: {election: none}  # one transform at a time, killed within seconds of its start: no election to wait for
`, name)
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// ingest starts `kpibridge run --role ingest` of scenario name into dsn.
func (s *suite) ingest(t *testing.T, name, dsn string) *proc {
	return start(t, "ingest "+name, "--config.file", s.config(t, name), "run", "--role", "ingest",
		"--brokers", s.addr, "--clickhouse", dsn, "--web.listen-address", testenv.FreeAddr(t))
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type counts struct{ distinct, final, dead uint64 }

// count reads what is stored; a ClickHouse that is down reads as nothing new.
func count(conn store.Conn) (counts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c counts
	err := conn.QueryRow(ctx, "SELECT (SELECT uniqExact(event_id) FROM events), (SELECT count() FROM events FINAL), (SELECT count() FROM dead_letters FINAL)").
		Scan(&c.distinct, &c.final, &c.dead)
	return c, err
}

// complete: every valid event and every poison message is stored.
func (s *suite) complete(c counts) bool {
	return c.distinct >= uint64(s.sum.Valid) && c.dead >= s.invalid
}

// waitStored waits until the ingest of conn is complete, returning how long it took.
func (s *suite) waitStored(t *testing.T, conn store.Conn, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, timeout, "every event to be stored", func() bool {
		c, err := count(conn)
		return err == nil && s.complete(c)
	})
	return time.Since(start)
}

// resumed returns how long after now the stored count first grows past
// from (or the ingest completes): the recovery time of a disruption
// cleared now.
func (s *suite) resumed(t *testing.T, conn store.Conn, from uint64) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, 3*time.Minute, "ingest to resume", func() bool {
		c, err := count(conn)
		return err == nil && (c.distinct > from || s.complete(c))
	})
	return time.Since(start)
}

// storedAtLeast waits until n distinct events are stored, returning the count.
func storedAtLeast(t *testing.T, conn store.Conn, n uint64) uint64 {
	t.Helper()
	var c counts
	waitFor(t, 3*time.Minute, fmt.Sprintf("%d events stored", n), func() bool {
		var err error
		c, err = count(conn)
		return err == nil && c.distinct >= n
	})
	return c.distinct
}

// kpis brings identity up to date (unless the transform did) and computes
// every default KPI at the day after the generated data.
func kpis(t *testing.T, conn store.Conn, updateIdentity bool) map[string]float64 {
	t.Helper()
	ctx := context.Background()
	if updateIdentity {
		if _, err := identity.NewResolver(conn, nil).Update(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return kpitest.Series(t, conn, end.Add(24*time.Hour))
}

// compareKPIs says "identical" or which series differ from the reference.
func (s *suite) compareKPIs(t *testing.T, got map[string]float64) string {
	t.Helper()
	var diff []string
	for k, want := range s.reference {
		if strings.HasPrefix(k, "ingest_lag{") {
			continue // the age of the newest ingest: the clock of each run
		}
		g, ok := got[k]
		if !ok || math.Abs(g-want) > 1e-9*math.Max(1, math.Abs(want)) {
			diff = append(diff, fmt.Sprintf("%s = %v, want %v", k, g, want))
		}
	}
	for k := range got {
		if _, ok := s.reference[k]; !ok && !strings.HasPrefix(k, "ingest_lag{") {
			diff = append(diff, k+" is not in the undisturbed run")
		}
	}
	if len(diff) == 0 {
		return "identical"
	}
	sort.Strings(diff)
	t.Errorf("%d KPI series differ from the undisturbed run:\n%s", len(diff), strings.Join(diff[:min(len(diff), 20)], "\n"))
	return fmt.Sprintf("%d series differ", len(diff))
}

// check ends a scenario: nothing lost or doubled, dead letters = poison,
// the KPIs those of the undisturbed run.
func (s *suite) check(t *testing.T, r *result, conn store.Conn, updateIdentity bool) {
	t.Helper()
	c, err := count(conn)
	if err != nil {
		t.Fatal(err)
	}
	r.messages = s.sum.Total
	r.lost = s.sum.Valid - int64(c.distinct)
	r.doubled = int64(c.final) - int64(c.distinct)
	if r.lost != 0 || r.doubled != 0 {
		t.Errorf("%s: %d distinct events stored, %d FINAL, want %d of each", r.scenario, c.distinct, c.final, s.sum.Valid)
	}
	r.deadLetters = "= poison"
	if c.dead != s.invalid {
		r.deadLetters = fmt.Sprintf("%d, poison %d", c.dead, s.invalid)
		t.Errorf("%s: %d dead letters, want the %d poison messages", r.scenario, c.dead, s.invalid)
	}
	r.kpis = s.compareKPIs(t, kpis(t, conn, updateIdentity))
	s.results = append(s.results, *r)
}

// TestFaults runs every scenario over one generated stream and writes the
// figures to KPIBRIDGE_CHAOS_REPORT when set.
func TestFaults(t *testing.T) {
	testenv.Require(t, os.Getenv(testenv.ClickHouseEnv) != "", testenv.ClickHouseEnv+" (a ClickHouse server)")
	sz := short
	if os.Getenv("KPIBRIDGE_CHAOS") == "long" {
		sz = long
	}
	s := &suite{size: sz, dir: t.TempDir(), addr: testenv.FreeAddr(t), top: t}
	s.startBroker()

	gen := exec.Command(testenv.Binary(t), "generate", "--brokers", s.addr, "--customers", fmt.Sprint(sz.customers), "--days", "90",
		"--end", end.Format(time.DateOnly), "--invalid-rate", "0.01", "--duplicate-rate", "0.05")
	gen.Env = append(os.Environ(), "KPIBRIDGE_EMAIL_HASH_KEY="+hashKey)
	var genErr bytes.Buffer
	gen.Stderr = &genErr
	out, err := gen.Output()
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, genErr.String())
	}
	if err := json.Unmarshal(out, &s.sum); err != nil {
		t.Fatalf("generate summary: %v\n%s", err, out)
	}
	for _, n := range s.sum.Invalid {
		s.invalid += uint64(n)
	}
	t.Logf("generated %d messages: %d valid events, %d poison, %d duplicates", s.sum.Total, s.sum.Valid, s.invalid, s.sum.Duplicates)

	// The undisturbed run.
	refTarget, refConn := testenv.MigratedClickHouse(t)
	s.refConn = refConn
	ref := s.ingest(t, "reference", refTarget.DSN)
	took := s.waitStored(t, refConn, 5*time.Minute)
	stop(t, ref)
	s.reference = kpis(t, refConn, true)
	t.Logf("undisturbed: stored in %s, %d KPI series", took.Round(time.Millisecond), len(s.reference))
	r := result{scenario: "undisturbed", totalStoreTime: took}
	s.check(t, &r, refConn, false)

	t.Run("kill9_ingest", func(t *testing.T) { s.killIngest(t) })
	t.Run("clickhouse_down", func(t *testing.T) { s.clickhouseDown(t) })
	t.Run("broker_restart", func(t *testing.T) { s.brokerRestart(t) })
	t.Run("second_ingest_joins_and_leaves", func(t *testing.T) { s.secondIngest(t) })
	t.Run("transform_killed", func(t *testing.T) { s.killTransform(t) })

	report := s.report()
	t.Logf("\n%s", report)
	if f := os.Getenv("KPIBRIDGE_CHAOS_REPORT"); f != "" {
		if err := os.WriteFile(f, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// killIngest kills the ingest process with SIGKILL at random points and
// restarts it each time.
func (s *suite) killIngest(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	r := result{scenario: fmt.Sprintf("kill -9 of ingest, %d times at random points", s.size.kills)}
	rng := rand.New(rand.NewPCG(1, 2))
	begin := time.Now()
	var cleared time.Time
	p := s.ingest(t, "kill9", target.DSN)
	for i := range s.size.kills {
		// A random point in the i-th of kills+1 equal stretches of the
		// stream, so kills spread over it; one the ingest has passed
		// already kills at once.
		at := storedAtLeast(t, conn, uint64(float64(s.sum.Valid)*(float64(i)+rng.Float64())/float64(s.size.kills+1)))
		p.Kill()
		t.Logf("kill %d with %d events stored", i+1, at)
		c, _ := count(conn)
		p = s.ingest(t, "kill9", target.DSN)
		cleared = time.Now()
		if !s.complete(c) { // recovery: until the restarted process stores again
			r.recovery = append(r.recovery, s.resumed(t, conn, c.distinct))
		}
	}
	s.waitStored(t, conn, 5*time.Minute)
	r.caughtUp = time.Since(cleared)
	r.totalStoreTime = time.Since(begin)
	stop(t, p)
	s.check(t, &r, conn, true)
}

// clickhouseDown stops a private ClickHouse server mid-stream and starts
// it again after the configured time.
func (s *suite) clickhouseDown(t *testing.T) {
	ctx := context.Background()
	testenv.Require(t, testenv.FileExists(chserver.Binary), "clickhouse-server")
	dir := filepath.Join(s.dir, "clickhouse")
	port := testenv.FreePort(t)
	srv, err := chserver.Start(ctx, dir, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	target, err := store.ParseDSN(srv.DSN("chaos"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, target, nil); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { conn.Close() }()
	r := result{scenario: fmt.Sprintf("ClickHouse stopped for %s mid-stream", s.size.clickhouseDown)}
	begin := time.Now()
	p := s.ingest(t, "clickhouse", target.DSN)
	at := storedAtLeast(t, conn, uint64(s.sum.Valid)/4)
	srv.Stop()
	t.Logf("ClickHouse stopped with %d events stored", at)
	time.Sleep(s.size.clickhouseDown)
	if srv, err = chserver.Start(ctx, dir, port); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if conn, err = store.Open(ctx, target); err != nil {
		t.Fatal(err)
	}
	cleared := time.Now()
	c, _ := count(conn)
	r.recovery = append(r.recovery, s.resumed(t, conn, c.distinct))
	s.waitStored(t, conn, 5*time.Minute)
	r.caughtUp = time.Since(cleared)
	r.totalStoreTime = time.Since(begin)
	stop(t, p)
	s.check(t, &r, conn, true)
}

// brokerRestart stops the broker mid-stream (SIGTERM) and starts it again
// on the same address and data directory.
func (s *suite) brokerRestart(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	r := result{scenario: "broker restarted with its data directory mid-stream"}
	begin := time.Now()
	p := s.ingest(t, "broker", target.DSN)
	at := storedAtLeast(t, conn, uint64(s.sum.Valid)/3)
	stop(t, s.broker)
	t.Logf("broker stopped with %d events stored", at)
	time.Sleep(2 * time.Second)
	s.startBroker()
	cleared := time.Now()
	c, _ := count(conn)
	r.recovery = append(r.recovery, s.resumed(t, conn, c.distinct))
	s.waitStored(t, conn, 5*time.Minute)
	r.caughtUp = time.Since(cleared)
	r.totalStoreTime = time.Since(begin)
	stop(t, p)
	s.check(t, &r, conn, true)
}

// secondIngest starts a second ingest process in the same group mid-stream
// (a rebalance), then stops it (another one).
func (s *suite) secondIngest(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	r := result{scenario: "a second ingest process joins, then leaves, mid-stream"}
	begin := time.Now()
	a := s.ingest(t, "pair", target.DSN)
	storedAtLeast(t, conn, uint64(s.sum.Valid)/4)
	b := s.ingest(t, "pair", target.DSN)
	c, _ := count(conn)
	r.recovery = append(r.recovery, s.resumed(t, conn, c.distinct))
	storedAtLeast(t, conn, uint64(s.sum.Valid)/2)
	stop(t, b)
	cleared := time.Now()
	c, _ = count(conn)
	r.recovery = append(r.recovery, s.resumed(t, conn, c.distinct))
	s.waitStored(t, conn, 5*time.Minute)
	r.caughtUp = time.Since(cleared)
	r.totalStoreTime = time.Since(begin)
	stop(t, a)
	s.check(t, &r, conn, true)
}

// killTransform stores the stream, then runs the transform and kills it
// with SIGKILL at random points of its identity updates and KPI rounds; the
// last one runs until the customer view equals the undisturbed run's.
func (s *suite) killTransform(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	r := result{scenario: fmt.Sprintf("transform killed (-9) %d times mid identity update / KPI round", s.size.transformKills)}
	in := s.ingest(t, "transform", target.DSN)
	s.waitStored(t, conn, 5*time.Minute)
	stop(t, in)
	want := customerDigest(t, s.refConn)
	rng := rand.New(rand.NewPCG(3, 4))
	args := []string{"--config.file", s.config(t, "transform"), "run", "--role", "transform", "--clickhouse", target.DSN, "--brokers", s.addr}
	begin := time.Now()
	phases := map[string]int{}
	for i := range s.size.transformKills {
		p := start(t, "transform", append(args, "--web.listen-address", testenv.FreeAddr(t))...)
		// Every other kill early, while the identity update runs; the
		// others later, in a KPI round. The log says where it landed.
		wait := 50 + rng.IntN(300)
		if i%2 == 1 {
			wait = 500 + rng.IntN(2000)
		}
		time.Sleep(time.Duration(wait) * time.Millisecond)
		phase := "identity update"
		if strings.Contains(p.Out.String(), "identity graph updated") {
			phase = "KPI round"
		}
		p.Kill()
		phases[phase]++
		t.Logf("transform kill %d after %d ms, during the %s", i+1, wait, phase)
	}
	r.scenario = fmt.Sprintf("transform killed (-9) %d times: %d in an identity update, %d in a KPI round", s.size.transformKills, phases["identity update"], phases["KPI round"])
	p := start(t, "transform", append(args, "--web.listen-address", testenv.FreeAddr(t))...)
	restarted := time.Now()
	got := ""
	for deadline := time.Now().Add(3 * time.Minute); got != want; time.Sleep(200 * time.Millisecond) {
		if got = customerDigest(t, conn); time.Now().After(deadline) {
			t.Fatalf("after 3m the customer view is\n%s\nwant the undisturbed run's\n%s\ncolumns that differ: %v", got, want, differingColumns(t, s.refConn, conn))
		}
	}
	r.recovery = append(r.recovery, time.Since(restarted))
	r.caughtUp = r.recovery[0]
	r.totalStoreTime = time.Since(begin)
	stop(t, p)
	s.check(t, &r, conn, false)
}

// customerColumns are the customer 360 columns compared with the
// undisturbed run (not updated_at, the time of the computation); lists are
// sets, in no particular order, and revenue a float sum whose last bits
// depend on the order it was added in.
var customerColumns = []string{"crm_contact_id", "acquisition_channel", "acquisition_campaign", "acquisition_class", "lead_channel", "lead_campaign",
	"lead_class", "segment", "country", "stage", "orders", "round(revenue, 6)", "channels_count", "is_crm", "churned", "first_seen", "last_seen", "first_order_at",
	"last_order_at", "reached_lead_at", "reached_customer_at", "won_at", "subscribed_at", "churned_at", "arraySort(channels)", "arraySort(campaigns)", "arraySort(order_channels)"}

// customerDigest sums up the customer view: every resolved event with its
// customer, and every alive customer's 360.
func customerDigest(t *testing.T, conn store.Conn) string {
	t.Helper()
	var events, customers uint64
	var e, c uint64
	err := conn.QueryRow(context.Background(), `SELECT
  (SELECT count() FROM resolved_events FINAL),
  (SELECT groupBitXor(cityHash64(event_id, customer)) FROM resolved_events FINAL),
  (SELECT count() FROM customers FINAL WHERE merged_into = ''),
  (SELECT groupBitXor(cityHash64(customer_id, `+strings.Join(customerColumns, ", ")+`)) FROM customers FINAL WHERE merged_into = '')`).
		Scan(&events, &e, &customers, &c)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%d resolved events (%x), %d customers (%x)", events, e, customers, c)
}

// differingColumns names the customers columns whose digests differ.
func differingColumns(t *testing.T, a, b store.Conn) []string {
	t.Helper()
	digest := func(conn store.Conn, col string) uint64 {
		var d uint64
		_ = conn.QueryRow(context.Background(), "SELECT groupBitXor(cityHash64(customer_id, "+col+")) FROM customers FINAL WHERE merged_into = ''").Scan(&d)
		return d
	}
	var out []string
	for _, col := range customerColumns {
		if digest(a, col) != digest(b, col) {
			out = append(out, col)
		}
	}
	return out
}

func (s *suite) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | messages | lost | double-counted | dead letters | KPIs vs undisturbed | resumed after | caught up after | scenario time |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range s.results {
		rec := "—"
		if len(r.recovery) > 0 {
			d := slices.Clone(r.recovery)
			slices.Sort(d)
			if len(d) == 1 {
				rec = d[0].Round(10 * time.Millisecond).String()
			} else {
				rec = fmt.Sprintf("median %s, max %s (%d)", d[len(d)/2].Round(10*time.Millisecond), d[len(d)-1].Round(10*time.Millisecond), len(d))
			}
		}
		up := "—"
		if r.caughtUp > 0 {
			up = r.caughtUp.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s | %s | %s | %s |\n", r.scenario, r.messages, r.lost, r.doubled, r.deadLetters, r.kpis, rec, up, r.totalStoreTime.Round(100*time.Millisecond))
	}
	return b.String()
}
