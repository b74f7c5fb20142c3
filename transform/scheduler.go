package transform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/store"
)

// Config configures the transform role.
type Config struct {
	// CatalogFile is the KPI catalog; empty uses the embedded default.
	CatalogFile string `yaml:"catalog_file"`
	// IdentityInterval is how often the identity graph and customers are updated.
	IdentityInterval time.Duration `yaml:"identity_interval"`
	// Concurrency is how many KPIs are evaluated at once.
	Concurrency int `yaml:"concurrency"`
	// MaxRefresh, when set, caps every KPI's refresh interval (and its
	// timeout): the demo uses it to show a live stream within seconds
	// rather than at the catalog's pace.
	MaxRefresh time.Duration `yaml:"max_refresh"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{IdentityInterval: time.Minute, Concurrency: 2}
}

// Validate names the first wrong field.
func (c Config) Validate() error {
	var errs []error
	if c.IdentityInterval < time.Second {
		errs = append(errs, fmt.Errorf("transform.identity_interval: must be >= 1s, got %s", c.IdentityInterval))
	}
	if c.Concurrency < 1 || c.Concurrency > 32 {
		errs = append(errs, fmt.Errorf("transform.concurrency: must be between 1 and 32, got %d", c.Concurrency))
	}
	if c.MaxRefresh != 0 && c.MaxRefresh < 10*time.Second {
		errs = append(errs, fmt.Errorf("transform.max_refresh: must be 0 (off) or at least 10s, got %s", c.MaxRefresh))
	}
	return errors.Join(errs...)
}

// KPIState is what the scheduler knows about one KPI: the latest result and
// when it last succeeded. The exporter serves it.
type KPIState struct {
	KPI          catalog.KPI
	Last         Result // latest evaluation, successful or not
	LastSuccess  Result // latest successful evaluation (zero before the first)
	Errors       int    // failed evaluations since start
	DroppedTotal int    // series dropped by max_series since start
}

// Snapshot is an immutable view of every KPI's state.
type Snapshot struct {
	Taken time.Time
	KPIs  []KPIState // catalog order
}

// Scheduler evaluates every KPI on its refresh interval, stores results in
// kpi_values and kpi_runs, keeps the latest snapshot in memory, and updates
// the identity graph first so KPIs see current customers.
type Scheduler struct {
	cfg      Config
	cat      *catalog.Catalog
	conn     store.Conn
	resolver *identity.Resolver
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	states   map[string]*KPIState
	next     map[string]time.Time
	snapshot atomic.Pointer[Snapshot]
}

// NewScheduler wires a scheduler.
func NewScheduler(cfg Config, cat *catalog.Catalog, conn store.Conn, logger *slog.Logger) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	resolver := identity.NewResolver(conn, logger)
	resolver.Settings = cat.Settings
	s := &Scheduler{cfg: cfg, cat: cat, conn: conn, resolver: resolver, log: logger, now: time.Now,
		states: map[string]*KPIState{}, next: map[string]time.Time{}}
	for _, k := range cat.KPIs {
		s.states[k.Name] = &KPIState{KPI: k}
	}
	s.publish()
	return s, nil
}

// Snapshot returns the latest snapshot; never nil.
func (s *Scheduler) Snapshot() *Snapshot { return s.snapshot.Load() }

func (s *Scheduler) publish() {
	snap := &Snapshot{Taken: s.now().UTC()}
	for _, k := range s.cat.KPIs {
		snap.KPIs = append(snap.KPIs, *s.states[k.Name])
	}
	s.snapshot.Store(snap)
}

// Run evaluates until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	var lastIdentity time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := s.now()
		if now.Sub(lastIdentity) >= s.cfg.IdentityInterval {
			start := time.Now()
			if _, err := s.resolver.Update(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Error("identity update failed; KPIs use the previous customer view, retrying next interval", "err", err)
			} else {
				s.log.Debug("identity updated", "took", time.Since(start))
			}
			lastIdentity = now
		}
		s.RunDue(ctx, now)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// RunDue evaluates the KPIs whose refresh is due at now (all of them the first time).
func (s *Scheduler) RunDue(ctx context.Context, now time.Time) {
	var due []catalog.KPI
	for _, k := range s.cat.Order() {
		if !now.Before(s.next[k.Name]) {
			due = append(due, k)
			s.next[k.Name] = now.Add(time.Duration(k.Refresh))
		}
	}
	if len(due) == 0 {
		return
	}
	// Simple and ratio KPIs in parallel, then derived ones over their
	// results; KPIs of the round share the measures they have in common.
	cache := NewMeasureCache()
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, k := range due {
		if k.Type == catalog.TypeDerived {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.evaluate(ctx, k, now, cache)
		}()
	}
	wg.Wait()
	for _, k := range due {
		if k.Type == catalog.TypeDerived {
			s.evaluate(ctx, k, now, cache)
		}
	}
	s.publish()
}

func (s *Scheduler) evaluate(ctx context.Context, k catalog.KPI, now time.Time, cache *MeasureCache) {
	kctx, cancel := context.WithTimeout(ctx, time.Duration(k.Timeout))
	defer cancel()
	s.mu.Lock()
	prior := map[string]Result{}
	for name, st := range s.states {
		prior[name] = st.Last
	}
	s.mu.Unlock()
	res := EvaluateShared(kctx, s.conn, k, now, prior, cache)
	if res.Err == nil {
		if err := WriteResult(ctx, s.conn, res); err != nil {
			res.Err = fmt.Errorf("store result: %w", err)
		}
	} else if ctx.Err() == nil {
		if err := WriteResult(ctx, s.conn, res); err != nil {
			s.log.Warn("could not record failed KPI run", "kpi", k.Name, "err", err)
		}
	}
	s.mu.Lock()
	st := s.states[k.Name]
	st.Last = res
	if res.Err == nil {
		st.LastSuccess = res
	} else {
		st.Errors++
	}
	st.DroppedTotal += res.Dropped
	s.mu.Unlock()
	switch {
	case res.Err != nil && ctx.Err() == nil:
		s.log.Error("KPI evaluation failed; other KPIs go on, retry at next refresh", "kpi", k.Name, "owner", k.Owner.Team, "timeout", time.Duration(k.Timeout), "err", res.Err)
	case res.Dropped > 0:
		s.log.Warn("KPI produced more series than max_series; smallest groups dropped", "kpi", k.Name, "max_series", k.MaxSeries, "dropped", res.Dropped)
	default:
		s.log.Debug("KPI evaluated", "kpi", k.Name, "series", len(res.Series), "took", res.Duration)
	}
}

// WriteResult stores one evaluation: its series in kpi_values and the run in kpi_runs.
func WriteResult(ctx context.Context, conn store.Conn, r Result) error {
	return WriteResults(ctx, conn, []Result{r})
}

// WriteResults stores evaluations in one insert per table (a backfill
// writes a day of KPIs at once): the series of the successful ones in
// kpi_values, every run in kpi_runs.
func WriteResults(ctx context.Context, conn store.Conn, rs []Result) error {
	name := "KPI results"
	if len(rs) == 1 {
		name = rs[0].KPI
	}
	values, err := conn.PrepareBatch(ctx, "INSERT INTO kpi_values (kpi, dimension, dimension_value, value, numerator, denominator, window, window_start, window_end, computed_at)")
	if err != nil {
		return fmt.Errorf("write kpi_values for %s: %w", name, err)
	}
	rows := 0
	for _, r := range rs {
		if r.Err != nil {
			continue
		}
		for _, s := range r.Series {
			if err := values.Append(r.KPI, s.Dimension, s.Value, s.Result, s.Numerator, s.Denominator, r.Window, r.WindowStart, r.WindowEnd, r.ComputedAt); err != nil {
				_ = values.Abort()
				return fmt.Errorf("write kpi_values for %s: %w", r.KPI, err)
			}
			rows++
		}
	}
	if rows == 0 {
		_ = values.Abort()
	} else if err := values.Send(); err != nil {
		return fmt.Errorf("write kpi_values for %s: %w", name, err)
	}
	runs, err := conn.PrepareBatch(ctx, "INSERT INTO kpi_runs (kpi, computed_at, duration_ms, ok, error, series, dropped)")
	if err != nil {
		return fmt.Errorf("write kpi_runs for %s: %w", name, err)
	}
	for _, r := range rs {
		ok, msg := uint8(1), ""
		if r.Err != nil {
			ok, msg = 0, r.Err.Error()
		}
		if err := runs.Append(r.KPI, r.ComputedAt, uint32(r.Duration.Milliseconds()), ok, msg, uint32(len(r.Series)), uint32(r.Dropped)); err != nil {
			_ = runs.Abort()
			return fmt.Errorf("write kpi_runs for %s: %w", r.KPI, err)
		}
	}
	if err := runs.Send(); err != nil {
		return fmt.Errorf("write kpi_runs for %s: %w", name, err)
	}
	return nil
}

// LoadCatalog loads the configured catalog, or the embedded default.
func LoadCatalog(cfg Config) (*catalog.Catalog, error) {
	c, err := catalog.Default()
	if cfg.CatalogFile != "" {
		if c, err = catalog.Load(cfg.CatalogFile); err != nil {
			return nil, fmt.Errorf("transform.catalog_file: %w", err)
		}
	}
	if err != nil || cfg.MaxRefresh == 0 {
		return c, err
	}
	limit := catalog.Duration(cfg.MaxRefresh)
	for i := range c.KPIs {
		c.KPIs[i].Refresh = min(c.KPIs[i].Refresh, limit)
		c.KPIs[i].Timeout = min(c.KPIs[i].Timeout, c.KPIs[i].Refresh)
	}
	return c, nil
}
