package pipeline_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/broker"
	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/scorecard"
	"github.com/kpibridge/kpibridge/transform"
)

// While no Kafka broker answers, the ingest role is not ready: /-/ready
// answers 503 and says why, kpibridge_dependency_up{dependency="kafka"} is
// 0; once the broker is up, both recover without a restart.
func TestIngestIsNotReadyWithoutKafka(t *testing.T) {
	target, _ := testenv.MigratedClickHouse(t)
	brokerAddr, webAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.ClickHouse.DSN = target.DSN
	start(t, cfg, []string{"ingest"}, testenv.WebFlags(webAddr))

	get := func(path string) (int, string) {
		res, err := http.Get("http://" + webAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	waitFor(t, 30*time.Second, "/-/ready to answer 503 naming Kafka", func() bool {
		code, body := get("/-/ready")
		return code == 503 && strings.Contains(body, "no Kafka broker answers ("+brokerAddr+")")
	})
	waitFor(t, 30*time.Second, `kpibridge_dependency_up{dependency="kafka"} 0`, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `kpibridge_dependency_up{dependency="kafka"} 0`) && strings.Contains(body, "kpibridge_ready 0")
	})

	b, err := broker.Start(broker.Config{Listen: brokerAddr, Partitions: 2, Topics: cfg.Kafka.Topics}, logger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, 30*time.Second, "/-/ready to answer 200 once Kafka is up", func() bool {
		code, _ := get("/-/ready")
		return code == 200
	})
	waitFor(t, 30*time.Second, `kpibridge_dependency_up{dependency="kafka"} 1`, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `kpibridge_dependency_up{dependency="kafka"} 1`)
	})
}

// The export role serves /scorecard from the KPI history the transform
// writes: every exec KPI of the catalog is on it.
func TestScorecardIsServed(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{testenv.Broker(t, 2)}
	cfg.ClickHouse.DSN = target.DSN
	cfg.Export.ScorecardInterval = time.Second
	// A baseline recorded from yesterday's revenue is exported.
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Truncate(24 * time.Hour)
	if err := transform.WriteResult(t.Context(), conn, transform.Result{KPI: "revenue", ComputedAt: yesterday.Add(time.Hour), Window: "30d",
		Series: []transform.Series{{Result: 42000}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := scorecard.SetBaseline(t.Context(), conn, cat, "revenue", yesterday, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	addr := serveAll(t, cfg)
	waitFor(t, 30*time.Second, `kpibridge_kpi_baseline{kpi="revenue",team="finance"} 42000`, func() bool {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.Contains(string(b), `kpibridge_kpi_baseline{kpi="revenue",team="finance"} 42000`)
	})
	var page string
	waitFor(t, 30*time.Second, "/scorecard", func() bool {
		res, err := http.Get("http://" + addr + "/scorecard")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		page = string(b)
		return res.StatusCode == http.StatusOK
	})
	for _, want := range []string{"KPI scorecard", "Wins this week", "Needs attention", `data-kpi="revenue"`, `data-kpi="identity_match_rate"`} {
		if !strings.Contains(page, want) {
			t.Errorf("/scorecard lacks %q", want)
		}
	}
}
