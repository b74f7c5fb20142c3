package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/transform"
)

// report is campaign.daily_stats s1 for 2026-01-10 as reported at at, with cost.
func report(at time.Time, cost int) kafka.Message {
	v := fmt.Sprintf(`{"event_id":"google_ads-1-c_search-2026-01-10","type":"campaign.daily_stats","occurred_at":%q,"source":"google_ads",`+
		`"identity":{"anonymous_id":"system:google_ads"},"campaign":{"campaign_id":"c_search","channel":"paid_search"},`+
		`"properties":{"date":"2026-01-10","impressions":1000,"clicks":50,"cost":%d,"currency":"EUR"}}`, at.UTC().Format(time.RFC3339), cost)
	return kafka.Message{Topic: topic, Key: []byte("system:google_ads"), Value: []byte(v)}
}

// A corrected campaign.daily_stats re-send replaces the first, whether the
// same ingest process sees both or a restarted one sees the correction; an
// identical re-send stays a duplicate, and a re-delivered old version never
// undoes a correction.
func TestCorrectedReportReplacesTheFirst(t *testing.T) {
	e := setup(t, 1)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	spendKPI, _ := cat.Get("marketing_spend")
	spend := func() float64 {
		t.Helper()
		res := transform.Evaluate(context.Background(), e.conn, spendKPI, time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC), nil)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		tot, _ := res.Total()
		return tot.Result
	}
	day := time.Date(2026, 1, 11, 3, 0, 0, 0, time.UTC)

	// One process: the report, the same report again, its correction.
	testenv.Produce(t, e.addr, report(day, 100), report(day, 100), report(day.Add(24*time.Hour), 150))
	cfg := testConfig()
	r := e.start(cfg, nil)
	e.waitCount(30*time.Second, 2, "SELECT count() FROM events")
	e.waitCount(30*time.Second, 1, "SELECT count() FROM duplicates FINAL")
	r.stop(t)
	if got := spend(); got != 150 {
		t.Errorf("same process: spend %v, want the correction's 150", got)
	}

	// A restart (a new group re-reads everything, with no memory of what
	// it saw), then a second correction: the old versions stored again do
	// not win, the newest report does.
	testenv.Produce(t, e.addr, report(day.Add(48*time.Hour), 175))
	cfg.GroupID = "after-restart"
	r = e.start(cfg, nil)
	e.waitCount(30*time.Second, 2+3, "SELECT count() FROM events") // the identical re-send is a duplicate again
	r.stop(t)
	if got := spend(); got != 175 {
		t.Errorf("after a restart: spend %v, want the second correction's 175", got)
	}
}
