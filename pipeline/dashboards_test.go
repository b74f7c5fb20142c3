package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/dashboards"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// promVars are the values a dashboard opened with its defaults gives the
// Grafana variables of PromQL panels: "All" (allValue .*) for the filters,
// and a rate interval of four 15 s scrapes.
var promVars = strings.NewReplacer(
	"${channel}", ".*", "$channel", ".*",
	"${campaign}", ".*", "$campaign", ".*",
	"${__rate_interval}", "1m", "$__rate_interval", "1m",
)

// customerVar is the customer 360's variable, which Grafana replaces by a
// quoted SQL string literal.
const customerVar = "${customer:sqlstring}"

// sqlString is s the way Grafana's sqlstring format writes it.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// dashboardPanels are the generated panels and the generated rule files, as
// Prometheus loads them.
func dashboardPanels(t *testing.T) ([]dashboards.PanelInfo, []string) {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return dashboards.Panels(cat, dashboards.DefaultConfig()),
		[]string{filepath.Join("..", "dashboards", dashboards.FileRules), filepath.Join("..", "dashboards", dashboards.FileAlerts)}
}

// TestDashboardQueriesParseWithPromtool parses every panel's PromQL, with
// the dashboard variables at their defaults, and the generated rule files
// with Prometheus's own parser (promtool check rules).
func TestDashboardQueriesParseWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	testenv.Require(t, err == nil, "promtool (Debian package prometheus)")
	panels, ruleFiles := dashboardPanels(t)
	type rule struct {
		Record string            `yaml:"record"`
		Expr   string            `yaml:"expr"`
		Labels map[string]string `yaml:"labels"`
	}
	var rules []rule
	for _, p := range panels {
		for i, q := range p.PromQL {
			e := promVars.Replace(q)
			if strings.Contains(e, "$") {
				t.Errorf("%s / %q query %d: a Grafana variable the test does not know: %s", p.Dashboard, p.Title, i+1, q)
			}
			rules = append(rules, rule{Record: fmt.Sprintf("panel:query_%d", len(rules)+1), Expr: e,
				Labels: map[string]string{"dashboard": p.Dashboard, "panel": p.Title}})
		}
	}
	if len(rules) == 0 {
		t.Fatal("no panel has a PromQL query")
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard_panels", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "panels.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, append([]string{"check", "rules", file}, ruleFiles...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\nthe panel queries as rules (%s):\n%s", err, out, file, b)
	}
	t.Logf("promtool parsed %d panel queries and %s", len(rules), strings.Join(ruleFiles, ", "))
}

// TestEveryDashboardPanelReturnsData runs the whole slice on generated
// events, with the tail of them arriving while Prometheus scrapes, as on a
// fresh deployment: every PromQL panel of the generated dashboards must
// return series from the real Prometheus with the generated rules loaded,
// and every customer 360 panel rows from ClickHouse — unless the panel says
// why it may be empty there. Every metric a query or rule names must be one
// the exporter exposes or rules.yaml records.
func TestEveryDashboardPanelReturnsData(t *testing.T) {
	panels, ruleFiles := dashboardPanels(t)
	target, conn := testenv.MigratedClickHouse(t)
	ctx := t.Context()
	brokerAddr := testenv.Broker(t, 3)

	// 120 days, so that the 90-day windows have closed opportunities and
	// churn has subscribers from before its 30-day window.
	gcfg := generate.DefaultConfig()
	gcfg.Customers, gcfg.Days = 1000, 120
	gcfg.End = time.Now().UTC().AddDate(0, 0, -1)
	var held heldSink
	if _, err := generate.Run(ctx, gcfg, &held, nil); err != nil {
		t.Fatal(err)
	}
	// The last messages arrive while Prometheus scrapes, so that the
	// ingest metrics of the running process move (insert latency, last
	// event time) as they do on a live deployment.
	head, tail := held.recs[:len(held.recs)-200], held.recs[len(held.recs)-200:]
	sink, err := generate.NewKafkaSink(generate.KafkaConfig{Brokers: []string{brokerAddr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	if err := sink.Write(ctx, head); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Kafka.Brokers = []string{brokerAddr}
	cfg.ClickHouse.DSN = target.DSN
	cfg.Ingest.Batch.MaxWait = 200 * time.Millisecond
	// Ingest the head first, so the transform's first evaluation sees it all.
	stopIngest := start(t, cfg, []string{"ingest"}, nil)
	waitForEvents(t, conn, valid(head))
	stopIngest()

	exporterAddr := serveAll(t, cfg)
	promAddr := testenv.StartPrometheus(t, exporterAddr, ruleFiles...)
	waitFor(t, 30*time.Second, "Prometheus to scrape the KPIs", func() bool {
		s, err := testenv.PromQuery(ctx, promAddr, `kpibridge_kpi_value{kpi="orders"}`)
		return err == nil && len(s) > 0
	})
	for c := range slices.Chunk(tail, len(tail)/4) {
		if err := sink.Write(ctx, c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	waitForEvents(t, conn, valid(held.recs))
	// Rates need two samples in their range, and the rules a few
	// evaluations over the complete data.
	waitFor(t, 30*time.Second, "10 scrapes and an insert scraped", func() bool {
		up, err1 := testenv.PromQuery(ctx, promAddr, `count_over_time(up{job="kpibridge"}[1m]) >= 10`)
		ins, err2 := testenv.PromQuery(ctx, promAddr, `increase(kpibridge_ingest_insert_duration_seconds_count[1m]) > 0`)
		return err1 == nil && err2 == nil && len(up) > 0 && len(ins) > 0
	})
	since := time.Now()
	var groups []ruleGroup
	waitFor(t, 30*time.Second, "every rule group evaluated again", func() bool {
		var err error
		groups, err = promRules(ctx, promAddr)
		if err != nil || len(groups) == 0 {
			return false
		}
		for _, g := range groups {
			if g.LastEvaluation.Before(since) {
				return false
			}
		}
		return true
	})

	t.Run("rules_evaluate", func(t *testing.T) {
		n := 0
		for _, g := range groups {
			for _, r := range g.Rules {
				n++
				if r.Health != "ok" {
					t.Errorf("%s: rule %s is %s: %s\n  %s", g.File, r.Name, r.Health, r.LastError, r.Query)
				}
			}
		}
		if n == 0 {
			t.Errorf("Prometheus loaded no rule from %v", ruleFiles)
		}
	})
	t.Run("metric_names_exist", func(t *testing.T) {
		checkMetricNames(t, panels, ruleFiles, exposedFamilies(t, exporterAddr))
	})
	// Every family kpibridge exposes is in the metrics reference.
	t.Run("metrics_documented", func(t *testing.T) {
		doc, err := os.ReadFile("../docs/METRICS.md")
		if err != nil {
			t.Fatal(err)
		}
		for name := range exposedFamilies(t, exporterAddr) {
			if strings.HasPrefix(name, "kpibridge_") && !strings.HasSuffix(name, "_bucket") && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") &&
				!strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "`"+name+"{") {
				t.Errorf("%s is exposed on /metrics but not documented in docs/METRICS.md", name)
			}
		}
	})
	t.Run("promql_panels_return_data", func(t *testing.T) {
		checkPromQLPanels(t, promAddr, panels)
	})
	t.Run("sql_panels_return_rows", func(t *testing.T) {
		checkSQLPanels(t, conn, panels)
	})
}

// heldSink keeps the generated messages in memory, in order.
type heldSink struct{ recs []generate.Record }

func (s *heldSink) Write(_ context.Context, recs []generate.Record) error {
	for _, r := range recs {
		r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value) // the generator reuses its buffers
		s.recs = append(s.recs, r)
	}
	return nil
}

func (s *heldSink) Close() error { return nil }

// valid counts the distinct events of the messages the decoder accepts.
func valid(recs []generate.Record) int64 {
	ids := map[string]bool{}
	for _, r := range recs {
		if r.Valid {
			ids[r.EventID] = true
		}
	}
	return int64(len(ids))
}

func waitForEvents(t *testing.T, conn store.Conn, n int64) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d distinct events in ClickHouse", n), func() bool {
		var got uint64
		_ = conn.QueryRow(t.Context(), "SELECT uniqExact(event_id) FROM events").Scan(&got)
		return int64(got) == n
	})
}

// ruleGroup is a rule group as Prometheus's /api/v1/rules reports it.
type ruleGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	LastEvaluation time.Time `json:"lastEvaluation"`
	Rules          []struct {
		Name      string `json:"name"`
		Query     string `json:"query"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	} `json:"rules"`
}

func promRules(ctx context.Context, addr string) ([]ruleGroup, error) {
	var data struct {
		Groups []ruleGroup `json:"groups"`
	}
	err := testenv.PromAPI(ctx, addr, "/api/v1/rules", &data)
	return data.Groups, err
}

// exposedFamilies are the metric names on the exporter's /metrics, with
// the series names of histograms and summaries.
func exposedFamilies(t *testing.T, addr string) map[string]bool {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

var (
	metricName   = regexp.MustCompile(`\bkpibridge_[a-z0-9_]+`)
	recordedName = regexp.MustCompile(`\bkpibridge:[a-zA-Z0-9_:]+`)
)

// checkMetricNames: every kpibridge_ name in a panel or rule is exposed,
// every kpibridge: name is recorded in a rule file. A name only panels that
// may be empty use, and that is not exposed yet, is logged.
func checkMetricNames(t *testing.T, panels []dashboards.PanelInfo, ruleFiles []string, exposed map[string]bool) {
	type use struct {
		where   string
		emptyOK string
	}
	uses := map[string][]use{}
	recorded := map[string]bool{}
	for _, f := range ruleFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Record string `yaml:"record"`
					Alert  string `yaml:"alert"`
					Expr   string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
				where := fmt.Sprintf("%s: %s %s%s", filepath.Base(f), g.Name, r.Record, r.Alert)
				for _, m := range metricName.FindAllString(r.Expr, -1) {
					uses[m] = append(uses[m], use{where: where})
				}
				for _, m := range recordedName.FindAllString(r.Expr, -1) {
					uses[m] = append(uses[m], use{where: where})
				}
			}
		}
	}
	for _, p := range panels {
		for _, q := range p.PromQL {
			where := fmt.Sprintf("%s / %q", p.Dashboard, p.Title)
			for _, m := range append(metricName.FindAllString(q, -1), recordedName.FindAllString(q, -1)...) {
				uses[m] = append(uses[m], use{where: where, emptyOK: p.EmptyOK})
			}
		}
	}
	names := make([]string, 0, len(uses))
	for n := range uses {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasPrefix(n, "kpibridge:") {
			if !recorded[n] {
				t.Errorf("%s is recorded by no rule in %v; used by %v", n, ruleFiles, uses[n])
			}
			continue
		}
		if exposed[n] {
			continue
		}
		var strict []string
		for _, u := range uses[n] {
			if u.emptyOK == "" {
				strict = append(strict, u.where)
			}
		}
		if len(strict) > 0 {
			t.Errorf("%s is not exposed on the exporter's /metrics; used by %s", n, strings.Join(strict, "; "))
		} else {
			t.Logf("%s is not exposed yet; only panels that may be empty use it (%s: %s)", n, uses[n][0].where, uses[n][0].emptyOK)
		}
	}
	t.Logf("%d kpibridge metric and recording rule names checked against %d exposed series names", len(names), len(exposed))
}

// panelCount is one dashboard's tally.
type panelCount struct{ total, data, emptyOK, noValue int }

func logCounts(t *testing.T, counts map[string]*panelCount) {
	uids := make([]string, 0, len(counts))
	for uid := range counts {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		c := counts[uid]
		t.Logf("%s: %d panels with queries, %d with data, %d expected empty, %d of KPIs without a value, %d failed",
			uid, c.total, c.data, c.emptyOK, c.noValue, c.total-c.data-c.emptyOK-c.noValue)
	}
}

var kpiMatcher = regexp.MustCompile(`\bkpi="([^"]+)"`)

// kpiSet is the kpi label values of a query's series.
func kpiSet(t *testing.T, addr, q string) map[string]bool {
	t.Helper()
	res, err := testenv.PromQuery(t.Context(), addr, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := map[string]bool{}
	for _, s := range res {
		out[s.Metric["kpi"]] = true
	}
	return out
}

// checkPromQLPanels runs every PromQL query as an instant query. A panel
// of KPIs that were computed but have no value on the generated data (CLV
// while no subscriber churned) is counted apart; one of a KPI that never
// computed fails.
func checkPromQLPanels(t *testing.T, addr string, panels []dashboards.PanelInfo) {
	ctx := t.Context()
	computed := kpiSet(t, addr, `kpibridge_kpi_last_success_timestamp_seconds`)
	valued := kpiSet(t, addr, `count by (kpi) (kpibridge_kpi_value)`)
	noValue := func(queries []string) (kpis []string, ok bool) {
		for _, q := range queries {
			for _, m := range kpiMatcher.FindAllStringSubmatch(q, -1) {
				if !computed[m[1]] || valued[m[1]] {
					return nil, false
				}
				if !slices.Contains(kpis, m[1]) {
					kpis = append(kpis, m[1])
				}
			}
		}
		return kpis, len(kpis) > 0
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range cat.KPIs {
		switch {
		case !computed[k.Name]:
			t.Errorf("KPI %s was never computed successfully: its panels cannot show data", k.Name)
		case !valued[k.Name]:
			t.Logf("KPI %s was computed but has no value on the generated data", k.Name)
		}
	}
	counts := map[string]*panelCount{}
	for _, p := range panels {
		if len(p.PromQL) == 0 {
			continue
		}
		c := counts[p.Dashboard]
		if c == nil {
			c = &panelCount{}
			counts[p.Dashboard] = c
		}
		c.total++
		var empty, failed []string
		for _, q := range p.PromQL {
			res, err := testenv.PromQuery(ctx, addr, promVars.Replace(q))
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("%s\n    %v", q, err))
			case len(res) == 0:
				empty = append(empty, q)
			}
		}
		switch {
		case len(failed) > 0:
			t.Errorf("%s / %q: Prometheus refuses\n  %s", p.Dashboard, p.Title, strings.Join(failed, "\n  "))
		case len(empty) == 0:
			c.data++
		case p.EmptyOK != "":
			c.emptyOK++
			t.Logf("%s / %q: no data, expected: %s", p.Dashboard, p.Title, p.EmptyOK)
		default:
			if kpis, ok := noValue(empty); ok {
				c.noValue++
				t.Logf("%s / %q: no data, as %s has no value on the generated data", p.Dashboard, p.Title, strings.Join(kpis, ", "))
				continue
			}
			t.Errorf("%s / %q: no data from\n  %s", p.Dashboard, p.Title, strings.Join(empty, "\n  "))
		}
	}
	if len(counts) == 0 {
		t.Fatal("no panel has a PromQL query")
	}
	logCounts(t, counts)
}

// sqlChecks are what a customer 360 panel's rows must say beyond being
// there, by panel title.
var sqlChecks = map[string]func(rows []map[string]any, customerID string) error{
	"Customer 360": func(rows []map[string]any, customerID string) error {
		if len(rows) != 1 || rows[0]["customer_id"] != customerID {
			return fmt.Errorf("want the one row of %s, got %d rows: %v", customerID, len(rows), rows)
		}
		return nil
	},
	"Orders and refunds": func(rows []map[string]any, _ string) error {
		for _, r := range rows {
			if typ := r["type"]; typ != "order.placed" && typ != "order.refunded" {
				return fmt.Errorf("a %v event among the orders and refunds (%d rows)", typ, len(rows))
			}
		}
		return nil
	},
}

// checkSQLPanels runs the customer 360 for a real customer who ordered,
// named both ways the variable takes: its customer id and its CRM id.
func checkSQLPanels(t *testing.T, conn store.Conn, panels []dashboards.PanelInfo) {
	ctx := t.Context()
	var customerID, crmID string
	var orders uint32
	waitFor(t, 30*time.Second, "a resolved customer with orders", func() bool {
		return conn.QueryRow(ctx, `SELECT customer_id, crm_contact_id, orders FROM customers FINAL
WHERE merged_into = '' AND orders > 0 AND crm_contact_id != '' ORDER BY orders DESC, customer_id LIMIT 1`).Scan(&customerID, &crmID, &orders) == nil
	})
	t.Logf("customer 360 of %s (CRM id %s, %d orders)", customerID, crmID, orders)
	counts := map[string]*panelCount{}
	for _, p := range panels {
		if len(p.SQL) == 0 {
			continue
		}
		c := counts[p.Dashboard]
		if c == nil {
			c = &panelCount{}
			counts[p.Dashboard] = c
		}
		c.total++
		var empty, failed []string
		for _, q := range p.SQL {
			for _, id := range []string{customerID, crmID} {
				sql := strings.ReplaceAll(q, customerVar, sqlString(id))
				if strings.Contains(sql, "$") {
					failed = append(failed, fmt.Sprintf("a Grafana variable the test does not know:\n%s", q))
					continue
				}
				rows, err := queryRows(ctx, conn, sql)
				switch {
				case err != nil:
					failed = append(failed, fmt.Sprintf("%s = %s: %v\n%s", customerVar, sqlString(id), err, sql))
				case len(rows) == 0:
					empty = append(empty, fmt.Sprintf("%s = %s:\n%s", customerVar, sqlString(id), sql))
				case sqlChecks[p.Title] != nil:
					if err := sqlChecks[p.Title](rows, customerID); err != nil {
						failed = append(failed, fmt.Sprintf("%s = %s: %v\n%s", customerVar, sqlString(id), err, sql))
					}
				}
			}
		}
		switch {
		case len(failed) > 0:
			t.Errorf("%s / %q:\n%s", p.Dashboard, p.Title, strings.Join(failed, "\n"))
		case len(empty) == 0:
			c.data++
		case p.EmptyOK != "":
			c.emptyOK++
			t.Logf("%s / %q: no rows, expected: %s", p.Dashboard, p.Title, p.EmptyOK)
		default:
			t.Errorf("%s / %q: no rows for a customer with %d orders, from\n%s", p.Dashboard, p.Title, orders, strings.Join(empty, "\n"))
		}
	}
	if len(counts) == 0 {
		t.Fatal("no panel has a SQL query")
	}
	logCounts(t, counts)
}

// queryRows reads every row of sql as column name → value.
func queryRows(ctx context.Context, conn store.Conn, sql string) ([]map[string]any, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, types := rows.Columns(), rows.ColumnTypes()
	var out []map[string]any
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
