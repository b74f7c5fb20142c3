// Package dashboards generates everything that sits on top of /metrics and
// of ClickHouse from the KPI catalog, laid out like a Prometheus monitoring
// mixin: Grafana dashboards (executive, analyst, data trust and pipeline,
// customer 360) and their provisioning, Prometheus recording and alerting
// rules, and the Alertmanager configuration. A KPI added to the catalog
// appears on the dashboards of its audience and gets its alerts without a
// code change.
package dashboards

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kpibridge/kpibridge/catalog"
)

// Config holds the generator's tunables besides the catalog: where Grafana
// and the datasources are, and the thresholds of the pipeline alerts. Per-KPI
// thresholds (alert.off_target_for, alert.regression) live in the catalog.
type Config struct {
	// Job is the Prometheus job label of the kpibridge targets.
	Job string `yaml:"job"`
	// Currency is the reporting currency (events.reporting_currency), for
	// Grafana's currency units.
	Currency string `yaml:"currency"`
	// GrafanaURL prefixes the dashboard links in alert annotations.
	GrafanaURL string `yaml:"grafana_url"`
	// PrometheusUID and ClickHouseUID are the datasource uids the dashboards
	// use and the provisioning creates.
	PrometheusUID string `yaml:"prometheus_uid"`
	ClickHouseUID string `yaml:"clickhouse_uid"`
	// PrometheusURL and ClickHouse* are what the provisioned datasources point at.
	PrometheusURL      string `yaml:"prometheus_url"`
	ClickHouseHost     string `yaml:"clickhouse_host"`
	ClickHousePort     int    `yaml:"clickhouse_port"`
	ClickHouseDatabase string `yaml:"clickhouse_database"`
	ClickHouseUser     string `yaml:"clickhouse_user"`

	Pipeline PipelineAlerts `yaml:"pipeline"`
	// WinWindow: a KPI that reached its target and was off target at some
	// point in this window before fires KPITargetReached (a win).
	WinWindow catalog.Duration `yaml:"win_window"`
	// Receivers maps each route (marketing, sales, finance, it, celebrate)
	// to the webhook Alertmanager posts to; replace them with your chat,
	// mail or paging integrations in alertmanager.yml.
	Receivers map[string]string `yaml:"receivers"`
}

// PipelineAlerts are the thresholds of the data trust and pipeline alerts.
type PipelineAlerts struct {
	// LagMessages: consumer lag above this that keeps growing for LagFor fires.
	LagMessages int              `yaml:"lag_messages"`
	LagFor      catalog.Duration `yaml:"lag_for"`
	// DeadLetterRatio of consumed messages over DeadLetterFor fires.
	DeadLetterRatio float64          `yaml:"dead_letter_ratio"`
	DeadLetterFor   catalog.Duration `yaml:"dead_letter_for"`
	// SourceSilentFor: a source whose newest event is older than this fires.
	SourceSilentFor catalog.Duration `yaml:"source_silent_for"`
	// EvaluationErrorsFor: KPI evaluations failing for this long fire.
	EvaluationErrorsFor catalog.Duration `yaml:"evaluation_errors_for"`
	// NotReadyFor: a process not ready (or not scraped) this long fires.
	NotReadyFor catalog.Duration `yaml:"not_ready_for"`
	// Rebalances: an ingest process that joined more than this many
	// consumer-group generations in 15 minutes, for RebalancesFor, fires:
	// members keep coming and going, and each rebalance pauses the group.
	Rebalances    int              `yaml:"rebalances"`
	RebalancesFor catalog.Duration `yaml:"rebalances_for"`
}

// Routes are the Alertmanager routes: one per owner team, and wins.
func Routes() []string { return []string{"marketing", "sales", "finance", "it", "celebrate"} }

// DefaultConfig is the configuration the committed files are generated with.
func DefaultConfig() Config {
	c := Config{
		Job: "kpibridge", Currency: "EUR", GrafanaURL: "http://localhost:3000",
		PrometheusUID: "prometheus", ClickHouseUID: "clickhouse",
		PrometheusURL: "http://prometheus:9090", ClickHouseHost: "clickhouse", ClickHousePort: 9000,
		ClickHouseDatabase: "kpibridge", ClickHouseUser: "kpibridge",
		Pipeline: PipelineAlerts{
			LagMessages: 10000, LagFor: catalog.Duration(15 * time.Minute),
			DeadLetterRatio: 0.01, DeadLetterFor: catalog.Duration(15 * time.Minute),
			SourceSilentFor:     catalog.Duration(time.Hour),
			EvaluationErrorsFor: catalog.Duration(15 * time.Minute),
			NotReadyFor:         catalog.Duration(5 * time.Minute),
			Rebalances:          4, RebalancesFor: catalog.Duration(15 * time.Minute),
		},
		WinWindow: catalog.Duration(24 * time.Hour),
		Receivers: map[string]string{},
	}
	for _, r := range Routes() {
		c.Receivers[r] = "http://127.0.0.1:9095/hooks/" + r
	}
	return c
}

// LoadConfig reads a generator configuration, strictly, over the defaults.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read dashboards config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate names every field that is wrong.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Job == "" {
		bad("job", "required")
	}
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency {
		bad("currency", "want a three-letter ISO 4217 code such as EUR, got %q", c.Currency)
	}
	for field, uid := range map[string]string{"prometheus_uid": c.PrometheusUID, "clickhouse_uid": c.ClickHouseUID} {
		if uid == "" || strings.ContainsAny(uid, " /\"") {
			bad(field, "want a Grafana datasource uid (no spaces, slashes or quotes), got %q", uid)
		}
	}
	if c.Pipeline.LagMessages < 1 {
		bad("pipeline.lag_messages", "must be >= 1, got %d", c.Pipeline.LagMessages)
	}
	if c.Pipeline.Rebalances < 1 {
		bad("pipeline.rebalances", "must be >= 1, got %d", c.Pipeline.Rebalances)
	}
	if r := c.Pipeline.DeadLetterRatio; !(r > 0 && r < 1) {
		bad("pipeline.dead_letter_ratio", "want a share between 0 and 1, got %v", r)
	}
	for field, d := range map[string]catalog.Duration{"pipeline.lag_for": c.Pipeline.LagFor, "pipeline.dead_letter_for": c.Pipeline.DeadLetterFor,
		"pipeline.source_silent_for": c.Pipeline.SourceSilentFor, "pipeline.evaluation_errors_for": c.Pipeline.EvaluationErrorsFor,
		"pipeline.not_ready_for": c.Pipeline.NotReadyFor, "pipeline.rebalances_for": c.Pipeline.RebalancesFor, "win_window": c.WinWindow} {
		if time.Duration(d) < time.Minute {
			bad(field, "want a duration of at least 1m, got %s", time.Duration(d))
		}
	}
	for _, r := range Routes() {
		if c.Receivers[r] == "" {
			bad("receivers."+r, "required: the webhook URL of the %s receiver", r)
		}
	}
	return errors.Join(errs...)
}
