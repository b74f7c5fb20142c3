package dashboards

import (
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/kpibridge/kpibridge/catalog"
)

// historyNeeded is why a period comparison is empty on a new deployment.
const historyNeeded = "compares with Prometheus history a week or a month old, which a new deployment does not have yet"

func audience(k catalog.KPI, a string) bool { return slices.Contains(k.Audience, a) }

// executive is the one-screen scorecard: every exec KPI by shared goal,
// value against target with a sparkline, change against last week and
// last month.
func executive(cat *catalog.Catalog, cfg Config) board {
	b := board{UID: uidExecutive, Title: boardTitles[uidExecutive], Audience: "executives", Tags: []string{"executive"},
		Description: "The KPIs marketing and IT share, against their targets, for the C-suite.",
		Refresh:     "5m", From: "now-30d"}
	b.Rows = append(b.Rows, row{Panels: []panel{{Kind: kindText, Title: "How to read this scorecard", Span: 24, Height: 3,
		Question: "What do the colours and numbers mean?",
		Markdown: "Each KPI shows its latest value with its trend over the shown period. **Green**: on the good side of the target; " +
			"**orange**: off target; **red**: past the warning threshold. Beside it, the change against a week and a month ago, " +
			"green when it moved the good way. Hover a value for the KPI's definition, owner and target; the analyst dashboard breaks it down."}}})
	for _, goal := range catalog.Goals() {
		r := row{Title: catalog.GoalTitle(goal)}
		for _, k := range cat.KPIs {
			if k.Goal != goal || !audience(k, "exec") {
				continue
			}
			r.Panels = append(r.Panels,
				panel{Kind: kindStat, Title: k.Title, Question: definition(k),
					Queries: []query{{Expr: total("kpibridge_kpi_value", k)}}, Unit: unit(k, cfg), Steps: steps(k),
					Sparkline: true, Background: true, Span: 6, Height: 5, LinkTo: []string{uidAnalyst}},
				panel{Kind: kindStat, Title: k.Title + " vs last week", Question: "How much did " + k.Title + " move against a week ago, and was it the good way?",
					Queries: []query{{Expr: fmt.Sprintf("%s{kpi=%q}", recChange1w, k.Name)}}, Unit: "percentunit", Decimals: ptr(1.0),
					Steps: changeSteps(k), Span: 3, Height: 5, EmptyOK: historyNeeded},
				panel{Kind: kindStat, Title: k.Title + " vs last month", Question: "How much did " + k.Title + " move against 30 days ago, and was it the good way?",
					Queries: []query{{Expr: fmt.Sprintf("%s{kpi=%q}", recChange30d, k.Name)}}, Unit: "percentunit", Decimals: ptr(1.0),
					Steps: changeSteps(k), Span: 3, Height: 5, EmptyOK: historyNeeded},
			)
		}
		if len(r.Panels) > 0 {
			b.Rows = append(b.Rows, r)
		}
	}
	return b
}

// definition is a KPI's panel description: definition, target, owner.
func definition(k catalog.KPI) string {
	s := oneLine(k.Description)
	if k.Target != nil {
		s += fmt.Sprintf(" Target: %s (%s).", fmtNumber(*k.Target), strings.ReplaceAll(string(k.Direction), "_", " "))
	}
	return s + fmt.Sprintf(" Owner: %s (%s).", k.Owner.Team, k.Owner.Contact)
}

// filters are the analyst dashboard's template variables by the
// dimension they filter.
var filters = map[string]string{"channel": "channel", "campaign_id": "campaign"}

// matchers selects a KPI's series broken down by dim, filtered by the
// dashboard's variable when there is one.
func matchers(k catalog.KPI, dim string) string {
	m := []string{fmt.Sprintf("kpi=%q", k.Name), dim + `!=""`}
	if v, ok := filters[dim]; ok {
		m = append(m, fmt.Sprintf(`%s=~"$%s"`, dim, v))
	}
	return strings.Join(m, ", ")
}

// breakdown is the PromQL of a KPI by one dimension: ratios re-aggregated
// as sum(numerator) / sum(denominator), never an average of ratios.
func breakdown(k catalog.KPI, dim string) string {
	m := matchers(k, dim)
	if k.Type == catalog.TypeRatio {
		scale := ""
		if k.Unit == catalog.UnitPercent {
			scale = "100 * "
		}
		return fmt.Sprintf("%ssum by (%s) (kpibridge_kpi_numerator{%s}) / sum by (%s) (kpibridge_kpi_denominator{%s})", scale, dim, m, dim, m)
	}
	return fmt.Sprintf("sum by (%s) (kpibridge_kpi_value{%s})", dim, m)
}

// selection is a ratio KPI over the channels or campaigns selected.
func selection(k catalog.KPI, dim string) string {
	m := matchers(k, dim)
	scale := ""
	if k.Unit == catalog.UnitPercent {
		scale = "100 * "
	}
	return fmt.Sprintf("%ssum(kpibridge_kpi_numerator{%s}) / sum(kpibridge_kpi_denominator{%s})", scale, m, m)
}

func queryVariable(name, label, expr string, cfg Config) cog.Builder[dashboard.VariableModel] {
	all := "$__all"
	return dashboard.NewQueryVariableBuilder(name).Label(label).
		Query(dashboard.StringOrMap{String: &expr}).
		Datasource(ref("prometheus", cfg.PrometheusUID)).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Multi(true).IncludeAll(true).AllValue(".*").
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: ptr("All")}, Value: dashboard.StringOrArrayOfString{String: &all}})
}

// analyst is every analyst KPI with its breakdowns, by shared goal.
func analyst(cat *catalog.Catalog, cfg Config) board {
	b := board{UID: uidAnalyst, Title: boardTitles[uidAnalyst], Audience: "analysts", Tags: []string{"analyst"},
		Description: "Spend, acquisition, funnel, engagement and revenue KPIs with their breakdowns.",
		Refresh:     "5m", From: "now-7d",
		Variables: []cog.Builder[dashboard.VariableModel]{
			queryVariable("channel", "Channel", `label_values(kpibridge_kpi_value{channel!=""}, channel)`, cfg),
			queryVariable("campaign", "Campaign", `label_values(kpibridge_kpi_value{campaign_id!=""}, campaign_id)`, cfg),
		}}
	for _, goal := range catalog.Goals() {
		r := row{Title: catalog.GoalTitle(goal)}
		for _, k := range cat.KPIs {
			if k.Goal != goal || !audience(k, "analyst") {
				continue
			}
			var links []string
			if usesCustomers(k) {
				links = []string{uidCustomer}
			}
			st := panel{Kind: kindStat, Title: k.Title, Question: definition(k), Queries: []query{{Expr: total("kpibridge_kpi_value", k)}},
				Unit: unit(k, cfg), Steps: steps(k), Sparkline: true, Span: 6, Height: 6, LinkTo: links}
			var filtered string
			for _, d := range k.Dimensions {
				if _, ok := filters[d]; ok && k.Type == catalog.TypeRatio && filtered == "" {
					filtered = d
				}
			}
			if filtered != "" {
				// The total of the selected values, re-aggregated from the parts.
				st.Title = k.Title + " (selected " + filters[filtered] + "s)"
				st.Queries = []query{{Expr: selection(k, filtered)}}
				st.Question = definition(k) + " Computed over the " + filters[filtered] + "s selected above, as sum(numerator) ÷ sum(denominator)."
			}
			r.Panels = append(r.Panels, st)
			span := uint32(18)
			if len(k.Dimensions) > 1 {
				span = 9
			}
			for _, d := range k.Dimensions {
				r.Panels = append(r.Panels, panel{Kind: kindTimeseries, Title: k.Title + " by " + d,
					Question: fmt.Sprintf("How does %s split by %s, and how did each part move?", k.Title, d),
					Queries:  []query{{Expr: breakdown(k, d), Legend: "{{" + d + "}}"}}, Unit: unit(k, cfg), Span: span, Height: 6, LinkTo: links})
			}
			if len(k.Dimensions) == 0 {
				r.Panels = append(r.Panels, panel{Kind: kindTimeseries, Title: k.Title + " over time",
					Question: "How did " + k.Title + " move against its target?",
					Queries: []query{{Expr: total("kpibridge_kpi_value", k), Legend: "value"},
						{Expr: fmt.Sprintf("kpibridge_kpi_target{kpi=%q}", k.Name), Legend: "target"}},
					Unit: unit(k, cfg), Span: 18, Height: 6, LinkTo: links})
			}
		}
		if len(r.Panels) > 0 {
			b.Rows = append(b.Rows, r)
		}
	}
	return b
}

// usesCustomers: the KPI counts customers, so the customer 360 explains it.
func usesCustomers(k catalog.KPI) bool {
	for _, m := range []*catalog.Measure{k.Measure, k.Numerator, k.Denominator} {
		if m != nil && (m.Source == "customers" || m.Field == "customer" || m.GroupBy == "customer") {
			return true
		}
	}
	return false
}

// ops is data trust and the pipeline, for IT and whoever is paged.
func ops(cat *catalog.Catalog, cfg Config) board {
	b := board{UID: uidOps, Title: boardTitles[uidOps], Audience: "IT, data engineers, on-call", Tags: []string{"ops"},
		Description: "Is the data complete, fresh and trusted, and is the pipeline keeping up?",
		Refresh:     "1m", From: "now-6h"}
	ingest := row{Title: "Ingest", Panels: []panel{
		{Kind: kindTimeseries, Title: "Messages consumed by topic and outcome", Question: "How many messages arrive per second, and how many are valid, invalid or duplicates?",
			Queries: []query{{Expr: "sum by (topic, outcome) (rate(kpibridge_ingest_messages_total[$__rate_interval]))", Legend: "{{topic}} {{outcome}}"}}, Unit: "reqps", Span: 12, Height: 7},
		{Kind: kindTimeseries, Title: "Consumer lag by topic", Question: "How far behind is ingest? (max over the group: every member reports the whole group)",
			Queries: []query{{Expr: recLag, Legend: "{{topic}}"}}, Unit: "short", Span: 12, Height: 7},
		{Kind: kindTimeseries, Title: "Dead letters by reason", Question: "Which producer mistakes send messages to the dead-letter queue?",
			Queries: []query{{Expr: "sum by (topic, reason) (rate(kpibridge_ingest_dead_letters_total[$__rate_interval]))", Legend: "{{topic}} {{reason}}"}}, Unit: "reqps", Span: 12, Height: 7},
		{Kind: kindTimeseries, Title: "ClickHouse insert latency (p99)", Question: "How long do inserts into ClickHouse take?",
			Queries: []query{{Expr: "histogram_quantile(0.99, sum by (le, table) (rate(kpibridge_ingest_insert_duration_seconds_bucket[$__rate_interval])))", Legend: "{{table}}"}}, Unit: "s", Span: 12, Height: 7},
		{Kind: kindTimeseries, Title: "Retries and failed inserts", Question: "Is ingest retrying writes (ClickHouse or Kafka trouble)?",
			Queries: []query{{Expr: "sum by (target) (rate(kpibridge_ingest_retries_total[$__rate_interval]))", Legend: "retries {{target}}"},
				{Expr: "sum by (table) (rate(kpibridge_ingest_insert_errors_total[$__rate_interval]))", Legend: "failed inserts {{table}}"}},
			Unit: "reqps", Span: 12, Height: 7},
		{Kind: kindTimeseries, Title: "Partitions held and the transform role, by process", Question: "Which process holds how many partitions, and which one runs the transform role?",
			Queries: []query{{Expr: "sum by (instance) (kpibridge_ingest_assigned_partitions)", Legend: "{{instance}} partitions"},
				{Expr: "kpibridge_transform_active", Legend: "{{instance}} transform active"}},
			Unit: "short", Span: 12, Height: 7},
		{Kind: kindTimeseries, Title: "Consumer group rebalances", Question: "Do ingest processes keep joining and leaving the group? (each rebalance pauses it)",
			Queries: []query{{Expr: "sum by (instance) (increase(kpibridge_ingest_rebalances_total[$__rate_interval]))", Legend: "{{instance}} generations joined"},
				{Expr: "sum by (instance) (increase(kpibridge_ingest_offset_commits_skipped_total[$__rate_interval]))", Legend: "{{instance}} batches left uncommitted"}},
			Unit: "short", Span: 12, Height: 7},
		{Kind: kindStat, Title: "Processes ready", Question: "Are all kpibridge processes up and ready?",
			Queries: []query{{Expr: "sum(kpibridge_ready)", Legend: "ready"}, {Expr: fmt.Sprintf("count(up{job=%q})", cfg.Job), Legend: "scraped"}},
			Unit:    "short", Span: 12, Height: 7},
	}}
	trust := row{Title: "Data trust"}
	for _, k := range cat.KPIs {
		if !audience(k, "ops") {
			continue
		}
		trust.Panels = append(trust.Panels, panel{Kind: kindStat, Title: k.Title, Question: definition(k),
			Queries: []query{{Expr: total("kpibridge_kpi_value", k)}}, Unit: unit(k, cfg), Steps: steps(k), Sparkline: true, Span: 6, Height: 6})
		for _, d := range k.Dimensions {
			trust.Panels = append(trust.Panels, panel{Kind: kindTimeseries, Title: k.Title + " by " + d,
				Question: fmt.Sprintf("Which %s drives %s?", d, k.Title), Queries: []query{{Expr: breakdown(k, d), Legend: "{{" + d + "}}"}},
				Unit: unit(k, cfg), Span: 18, Height: 6})
		}
	}
	eval := row{Title: "KPI evaluation", Panels: []panel{
		{Kind: kindTimeseries, Title: "Evaluation errors by KPI", Question: "Which KPIs fail to compute?",
			Queries: []query{{Expr: "sum by (kpi) (increase(kpibridge_kpi_evaluation_errors_total[$__rate_interval]))", Legend: "{{kpi}}"}}, Unit: "short", Span: 8, Height: 7},
		{Kind: kindTimeseries, Title: "Evaluation duration by KPI", Question: "Which KPIs are slow to compute?",
			Queries: []query{{Expr: "max by (kpi) (kpibridge_kpi_evaluation_duration_seconds)", Legend: "{{kpi}}"}}, Unit: "s", Span: 8, Height: 7},
		{Kind: kindTimeseries, Title: "Age of the last successful computation", Question: "How old is each KPI's value?",
			Queries: []query{{Expr: "max by (kpi) (kpibridge_kpi_age_seconds)", Legend: "{{kpi}}"}}, Unit: "s", Span: 8, Height: 7},
		{Kind: kindStat, Title: "Stale KPIs", Question: "How many KPIs have had no successful computation for 3 refreshes (their values withdrawn)?",
			Queries: []query{{Expr: "sum(kpibridge_kpi_stale)"}}, Unit: "short", Span: 6, Height: 5,
			Steps: []dashboard.Threshold{{Color: "green"}, {Value: ptr(1.0), Color: "red"}}},
		{Kind: kindStat, Title: "Series dropped by the cap", Question: "Are breakdowns cut by max_series?",
			Queries: []query{{Expr: "sum(kpibridge_kpi_series_dropped_total)"}}, Unit: "short", Span: 6, Height: 5},
	}}
	b.Rows = append(b.Rows, ingest, trust, eval)
	return b
}

// resolveCustomer is the SQL of the customer a dashboard variable names:
// a customer id or identity key, a CRM contact id or an anonymous id.
// (Email addresses are hashed with a secret key: look those up with
// `kpibridge customer`, or paste the email: key it prints.)
const resolveCustomer = `(SELECT customer_id FROM identity_map FINAL WHERE identifier IN (${customer:sqlstring}, concat('crm:', ${customer:sqlstring}), concat('anon:', ${customer:sqlstring})))`

// customerRows reads resolved_events of the customer, merged ids included.
// The condition is parenthesised so that a panel may append AND clauses.
const customerRows = `resolved_events WHERE (customer_key IN (SELECT cityHash64(customer_id) FROM identity_map FINAL WHERE customer_id IN ` + resolveCustomer + `)
  OR customer_key IN (SELECT former_key FROM customer_merges FINAL WHERE customer_id IN ` + resolveCustomer + `))`

// customer is the customer 360 from ClickHouse.
func customer(cfg Config) board {
	id := "crm:C1"
	return board{UID: uidCustomer, Title: boardTitles[uidCustomer], Audience: "analysts, support", Tags: []string{"customer"},
		Description: "One customer across CRM and marketing: profile, identity keys, timeline, channels, orders.",
		Refresh:     "", From: "now-1y",
		Variables: []cog.Builder[dashboard.VariableModel]{dashboard.NewTextBoxVariableBuilder("customer").Label("Customer (CRM id, anonymous id or key)").
			DefaultValue(dashboard.StringOrMap{String: &id}).
			Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: &id}, Value: dashboard.StringOrArrayOfString{String: &id}})},
		Rows: []row{{Panels: []panel{
			{Kind: kindTable, Title: "Customer 360", Question: "Who is this customer: profile, funnel stage, credited channels, value?", Span: 24, Height: 5,
				Queries: []query{{SQL: `SELECT customer_id, crm_contact_id, segment, country, stage, lead_channel, acquisition_channel, acquisition_class,
  orders, revenue, channels, churned, first_seen, last_seen
FROM customers FINAL
WHERE customer_id IN ` + resolveCustomer + ` AND merged_into = ''`}}},
			{Kind: kindTable, Title: "Identity keys", Question: "Which CRM, email and anonymous keys are this one customer?", Span: 8, Height: 8,
				Queries: []query{{SQL: `SELECT identifier FROM identity_map FINAL WHERE customer_id IN ` + resolveCustomer + ` ORDER BY identifier`}}},
			{Kind: kindTable, Title: "Channels used", Question: "Where did the customer engage, and how often?", Span: 8, Height: 8,
				Queries: []query{{SQL: `SELECT ` + catalog.TouchChannelExpr + ` AS touch_channel, count() AS events, max(occurred_at) AS last
FROM ` + customerRows + `
GROUP BY touch_channel HAVING touch_channel != '' ORDER BY events DESC`}}},
			{Kind: kindTable, Title: "Orders and refunds", Question: "What did the customer buy, where, and what was refunded?", Span: 8, Height: 8,
				Queries: []query{{SQL: `SELECT occurred_at, type, entity_id AS order_id, order_channel, if(type = 'order.refunded', -amount, amount) AS amount
FROM ` + customerRows + ` AND type IN ('order.placed', 'order.refunded')
ORDER BY occurred_at DESC`}},
				EmptyOK: "a customer who has not ordered"},
			{Kind: kindTable, Title: "Timeline", Question: "What happened with this customer, across CRM and campaign sources, newest first?", Span: 24, Height: 12,
				Queries: []query{{SQL: `SELECT occurred_at, type, source, channel, campaign_id, stage, outcome, order_channel, platform, entity_id, amount
FROM ` + customerRows + `
ORDER BY occurred_at DESC LIMIT 500`}}},
		}}},
	}
}
