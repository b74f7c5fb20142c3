package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/demo"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

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
	opts := demo.Options{BrokerListen: testenv.FreeAddr(t), ClickHouseDSN: target.DSN, Customers: 200, Days: 20, Seed: 7, TrickleRate: 10,
		Web: testenv.WebFlags(webAddr), Version: "test",
		Prometheus: true, PrometheusListen: promAddr, AlertmanagerListen: amAddr, Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, config.Default(), opts, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
		"http://" + promAddr + "/alerts", "http://" + amAddr + "/", "import dashboards/grafana/*.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// Prometheus loads the generated rules and evaluates them against the
	// demo's KPIs: some alert is pending or firing within a minute.
	var alerts struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for len(alerts.Data.Alerts) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if res, err := http.Get("http://" + promAddr + "/api/v1/alerts"); err == nil {
			_ = json.NewDecoder(res.Body).Decode(&alerts)
			res.Body.Close()
		}
	}
	if len(alerts.Data.Alerts) == 0 {
		t.Errorf("no alert pending or firing in the demo's Prometheus after a minute")
	}
	for _, a := range alerts.Data.Alerts {
		if a.Labels["severity"] == "" || a.Labels["team"] == "" {
			t.Errorf("alert %v lacks severity or team", a.Labels)
		}
	}
	if res, err := http.Get("http://" + amAddr + "/-/ready"); err != nil || res.StatusCode != 200 {
		t.Errorf("the demo's Alertmanager is not ready: %v", err)
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
