package exporter

import (
	"fmt"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kpibridge/kpibridge/transform"
)

// CachedGatherer serves the KPI families of a collector, building the
// families that depend only on the snapshot once per snapshot (and staleness
// change), so a scrape costs the encoding and little else however many
// series there are. Only the age of each KPI is built on every scrape.
type CachedGatherer struct {
	c *KPICollector

	mu       sync.Mutex
	snap     *transform.Snapshot
	staleKey string
	static   []*dto.MetricFamily
}

// NewCachedGatherer wraps c.
func NewCachedGatherer(c *KPICollector) *CachedGatherer { return &CachedGatherer{c: c} }

type collectFunc func(chan<- prometheus.Metric)

func (f collectFunc) Describe(chan<- *prometheus.Desc)    {} // unchecked: families vary with the catalog
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func gather(f collectFunc) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(f); err != nil {
		return nil, err
	}
	return reg.Gather()
}

// Gather returns the KPI families.
func (g *CachedGatherer) Gather() ([]*dto.MetricFamily, error) {
	snap := g.c.src.Snapshot()
	if snap == nil {
		return nil, nil
	}
	now := g.c.now()
	stale := g.c.staleSet(snap, now)
	key := fmt.Sprint(stale)
	g.mu.Lock()
	if snap != g.snap || key != g.staleKey {
		static, err := gather(func(ch chan<- prometheus.Metric) { g.c.collectStatic(ch, snap, stale) })
		if err != nil {
			g.mu.Unlock()
			return nil, err
		}
		g.snap, g.staleKey, g.static = snap, key, static
	}
	static := g.static
	g.mu.Unlock()
	dynamic, err := gather(func(ch chan<- prometheus.Metric) { g.c.collectDynamic(ch, snap, now, stale) })
	if err != nil {
		return nil, err
	}
	all := append(append([]*dto.MetricFamily(nil), static...), dynamic...)
	sort.Slice(all, func(i, j int) bool { return all[i].GetName() < all[j].GetName() })
	return all, nil
}

// Join returns a Gatherer of gatherers whose family names do not overlap,
// without re-checking every metric as prometheus.Gatherers does.
func Join(gs ...prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var all []*dto.MetricFamily
		for _, g := range gs {
			mfs, err := g.Gather()
			if err != nil {
				return nil, err
			}
			all = append(all, mfs...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i].GetName() < all[j].GetName() })
		return all, nil
	})
}
