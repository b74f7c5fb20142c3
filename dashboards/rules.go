package dashboards

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kpibridge/kpibridge/catalog"
)

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

// rule is a recording rule (Record) or an alerting rule (Alert).
type rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Recorded series, shared by the dashboards and the alerts.
const (
	recChange1w    = "kpibridge:kpi_value:change_1w"
	recChange30d   = "kpibridge:kpi_value:change_30d"
	recAttainment  = "kpibridge:kpi_attainment:ratio"
	recLag         = "kpibridge:ingest_consumer_lag_messages:max"
	recDeadLetters = "kpibridge:ingest_dead_letter_ratio:rate15m"
)

// dimensions are every dimension label of the catalog, sorted: the
// exporter puts each on every KPI series (empty where it does not apply).
func dimensions(cat *catalog.Catalog) []string {
	var dims []string
	for _, k := range cat.KPIs {
		for _, d := range k.Dimensions {
			if !slices.Contains(dims, d) {
				dims = append(dims, d)
			}
		}
	}
	slices.Sort(dims)
	return dims
}

// totals matches the total series of every KPI: no dimension label set.
func totals(cat *catalog.Catalog) string {
	var m []string
	for _, d := range dimensions(cat) {
		m = append(m, d+`=""`)
	}
	return strings.Join(m, ", ")
}

// total selects one KPI's total series of a KPI family.
func total(metric string, k catalog.KPI) string {
	m := []string{fmt.Sprintf("kpi=%q", k.Name)}
	for _, d := range k.Dimensions {
		m = append(m, d+`=""`)
	}
	return metric + "{" + strings.Join(m, ", ") + "}"
}

// Rules returns the recording rules (rules.yaml).
func Rules(cat *catalog.Catalog) ruleFile {
	tot := totals(cat)
	value := "kpibridge_kpi_value{" + tot + "}"
	change := func(offset string) string {
		return fmt.Sprintf("(%[1]s - %[1]s offset %[2]s) / abs(%[1]s offset %[2]s != 0)", value, offset)
	}
	return ruleFile{Groups: []ruleGroup{
		{Name: "kpibridge.kpi.rules", Rules: []rule{
			// Period ratios of each KPI's total: the executive dashboard shows
			// them, the regression alerts compare them with thresholds.
			{Record: recChange1w, Expr: change("1w")},
			{Record: recChange30d, Expr: change("30d")},
			// Target attainment, whichever way is good: 1 is on target, above
			// 1 better than target.
			// Value and target of a KPI's total carry the same labels, so
			// they match one to one, also with several exporting processes.
			{Record: recAttainment, Expr: fmt.Sprintf(`(%[1]s / kpibridge_kpi_target and on(kpi) kpibridge_kpi_info{direction="higher_is_better"})
or
(kpibridge_kpi_target / %[1]s and on(kpi) kpibridge_kpi_info{direction="lower_is_better"})`, value)},
		}},
		{Name: "kpibridge.pipeline.rules", Rules: []rule{
			// Every ingest process reports the whole group's lag per
			// partition: max per partition, never sum across processes,
			// then the topic's partitions added up.
			{Record: recLag, Expr: "sum by (topic) (max by (topic, partition) (kpibridge_ingest_consumer_lag_messages))"},
			{Record: recDeadLetters, Expr: "sum by (topic) (rate(kpibridge_ingest_dead_letters_total[15m])) / sum by (topic) (rate(kpibridge_ingest_messages_total[15m]))"},
		}},
	}}
}

// Alerts returns the alerting rules (alerts.yaml): per KPI from its
// direction, target, warning and alert settings, then the generic KPI and
// pipeline alerts.
func Alerts(cat *catalog.Catalog, cfg Config) ruleFile {
	var kpiRules []rule
	for _, k := range cat.KPIs {
		if k.Alert.Disabled || k.Target == nil {
			continue
		}
		worse := "<"
		if k.Direction == catalog.LowerIsBetter {
			worse = ">"
		}
		link := cfg.GrafanaURL + "/d/" + dashboardFor(k)
		annotations := func(summary string) map[string]string {
			return map[string]string{
				"summary":     summary,
				"description": k.Title + ": " + oneLine(k.Description),
				"dashboard":   link,
			}
		}
		labels := func(severity string) map[string]string {
			return map[string]string{"severity": severity, "team": k.Owner.Team, "kpi": k.Name}
		}
		target := fmtNumber(*k.Target)
		kpiRules = append(kpiRules, rule{
			Alert: "KPIOffTarget",
			Expr:  fmt.Sprintf("%s %s kpibridge_kpi_target", total("kpibridge_kpi_value", k), worse),
			For:   promDuration(time.Duration(k.Alert.OffTargetFor)), Labels: labels("warning"),
			Annotations: annotations(fmt.Sprintf("%s is %s, off its target of %s (%s) for %s.",
				k.Title, valueText(k.Unit), target, strings.ReplaceAll(string(k.Direction), "_", " "), promDuration(time.Duration(k.Alert.OffTargetFor)))),
		})
		if k.Warning != nil {
			kpiRules = append(kpiRules, rule{
				Alert: "KPIPastWarning",
				Expr:  fmt.Sprintf("%s %s kpibridge_kpi_warning", total("kpibridge_kpi_value", k), worse),
				For:   promDuration(time.Duration(k.Alert.OffTargetFor)), Labels: labels("critical"),
				Annotations: annotations(fmt.Sprintf("%s is %s, past its warning threshold of %s (target %s).",
					k.Title, valueText(k.Unit), fmtNumber(*k.Warning), target)),
			})
		}
		r := *k.Alert.Regression
		cond := fmt.Sprintf("< -%s", fmtNumber(r))
		if k.Direction == catalog.LowerIsBetter {
			cond = "> " + fmtNumber(r)
		}
		kpiRules = append(kpiRules, rule{
			Alert: "KPIRegression",
			Expr:  fmt.Sprintf("%s{kpi=%q} %s", recChange1w, k.Name, cond),
			For:   "30m", Labels: labels("warning"),
			Annotations: annotations(fmt.Sprintf("%s is {{ $value | humanizePercentage }} against a week ago, worse than the %s allowed (target %s).",
				k.Title, strconv.FormatFloat(100*r, 'f', -1, 64)+" %", target)),
		})
	}
	kpiRules = append(kpiRules,
		rule{Alert: "KPIStale", Expr: "kpibridge_kpi_stale == 1", For: "1m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "KPI {{ $labels.kpi }} has not been computed successfully for 3 refreshes; its value is withdrawn, not frozen.",
				"description": "Check kpibridge_kpi_evaluation_errors_total and the transform log for {{ $labels.kpi }}. Off-target and regression alerts of this KPI are held back meanwhile.",
				"dashboard":   cfg.GrafanaURL + "/d/" + uidOps,
			}},
		rule{Alert: "KPITargetReached",
			Expr:   fmt.Sprintf("%[1]s >= 1 and on(kpi) min_over_time(%[1]s[%[2]s]) < 1", recAttainment, promDuration(time.Duration(cfg.WinWindow))),
			Labels: map[string]string{"severity": "info", "kind": "win"},
			Annotations: map[string]string{
				"summary":     "Win: KPI {{ $labels.kpi }} ({{ $labels.team }}) reached its target.",
				"description": "{{ $labels.kpi }} was off target in the last " + promDuration(time.Duration(cfg.WinWindow)) + " and now meets it (attainment {{ $value | humanizePercentage }}).",
				"dashboard":   cfg.GrafanaURL + "/d/" + uidExecutive,
			}},
	)
	p := cfg.Pipeline
	it := func(severity string) map[string]string { return map[string]string{"severity": severity, "team": "it"} }
	ops := cfg.GrafanaURL + "/d/" + uidOps
	pipeline := []rule{
		{Alert: "KPIBridgeConsumerLagGrowing",
			Expr: fmt.Sprintf("%[1]s > %[2]d and delta(%[1]s[15m]) > 0", recLag, p.LagMessages),
			For:  promDuration(time.Duration(p.LagFor)), Labels: it("critical"),
			Annotations: map[string]string{"summary": "Ingest of {{ $labels.topic }} is {{ $value | humanize }} messages behind and falling further back.",
				"description": "Consumer lag (max over the group) above " + strconv.Itoa(p.LagMessages) + " and growing: add ingest processes (up to the partition count) or check ClickHouse insert latency.", "dashboard": ops}},
		{Alert: "KPIBridgeDeadLetters",
			Expr: fmt.Sprintf("%s > %s", recDeadLetters, fmtNumber(p.DeadLetterRatio)),
			For:  promDuration(time.Duration(p.DeadLetterFor)), Labels: it("warning"),
			Annotations: map[string]string{"summary": "{{ $value | humanizePercentage }} of {{ $labels.topic }} messages are dead-lettered.",
				"description": "Producers send invalid events: see dead_letters by reason, fix the producer, then `kpibridge dlq replay`.", "dashboard": ops}},
		{Alert: "KPIBridgeSourceSilent",
			Expr: fmt.Sprintf("time() - max by (source) (kpibridge_ingest_last_event_timestamp_seconds) > %d", int(time.Duration(p.SourceSilentFor).Seconds())),
			For:  "5m", Labels: it("warning"),
			Annotations: map[string]string{"summary": "No event from {{ $labels.source }} for {{ $value | humanizeDuration }}.",
				"description": "The newest stored event of this source is older than " + promDuration(time.Duration(p.SourceSilentFor)) + ": is its producer or connector down?", "dashboard": ops}},
		{Alert: "KPIBridgeEvaluationErrors",
			Expr: "sum by (kpi) (increase(kpibridge_kpi_evaluation_errors_total[15m])) > 0",
			For:  promDuration(time.Duration(p.EvaluationErrorsFor)), Labels: it("warning"),
			Annotations: map[string]string{"summary": "KPI {{ $labels.kpi }} failed {{ $value | humanize }} evaluations in 15 minutes.",
				"description": "The transform log names the error; a failing KPI never stops the others.", "dashboard": ops}},
		{Alert: "KPIBridgeNotReady", Expr: "kpibridge_ready == 0",
			For: promDuration(time.Duration(p.NotReadyFor)), Labels: it("critical"),
			Annotations: map[string]string{"summary": "kpibridge {{ $labels.instance }} is not ready.",
				"description": "/-/ready answers 503 with the reason (ClickHouse unreachable, no KPI snapshot yet). KPI alerts are held back meanwhile.", "dashboard": ops}},
		{Alert: "KPIBridgeTransformNotSingleActive", Expr: "sum(kpibridge_transform_active) != 1",
			For: promDuration(time.Duration(p.NotReadyFor)), Labels: it("critical"),
			Annotations: map[string]string{"summary": "{{ $value }} kpibridge processes hold the transform role; exactly one should.",
				"description": "0: no KPI is computed and no identity update runs (is Kafka, which elects the active process, reachable from the transform processes?). More than 1: two processes were elected, which the leadership fence should prevent; check transform.leader in each process's config.", "dashboard": ops}},
		{Alert: "KPIBridgeIngestRebalancing",
			Expr: fmt.Sprintf("increase(kpibridge_ingest_rebalances_total[15m]) > %d", p.Rebalances),
			For:  promDuration(time.Duration(p.RebalancesFor)), Labels: it("warning"),
			Annotations: map[string]string{"summary": "kpibridge {{ $labels.instance }} joined {{ $value | humanize }} ingest consumer-group generations in 15 minutes.",
				"description": "Ingest processes keep joining and leaving the group (a crash loop, restarts, heartbeats missed under load, ingest.session_timeout too short), and every rebalance pauses the whole group for a few seconds. The log line `consumer group balanced` of each process says when; look for the process that restarts.", "dashboard": ops}},
		{Alert: "KPIBridgeDown", Expr: fmt.Sprintf("up{job=%q} == 0", cfg.Job),
			For: promDuration(time.Duration(p.NotReadyFor)), Labels: it("critical"),
			Annotations: map[string]string{"summary": "Prometheus cannot scrape kpibridge {{ $labels.instance }}.",
				"description": "The process is down or its /metrics does not answer. KPI alerts are held back meanwhile.", "dashboard": ops}},
	}
	return ruleFile{Groups: []ruleGroup{
		{Name: "kpibridge.kpi.alerts", Rules: kpiRules},
		{Name: "kpibridge.pipeline.alerts", Rules: pipeline},
	}}
}

// dashboardFor is the dashboard an alert of k links to.
func dashboardFor(k catalog.KPI) string {
	switch {
	case slices.Contains(k.Audience, "exec"):
		return uidExecutive
	case slices.Contains(k.Audience, "analyst"):
		return uidAnalyst
	}
	return uidOps
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func fmtNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// valueText is how an alert summary shows a KPI's $value: humanized, ratios
// as plain numbers (humanize would show 0.55 as 550m), then the unit word if
// the unit has one.
func valueText(u catalog.Unit) string {
	v := "{{ $value | humanize }}"
	if u == catalog.UnitRatio {
		v = `{{ $value | printf "%.4g" }}`
	}
	if w := unitWord(u); w != "" {
		v += " " + w
	}
	return v
}

func unitWord(u catalog.Unit) string {
	switch u {
	case catalog.UnitPercent:
		return "%"
	case catalog.UnitSeconds:
		return "seconds"
	case catalog.UnitDays:
		return "days"
	case catalog.UnitCurrency:
		return "(reporting currency)"
	}
	return ""
}

// promDuration writes d the way Prometheus does (1h, 15m, 1h30m, 1d).
func promDuration(d time.Duration) string { return model.Duration(d).String() }
