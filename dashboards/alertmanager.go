package dashboards

// amConfig is the part of alertmanager.yml kpibridge generates.
type amConfig struct {
	Route        amRoute      `yaml:"route"`
	InhibitRules []amInhibit  `yaml:"inhibit_rules"`
	Receivers    []amReceiver `yaml:"receivers"`
}

type amRoute struct {
	Receiver       string    `yaml:"receiver,omitempty"`
	GroupBy        []string  `yaml:"group_by,omitempty"`
	GroupWait      string    `yaml:"group_wait,omitempty"`
	GroupInterval  string    `yaml:"group_interval,omitempty"`
	RepeatInterval string    `yaml:"repeat_interval,omitempty"`
	Matchers       []string  `yaml:"matchers,omitempty"`
	Continue       bool      `yaml:"continue,omitempty"`
	Routes         []amRoute `yaml:"routes,omitempty"`
}

type amInhibit struct {
	SourceMatchers []string `yaml:"source_matchers"`
	TargetMatchers []string `yaml:"target_matchers"`
	Equal          []string `yaml:"equal,omitempty"`
}

type amReceiver struct {
	Name           string      `yaml:"name"`
	WebhookConfigs []amWebhook `yaml:"webhook_configs,omitempty"`
}

type amWebhook struct {
	URL          string `yaml:"url"`
	SendResolved bool   `yaml:"send_resolved"`
}

// kpiAlerts are the alerts about one KPI's value, held back while it is
// stale or the pipeline is not ready.
const kpiAlerts = `alertname=~"KPIOffTarget|KPIPastWarning|KPIRegression|KPITargetReached"`

// Alertmanager returns alertmanager.yml: wins to the celebrate receiver,
// everything else by owner team, critical alerts to the team's page
// receiver; KPI alerts inhibited while the KPI is stale or kpibridge is
// down or not ready, off-target while past the warning threshold.
func Alertmanager(cfg Config) amConfig {
	c := amConfig{
		Route: amRoute{
			Receiver: "it", GroupBy: []string{"alertname", "team", "kpi"},
			GroupWait: "30s", GroupInterval: "5m", RepeatInterval: "4h",
			Routes: []amRoute{{Receiver: "celebrate", Matchers: []string{`kind="win"`}, RepeatInterval: "7d"}},
		},
		InhibitRules: []amInhibit{
			{SourceMatchers: []string{`alertname="KPIStale"`}, TargetMatchers: []string{kpiAlerts}, Equal: []string{"kpi"}},
			{SourceMatchers: []string{`alertname=~"KPIBridgeNotReady|KPIBridgeDown"`}, TargetMatchers: []string{kpiAlerts}},
			{SourceMatchers: []string{`alertname="KPIPastWarning"`}, TargetMatchers: []string{`alertname="KPIOffTarget"`}, Equal: []string{"kpi"}},
		},
		Receivers: []amReceiver{{Name: "celebrate", WebhookConfigs: []amWebhook{{URL: cfg.Receivers["celebrate"]}}}},
	}
	for _, team := range Routes() {
		if team == "celebrate" {
			continue
		}
		c.Route.Routes = append(c.Route.Routes, amRoute{
			Receiver: team, Matchers: []string{`team="` + team + `"`},
			Routes: []amRoute{{Receiver: team + "-page", Matchers: []string{`severity="critical"`}}},
		})
		c.Receivers = append(c.Receivers,
			amReceiver{Name: team, WebhookConfigs: []amWebhook{{URL: cfg.Receivers[team], SendResolved: true}}},
			amReceiver{Name: team + "-page", WebhookConfigs: []amWebhook{{URL: cfg.Receivers[team] + "/page", SendResolved: true}}})
	}
	return c
}
