// Package transform owns computing KPIs: it compiles each catalog measure to
// ClickHouse SQL (identifiers from the fixed schema, every value a bound
// parameter) and evaluates KPIs on their refresh intervals into kpi_values.
// Customer measures read what package identity resolves.
package transform

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/store"
)

// Params are the evaluation-time values a query binds.
type Params struct {
	Now         time.Time // evaluation time, UTC, whole seconds
	WindowStart time.Time
	WindowEnd   time.Time // exclusive
	Window      catalog.Window
	// Settings are the catalog's (channel classes for channel_class);
	// the zero value means the defaults.
	Settings catalog.Settings
}

// NewParams computes the window bounds of w for an evaluation at now.
func NewParams(w catalog.Window, now time.Time) Params {
	start, end := w.Bounds(now)
	return Params{Now: now.UTC().Truncate(time.Second), WindowStart: start, WindowEnd: end, Window: w}
}

// compiler builds one query; args collects bound values in order.
type compiler struct {
	m      *catalog.Measure
	dimCol string
	src    catalog.Source
	p      Params
	args   []any
}

func (c *compiler) bind(v any) string {
	c.args = append(c.args, v)
	return "?"
}

// expand binds the placeholders of a computed column's expression
// ($window_start, $window_end, $class_channels, $class_names) in the order
// they appear; call it where the expression is written into the SQL text.
func (c *compiler) expand(expr string) string {
	if !strings.Contains(expr, "$") {
		return expr
	}
	settings := c.p.Settings
	if settings.Margin == nil {
		settings = catalog.DefaultSettings()
	}
	chans, classes := settings.ClassMap()
	values := map[string]any{"$window_start": c.p.WindowStart, "$window_end": c.p.WindowEnd, "$class_channels": chans, "$class_names": classes}
	var b strings.Builder
	for {
		i := strings.IndexByte(expr, '$')
		if i < 0 {
			b.WriteString(expr)
			return b.String()
		}
		j := i + 1
		for j < len(expr) && (expr[j] == '_' || expr[j] >= 'a' && expr[j] <= 'z') {
			j++
		}
		b.WriteString(expr[:i])
		if v, ok := values[expr[i:j]]; ok {
			b.WriteString(c.bind(v))
		} else {
			b.WriteString(expr[i:j]) // not a placeholder: schema constants hold none
		}
		expr = expr[j:]
	}
}

// ref is how a column is written in the outer query.
func (c *compiler) ref(name string) string {
	col := c.src.Columns[name]
	if col.Layer >= 2 && col.Expr != "" {
		return col.Expr // over the customer, or the joined attribute's alias
	}
	return store.QuoteIdent(name)
}

// layer is the deepest join any used column needs.
func (c *compiler) layer(cols []string) int {
	l := 1
	for _, n := range cols {
		l = max(l, c.src.Columns[n].Layer)
	}
	return l
}

// Compile compiles a measure for one dimension ("" is the total), returning
// rows of (dim_value, value). dimension is the KPI's dimension name; the
// measure maps it to its column.
func Compile(m *catalog.Measure, dimension string, p Params) (store.Query, error) {
	src, ok := catalog.Sources[m.Source]
	if !ok {
		return store.Query{}, fmt.Errorf("unknown source %q", m.Source)
	}
	c := &compiler{m: m, src: src, p: p}
	dimCol := ""
	if dimension != "" {
		dimCol = m.Dimension(dimension)
		if _, ok := src.Columns[dimCol]; !ok {
			return store.Query{}, fmt.Errorf("source %s has no column %q for dimension %s", m.Source, dimCol, dimension)
		}
	}
	c.dimCol = dimCol

	// Pushed conditions compile inside the FROM clause, where errors are
	// not returned: check their values first, on a scratch compiler.
	for _, n := range catalog.SortedKeys(m.Where) {
		if c.pushed(n) {
			if _, err := (&compiler{m: m, src: src, p: p}).condition(n, m.Where[n], store.QuoteIdent(n)); err != nil {
				return store.Query{}, err
			}
		}
	}

	// Columns used outside the innermost select.
	used := []string{}
	addUsed := func(n string) {
		if n != "" && !slices.Contains(used, n) {
			used = append(used, n)
		}
	}
	addUsed(dimCol)
	addUsed(m.Field)
	addUsed(m.GroupBy)
	for _, n := range catalog.SortedKeys(m.Where) {
		if !c.pushed(n) {
			addUsed(n)
		}
	}
	// The events source applies a raw time column's window inside its
	// innermost select already; repeating it outside would only keep the
	// column alive and defeat the DISTINCT of distinct-count measures.
	windowInside := m.Source == "events" && m.TimeField != catalog.NoTimeField && src.Columns[m.TimeField].Expr == ""
	if m.TimeField != catalog.NoTimeField && !windowInside {
		addUsed(m.TimeField)
	}

	// Arguments bind by position, so clauses compile in the order they are written: SELECT, FROM, WHERE, HAVING.
	agg := ""
	if m.Aggregate != "count_groups_with_min_distinct" {
		var err error
		if agg, err = c.aggregate(); err != nil {
			return store.Query{}, err
		}
	}
	from, err := c.from(used)
	if err != nil {
		return store.Query{}, err
	}
	// Outer filters: the window, then the where conditions.
	var conds []string
	// Lifetime windows filter too: [epoch, now] keeps out "never happened" ($never) times.
	if m.TimeField != catalog.NoTimeField && !windowInside {
		t := c.ref(m.TimeField)
		conds = append(conds, fmt.Sprintf("%s >= %s AND %s < %s", t, c.bind(p.WindowStart), t, c.bind(p.WindowEnd)))
	}
	for _, n := range catalog.SortedKeys(m.Where) {
		if c.pushed(n) {
			continue
		}
		cond, err := c.condition(n, m.Where[n], c.ref(n))
		if err != nil {
			return store.Query{}, err
		}
		conds = append(conds, cond)
	}
	where := ""
	if len(conds) > 0 {
		where = "\nWHERE " + strings.Join(conds, "\n  AND ")
	}

	dimExpr := "''"
	if dimCol != "" {
		// Empty (no campaign, no credited touch) is a group of its own under
		// a name the event contract refuses as a value, so nothing real merges into it.
		dimExpr = fmt.Sprintf("if(toString(%s) = '', '%s', toString(%s))", c.ref(dimCol), catalog.Unattributed, c.ref(dimCol))
	}
	var sql string
	switch m.Aggregate {
	case "count_groups_with_min_distinct":
		g, f := c.ref(m.GroupBy), c.ref(m.Field)
		nonEmpty := []string{g + " != ''", "toString(" + f + ") != ''"}
		if c.countsCustomers(m.GroupBy) {
			g, nonEmpty[0] = "customer_key", "customer_key != 0"
		}
		if c.countsCustomers(m.Field) {
			f, nonEmpty[1] = "customer_key", "customer_key != 0"
		}
		if where == "" {
			where = "\nWHERE " + strings.Join(nonEmpty, "\n  AND ")
		} else {
			where += "\n  AND " + strings.Join(nonEmpty, "\n  AND ")
		}
		if m.Min == 2 {
			// Two distinct values or more: the smallest and largest hash
			// differ. One pass, no set or distinct rows per group.
			sql = fmt.Sprintf("SELECT dim_value, toFloat64(count()) AS value FROM (\nSELECT %s AS dim_value, %s AS group_key\nFROM %s%s\nGROUP BY dim_value, group_key\nHAVING min(cityHash64(%s)) != max(cityHash64(%s))\n)\nGROUP BY dim_value\nORDER BY dim_value",
				dimExpr, g, from, where, f, f)
			break
		}
		// Distinct (dimension, group, value) rows first: a group then
		// qualifies by counting its rows, cheaper than a set per group.
		sql = fmt.Sprintf("SELECT dim_value, toFloat64(count()) AS value FROM (\nSELECT dim_value, group_key FROM (\nSELECT DISTINCT %s AS dim_value, %s AS group_key, %s AS counted\nFROM %s%s\n)\nGROUP BY dim_value, group_key\nHAVING count() >= %s\n)\nGROUP BY dim_value\nORDER BY dim_value",
			dimExpr, g, f, from, where, c.bind(int64(m.Min)))
	default:
		// HAVING: an empty group has no value (ClickHouse returns one row for a constant key even over no rows).
		sql = fmt.Sprintf("SELECT %s AS dim_value, %s AS value\nFROM %s%s\nGROUP BY dim_value\nHAVING count() > 0\nORDER BY dim_value", dimExpr, agg, from, where)
	}
	return store.Query{SQL: sql, Args: c.args}, nil
}

// countsCustomers: distinct counts and groups of the events source's
// customer use its 64-bit key, not the id.
func (c *compiler) countsCustomers(name string) bool {
	return c.m.Source == "events" && name == "customer" &&
		(c.m.Aggregate == "count_distinct" || c.m.Aggregate == "count_groups_with_min_distinct")
}

// needsCustomerID: the measure reads the customer id itself (a dimension
// or condition over it), not only its key.
func (c *compiler) needsCustomerID(dimCol string) bool {
	cols := []string{dimCol}
	for _, n := range []string{c.m.Field, c.m.GroupBy} {
		if !c.countsCustomers(n) {
			cols = append(cols, n)
		}
	}
	cols = append(cols, catalog.SortedKeys(c.m.Where)...)
	for _, n := range cols {
		if c.src.Columns[n].Layer == 2 {
			return true
		}
	}
	return false
}

func (c *compiler) aggregate() (string, error) {
	f := ""
	if c.m.Field != "" {
		f = c.ref(c.m.Field)
	}
	switch c.m.Aggregate {
	case "count":
		return "toFloat64(count())", nil
	case "count_distinct":
		if c.countsCustomers(c.m.Field) {
			return "toFloat64(uniqExactIf(customer_key, customer_key != 0))", nil
		}
		if c.src.Columns[c.m.Field].Kind == catalog.String {
			// An empty key (no identity, no id) is nobody, not one more distinct value.
			return fmt.Sprintf("toFloat64(uniqExactIf(%s, %s != ''))", f, f), nil
		}
		return fmt.Sprintf("toFloat64(uniqExact(%s))", f), nil
	case "sum":
		return fmt.Sprintf("toFloat64(sum(%s))", f), nil
	case "min":
		return fmt.Sprintf("toFloat64(min(%s))", f), nil
	case "max":
		return fmt.Sprintf("toFloat64(max(%s))", f), nil
	case "age_seconds":
		return fmt.Sprintf("toFloat64(toInt64(toUInt32(%s)) - toInt64(toUInt32(max(%s))))", c.bind(c.p.Now), f), nil
	}
	return "", fmt.Errorf("unknown aggregate %q", c.m.Aggregate)
}

// from returns the FROM clause: the source, deduplicated and joined as deep as the used columns need.
func (c *compiler) from(used []string) (string, error) {
	switch c.m.Source {
	case "events":
		return c.fromEvents(used), nil
	case "customers":
		// Alive customers only: the latest version of a merged customer is a tombstone.
		return "(SELECT * FROM customers FINAL WHERE merged_into = '')", nil
	case "dead_letters", "duplicates":
		return c.m.Source + " FINAL", nil
	case "messages":
		// The window is applied inside each branch too, so the deduplication
		// of valid events only reads the window's events.
		var win [3]string
		if c.m.TimeField != catalog.NoTimeField {
			for i, col := range []string{"ingested_at", "failed_at", "seen_at"} {
				win[i] = fmt.Sprintf(" WHERE %s >= %s AND %s < %s", col, c.bind(c.p.WindowStart), col, c.bind(c.p.WindowEnd))
			}
		}
		return fmt.Sprintf(`(
    SELECT source, topic, 'valid' AS outcome, ingested_at AS at FROM events%s LIMIT 1 BY event_id
    UNION ALL
    SELECT source, topic, 'invalid' AS outcome, failed_at AS at FROM dead_letters FINAL%s
    UNION ALL
    SELECT source, topic, 'duplicate' AS outcome, seen_at AS at FROM duplicates FINAL%s
)`, win[0], win[1], win[2]), nil
	}
	return "", fmt.Errorf("unknown source %q", c.m.Source)
}

// fromEvents reads each event once. Measures of the event alone read
// events, deduplicated by event_id (LIMIT 1 BY, so each event counts once
// before ClickHouse merges re-deliveries) and pre-filtered on raw columns so
// the sorting key and partitions prune. Measures of the customer (layer 2)
// read resolved_events, which the identity resolver keeps with one row per
// event and its customer; customer attributes (layer 3) join customers.
func (c *compiler) fromEvents(used []string) string {
	need := c.layer(used)
	// computed is how the first read computes column n, "" when it is stored
	// (resolved_events stores the identifier).
	computed := func(n string) string {
		if need >= 2 && n == "identifier" {
			return ""
		}
		return c.src.Columns[n].Expr
	}
	var l1 []string
	addCol := func(n string) {
		expr := store.QuoteIdent(n)
		if e := computed(n); e != "" {
			expr = e + " AS " + store.QuoteIdent(n)
		}
		if !slices.Contains(l1, expr) {
			l1 = append(l1, expr)
		}
	}
	for _, n := range used {
		if c.src.Columns[n].Layer == 1 {
			addCol(n)
		}
	}
	// Bind the placeholders of the first read's columns now: they precede its WHERE in the text.
	for i, e := range l1 {
		l1[i] = c.expand(e)
	}
	// Filters of the first read: the window on a stored time column, and
	// every condition on the event's own columns. Re-delivered copies of an
	// event differ only in where and when they were received (topic,
	// ingested_at); a condition on those counts the event if any copy
	// matches. Built anew each time it is written, since arguments bind in
	// text order.
	where := func() string {
		var pre []string
		if tf := c.m.TimeField; tf != catalog.NoTimeField && c.src.Columns[tf].Expr == "" {
			pre = append(pre, fmt.Sprintf("%s >= %s AND %s < %s", store.QuoteIdent(tf), c.bind(c.p.WindowStart), store.QuoteIdent(tf), c.bind(c.p.WindowEnd)))
		}
		for _, n := range catalog.SortedKeys(c.m.Where) {
			if !c.pushed(n) {
				continue
			}
			expr := store.QuoteIdent(n)
			if e := computed(n); e != "" {
				expr = "(" + c.expand(e) + ")"
			}
			s, _ := c.condition(n, c.m.Where[n], expr) // checked when the measure compiled
			pre = append(pre, s)
			if types := c.src.Columns[n].OnlyTypes; len(types) > 0 && !matchesEmpty(c.m.Where[n]) {
				ph := make([]string, len(types))
				for i, t := range types {
					ph[i] = c.bind(t)
				}
				pre = append(pre, "`type` IN ("+strings.Join(ph, ", ")+")")
			}
		}
		if len(pre) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(pre, " AND ")
	}
	distinct := c.m.Aggregate == "count_distinct" || c.m.Aggregate == "count_groups_with_min_distinct"
	if need == 1 {
		// Counts and sums see each event once (LIMIT 1 BY event_id).
		// Distinct counts need neither the event nor its repeats: DISTINCT
		// over the columns they use collapses them into one row.
		inner := "SELECT " + strings.Join(l1, ", ") + " FROM events" + where()
		switch {
		case c.readsCorrections():
			// A corrected report replaces the first: the version with the
			// latest report time (occurred_at) wins, then the copy stored
			// last, then the later offset. A re-delivered old version keeps
			// its old report time, so it never undoes a correction.
			inner += " ORDER BY `occurred_at` DESC, `ingested_at` DESC, `offset` DESC LIMIT 1 BY event_id"
		case needsDedupe(c.m.Aggregate):
			inner += " LIMIT 1 BY event_id"
		case distinct:
			inner = "SELECT DISTINCT" + strings.TrimPrefix(inner, "SELECT")
		}
		return "(" + inner + ")"
	}
	// The raw columns the layer-1 columns read from resolved_events.
	var raw []string
	for _, n := range used {
		col := c.src.Columns[n]
		if col.Layer != 1 {
			continue
		}
		deps := col.Uses
		if computed(n) == "" {
			deps = []string{n}
		}
		for _, d := range deps {
			if !slices.Contains(raw, d) {
				raw = append(raw, d)
			}
		}
	}
	withID := c.needsCustomerID(c.dimCol)
	sel := append(slices.Clone(l1), "customer_key")
	if withID {
		sel = append(sel, store.QuoteIdent("customer"))
	}
	l2 := "SELECT " + strings.Join(sel, ", ") + " FROM (" + identity.ResolvedSQL(raw, where(), withID) + ")"
	if need == 2 {
		return "(" + l2 + ")"
	}
	// Attributes: distinct counts first collapse a person's rows, which
	// is most of the join's cost.
	if distinct {
		l2 = "SELECT DISTINCT" + strings.TrimPrefix(l2, "SELECT")
	}
	attrs := []string{"customer_key"}
	for _, n := range used {
		if col := c.src.Columns[n]; col.Layer == 3 {
			attrs = append(attrs, strings.TrimPrefix(n, "customer.")+" AS "+col.Expr)
		}
	}
	// The join reads only the customers these rows belong to. PREWHERE on
	// the key is safe with FINAL: every version of a customer has its key.
	keys := "SELECT customer_key FROM (" + identity.ResolvedSQL(nil, where(), false) + ")"
	return fmt.Sprintf("(SELECT * FROM (%s) AS resolved ANY LEFT JOIN (SELECT %s FROM customers FINAL PREWHERE customer_key IN (%s) WHERE merged_into = '') AS attrs USING customer_key)", l2, strings.Join(attrs, ", "), keys)
}

// readsCorrections: the measure may read reports that corrections replace
// (events.Correctable) with an aggregate their figures change, so it must
// keep each report's latest copy, not any one.
func (c *compiler) readsCorrections() bool {
	if c.m.Source != "events" {
		return false
	}
	switch c.m.Aggregate {
	case "count", "sum", "min", "max":
	default:
		if c.m.Field != "amount" && c.m.Field != "impressions" && c.m.Field != "clicks" && c.m.Field != "prorated_amount" {
			return false
		}
	}
	for _, n := range catalog.SortedKeys(c.m.Where) {
		cond := c.m.Where[n]
		if n == "type" && (cond.Op == "eq" || cond.Op == "in") {
			return slices.ContainsFunc(cond.Values, func(t string) bool { return events.Correctable(events.Type(t)) })
		}
		if types := c.src.Columns[n].OnlyTypes; c.pushed(n) && len(types) > 0 && !matchesEmpty(cond) {
			if !slices.ContainsFunc(types, func(t string) bool { return events.Correctable(events.Type(t)) }) {
				return false
			}
		}
	}
	return true
}

// needsDedupe: re-delivered copies of an event change counts and sums, but
// not distinct counts, minima, maxima or ages, which skip the deduplication.
func needsDedupe(aggregate string) bool {
	switch aggregate {
	case "count_distinct", "min", "max", "age_seconds", "count_groups_with_min_distinct":
		return false
	}
	return true
}

// matchesEmpty: whether a text condition can hold for the empty string.
func matchesEmpty(cond catalog.Condition) bool {
	switch cond.Op {
	case "eq", "in":
		return slices.Contains(cond.Values, "")
	case "ne", "not_in":
		return !slices.Contains(cond.Values, "")
	}
	return true
}

// pushed: conditions on the event's own columns filter the first read of
// the events source, before deduplication and joins (see fromEvents).
func (c *compiler) pushed(name string) bool {
	return c.m.Source == "events" && c.src.Columns[name].Layer == 1
}

// condition compiles one where entry on ref, the column's expression, with bound values.
func (c *compiler) condition(name string, cond catalog.Condition, ref string) (string, error) {
	col := c.src.Columns[name]
	vals := make([]string, len(cond.Values))
	for i, v := range cond.Values {
		b, err := c.value(col.Kind, v)
		if err != nil {
			return "", fmt.Errorf("where.%s: %w", name, err)
		}
		vals[i] = b
	}
	switch cond.Op {
	case "eq":
		return ref + " = " + vals[0], nil
	case "ne":
		return ref + " != " + vals[0], nil
	case "in":
		return ref + " IN (" + strings.Join(vals, ", ") + ")", nil
	case "not_in":
		return ref + " NOT IN (" + strings.Join(vals, ", ") + ")", nil
	case "gt":
		return ref + " > " + vals[0], nil
	case "gte":
		return ref + " >= " + vals[0], nil
	case "lt":
		return ref + " < " + vals[0], nil
	case "lte":
		return ref + " <= " + vals[0], nil
	case "between":
		return ref + " >= " + vals[0] + " AND " + ref + " < " + vals[1], nil
	}
	return "", fmt.Errorf("unknown operator %q", cond.Op)
}

func (c *compiler) value(kind catalog.ColumnKind, v string) (string, error) {
	switch kind {
	case catalog.Number:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return "", fmt.Errorf("%q is not a number", v)
		}
		return c.bind(f), nil
	case catalog.Time:
		switch v {
		case "$window_start":
			return c.bind(c.p.WindowStart), nil
		case "$window_end":
			return c.bind(c.p.WindowEnd), nil
		case "$never":
			return c.bind(catalog.NeverTime()), nil
		}
		t, err := time.Parse("2006-01-02 15:04:05", v)
		if err != nil {
			return "", fmt.Errorf("%q is not a time", v)
		}
		return c.bind(t), nil
	}
	return c.bind(v), nil
}
