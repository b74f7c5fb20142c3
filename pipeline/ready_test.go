package pipeline_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/broker"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/testenv"
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
	target, _ := testenv.MigratedClickHouse(t)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{testenv.Broker(t, 2)}
	cfg.ClickHouse.DSN = target.DSN
	addr := serveAll(t, cfg)
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
