package dashboards

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/text"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/kpibridge/kpibridge/catalog"
)

// Dashboard uids: stable, so links and bookmarks survive regeneration.
const (
	uidExecutive = "kpibridge-executive"
	uidAnalyst   = "kpibridge-analyst"
	uidOps       = "kpibridge-ops"
	uidCustomer  = "kpibridge-customer-360"
)

// ClickHousePlugin is the Grafana datasource plugin the customer 360 uses.
const ClickHousePlugin = "grafana-clickhouse-datasource"

// panelKind is the visualisation of a panel.
type panelKind int

const (
	kindStat panelKind = iota
	kindTimeseries
	kindTable
	kindText
)

// query is one target of a panel: PromQL (Expr) or ClickHouse SQL (SQL).
type query struct {
	Expr, Legend string
	SQL          string
}

// panel is what kpibridge says about a panel before it becomes Grafana JSON.
type panel struct {
	Kind     panelKind
	Title    string
	Question string // the question the panel answers: its description
	Queries  []query
	Unit     string
	Decimals *float64
	Steps    []dashboard.Threshold // colours by value, first step from -Inf
	Sparkline,
	Background bool
	Span, Height uint32
	Markdown     string
	LinkTo       []string // dashboard uids the panel links to
	// EmptyOK says why the panel may return no data on a fresh deployment
	// (checked by the end-to-end test).
	EmptyOK string
}

// board is one dashboard: rows of panels.
type board struct {
	UID, Title, Description string
	Audience                string
	Tags                    []string
	Refresh, From           string
	Variables               []cog.Builder[dashboard.VariableModel]
	Rows                    []row
}

type row struct {
	Title  string
	Panels []panel
}

func ref(typ, uid string) common.DataSourceRef { return common.DataSourceRef{Type: &typ, Uid: &uid} }

// build turns a board into Grafana dashboard JSON with the SDK.
func (b board) build(cfg Config) (dashboard.Dashboard, error) {
	prom := ref("prometheus", cfg.PrometheusUID)
	ch := ref(ClickHousePlugin, cfg.ClickHouseUID)
	d := dashboard.NewDashboardBuilder(b.Title).
		Uid(b.UID).
		Description(b.Description).
		Tags(append([]string{"kpibridge"}, b.Tags...)).
		Editable().
		Refresh(b.Refresh).
		Time(b.From, "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("kpibridge").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"kpibridge"}).AsDropdown(true).IncludeVars(false).KeepTime(true))
	for _, v := range b.Variables {
		d.WithVariable(v)
	}
	var id uint32
	for _, r := range b.Rows {
		if r.Title != "" {
			d.WithRow(dashboard.NewRowBuilder(r.Title))
		}
		for _, p := range r.Panels {
			id++
			var targets []cog.Builder[variants.Dataquery]
			for i, q := range p.Queries {
				refID := string(rune('A' + i))
				if q.SQL != "" {
					targets = append(targets, clickHouseQuery{RefID: refID, RawSQL: q.SQL, Datasource: ch})
					continue
				}
				pq := prometheus.NewDataqueryBuilder().Expr(q.Expr).RefId(refID).Datasource(prom)
				if q.Legend != "" {
					pq.LegendFormat(q.Legend)
				}
				if p.Kind == kindStat || p.Kind == kindTable {
					pq.RangeAndInstant()
				}
				targets = append(targets, pq)
			}
			var links []cog.Builder[dashboard.DashboardLink]
			for _, uid := range p.LinkTo {
				links = append(links, dashboard.NewDashboardLinkBuilder(boardTitles[uid]).Url("/d/"+uid).Type(dashboard.DashboardLinkTypeLink).KeepTime(true))
			}
			var thresholds *dashboard.ThresholdsConfigBuilder
			if len(p.Steps) > 0 {
				thresholds = dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(p.Steps)
			}
			switch p.Kind {
			case kindStat:
				s := stat.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Question).Targets(targets).
					Unit(p.Unit).Span(p.Span).Height(p.Height).
					ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
					GraphMode(common.BigValueGraphModeNone).ColorMode(common.BigValueColorModeValue)
				if p.Sparkline {
					s.GraphMode(common.BigValueGraphModeArea)
				}
				if p.Background {
					s.ColorMode(common.BigValueColorModeBackground)
				}
				if p.Decimals != nil {
					s.Decimals(*p.Decimals)
				}
				if thresholds != nil {
					s.Thresholds(thresholds)
				}
				if len(links) > 0 {
					s.Links(links)
				}
				d.WithPanel(s)
			case kindTimeseries:
				s := timeseries.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Question).Targets(targets).
					Unit(p.Unit).Span(p.Span).Height(p.Height).FillOpacity(10).
					Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeTable).
						Placement(common.LegendPlacementRight).Calcs([]string{"lastNotNull"}))
				if p.Decimals != nil {
					s.Decimals(*p.Decimals)
				}
				if len(links) > 0 {
					s.Links(links)
				}
				d.WithPanel(s)
			case kindTable:
				s := table.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Question).Targets(targets).
					Unit(p.Unit).Span(p.Span).Height(p.Height)
				if len(links) > 0 {
					s.Links(links)
				}
				d.WithPanel(s)
			case kindText:
				d.WithPanel(text.NewPanelBuilder().Id(id).Title(p.Title).Description(p.Question).
					Mode(text.TextModeMarkdown).Content(p.Markdown).Span(p.Span).Height(p.Height))
			}
		}
	}
	return d.Build()
}

// boardTitles names the dashboards for links.
var boardTitles = map[string]string{
	uidExecutive: "kpibridge / Executive scorecard",
	uidAnalyst:   "kpibridge / Marketing & sales analyst",
	uidOps:       "kpibridge / Data trust & pipeline",
	uidCustomer:  "kpibridge / Customer 360",
}

// clickHouseQuery is a target of the grafana-clickhouse-datasource plugin
// (SQL editor, table format); the SDK has no builder for it.
type clickHouseQuery struct {
	RefID      string               `json:"refId"`
	Datasource common.DataSourceRef `json:"datasource"`
	EditorType string               `json:"editorType"`
	QueryType  string               `json:"queryType"`
	Format     int                  `json:"format"`
	RawSQL     string               `json:"rawSql"`
}

// Build makes clickHouseQuery its own builder.
func (q clickHouseQuery) Build() (variants.Dataquery, error) {
	q.EditorType, q.QueryType, q.Format = "sql", "table", 1
	return q, nil
}

// ImplementsDataqueryVariant marks clickHouseQuery as a Grafana query.
func (clickHouseQuery) ImplementsDataqueryVariant() {}

// DataqueryType is the plugin id.
func (clickHouseQuery) DataqueryType() string { return ClickHousePlugin }

// Validate accepts any query: the tests run the SQL itself.
func (clickHouseQuery) Validate() error { return nil }

// Equals compares two queries field by field.
func (q clickHouseQuery) Equals(other variants.Dataquery) bool { return reflect.DeepEqual(q, other) }

// unit is the Grafana unit of a KPI.
func unit(k catalog.KPI, cfg Config) string {
	switch k.Unit {
	case catalog.UnitPercent:
		return "percent"
	case catalog.UnitCurrency:
		return "currency" + cfg.Currency
	case catalog.UnitSeconds:
		return "s"
	case catalog.UnitDays:
		return "d"
	case catalog.UnitCount:
		return "short"
	}
	return "none"
}

func ptr[T any](v T) *T { return &v }

// steps colour a KPI's value by its direction, target and warning: green
// on the good side of the target, orange between target and warning (or
// just off target), red past the warning.
func steps(k catalog.KPI) []dashboard.Threshold {
	if k.Target == nil {
		return nil
	}
	t := *k.Target
	if k.Direction == catalog.HigherIsBetter {
		if k.Warning == nil {
			return []dashboard.Threshold{{Color: "orange"}, {Value: ptr(t), Color: "green"}}
		}
		return []dashboard.Threshold{{Color: "red"}, {Value: k.Warning, Color: "orange"}, {Value: ptr(t), Color: "green"}}
	}
	if k.Warning == nil {
		return []dashboard.Threshold{{Color: "green"}, {Value: ptr(t), Color: "orange"}}
	}
	return []dashboard.Threshold{{Color: "green"}, {Value: ptr(t), Color: "orange"}, {Value: k.Warning, Color: "red"}}
}

// changeSteps colour a relative change by the KPI's direction.
func changeSteps(k catalog.KPI) []dashboard.Threshold {
	if k.Direction == catalog.HigherIsBetter {
		return []dashboard.Threshold{{Color: "red"}, {Value: ptr(0.0), Color: "green"}}
	}
	return []dashboard.Threshold{{Color: "green"}, {Value: ptr(0.0), Color: "red"}}
}

// marshal is indented JSON with a final newline.
func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return append(b, '\n'), nil
}
