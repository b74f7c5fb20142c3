package demo_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/demo"
	"github.com/kpibridge/kpibridge/internal/chserver"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// TestDemoRunsAndServesKPIs runs the demo for a short while (against the
// test ClickHouse server), scrapes it, and stops it with its context.
func TestDemoRunsAndServesKPIs(t *testing.T) {
	target := testenv.ClickHouse(t)
	webAddr := testenv.FreeAddr(t)
	_, perr := exec.LookPath("prometheus")
	testenv.Require(t, perr == nil, "prometheus (Debian package prometheus)")
	_, aerr := exec.LookPath("prometheus-alertmanager")
	testenv.Require(t, aerr == nil, "prometheus-alertmanager (Debian package prometheus-alertmanager)")
	promAddr, amAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	// 720× real time: a simulated day every two minutes, so the test sees
	// the live stream add most of a day to the 30-day KPIs.
	opts := demo.Options{BrokerListen: testenv.FreeAddr(t), ClickHouseDSN: target.DSN, Customers: 300, Days: 30, Seed: 7, Speed: 720,
		Web: testenv.WebFlags(webAddr), Version: "test",
		Prometheus: true, PrometheusListen: promAddr, AlertmanagerListen: amAddr, Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testenv.Output{}
	done := make(chan error, 1)
	go func() {
		cfg := config.Default()
		cfg.Transform.MaxRefresh = 10 * time.Second
		done <- demo.Run(ctx, cfg, opts, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()

	var metrics string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + webAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			metrics = string(b)
			if strings.Contains(metrics, `kpibridge_kpi_value{`) && strings.Contains(metrics, `outcome="valid"`) {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v\n%s", err, out)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !strings.Contains(metrics, `kpibridge_kpi_value{`) {
		t.Fatalf("no KPI values scraped within 90s; demo said:\n%s", out)
	}
	for _, want := range []string{"landing page", "http://" + webAddr + "/metrics", "back-filled", target.Redacted(),
		"http://" + promAddr + "/alerts", "http://" + amAddr + "/", "import dashboards/grafana/*.json",
		"export KPIBRIDGE_CLICKHOUSE_DSN=" + target.Redacted(), "topics crm.events.dlq, campaign.events.dlq", "kpibridge customer cnt_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// Prometheus loads the generated rules and evaluates them against the
	// demo's KPIs: some alert is pending or firing within a minute.
	var alerts struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for len(alerts.Alerts) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		_ = testenv.PromAPI(ctx, promAddr, "/api/v1/alerts", &alerts)
	}
	if len(alerts.Alerts) == 0 {
		t.Errorf("no alert pending or firing in the demo's Prometheus after a minute")
	}
	for _, a := range alerts.Alerts {
		if a.Labels["severity"] == "" || a.Labels["team"] == "" {
			t.Errorf("alert %v lacks severity or team", a.Labels)
		}
	}
	if res, err := http.Get("http://" + amAddr + "/-/ready"); err != nil || res.StatusCode != 200 {
		t.Errorf("the demo's Alertmanager is not ready: %v", err)
	}

	// The live stream continues the back-filled company: over most of a
	// simulated day, the main KPIs drift within a band of their back-filled
	// values rather than jump, and data stays fresh (history ends now).
	const band = 0.35
	main := []string{"orders", "revenue", "aov", "active_customers", "leads", "marketing_spend", "new_customers"}
	first := kpiTotals(t, webAddr)
	for _, k := range main {
		if first[k] <= 0 {
			t.Fatalf("back-filled %s = %v, want a value (demo said:\n%s)", k, first[k], out)
		}
	}
	// The newest event: within an hour or two by day, which a back-fill
	// that ended on an earlier day would not be. But the simulated company
	// sleeps (generate's hourTable): 3 % of its events fall between
	// midnight and 06:00 UTC, which for this small one is a few or none, so
	// at night the newest can be from the evening before (a CI run at 06:05 saw 6.07 hours), and the check
	// cannot tell the two apart then.
	bound := 6 * time.Hour
	if now := time.Now().UTC(); now.Hour() < 9 {
		evening := time.Date(now.Year(), now.Month(), now.Day(), 21, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
		bound = max(bound, now.Sub(evening))
	}
	if f, ok := first["data_freshness"]; !ok || f > bound.Seconds() {
		t.Errorf("data_freshness = %v s after the back-fill, want under %s (history ends now)", f, bound.Round(time.Minute))
	}
	moved := false
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Second) {
		now := kpiTotals(t, webAddr)
		for _, k := range main {
			v, ok := now[k]
			if !ok {
				continue
			}
			if v != first[k] {
				moved = true
			}
			if math.Abs(v-first[k]) > band*first[k] {
				t.Errorf("%s jumped from %v to %v with the live stream (more than %.0f %%)", k, first[k], v, 100*band)
			}
		}
	}
	if !moved {
		t.Errorf("no main KPI moved in 60 s of live stream: %v", first)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stopped with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop within 60s of Ctrl-C")
	}
}

var labelRe = regexp.MustCompile(`(\w+)="([^"]*)"`)

// kpiTotals reads every KPI's total from the exporter's /metrics.
func kpiTotals(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "kpibridge_kpi_value{") {
			continue
		}
		i := strings.LastIndexByte(line, '}')
		kpi, total := "", true
		for _, m := range labelRe.FindAllStringSubmatch(line[:i], -1) {
			switch m[1] {
			case "kpi":
				kpi = m[2]
			case "team":
			default:
				total = total && m[2] == ""
			}
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64); err == nil && total {
			out[kpi] = v
		}
	}
	return out
}

// A demo whose ClickHouse port another process holds stops at once and
// says what to do; before, it took the other process for its private server.
func TestDemoNamesAHeldClickHousePort(t *testing.T) {
	testenv.Require(t, testenv.FileExists(chserver.Binary), "clickhouse-server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opts := demo.Options{BrokerListen: testenv.FreeAddr(t), ClickHouseDir: t.TempDir(), ClickHousePort: l.Addr().(*net.TCPAddr).Port,
		Customers: 10, Days: 1, Web: testenv.WebFlags(testenv.FreeAddr(t)), Version: "test", Dir: t.TempDir()}
	err = demo.Run(context.Background(), config.Default(), opts, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "--clickhouse.port") || !strings.Contains(err.Error(), strconv.Itoa(opts.ClickHousePort)) {
		t.Fatalf("demo with its ClickHouse port held: %v; want an error naming the port and --clickhouse.port", err)
	}
}
