// Package catalog owns the KPI catalog (kpis.yaml): the KPIs marketing and IT
// agree on, each with an owner, a definition, a unit, a target and a window,
// decoded strictly and validated as a whole. A default catalog is embedded.
package catalog

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kpibridge/kpibridge/internal/yamlcheck"
)

// Catalog is a validated set of KPIs.
type Catalog struct {
	// Settings are shared by every KPI; DefaultSettings fills what is left out.
	Settings Settings `yaml:"settings"`
	KPIs     []KPI    `yaml:"kpis"`

	file string
	doc  *yamlcheck.Doc // the file as parsed: lines of every key path
}

// KPI is one shared indicator.
type KPI struct {
	Name        string    `yaml:"name"`
	Title       string    `yaml:"title"`
	Description string    `yaml:"description"`
	Owner       Owner     `yaml:"owner"`
	Unit        Unit      `yaml:"unit"`
	Direction   Direction `yaml:"direction"`
	Target      *float64  `yaml:"target"`
	Warning     *float64  `yaml:"warning"`
	Window      Window    `yaml:"window"`
	Dimensions  []string  `yaml:"dimensions"`
	// MaxSeries caps the series one evaluation may produce (all dimensions together).
	MaxSeries int      `yaml:"max_series"`
	Refresh   Duration `yaml:"refresh"`
	Timeout   Duration `yaml:"timeout"`
	Audience  []string `yaml:"audience"`
	// Goal is the shared goal the KPI serves, which groups it on the
	// scorecards: growth, efficiency, customer or data_trust (default:
	// data_trust for team it, growth otherwise).
	Goal  string `yaml:"goal"`
	Alert Alert  `yaml:"alert"`
	// Baseline is the starting point progress to the target is measured
	// from: a fixed value, or the KPI's value on a date of its history.
	Baseline *Baseline `yaml:"baseline"`
	Type     Type      `yaml:"type"`

	Measure     *Measure `yaml:"measure"`     // type simple
	Numerator   *Measure `yaml:"numerator"`   // type ratio
	Denominator *Measure `yaml:"denominator"` // type ratio
	Expression  string   `yaml:"expression"`  // type derived: arithmetic over other KPI names and margin

	// RequireNumerator (type ratio): a group whose numerator has no rows has
	// no value, rather than 0 — CPL of a channel without spend is not "free".
	RequireNumerator bool `yaml:"require_numerator"`

	// The definition in an analyst's words, for docs/KPIS.md: the formula,
	// the population counted, the date that places an event in the window,
	// and a worked example.
	Formula    string `yaml:"formula"`
	Population string `yaml:"population"`
	DatedBy    string `yaml:"dated_by"`
	Example    string `yaml:"example"`

	settings *Settings // the catalog's, set by Parse
}

// Settings returns the settings of the KPI's catalog (the defaults for a
// KPI built outside one).
func (k KPI) Settings() Settings {
	if k.settings == nil {
		s := DefaultSettings()
		return s
	}
	return *k.settings
}

// Alert tunes the alerts generated for a KPI (dashboards/generated/alerts.yaml).
type Alert struct {
	// OffTargetFor is how long the KPI must stay on the wrong side of its
	// target before KPIOffTarget fires (default 1h).
	OffTargetFor Duration `yaml:"off_target_for"`
	// Regression is the relative change for the worse against a week ago
	// that fires KPIRegression: 0.2 (the default) is 20 % worse.
	Regression *float64 `yaml:"regression"`
	// Disabled generates no KPI alerts (staleness is still reported).
	Disabled bool `yaml:"disabled"`
}

// Baseline is a KPI's starting point: Value, or the value At a date.
type Baseline struct {
	Value *float64 `yaml:"value"`
	At    string   `yaml:"at"` // YYYY-MM-DD, resolved from kpi_values
}

// AtTime is the baseline date, 00:00 UTC.
func (b Baseline) AtTime() (time.Time, error) { return time.Parse("2006-01-02", b.At) }

// Goals are the shared goals KPIs are grouped by on the scorecards.
func Goals() []string { return []string{"growth", "efficiency", "customer", "data_trust"} }

// GoalTitle names a goal for people: "data_trust" is "Data trust".
func GoalTitle(goal string) string {
	if goal == "" {
		return ""
	}
	return strings.ToUpper(goal[:1]) + strings.ReplaceAll(goal[1:], "_", " ")
}

// Owner is the team accountable for a KPI and how to reach it.
type Owner struct {
	Team    string `yaml:"team"`
	Contact string `yaml:"contact"`
}

// Unit of a KPI's value.
type Unit string

// Units.
const (
	UnitRatio    Unit = "ratio"    // 0..1 (or more, e.g. ROAS 4.0)
	UnitPercent  Unit = "percent"  // 100 × numerator / denominator
	UnitCurrency Unit = "currency" // the reporting currency
	UnitCount    Unit = "count"
	UnitSeconds  Unit = "seconds"
	UnitDays     Unit = "days"
)

// Direction says which way is good.
type Direction string

// Directions.
const (
	HigherIsBetter Direction = "higher_is_better"
	LowerIsBetter  Direction = "lower_is_better"
)

// Type of computation.
type Type string

// Types.
const (
	TypeSimple  Type = "simple"
	TypeRatio   Type = "ratio"
	TypeDerived Type = "derived"
)

// Teams that may own a KPI; Audiences that may read it.
var (
	Teams     = []string{"marketing", "it", "sales", "finance"}
	Audiences = []string{"exec", "analyst", "ops"}
	Units     = []Unit{UnitRatio, UnitPercent, UnitCurrency, UnitCount, UnitSeconds, UnitDays}
)

// Measure is one aggregate over one source, filtered.
type Measure struct {
	Source    string               `yaml:"source"`
	Aggregate string               `yaml:"aggregate"`
	Field     string               `yaml:"field"`
	Where     map[string]Condition `yaml:"where"`
	// TimeField is the column the window applies to (default: the source's
	// time column); "none" applies no window to this measure.
	TimeField string `yaml:"time_field"`
	// Dimensions maps a KPI dimension to this source's column when the names differ.
	Dimensions map[string]string `yaml:"dimensions"`
	// GroupBy and Min are for aggregate count_groups_with_min_distinct: the
	// number of GroupBy values that have at least Min distinct Field values.
	GroupBy string `yaml:"group_by"`
	Min     int    `yaml:"min"`
}

// NoTimeField as a measure's time_field applies no window to it.
const NoTimeField = "none"

// Aggregates a measure may use.
var Aggregates = []string{"count", "count_distinct", "sum", "min", "max", "age_seconds", "count_groups_with_min_distinct"}

// Window is the time range a KPI covers, ending at evaluation time.
type Window struct {
	Kind     WindowKind
	Duration time.Duration // rolling only
}

// WindowKind is rolling, calendar_month or lifetime.
type WindowKind string

// Window kinds.
const (
	Rolling       WindowKind = "rolling"
	CalendarMonth WindowKind = "calendar_month"
	Lifetime      WindowKind = "lifetime"
)

var rollingRe = regexp.MustCompile(`^([1-9][0-9]{0,3})([hd])$`)

// ParseWindow parses 7d, 30d, 90d, 12h, calendar_month or lifetime.
func ParseWindow(s string) (Window, error) {
	switch s {
	case "calendar_month":
		return Window{Kind: CalendarMonth}, nil
	case "lifetime":
		return Window{Kind: Lifetime}, nil
	}
	m := rollingRe.FindStringSubmatch(s)
	if m == nil {
		return Window{}, fmt.Errorf("window %q: want a rolling window like 7d, 30d, 90d or 12h, or calendar_month, or lifetime", s)
	}
	n, _ := strconv.Atoi(m[1])
	d := time.Duration(n) * time.Hour
	if m[2] == "d" {
		d *= 24
	}
	return Window{Kind: Rolling, Duration: d}, nil
}

// String is the window as written in the catalog.
func (w Window) String() string {
	switch w.Kind {
	case Rolling:
		if w.Duration%(24*time.Hour) == 0 {
			return fmt.Sprintf("%dd", w.Duration/(24*time.Hour))
		}
		return fmt.Sprintf("%dh", w.Duration/time.Hour)
	case "":
		return ""
	}
	return string(w.Kind)
}

// Bounds returns the window's [start, end) for an evaluation at now; lifetime starts at the epoch.
func (w Window) Bounds(now time.Time) (start, end time.Time) {
	now = now.UTC().Truncate(time.Second)
	end = now.Add(time.Second)
	switch w.Kind {
	case Rolling:
		return now.Add(-w.Duration).Add(time.Second), end
	case CalendarMonth:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), end
	}
	return time.Unix(0, 0).UTC(), end
}

// UnmarshalYAML decodes a window string.
func (w *Window) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	win, err := ParseWindow(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*w = win
	return nil
}

// MarshalYAML encodes the window as its string.
func (w Window) MarshalYAML() (any, error) { return w.String(), nil }

// Duration is a time.Duration written like 5m or 1h30m in YAML.
type Duration time.Duration

// UnmarshalYAML decodes a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration %q: %v", n.Line, s, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML encodes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Condition filters one column: equal to one value, in a list, or compared.
// In YAML: `type: order.placed`, `type: [order.placed, order.refunded]`, or
// `orders: {gte: 2}`; time columns also take $window_start, $window_end and $never.
type Condition struct {
	Op     string   // eq, ne, in, not_in, gt, gte, lt, lte, between ([first, second): at least the first, below the second)
	Values []string // one value except for in and not_in
}

// Ops a condition may use.
var Ops = []string{"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"}

// UnmarshalYAML decodes the three forms of a condition.
func (c *Condition) UnmarshalYAML(n *yaml.Node) error {
	bad := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		*c = Condition{Op: "eq", Values: []string{n.Value}}
	case yaml.SequenceNode:
		c.Op = "in"
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return bad("condition list items must be scalars")
			}
			c.Values = append(c.Values, item.Value)
		}
		if len(c.Values) == 0 {
			return bad("condition list must not be empty")
		}
	case yaml.MappingNode:
		if len(n.Content) != 2 {
			return bad("condition must have exactly one operator (%s)", strings.Join(Ops, ", "))
		}
		op, val := n.Content[0].Value, n.Content[1]
		if !slices.Contains(Ops, op) {
			return bad("unknown condition operator %q (want one of %s)", op, strings.Join(Ops, ", "))
		}
		c.Op = op
		if val.Kind == yaml.SequenceNode {
			for _, item := range val.Content {
				c.Values = append(c.Values, item.Value)
			}
		} else {
			c.Values = []string{val.Value}
		}
		list := op == "in" || op == "not_in" || op == "between"
		if list != (val.Kind == yaml.SequenceNode) {
			return bad("operator %s takes %s", op, map[bool]string{true: "a list", false: "one value"}[list])
		}
		if op == "between" && len(c.Values) != 2 {
			return bad("operator between takes two values, [from, to): at least from and below to")
		}
	default:
		return bad("condition must be a value, a list, or {operator: value}")
	}
	return nil
}

// MarshalYAML encodes the condition in its shortest form.
func (c Condition) MarshalYAML() (any, error) {
	switch {
	case c.Op == "eq":
		return c.Values[0], nil
	case c.Op == "in":
		return c.Values, nil
	case c.Op == "not_in" || c.Op == "between":
		return map[string][]string{c.Op: c.Values}, nil
	}
	return map[string]string{c.Op: c.Values[0]}, nil
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default catalog, as written.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the embedded default catalog.
func Default() (*Catalog, error) { return Parse("default kpis.yaml", defaultYAML) }

// Load reads and validates a catalog file.
func Load(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read KPI catalog: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes the catalog and validates the whole of it, reporting every
// problem at once, each as file:line: kpi NAME: field: what is wrong (an
// unknown key with the nearest known one, a value of the wrong kind, a
// value the catalog rules refuse).
func Parse(name string, b []byte) (*Catalog, error) {
	doc := yamlcheck.Check(name, b, &Catalog{})
	c := &Catalog{file: name, doc: doc}
	if doc.Root != nil {
		// Leniently, over what is wrong, so that the rules below report
		// their problems in the same run as the shapes above.
		_ = doc.Root.Decode(c)
	} else if len(doc.Problems) > 0 {
		return nil, doc.Err() // not YAML at all
	}
	c.Settings.applyDefaults()
	for i := range c.KPIs {
		c.KPIs[i].applyDefaults()
		c.KPIs[i].settings = &c.Settings
	}
	var errs []error
	for _, pr := range doc.Problems {
		errs = append(errs, errors.New(c.problem(pr)))
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, sortByLine(errors.Join(errs...))
	}
	return c, nil
}

var kpiPathRe = regexp.MustCompile(`^kpis\[(\d+)\]\.?`)

// problem writes a shape problem like the rule problems: a KPI's keys
// as "kpi NAME: key", not "kpis[3].key".
func (c *Catalog) problem(p yamlcheck.Problem) string {
	if m := kpiPathRe.FindStringSubmatch(p.Path); m != nil {
		i, _ := strconv.Atoi(m[1])
		if i < len(c.KPIs) {
			rest := strings.TrimPrefix(p.Path, m[0])
			name := c.KPIs[i].Name
			if name == "" {
				name = "#" + strconv.Itoa(i+1)
			}
			if rest == "" {
				return c.doc.Format(p.Line, "kpi "+name, p.Msg)
			}
			return c.doc.Format(p.Line, "kpi "+name+": "+rest, p.Msg)
		}
	}
	return c.doc.Format(p.Line, p.Path, p.Msg)
}

// sortByLine orders an error's lines (file:line: …) by line number.
func sortByLine(err error) error {
	lines := strings.Split(err.Error(), "\n")
	num := func(s string) int {
		parts := strings.SplitN(s, ":", 3)
		if len(parts) < 3 {
			return 0
		}
		n, _ := strconv.Atoi(parts[1])
		return n
	}
	sort.SliceStable(lines, func(i, j int) bool { return num(lines[i]) < num(lines[j]) })
	return errors.New(strings.Join(lines, "\n"))
}

// Defaults applied to fields a KPI leaves out.
const (
	DefaultOffTargetFor = Duration(time.Hour)
	DefaultRegression   = 0.2
	DefaultMaxSeries    = 100
	DefaultRefresh      = Duration(5 * time.Minute)
	DefaultTimeout      = Duration(30 * time.Second)
)

func (k *KPI) applyDefaults() {
	if k.Goal == "" {
		k.Goal = "growth"
		if k.Owner.Team == "it" {
			k.Goal = "data_trust"
		}
	}
	if k.Alert.OffTargetFor == 0 {
		k.Alert.OffTargetFor = DefaultOffTargetFor
	}
	if k.Alert.Regression == nil {
		r := DefaultRegression
		k.Alert.Regression = &r
	}
	if k.MaxSeries == 0 {
		k.MaxSeries = DefaultMaxSeries
	}
	if k.Refresh == 0 {
		k.Refresh = DefaultRefresh
	}
	if k.Timeout == 0 {
		k.Timeout = DefaultTimeout
	}
	for _, m := range []*Measure{k.Measure, k.Numerator, k.Denominator} {
		if m != nil && m.TimeField == "" {
			if s, ok := Sources[m.Source]; ok {
				m.TimeField = s.TimeField
			}
		}
	}
}

// Get returns the KPI named name.
func (c *Catalog) Get(name string) (KPI, bool) {
	for _, k := range c.KPIs {
		if k.Name == name {
			return k, true
		}
	}
	return KPI{}, false
}

// Names lists the KPI names in catalog order.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.KPIs))
	for i, k := range c.KPIs {
		out[i] = k.Name
	}
	return out
}

// line is the line of a key path in the file (0 when unknown).
func (c *Catalog) line(path string) int {
	if c.doc == nil {
		return 0
	}
	return c.doc.Line(path)
}

// skip: the file's shape is already wrong at path, reported once there.
func (c *Catalog) skip(path string) bool { return c.doc != nil && c.doc.Has(path) }

// at writes file:line for a key path.
func (c *Catalog) at(path string) string {
	if l := c.line(path); l > 0 {
		return fmt.Sprintf("%s:%d", c.file, l)
	}
	return c.file
}

// whereSetting names a settings key in errors: file:line: settings.key.
func (c *Catalog) whereSetting(path string) string { return c.at(path) + ": " + path }

// where names a KPI in errors: file:line: kpi NAME, at the line of field
// (a key path inside the KPI, "" for the KPI itself).
func (c *Catalog) where(i int, field string) string {
	k := c.KPIs[i]
	name := k.Name
	if name == "" {
		name = fmt.Sprintf("#%d", i+1)
	}
	path := fmt.Sprintf("kpis[%d]", i)
	if field != "" {
		path += "." + field
	}
	return c.at(path) + ": kpi " + name
}

// SortedKeys returns a map's keys in order, for deterministic SQL and messages.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
