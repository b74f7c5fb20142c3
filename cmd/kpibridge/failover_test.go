package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// transformProcess is `kpibridge run --role transform,export` as a child process.
type transformProcess struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.Output
	web  string
	done chan struct{}
}

func startTransform(t *testing.T, name, bin, cfgFile, brokers, dsn string) *transformProcess {
	t.Helper()
	p := &transformProcess{name: name, out: &testenv.Output{}, web: testenv.FreeAddr(t), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--config.file", cfgFile, "run", "--role", "transform,export", "--brokers", brokers, "--clickhouse", dsn,
		"--web.listen-address", p.web)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *transformProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// active reads kpibridge_transform_active from /metrics: 1, 0, or -1 when it cannot.
func (p *transformProcess) active() int {
	body, code := httpGet(p.web, "/metrics")
	if code != http.StatusOK {
		return -1
	}
	for _, line := range strings.Split(body, "\n") {
		switch line {
		case "kpibridge_transform_active 1":
			return 1
		case "kpibridge_transform_active 0":
			return 0
		}
	}
	return -1
}

func httpGet(addr, path string) (string, int) {
	c := http.Client{Timeout: 3 * time.Second}
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b), res.StatusCode
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// generatedRows is a month of generated journeys of 1,500 customers,
// decoded as ingest stores them.
func generatedRows(t *testing.T) []ingest.Row {
	t.Helper()
	cfg := generate.DefaultConfig()
	cfg.Customers, cfg.Days, cfg.InvalidRate, cfg.DuplicateRate = 1500, 30, 0, 0
	cfg.End = time.Now().UTC().AddDate(0, 0, -1)
	sink := &rowSink{}
	if _, err := generate.Run(context.Background(), cfg, sink, nil); err != nil {
		t.Fatal(err)
	}
	dec, err := events.NewDecoder(events.Config{EmailHashKey: []byte(fixtureKey), ReportingCurrency: cfg.ReportingCurrency, Rates: cfg.Rates, MaxFutureSkew: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]ingest.Row, 0, len(sink.values))
	for i, v := range sink.values {
		ev, err := dec.Decode(v)
		if err != nil {
			t.Fatalf("generated message %d: %v", i, err)
		}
		rows = append(rows, ingest.Row{Event: ev, Topic: ev.Type.Topic()})
	}
	return rows
}

type rowSink struct{ values [][]byte }

func (s *rowSink) Write(_ context.Context, recs []generate.Record) error {
	for _, r := range recs {
		s.values = append(s.values, append([]byte(nil), r.Value...))
	}
	return nil
}

func (s *rowSink) Close() error { return nil }

// identityDigest sums up the customer view: every resolved event with the
// customer it belongs to now (through customer_merges: rows keep the
// customer they resolved to first), and every alive customer's 360 (not updated_at, the time of the
// computation); lists as sets, revenue rounded.
func identityDigest(t *testing.T, conn store.Conn) string {
	t.Helper()
	var events, distinct, e, customers, c uint64
	err := conn.QueryRow(context.Background(), `SELECT
  (SELECT count() FROM resolved_events), (SELECT uniqExact(event_id) FROM resolved_events),
  (SELECT groupBitXor(cityHash64(event_id, customer)) FROM (`+identity.ResolvedSQL([]string{"event_id"}, "", true)+`)),
  (SELECT count() FROM customers FINAL WHERE merged_into = ''),
  (SELECT groupBitXor(cityHash64(customer_id, crm_contact_id, acquisition_channel, acquisition_campaign, lead_channel, segment, country, stage,
     orders, round(revenue, 6), is_crm, churned, first_seen, last_seen, first_order_at, arraySort(channels), arraySort(campaigns)))
   FROM customers FINAL WHERE merged_into = '')`).Scan(&events, &distinct, &e, &customers, &c)
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%d resolved events (%d distinct, %x), %d customers (%x)", events, distinct, e, customers, c)
}

// TestTransformFailover runs two `kpibridge run --role transform,export`
// processes against one database: exactly one holds the transform role,
// the other stands by and serves the stored KPIs. The active one is killed
// with SIGKILL while events keep arriving; the standby takes over within
// the session timeout, and in the end every KPI round is stored once and
// whole and the customer view equals a single resolver's over the same
// events. The killed process, started again, stands by.
func TestTransformFailover(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	_, ref := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	addr := testenv.Broker(t, 1)
	bin := testenv.Binary(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	const session = 6 * time.Second
	cfgFile := filepath.Join(t.TempDir(), "kpibridge.yml")
	cfg := fmt.Sprintf(`transform:
  identity_interval: 1s
  max_refresh: 10s
  leader: {group_id: failover-test, session_timeout: %s, heartbeat_interval: 500ms}
export:
  poll_interval: 1s
`, session)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// The events arrive in four parts: before the start, while the first
	// process is active, just before it is killed, and after the failover.
	rows := generatedRows(t)
	w := ingest.NewClickHouseWriter(conn, 1024)
	if err := ingest.NewClickHouseWriter(ref, 1024).InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewResolver(ref, nil).Update(ctx); err != nil {
		t.Fatal(err)
	}
	want := identityDigest(t, ref)
	part := func(i int) []ingest.Row { return rows[i*len(rows)/4 : (i+1)*len(rows)/4] }
	if err := w.InsertEvents(ctx, part(0)); err != nil {
		t.Fatal(err)
	}

	procs := []*transformProcess{
		startTransform(t, "first", bin, cfgFile, addr, target.DSN),
		startTransform(t, "second", bin, cfgFile, addr, target.DSN),
	}
	var active, standby *transformProcess
	waitFor(t, 90*time.Second, "one active and one standby process, both ready", func() bool {
		a, b := procs[0].active(), procs[1].active()
		_, ra := httpGet(procs[0].web, "/-/ready")
		_, rb := httpGet(procs[1].web, "/-/ready")
		switch {
		case ra != http.StatusOK || rb != http.StatusOK:
			return false
		case a == 1 && b == 0:
			active, standby = procs[0], procs[1]
		case a == 0 && b == 1:
			active, standby = procs[1], procs[0]
		default:
			return false
		}
		return true
	})
	for _, p := range []struct {
		proc *transformProcess
		says string
	}{{active, "transform active"}, {standby, "transform standby"}} {
		if body, _ := httpGet(p.proc.web, "/-/ready"); !strings.Contains(body, p.says) {
			t.Errorf("%s's /-/ready does not say %q:\n%s", p.proc.name, p.says, body)
		}
	}
	// The standby's export serves what the active process stores.
	if body, _ := httpGet(standby.web, "/metrics"); !strings.Contains(body, `kpibridge_kpi_last_success_timestamp_seconds{`) {
		t.Errorf("the standby's /metrics has no KPI families")
	}
	if err := w.InsertEvents(ctx, part(1)); err != nil {
		t.Fatal(err)
	}
	rounds := func() uint64 {
		var n uint64
		_ = conn.QueryRow(ctx, "SELECT uniqExact(computed_at) FROM kpi_runs").Scan(&n)
		return n
	}
	waitFor(t, 90*time.Second, "two KPI rounds", func() bool { return rounds() >= 2 })
	if err := w.InsertEvents(ctx, part(2)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // into the identity update of the new events, or a round
	active.kill()
	killed := time.Now()
	took := waitFor(t, session+10*time.Second, "the standby to take the transform role", func() bool { return standby.active() == 1 })
	var firstRound time.Duration
	waitFor(t, 60*time.Second, "the new active process's first KPI round", func() bool {
		var last time.Time
		_ = conn.QueryRow(ctx, "SELECT max(computed_at) FROM kpi_runs").Scan(&last)
		firstRound = time.Since(killed)
		return last.After(killed.Add(-time.Second))
	})
	t.Logf("failover: kill -9 of the active process → standby active in %s (session timeout %s); its first KPI round stored %s after the kill",
		took.Round(10*time.Millisecond), session, firstRound.Round(100*time.Millisecond))
	if took > session+5*time.Second {
		t.Errorf("failover took %s, want within the session timeout %s plus 5s", took, session)
	}
	if body, _ := httpGet(standby.web, "/-/ready"); !strings.Contains(body, "transform active") {
		t.Errorf("new active process's /-/ready:\n%s", body)
	}
	if err := w.InsertEvents(ctx, part(3)); err != nil {
		t.Fatal(err)
	}

	// The killed process comes back and stands by: the role stays where it is.
	back := startTransform(t, "restarted", bin, cfgFile, addr, target.DSN)
	waitFor(t, 60*time.Second, "the restarted process to stand by", func() bool { return back.active() == 0 })
	got := ""
	for deadline := time.Now().Add(90 * time.Second); got != want; time.Sleep(200 * time.Millisecond) {
		if got = identityDigest(t, conn); time.Now().After(deadline) {
			t.Fatalf("after 90s the customer view is\n%s\nwant a single resolver's over the same events\n%s", got, want)
		}
	}
	atKill := rounds()
	waitFor(t, 90*time.Second, "two more KPI rounds of the new active process", func() bool { return rounds() >= atKill+2 })
	if standby.active() != 1 {
		t.Errorf("the role moved to the restarted process")
	}
	_ = standby.cmd.Process.Signal(syscall.SIGTERM)
	<-standby.done
	back.kill()

	// Every KPI round stored once and whole.
	check := func(what, query string, args ...any) {
		t.Helper()
		var n uint64
		if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != 0 {
			t.Errorf("%s: %d", what, n)
		}
	}
	check("(kpi, computed_at) with more than one kpi_runs row",
		"SELECT count() FROM (SELECT kpi, computed_at, count() AS n FROM kpi_runs GROUP BY kpi, computed_at HAVING n > 1)")
	check(fmt.Sprintf("rounds without a run of each of the %d KPIs", len(cat.KPIs)),
		"SELECT count() FROM (SELECT computed_at, uniqExact(kpi) AS n FROM kpi_runs GROUP BY computed_at HAVING n != ?)", len(cat.KPIs))
	check("failed KPI runs", "SELECT count() FROM kpi_runs WHERE ok = 0")
	check("kpi_values series stored twice",
		"SELECT count() FROM (SELECT kpi, computed_at, dimension, dimension_value, count() AS n FROM kpi_values GROUP BY kpi, computed_at, dimension, dimension_value HAVING n > 1)")
	check("kpi_values without their run, or runs whose series count differs from the values stored",
		`SELECT count() FROM (SELECT kpi, computed_at, count() AS n FROM kpi_values GROUP BY kpi, computed_at)
ANY FULL OUTER JOIN (SELECT kpi, computed_at, toUInt64(series) AS s FROM kpi_runs) USING (kpi, computed_at) WHERE n != s`)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(computed_at) FROM kpi_runs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d KPI rounds of %d KPIs checked; customer view: %s", n, len(cat.KPIs), got)
	for _, p := range []struct {
		proc *transformProcess
		says string
	}{{standby, "transform on standby"}, {standby, "transform role active"}, {back, "transform on standby"}} {
		if !strings.Contains(p.proc.out.String(), p.says) {
			t.Errorf("%s's log does not say %q", p.proc.name, p.says)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(standby.out.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "transform role active") {
			t.Logf("%s: %s", standby.name, sc.Text())
		}
	}
}
