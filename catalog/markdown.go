package catalog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Markdown renders the catalog as the reference document docs/KPIS.md: every
// KPI's agreed definition, owner, unit, direction, target, window,
// dimensions and exact computation.
func Markdown(c *Catalog) string {
	var b strings.Builder
	b.WriteString("# KPI definitions\n\n")
	b.WriteString("Generated from the KPI catalog by `kpibridge kpis docs`; do not edit by hand.\n")
	b.WriteString("The catalog format is described in [CATALOG.md](CATALOG.md).\n\n")
	st := c.Settings
	chans := make([]string, 0, 3)
	for _, class := range ChannelClasses() {
		chans = append(chans, fmt.Sprintf("%s: %s", class, strings.Join(st.Channels[class], ", ")))
	}
	fmt.Fprintf(&b, "**Settings of this catalog.** Attribution: %s within %s before the conversion (becoming a lead; a first order); "+
		"a touch is a customer's own action with a campaign block (visit, app session, email open or click, form), never an email send. "+
		"Channel classes: %s. Margin: %s (%s). Breakdown rows with no channel or campaign, or no credited touch, show as `%s`.\n\n",
		strings.ReplaceAll(st.Attribution.Model, "_", " "), st.Attribution.Lookback, strings.Join(chans, "; "),
		strconv.FormatFloat(*st.Margin, 'f', -1, 64), map[bool]string{true: "CLV is revenue-based", false: "CLV is margin-based"}[*st.Margin == 1], Unattributed)
	b.WriteString("| KPI | owner | unit | window | target | direction |\n|---|---|---|---|---|---|\n")
	for _, k := range c.KPIs {
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s | %s | %s | %s |\n", k.Title, k.Name, k.Owner.Team, k.Unit, k.Window, fmtTarget(k.Target), strings.ReplaceAll(string(k.Direction), "_", " "))
	}
	for _, k := range c.KPIs {
		fmt.Fprintf(&b, "\n## %s\n\n<a id=\"%s\"></a>`%s` — %s\n\n", k.Title, k.Name, k.Name, k.Description)
		for _, f := range [][2]string{{"Formula", k.Formula}, {"Who is counted", k.Population}, {"Placed in the window by", k.DatedBy}, {"Example", k.Example}} {
			if f[1] != "" {
				fmt.Fprintf(&b, "- **%s:** %s\n", f[0], f[1])
			}
		}
		fmt.Fprintf(&b, "- **Owner:** %s (%s)\n", k.Owner.Team, k.Owner.Contact)
		fmt.Fprintf(&b, "- **Unit:** %s; **direction:** %s\n", k.Unit, strings.ReplaceAll(string(k.Direction), "_", " "))
		fmt.Fprintf(&b, "- **Target:** %s", fmtTarget(k.Target))
		if k.Warning != nil {
			fmt.Fprintf(&b, "; **warning at:** %s", fmtTarget(k.Warning))
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "- **Window:** %s; **refresh:** every %s\n", windowWords(k.Window), fmtDuration(k.Refresh))
		if len(k.Dimensions) > 0 {
			fmt.Fprintf(&b, "- **Dimensions:** %s (at most %d series)\n", strings.Join(k.Dimensions, ", "), k.MaxSeries)
		}
		fmt.Fprintf(&b, "- **Audience:** %s; **goal:** %s\n", strings.Join(k.Audience, ", "), strings.ReplaceAll(k.Goal, "_", " "))
		if k.Alert.Disabled {
			b.WriteString("- **Alerts:** none\n")
		} else {
			fmt.Fprintf(&b, "- **Alerts:** off target for %s; %s worse than a week ago\n", fmtDuration(k.Alert.OffTargetFor), strconv.FormatFloat(100**k.Alert.Regression, 'f', -1, 64)+" %")
		}
		switch k.Type {
		case TypeSimple:
			fmt.Fprintf(&b, "- **Computation:** %s\n", measureWords(k.Measure))
		case TypeRatio:
			scale := ""
			if k.Unit == UnitPercent {
				scale = "100 × "
			}
			none := "no value where the denominator is 0"
			if k.RequireNumerator {
				none = "no value where the denominator is 0 or the numerator has no rows"
			}
			fmt.Fprintf(&b, "- **Computation:** %snumerator ÷ denominator over the same window and group; %s\n", scale, none)
			fmt.Fprintf(&b, "  - numerator: %s\n  - denominator: %s\n", measureWords(k.Numerator), measureWords(k.Denominator))
		case TypeDerived:
			fmt.Fprintf(&b, "- **Computation:** `%s` over the totals of those KPIs; no value when an input has none or the result is not finite\n", k.Expression)
		}
	}
	return b.String()
}

func fmtTarget(f *float64) string {
	if f == nil {
		return "—"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

func fmtDuration(d Duration) string {
	s := fmt.Sprint(time.Duration(d))
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

func windowWords(w Window) string {
	switch w.Kind {
	case Rolling:
		return "rolling " + w.String() + " ending at evaluation time"
	case CalendarMonth:
		return "calendar month to date"
	}
	return "lifetime (all data)"
}

func measureWords(m *Measure) string {
	var b strings.Builder
	switch m.Aggregate {
	case "count":
		b.WriteString("count of rows")
	case "count_distinct":
		fmt.Fprintf(&b, "distinct `%s`", m.Field)
	case "count_groups_with_min_distinct":
		fmt.Fprintf(&b, "number of `%s` with at least %d distinct `%s`", m.GroupBy, m.Min, m.Field)
	case "age_seconds":
		fmt.Fprintf(&b, "seconds since the newest `%s`", m.Field)
	default:
		fmt.Fprintf(&b, "%s of `%s`", m.Aggregate, m.Field)
	}
	fmt.Fprintf(&b, " in `%s` (%s)", m.Source, Sources[m.Source].Doc)
	if len(m.Where) > 0 {
		var conds []string
		for _, n := range SortedKeys(m.Where) {
			c := m.Where[n]
			if c.Op == "between" {
				conds = append(conds, fmt.Sprintf("%s ≤ `%s` < %s", c.Values[0], n, c.Values[1]))
				continue
			}
			conds = append(conds, fmt.Sprintf("`%s` %s %s", n, opWords[c.Op], strings.Join(c.Values, ", ")))
		}
		b.WriteString(" where " + strings.Join(conds, " and "))
	}
	switch m.TimeField {
	case NoTimeField:
		b.WriteString("; the window does not restrict it")
	default:
		fmt.Fprintf(&b, "; placed in the window by `%s`", m.TimeField)
	}
	for _, d := range SortedKeys(m.Dimensions) {
		fmt.Fprintf(&b, "; dimension %s is `%s`", d, m.Dimensions[d])
	}
	return b.String()
}

var opWords = map[string]string{"eq": "=", "ne": "≠", "in": "in", "not_in": "not in", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
