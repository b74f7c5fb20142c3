package catalog

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ReservedLabels are label names a dimension cannot take: the exporter's
// own labels on every KPI series (kpi, team), those Prometheus sets on
// every scraped series or uses in histograms and summaries (job, instance,
// le, quantile), and those the generated alert rules and Alertmanager
// routes add (severity, alertname). A dimension under one of these names
// would collide with it in the exporter or be renamed by Prometheus.
var ReservedLabels = []string{"kpi", "team", "job", "instance", "le", "quantile", "severity", "alertname"}

// Validate checks the catalog as a whole and returns every problem, each
// naming the file, line, KPI and field.
func (c *Catalog) Validate() error {
	var errs []error
	if len(c.KPIs) == 0 {
		return fmt.Errorf("%s: kpis: the catalog defines no KPI", c.file)
	}
	c.Settings.validate(func(path, format string, args ...any) {
		if !c.skip(path) {
			errs = append(errs, fmt.Errorf("%s: %s", c.whereSetting(path), fmt.Sprintf(format, args...)))
		}
	})
	seen := map[string]bool{}
	for i := range c.KPIs {
		k := &c.KPIs[i]
		fail := func(field, format string, args ...any) {
			msg := fmt.Sprintf(format, args...)
			path := keyPath(field, msg)
			if c.skip(fmt.Sprintf("kpis[%d].%s", i, path)) {
				return // its shape is wrong, and said so at its line
			}
			errs = append(errs, fmt.Errorf("%s: %s: %s", c.where(i, path), field, msg))
		}
		if !nameRe.MatchString(k.Name) {
			fail("name", "must match %s, got %q", nameRe, k.Name)
		} else if seen[k.Name] {
			fail("name", "duplicate KPI name %q", k.Name)
		} else if IsConstant(k.Name) {
			fail("name", "%q is reserved: derived expressions use it for settings.%s", k.Name, k.Name)
		}
		seen[k.Name] = true
		if strings.TrimSpace(k.Title) == "" {
			fail("title", "required")
		}
		if strings.TrimSpace(k.Description) == "" {
			fail("description", "required: the agreed definition in plain words")
		}
		if !slices.Contains(Teams, k.Owner.Team) {
			fail("owner.team", "must be one of %s, got %q", strings.Join(Teams, ", "), k.Owner.Team)
		}
		if strings.TrimSpace(k.Owner.Contact) == "" {
			fail("owner.contact", "required: who to ask about this KPI")
		}
		if !slices.Contains(Units, k.Unit) {
			fail("unit", "must be one of %v, got %q", Units, k.Unit)
		}
		if k.Direction != HigherIsBetter && k.Direction != LowerIsBetter {
			fail("direction", "must be higher_is_better or lower_is_better, got %q", k.Direction)
		}
		if k.Target == nil {
			fail("target", "required")
		} else if err := checkValue(k.Unit, *k.Target); err != nil {
			fail("target", "%v", err)
		}
		if k.Warning != nil {
			if err := checkValue(k.Unit, *k.Warning); err != nil {
				fail("warning", "%v", err)
			}
			if k.Target != nil {
				if k.Direction == HigherIsBetter && *k.Warning > *k.Target {
					fail("warning", "%v is above target %v, but higher is better: the warning threshold must lie on the bad side of the target", *k.Warning, *k.Target)
				}
				if k.Direction == LowerIsBetter && *k.Warning < *k.Target {
					fail("warning", "%v is below target %v, but lower is better: the warning threshold must lie on the bad side of the target", *k.Warning, *k.Target)
				}
			}
		}
		if k.Window.Kind == "" {
			fail("window", "required (e.g. 30d, calendar_month, lifetime)")
		}
		if k.MaxSeries < 1 {
			fail("max_series", "must be >= 1, got %d", k.MaxSeries)
		}
		if time.Duration(k.Refresh) < 10*time.Second {
			fail("refresh", "must be at least 10s, got %s", time.Duration(k.Refresh))
		}
		if k.Timeout <= 0 || k.Timeout > k.Refresh {
			fail("timeout", "must be > 0 and <= refresh (%s), got %s", time.Duration(k.Refresh), time.Duration(k.Timeout))
		}
		if len(k.Audience) == 0 {
			fail("audience", "name at least one of %s", strings.Join(Audiences, ", "))
		}
		for _, a := range k.Audience {
			if !slices.Contains(Audiences, a) {
				fail("audience", "unknown audience %q (want %s)", a, strings.Join(Audiences, ", "))
			}
		}
		if b := k.Baseline; b != nil {
			switch {
			case (b.Value == nil) == (b.At == ""):
				fail("baseline", "give either value (a number) or at (a date, YYYY-MM-DD, read from the KPI's history)")
			case b.Value != nil:
				if err := checkValue(k.Unit, *b.Value); err != nil {
					fail("baseline.value", "%v", err)
				}
			default:
				if _, err := b.AtTime(); err != nil {
					fail("baseline.at", "want a date YYYY-MM-DD, got %q", b.At)
				}
			}
		}
		if !slices.Contains(Goals(), k.Goal) {
			fail("goal", "must be one of %s, got %q", strings.Join(Goals(), ", "), k.Goal)
		}
		if d := time.Duration(k.Alert.OffTargetFor); d < time.Minute || d > 30*24*time.Hour {
			fail("alert.off_target_for", "want a duration from 1m to 720h, got %s", d)
		}
		if r := *k.Alert.Regression; !(r > 0 && r <= 10) {
			fail("alert.regression", "want a relative change above 0 and at most 10 (0.2 = 20 %% worse than a week ago), got %v", r)
		}
		seenDim := map[string]bool{}
		for _, d := range k.Dimensions {
			if !nameRe.MatchString(d) || seenDim[d] {
				fail("dimensions", "%q is not a valid, unique dimension name", d)
			} else if slices.Contains(ReservedLabels, d) {
				fail("dimensions", "%q is a reserved label name (%s); name the dimension otherwise, e.g. %s_name, and map it to its column in the measure's dimensions", d, strings.Join(ReservedLabels, ", "), d)
			}
			seenDim[d] = true
		}
		switch k.Type {
		case TypeSimple:
			if k.Measure == nil {
				fail("measure", "required for type simple")
			}
			if k.Numerator != nil || k.Denominator != nil || k.Expression != "" {
				fail("type", "simple takes only measure (not numerator, denominator or expression)")
			}
			if k.RequireNumerator {
				fail("require_numerator", "only for type ratio")
			}
		case TypeRatio:
			if k.Numerator == nil {
				fail("numerator", "required for type ratio")
			}
			if k.Denominator == nil {
				fail("denominator", "required for type ratio")
			}
			if k.Measure != nil || k.Expression != "" {
				fail("type", "ratio takes numerator and denominator (not measure or expression)")
			}
		case TypeDerived:
			if k.Expression == "" {
				fail("expression", "required for type derived")
			}
			if k.Measure != nil || k.Numerator != nil || k.Denominator != nil {
				fail("type", "derived takes only expression")
			}
			if len(k.Dimensions) > 0 {
				fail("dimensions", "a derived KPI is computed for the total only and takes no dimensions")
			}
			if k.RequireNumerator {
				fail("require_numerator", "only for type ratio")
			}
		default:
			fail("type", "must be simple, ratio or derived, got %q", k.Type)
		}
		for _, m := range []struct {
			field string
			m     *Measure
		}{{"measure", k.Measure}, {"numerator", k.Numerator}, {"denominator", k.Denominator}} {
			if m.m != nil {
				for _, err := range m.m.check(k.Dimensions) {
					fail(m.field, "%v", err)
				}
			}
		}
	}
	errs = append(errs, c.checkDerived()...)
	return errors.Join(errs...)
}

var keyRe = regexp.MustCompile(`^([a-z_][a-z0-9_.]*): `)

// keyPath is the key path inside a KPI a problem is about: the field, and
// for a measure the key its message starts with (numerator.where.stage).
func keyPath(field, msg string) string {
	switch field {
	case "measure", "numerator", "denominator":
		if m := keyRe.FindStringSubmatch(msg); m != nil {
			return field + "." + m[1]
		}
	}
	return field
}

func checkValue(u Unit, v float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("must be a finite number, got %v", v)
	case v < 0:
		return fmt.Errorf("must be >= 0 for unit %s, got %v", u, v)
	case u == UnitPercent && v > 100:
		return fmt.Errorf("%v is not a percentage (unit percent takes 0 to 100; for a multiple such as ROAS use unit ratio)", v)
	case u == UnitCount && v != math.Trunc(v):
		return fmt.Errorf("unit count takes whole numbers, got %v", v)
	}
	return nil
}

// check validates a measure against its source's columns.
func (m *Measure) check(dims []string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	src, ok := Sources[m.Source]
	if !ok {
		bad("source: unknown source %q (want one of %s)", m.Source, strings.Join(SortedKeys(Sources), ", "))
		return errs
	}
	col := func(field, name string) (Column, bool) {
		c, ok := src.Columns[name]
		if !ok {
			bad("%s: source %s has no column %q (columns: %s)", field, m.Source, name, strings.Join(SortedKeys(src.Columns), ", "))
		}
		return c, ok
	}
	if !slices.Contains(Aggregates, m.Aggregate) {
		bad("aggregate: must be one of %s, got %q", strings.Join(Aggregates, ", "), m.Aggregate)
	}
	switch m.Aggregate {
	case "count":
		if m.Field != "" {
			bad("field: aggregate count counts rows and takes no field (use count_distinct)")
		}
	case "sum", "min", "max":
		if c, ok := col("field", m.Field); ok && c.Kind != Number {
			bad("field: aggregate %s needs a number column, %s is a %s", m.Aggregate, m.Field, c.Kind)
		}
	case "age_seconds":
		if c, ok := col("field", m.Field); ok && c.Kind != Time {
			bad("field: aggregate age_seconds needs a time column, %s is a %s", m.Field, c.Kind)
		}
	case "count_distinct":
		col("field", m.Field)
	case "count_groups_with_min_distinct":
		col("field", m.Field)
		col("group_by", m.GroupBy)
		if m.Min < 1 {
			bad("min: must be >= 1 for count_groups_with_min_distinct, got %d", m.Min)
		}
	}
	if m.Aggregate != "count_groups_with_min_distinct" && (m.GroupBy != "" || m.Min != 0) {
		bad("group_by, min: only for aggregate count_groups_with_min_distinct")
	}
	if m.TimeField == NoTimeField {
		// The window does not apply to this measure; its where clause may use $window_start.
	} else if c, ok := col("time_field", m.TimeField); ok && c.Kind != Time {
		bad("time_field: %s is a %s, not a time column", m.TimeField, c.Kind)
	}
	for _, name := range SortedKeys(m.Where) {
		cond := m.Where[name]
		c, ok := col("where."+name, name)
		if !ok {
			continue
		}
		if c.Kind == String && slices.Contains([]string{"gt", "gte", "lt", "lte", "between"}, cond.Op) {
			bad("where.%s: operator %s needs a number or time column", name, cond.Op)
		}
		for _, v := range cond.Values {
			switch c.Kind {
			case Number:
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					bad("where.%s: %q is not a number", name, v)
				}
			case Time:
				if !slices.Contains([]string{"$window_start", "$window_end", "$never"}, v) {
					if _, err := time.Parse("2006-01-02 15:04:05", v); err != nil {
						bad("where.%s: %q is not $window_start, $window_end, $never or YYYY-MM-DD hh:mm:ss", name, v)
					}
				}
			}
		}
	}
	for _, d := range dims {
		name := m.Dimension(d)
		if c, ok := src.Columns[name]; !ok {
			bad("dimensions: KPI dimension %q has no column in source %s; add `dimensions: {%s: <column>}` to the measure", d, m.Source, d)
		} else if c.Kind == Time {
			bad("dimensions: %q maps to time column %s", d, name)
		}
	}
	for _, d := range SortedKeys(m.Dimensions) {
		if !slices.Contains(dims, d) {
			bad("dimensions.%s: not a dimension of this KPI", d)
		} else if _, ok := src.Columns[m.Dimensions[d]]; !ok {
			bad("dimensions.%s: source %s has no column %q", d, m.Source, m.Dimensions[d])
		}
	}
	return errs
}

// Dimension returns the source column of a KPI dimension in this measure.
func (m *Measure) Dimension(d string) string {
	if c, ok := m.Dimensions[d]; ok {
		return c
	}
	return d
}

// References returns the KPI names a derived expression uses, in order of
// first use, or an error if the expression is not plain arithmetic.
func References(expression string) ([]string, error) {
	tree, err := parser.Parse(expression)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %q: %v", expression, firstLine(err.Error()))
	}
	v := &refVisitor{}
	ast.Walk(&tree.Node, v)
	if v.err != nil {
		return nil, v.err
	}
	return v.names, nil
}

type refVisitor struct {
	names []string
	err   error
}

func (v *refVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if !slices.Contains(v.names, n.Value) {
			v.names = append(v.names, n.Value)
		}
	case *ast.IntegerNode, *ast.FloatNode:
	case *ast.BinaryNode:
		if !slices.Contains([]string{"+", "-", "*", "/"}, n.Operator) && v.err == nil {
			v.err = fmt.Errorf("operator %q is not allowed: use + - * / and parentheses", n.Operator)
		}
	case *ast.UnaryNode:
		if n.Operator != "-" && n.Operator != "+" && v.err == nil {
			v.err = fmt.Errorf("operator %q is not allowed: use + - * / and parentheses", n.Operator)
		}
	default:
		if v.err == nil {
			v.err = fmt.Errorf("only KPI names, numbers, + - * / and parentheses are allowed, found %T", n)
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// checkDerived checks that derived KPIs reference existing KPIs and form no cycle.
func (c *Catalog) checkDerived() []error {
	var errs []error
	deps := map[string][]string{}
	index := map[string]int{}
	for i, k := range c.KPIs {
		index[k.Name] = i
	}
	for i, k := range c.KPIs {
		if k.Type != TypeDerived || k.Expression == "" {
			continue
		}
		refs, err := References(k.Expression)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: expression: %v", c.where(i, "expression"), err))
			continue
		}
		for _, r := range refs {
			if _, ok := index[r]; !ok && !IsConstant(r) {
				errs = append(errs, fmt.Errorf("%s: expression: references unknown KPI %q", c.where(i, "expression"), r))
			}
		}
		deps[k.Name] = slices.DeleteFunc(refs, IsConstant)
	}
	// Depth-first search for cycles, reported once each.
	state := map[string]int{} // 0 new, 1 on stack, 2 done
	var stack []string
	var visit func(string)
	visit = func(n string) {
		state[n] = 1
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch state[d] {
			case 0:
				visit(d)
			case 1:
				start := len(stack) - 1
				for stack[start] != d {
					start--
				}
				cycle := append(append([]string{}, stack[start:]...), d)
				errs = append(errs, fmt.Errorf("%s: expression: derived KPIs form a cycle: %s", c.where(index[d], "expression"), strings.Join(cycle, " → ")))
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
	}
	for _, k := range c.KPIs {
		if state[k.Name] == 0 {
			visit(k.Name)
		}
	}
	return errs
}

// IsConstant reports whether a name in a derived expression is a catalog
// setting rather than a KPI: margin.
func IsConstant(name string) bool { return name == "margin" }

// Constants are the values of the settings derived expressions may use.
func (s Settings) Constants() map[string]any { return map[string]any{"margin": *s.Margin} }

// Order returns the KPIs so that every derived KPI comes after the KPIs it uses.
func (c *Catalog) Order() []KPI {
	done := map[string]bool{}
	var out []KPI
	var add func(k KPI)
	add = func(k KPI) {
		if done[k.Name] {
			return
		}
		done[k.Name] = true
		if k.Type == TypeDerived {
			refs, _ := References(k.Expression)
			for _, r := range refs {
				if dep, ok := c.Get(r); ok {
					add(dep)
				}
			}
		}
		out = append(out, k)
	}
	for _, k := range c.KPIs {
		add(k)
	}
	return out
}
