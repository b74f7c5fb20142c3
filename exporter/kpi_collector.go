// Package exporter owns kpibridge's Prometheus side: collectors that turn the
// latest KPI snapshot into metric families with a kpi label, the HTTP server
// (exporter-toolkit: TLS and basic auth), health and readiness endpoints, and
// the landing page that lists every KPI. A scrape never runs SQL.
package exporter

import (
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/transform"
)

// SnapshotSource gives the latest KPI snapshot: the transform scheduler in
// the same process, or a poller of kpi_values when export runs alone.
type SnapshotSource interface {
	Snapshot() *transform.Snapshot
}

// KPICollector exposes the KPI families from the latest snapshot. Families
// share the labels kpi, team and one label per dimension used anywhere in the
// catalog (empty on the total and on other dimensions' series), so that
// dashboards and alert rules can be generated from the catalog.
type KPICollector struct {
	src       SnapshotSource
	dims      []string // dimension label names, sorted
	staleness int      // refresh intervals after which a value is stale
	now       func() time.Time

	value, target, warning, numerator, denominator *prometheus.Desc
	lastSuccess, duration, errors, dropped, age    *prometheus.Desc
	stale, info                                    *prometheus.Desc
}

// NewKPICollector builds the collector for a catalog. A KPI whose last
// success is older than staleAfter refresh intervals loses its value series
// (the age stays visible).
func NewKPICollector(cat *catalog.Catalog, src SnapshotSource, staleAfter int) *KPICollector {
	seen := map[string]bool{}
	var dims []string
	for _, k := range cat.KPIs {
		for _, d := range k.Dimensions {
			if !seen[d] {
				seen[d] = true
				dims = append(dims, d)
			}
		}
	}
	sort.Strings(dims)
	series := append([]string{"kpi", "team"}, dims...)
	base := []string{"kpi", "team"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc("kpibridge_kpi_"+name, help, labels, nil)
	}
	return &KPICollector{
		src: src, dims: dims, staleness: staleAfter, now: time.Now,
		value:       d("value", "Latest value of a KPI, in its unit (see kpibridge_kpi_info); absent when there is no value or it is stale.", series),
		numerator:   d("numerator", "Numerator of a ratio KPI; sum(numerator) / sum(denominator) re-aggregates correctly.", series),
		denominator: d("denominator", "Denominator of a ratio KPI; a group whose denominator is 0 has no series.", series),
		target:      d("target", "Agreed target of a KPI, in its unit.", base),
		warning:     d("warning", "Warning threshold of a KPI, on the bad side of the target.", base),
		lastSuccess: d("last_success_timestamp_seconds", "When a KPI was last computed successfully (Unix time).", base),
		duration:    d("evaluation_duration_seconds", "How long the last evaluation of a KPI took.", base),
		errors:      d("evaluation_errors_total", "Failed evaluations of a KPI since the process started.", base),
		dropped:     d("series_dropped_total", "Series a KPI produced beyond its max_series cap, not exported.", base),
		age:         d("age_seconds", "Seconds since a KPI's last successful computation.", base),
		stale:       d("stale", "1 when a KPI's last success is older than its refresh interval times the staleness factor.", base),
		info: d("info", "Catalog facts of a KPI; value is always 1.",
			[]string{"kpi", "team", "title", "unit", "direction", "window", "type", "audience", "contact"}),
	}
}

// Describe sends every descriptor.
func (c *KPICollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.value, c.target, c.warning, c.numerator, c.denominator, c.lastSuccess,
		c.duration, c.errors, c.dropped, c.age, c.stale, c.info} {
		ch <- d
	}
}

// Collect emits the snapshot; it never touches ClickHouse.
func (c *KPICollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.src.Snapshot()
	if snap == nil {
		return
	}
	now := c.now()
	stale := c.staleSet(snap, now)
	c.collectStatic(ch, snap, stale)
	c.collectDynamic(ch, snap, now, stale)
}

// staleSet says, per KPI of the snapshot, whether its last success is too old to export.
func (c *KPICollector) staleSet(snap *transform.Snapshot, now time.Time) []bool {
	out := make([]bool, len(snap.KPIs))
	for i, st := range snap.KPIs {
		if !st.LastSuccess.ComputedAt.IsZero() {
			out[i] = now.Sub(st.LastSuccess.ComputedAt) > time.Duration(c.staleness)*time.Duration(st.KPI.Refresh)
		}
	}
	return out
}

// collectStatic emits what changes only with the snapshot (and staleness).
func (c *KPICollector) collectStatic(ch chan<- prometheus.Metric, snap *transform.Snapshot, stale []bool) {
	for i, st := range snap.KPIs {
		k := st.KPI
		base := []string{k.Name, k.Owner.Team}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, k.Name, k.Owner.Team, k.Title, string(k.Unit),
			string(k.Direction), k.Window.String(), string(k.Type), strings.Join(k.Audience, ","), k.Owner.Contact)
		if k.Target != nil {
			ch <- prometheus.MustNewConstMetric(c.target, prometheus.GaugeValue, *k.Target, base...)
		}
		if k.Warning != nil {
			ch <- prometheus.MustNewConstMetric(c.warning, prometheus.GaugeValue, *k.Warning, base...)
		}
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors), base...)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.DroppedTotal), base...)
		if !st.Last.ComputedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, st.Last.Duration.Seconds(), base...)
		}
		if st.LastSuccess.ComputedAt.IsZero() {
			continue // never succeeded: no value, no age
		}
		ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, float64(st.LastSuccess.ComputedAt.Unix()), base...)
		ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, b2f(stale[i]), base...)
		if stale[i] {
			continue // not exported as if fresh
		}
		for _, s := range st.LastSuccess.Series {
			labels := c.labels(k, s)
			ch <- prometheus.MustNewConstMetric(c.value, prometheus.GaugeValue, s.Result, labels...)
			if s.HasParts {
				ch <- prometheus.MustNewConstMetric(c.numerator, prometheus.GaugeValue, s.Numerator, labels...)
				ch <- prometheus.MustNewConstMetric(c.denominator, prometheus.GaugeValue, s.Denominator, labels...)
			}
		}
	}
}

// collectDynamic emits what changes with the clock: the age of each KPI.
func (c *KPICollector) collectDynamic(ch chan<- prometheus.Metric, snap *transform.Snapshot, now time.Time, _ []bool) {
	for _, st := range snap.KPIs {
		if st.LastSuccess.ComputedAt.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(st.LastSuccess.ComputedAt).Seconds(), st.KPI.Name, st.KPI.Owner.Team)
	}
}

func (c *KPICollector) labels(k catalog.KPI, s transform.Series) []string {
	out := make([]string, 0, 2+len(c.dims))
	out = append(out, k.Name, k.Owner.Team)
	for _, d := range c.dims {
		if d == s.Dimension {
			out = append(out, s.Value)
		} else {
			out = append(out, "")
		}
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
