package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

const fixtureKey = "golden-key-0123456789"

// loadFixture stores the transform golden fixture and resolves identities.
func loadFixture(t *testing.T) store.Target {
	t.Helper()
	target, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	dec, err := events.NewDecoder(events.Config{EmailHashKey: []byte(fixtureKey), ReportingCurrency: "EUR", Rates: map[string]float64{"USD": 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	var rows []ingest.Row
	for _, name := range []string{"events.ndjson", "late.ndjson"} {
		f, err := os.Open(filepath.Join("..", "..", "transform", "testdata", "golden", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ev, err := dec.Decode(sc.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, ingest.Row{Event: ev, Topic: ev.Type.Topic()})
		}
		f.Close()
	}
	if err := ingest.NewClickHouseWriter(conn, 1024).InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewResolver(conn, nil).Update(ctx); err != nil {
		t.Fatal(err)
	}
	return target
}

func TestKPIsQueryByDimension(t *testing.T) {
	target := loadFixture(t)
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN}
	code, out, errOut := runCLI(t, env, "kpis", "query", "cac", "--by", "channel", "--window", "lifetime", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		KPI    string
		Window string
		Series []struct {
			Dimension, Value string
			Result           float64
			Denominator      *float64
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]float64{}
	for _, s := range res.Series {
		got[s.Value] = s.Result
		if s.Denominator == nil {
			t.Errorf("ratio series %s has no denominator in JSON", s.Value)
		}
	}
	// Lifetime paid spend 360 (paid_search 150 as corrected + 40 + 30, paid_social 80,
	// display 60) over the 2 customers whose first order is credited to a
	// paid channel: Alice (paid_search) and Bob (paid_social). Carol (no touch
	// in the lookback), Frank (email) and Grace (organic) are not paid-acquired;
	// display spent but won nobody: no value.
	want := map[string]float64{"": 360.0 / 2, "paid_search": 220, "paid_social": 80}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("cac[%q] = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for _, none := range []string{"display", "email", "organic_search", catalog.Unattributed} {
		if _, ok := got[none]; ok {
			t.Errorf("cac has a value for %s: %s", none, out)
		}
	}
	if res.Window != "lifetime" {
		t.Errorf("window %q: %s", res.Window, out)
	}

	// The table: values in the reporting currency, parts as counts or
	// amounts, target and status on the total row only.
	code, out, _ = runCLI(t, env, "kpis", "query", "cac", "--by", "channel", "--window", "lifetime")
	rows := tableRows(out)
	if code != 0 || !strings.Contains(out, "computed at ") ||
		!slices.Equal(rows["(total)"], []string{"EUR 180.00", "360", "2", "EUR 600.00", "on track"}) ||
		!slices.Equal(rows["paid_search"], []string{"EUR 220.00", "220", "1"}) ||
		!strings.Contains(out, "a channel without spend) have no value") {
		t.Errorf("table output (exit %d), rows %q:\n%s", code, rows, out)
	}
	code, out, _ = runCLI(t, env, "kpis", "query", "revenue", "--window", "lifetime")
	if rows := tableRows(out); code != 0 || !slices.Equal(rows["(total)"], []string{"EUR 680.00", "EUR 50,000", "off track"}) {
		t.Errorf("table output (exit %d), rows %q:\n%s", code, rows, out)
	}
	code, _, errOut = runCLI(t, env, "kpis", "query", "revenue", "--by", "planet")
	if code != 1 || !strings.Contains(errOut, "no dimensions") {
		t.Errorf("--by an unknown dimension: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "kpis", "query", "nope")
	if code != 1 || !strings.Contains(errOut, `no KPI named "nope"`) {
		t.Errorf("unknown KPI: exit %d, %s", code, errOut)
	}
}

// tableRows maps the first cell of each row of kpis query's table to the
// cells after the dimension and its value (two or more spaces apart).
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	cell := regexp.MustCompile(`\s{2,}`)
	for _, line := range strings.Split(out, "\n") {
		cells := cell.Split(strings.TrimSpace(line), -1)
		switch {
		case len(cells) < 2:
		case cells[0] == "(total)":
			rows[cells[0]] = cells[1:]
		case cells[0] != "DIMENSION":
			rows[cells[1]] = cells[2:]
		}
	}
	return rows
}

func TestCustomerByEmailShowsMergedIdentity(t *testing.T) {
	target := loadFixture(t)
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN, "KPIBRIDGE_EMAIL_HASH_KEY": fixtureKey}
	for _, id := range []string{" Alice@Example.com", "a1", "crm:C1"} {
		code, out, errOut := runCLI(t, env, "customer", id, "--format", "json")
		if code != 0 {
			t.Fatalf("customer %q: exit %d: %s", id, code, errOut)
		}
		var c identity.Customer
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatal(err)
		}
		if c.CustomerID != "crm:C1" || len(c.Keys) != 3 || c.Orders != 2 || c.Revenue != 150 || c.AcquisitionChannel != "paid_search" || c.Stage != "opportunity" ||
			c.AcquisitionClass != "paid" || c.LeadChannel != "paid_search" || c.LeadCampaign != "c_search" {
			t.Errorf("customer %q: %+v", id, c)
		}
		if len(c.Timeline) != 14 || c.Timeline[0].OccurredAt.After(c.Timeline[len(c.Timeline)-1].OccurredAt) {
			t.Errorf("customer %q timeline has %d events (want 14, oldest first)", id, len(c.Timeline))
		}
		if strings.Contains(out, "alice@example.com") {
			t.Errorf("raw email in output")
		}
		_, out, _ = runCLI(t, env, "customer", id)
		if !strings.Contains(out, "first order credited to  paid_search (paid, campaign c_search)") {
			t.Errorf("customer %q table does not say which touch the first order is credited to:\n%s", id, out)
		}
		if !regexp.MustCompile(`\nrevenue +EUR 150\.00\n`).MatchString(out) {
			t.Errorf("customer %q table does not show revenue EUR 150.00:\n%s", id, out)
		}
	}
	code, _, errOut := runCLI(t, env, "customer", "nobody@example.com")
	if code != 1 || !strings.Contains(errOut, "no such customer") || strings.Contains(errOut, "nobody@") {
		t.Errorf("unknown customer: exit %d, %s", code, errOut)
	}
}

// The customer table leaves out attributes without a value instead of
// printing empty ones.
func TestPrintCustomerOmitsEmptyAttributes(t *testing.T) {
	var b strings.Builder
	printCustomer(&b, identity.Customer{CustomerID: "anon:a9", Keys: []string{"anon:a9"}, Country: "DE", Orders: 1, Revenue: 72260.4}, "EUR")
	want := "customer\tanon:a9\n" +
		"identity keys\tanon:a9\n" +
		"country\tDE\n" +
		"lead credited to\t(none) (no campaign touch in the lookback, or no such conversion yet)\n" +
		"first order credited to\t(none) (no campaign touch in the lookback, or no such conversion yet)\n" +
		"orders\t1\n" +
		"revenue\tEUR 72,260\n" +
		"churned\tno\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestKPIsListAndCheck(t *testing.T) {
	code, out, _ := runCLI(t, nil, "kpis", "list")
	if code != 0 || !strings.Contains(out, "martech_spend_share") || !strings.Contains(out, "3.24 %") || !strings.Contains(out, "EUR 4,000") {
		t.Errorf("kpis list: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "kpis", "check", filepath.Join("..", "..", "catalog", "testdata", "good_full.yaml"))
	if code != 0 || !strings.Contains(out, "3 KPIs, valid") {
		t.Errorf("kpis check good: exit %d %s", code, out)
	}
	code, _, errOut := runCLI(t, nil, "kpis", "check", filepath.Join("..", "..", "catalog", "testdata", "bad_derived_missing.yaml"))
	if code != 1 || !strings.Contains(errOut, "bad_derived_missing.yaml:23: kpi roi") {
		t.Errorf("kpis check bad: exit %d %s", code, errOut)
	}
}

// A customer KPI queried while events wait for the resolver says so on
// stderr; an event KPI does not.
func TestKPIsQueryNotesUnresolvedEvents(t *testing.T) {
	target := loadFixture(t)
	conn, err := store.Open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Events stored an hour after the resolver last ran, not resolved yet.
	late := ingest.NewClickHouseWriter(conn, 1024).WithClock(func() time.Time { return time.Now().Add(time.Hour) })
	if err := late.InsertEvents(context.Background(), []ingest.Row{{Topic: "campaign.events", Event: events.Event{EventID: "new1",
		Type: events.TypeWebVisit, Source: "test", OccurredAt: time.Now(), AnonymousID: "someone"}}}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN}
	code, _, errOut := runCLI(t, env, "kpis", "query", "active_customers")
	if code != 0 || !strings.Contains(errOut, "note: active_customers counts customers over events the transform role has resolved") {
		t.Errorf("customer KPI: exit %d, stderr %q, want the note", code, errOut)
	}
	code, _, errOut = runCLI(t, env, "kpis", "query", "revenue")
	if code != 0 || strings.Contains(errOut, "note:") {
		t.Errorf("event KPI: exit %d, stderr %q, want no note", code, errOut)
	}
}
