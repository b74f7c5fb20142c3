package exporter_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/exporter"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/transform"
)

const testCatalog = `kpis:
  - name: cac
    title: Customer acquisition cost
    description: Spend per new customer.
    owner: {team: marketing, contact: m@example.com}
    unit: currency
    direction: lower_is_better
    target: 600
    warning: 800
    window: 30d
    dimensions: [channel]
    audience: [exec, analyst]
    type: ratio
    numerator: {source: events, aggregate: sum, field: amount, where: {type: campaign.daily_stats}}
    denominator: {source: customers, aggregate: count, time_field: first_order_at, dimensions: {channel: acquisition_channel}}
  - name: orders
    title: Orders
    description: Distinct orders.
    owner: {team: finance, contact: f@example.com}
    unit: count
    direction: higher_is_better
    target: 100
    window: 30d
    dimensions: [order_channel]
    refresh: 1m
    audience: [exec]
    type: simple
    measure: {source: events, aggregate: count_distinct, field: entity_id, where: {type: order.placed}}
  - name: churn_rate
    title: Churn
    description: Cancelled over active.
    owner: {team: finance, contact: f@example.com}
    unit: ratio
    direction: lower_is_better
    target: 0.03
    window: 30d
    audience: [exec]
    type: ratio
    numerator: {source: customers, aggregate: count, time_field: churned_at}
    denominator: {source: customers, aggregate: count, time_field: none}
`

type fixedSnapshot struct{ s *transform.Snapshot }

func (f fixedSnapshot) Snapshot() *transform.Snapshot { return f.s }

var now = time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)

func snapshot(t *testing.T, cat *catalog.Catalog, ordersAt time.Time, channels ...string) *transform.Snapshot {
	t.Helper()
	cac, _ := cat.Get("cac")
	orders, _ := cat.Get("orders")
	churn, _ := cat.Get("churn_rate")
	cacRes := transform.Result{KPI: "cac", ComputedAt: now.Add(-time.Minute), Duration: 250 * time.Millisecond, Series: []transform.Series{
		{Result: 120, Numerator: 240, Denominator: 2, HasParts: true},
	}, Dropped: 0}
	for _, ch := range channels {
		cacRes.Series = append(cacRes.Series, transform.Series{Dimension: "channel", Value: ch, Result: 100, Numerator: 100, Denominator: 1, HasParts: true})
	}
	ordersRes := transform.Result{KPI: "orders", ComputedAt: ordersAt, Duration: 2 * time.Second, Series: []transform.Series{
		{Result: 4}, {Dimension: "order_channel", Value: "web", Result: 2},
	}}
	return &transform.Snapshot{Taken: now, KPIs: []transform.KPIState{
		{KPI: cac, Last: cacRes, LastSuccess: cacRes, DroppedTotal: 3},
		{KPI: orders, Last: ordersRes, LastSuccess: ordersRes, Errors: 1},
		{KPI: churn, Last: transform.Result{KPI: "churn_rate", ComputedAt: now, Err: errors.New("timeout")}, Errors: 2},
	}}
}

func collector(t *testing.T, snap *transform.Snapshot) (*exporter.KPICollector, *catalog.Catalog) {
	t.Helper()
	cat, err := catalog.Parse("test.yaml", []byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	if snap == nil {
		snap = snapshot(t, cat, now.Add(-30*time.Second), "paid_search")
	}
	c := exporter.NewKPICollector(cat, fixedSnapshot{snap}, 3)
	exporter.SetClock(c, func() time.Time { return now })
	return c, cat
}

const header = `# HELP kpibridge_kpi_value Latest value of a KPI, in its unit (see kpibridge_kpi_info); absent when there is no value or it is stale.
# TYPE kpibridge_kpi_value gauge
`

func TestExpositionOfAFixedSnapshot(t *testing.T) {
	c, _ := collector(t, nil)
	want := `# HELP kpibridge_kpi_age_seconds Seconds since a KPI's last successful computation.
# TYPE kpibridge_kpi_age_seconds gauge
kpibridge_kpi_age_seconds{kpi="cac",team="marketing"} 60
kpibridge_kpi_age_seconds{kpi="orders",team="finance"} 30
# HELP kpibridge_kpi_denominator Denominator of a ratio KPI; a group whose denominator is 0 has no series.
# TYPE kpibridge_kpi_denominator gauge
kpibridge_kpi_denominator{channel="",kpi="cac",order_channel="",team="marketing"} 2
kpibridge_kpi_denominator{channel="paid_search",kpi="cac",order_channel="",team="marketing"} 1
# HELP kpibridge_kpi_evaluation_duration_seconds How long the last evaluation of a KPI took.
# TYPE kpibridge_kpi_evaluation_duration_seconds gauge
kpibridge_kpi_evaluation_duration_seconds{kpi="cac",team="marketing"} 0.25
kpibridge_kpi_evaluation_duration_seconds{kpi="churn_rate",team="finance"} 0
kpibridge_kpi_evaluation_duration_seconds{kpi="orders",team="finance"} 2
# HELP kpibridge_kpi_evaluation_errors_total Failed evaluations of a KPI since the process started.
# TYPE kpibridge_kpi_evaluation_errors_total counter
kpibridge_kpi_evaluation_errors_total{kpi="cac",team="marketing"} 0
kpibridge_kpi_evaluation_errors_total{kpi="churn_rate",team="finance"} 2
kpibridge_kpi_evaluation_errors_total{kpi="orders",team="finance"} 1
# HELP kpibridge_kpi_info Catalog facts of a KPI; value is always 1.
# TYPE kpibridge_kpi_info gauge
kpibridge_kpi_info{audience="exec",contact="f@example.com",direction="higher_is_better",kpi="orders",team="finance",title="Orders",type="simple",unit="count",window="30d"} 1
kpibridge_kpi_info{audience="exec",contact="f@example.com",direction="lower_is_better",kpi="churn_rate",team="finance",title="Churn",type="ratio",unit="ratio",window="30d"} 1
kpibridge_kpi_info{audience="exec,analyst",contact="m@example.com",direction="lower_is_better",kpi="cac",team="marketing",title="Customer acquisition cost",type="ratio",unit="currency",window="30d"} 1
# HELP kpibridge_kpi_last_success_timestamp_seconds When a KPI was last computed successfully (Unix time).
# TYPE kpibridge_kpi_last_success_timestamp_seconds gauge
kpibridge_kpi_last_success_timestamp_seconds{kpi="cac",team="marketing"} 1.77495834e+09
kpibridge_kpi_last_success_timestamp_seconds{kpi="orders",team="finance"} 1.77495837e+09
# HELP kpibridge_kpi_numerator Numerator of a ratio KPI; sum(numerator) / sum(denominator) re-aggregates correctly.
# TYPE kpibridge_kpi_numerator gauge
kpibridge_kpi_numerator{channel="",kpi="cac",order_channel="",team="marketing"} 240
kpibridge_kpi_numerator{channel="paid_search",kpi="cac",order_channel="",team="marketing"} 100
# HELP kpibridge_kpi_series_dropped_total Series a KPI produced beyond its max_series cap, not exported.
# TYPE kpibridge_kpi_series_dropped_total counter
kpibridge_kpi_series_dropped_total{kpi="cac",team="marketing"} 3
kpibridge_kpi_series_dropped_total{kpi="churn_rate",team="finance"} 0
kpibridge_kpi_series_dropped_total{kpi="orders",team="finance"} 0
# HELP kpibridge_kpi_stale 1 when a KPI's last success is older than its refresh interval times the staleness factor.
# TYPE kpibridge_kpi_stale gauge
kpibridge_kpi_stale{kpi="cac",team="marketing"} 0
kpibridge_kpi_stale{kpi="orders",team="finance"} 0
# HELP kpibridge_kpi_target Agreed target of a KPI, in its unit.
# TYPE kpibridge_kpi_target gauge
kpibridge_kpi_target{kpi="cac",team="marketing"} 600
kpibridge_kpi_target{kpi="churn_rate",team="finance"} 0.03
kpibridge_kpi_target{kpi="orders",team="finance"} 100
` + header + `kpibridge_kpi_value{channel="",kpi="cac",order_channel="",team="marketing"} 120
kpibridge_kpi_value{channel="",kpi="orders",order_channel="",team="finance"} 4
kpibridge_kpi_value{channel="",kpi="orders",order_channel="web",team="finance"} 2
kpibridge_kpi_value{channel="paid_search",kpi="cac",order_channel="",team="marketing"} 100
# HELP kpibridge_kpi_warning Warning threshold of a KPI, on the bad side of the target.
# TYPE kpibridge_kpi_warning gauge
kpibridge_kpi_warning{kpi="cac",team="marketing"} 800
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The cached gatherer that /metrics serves gives the same exposition, twice (second from cache).
	g := exporter.NewCachedGatherer(c)
	for range 2 {
		if err := testutil.GatherAndCompare(g, strings.NewReader(want)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStaleKPILosesItsValueButShowsItsAge(t *testing.T) {
	cat, _ := catalog.Parse("test.yaml", []byte(testCatalog))
	// orders refreshes every minute; 3 refreshes = 3 minutes; last success 10 minutes ago.
	c, _ := collector(t, snapshot(t, cat, now.Add(-10*time.Minute)))
	want := header + `kpibridge_kpi_value{channel="",kpi="cac",order_channel="",team="marketing"} 120
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kpibridge_kpi_value"); err != nil {
		t.Fatal(err)
	}
	age := `# HELP kpibridge_kpi_stale 1 when a KPI's last success is older than its refresh interval times the staleness factor.
# TYPE kpibridge_kpi_stale gauge
kpibridge_kpi_stale{kpi="cac",team="marketing"} 0
kpibridge_kpi_stale{kpi="orders",team="finance"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(age), "kpibridge_kpi_stale"); err != nil {
		t.Fatal(err)
	}
}

func TestDisappearingDimensionValueIsDropped(t *testing.T) {
	cat, _ := catalog.Parse("test.yaml", []byte(testCatalog))
	src := &switchable{s: snapshot(t, cat, now, "paid_search", "email")}
	c := exporter.NewKPICollector(cat, src, 3)
	exporter.SetClock(c, func() time.Time { return now })
	if n := testutil.CollectAndCount(c, "kpibridge_kpi_value"); n != 5 {
		t.Fatalf("%d value series, want 5", n)
	}
	src.s = snapshot(t, cat, now, "paid_search") // email has no more value
	if n := testutil.CollectAndCount(c, "kpibridge_kpi_value"); n != 4 {
		t.Fatalf("%d value series after email disappeared, want 4", n)
	}
}

type switchable struct{ s *transform.Snapshot }

func (s *switchable) Snapshot() *transform.Snapshot { return s.s }

// A live scrape of every family (KPIs and ingest pipeline) passes promtool check metrics.
func TestLiveScrapePassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	testenv.Require(t, err == nil, "promtool (Debian package prometheus)")
	c, cat := collector(t, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	ingest.NewMetrics(reg, []string{"crm.events"})
	srv := httptest.NewServer(exporter.NewHandler(exporter.HandlerOptions{Gatherer: reg, Catalog: cat,
		Snapshots: fixedSnapshot{snapshot(t, cat, now)}, Roles: []string{"export"}, Version: "test", Staleness: 3,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	// The same server's landing page lists every KPI with its status (TestLandingPage checks the cells).
	res, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`id="cac"`, "Customer acquisition cost", "on track", "EUR 120.00", `id="churn_rate"`, "failing: timeout"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("landing page lacks %q", want)
		}
	}
}

func TestReadiness(t *testing.T) {
	notYet := errors.New("no KPI snapshot yet")
	ready := notYet
	h := exporter.NewHandler(exporter.HandlerOptions{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready: func(context.Context) error { return ready }})
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if get("/-/healthy") != 200 || get("/-/ready") != 503 {
		t.Fatalf("healthy %d, ready %d before the first snapshot", get("/-/healthy"), get("/-/ready"))
	}
	ready = nil
	if get("/-/ready") != 200 {
		t.Fatal("not ready after the first snapshot")
	}
}
