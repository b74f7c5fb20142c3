package demo_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
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
	opts := demo.Options{BrokerListen: testenv.FreeAddr(t), ClickHouseDSN: target.DSN, Customers: 200, Days: 20, Seed: 7, TrickleRate: 10,
		Web: testenv.WebFlags(webAddr), Version: "test"}
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
	for _, want := range []string{"landing page", "http://" + webAddr + "/metrics", "back-filled", target.Redacted()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
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
