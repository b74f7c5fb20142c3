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
	"github.com/kpibridge/kpibridge/leader"
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
	// Leader elects the one active process when several run the transform
	// role against one database.
	Leader leader.Config `yaml:"leader"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{IdentityInterval: time.Minute, Concurrency: 2, Leader: leader.Default()}
}

// Validate returns every wrong field, each named by its path.
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
	if err := c.Leader.Validate(); err != nil {
		errs = append(errs, err)
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
	fence    Fence // nil: this process is the only transform

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

// SetFence makes every write of the scheduler and its identity resolver
// ask fence first: a KPI round and each step of an identity update are
// written only while it says yes. Call it before Run.
func (s *Scheduler) SetFence(fence Fence) {
	s.fence = fence
	s.resolver.Fence = fence.Check
}

// roundWriteTimeout bounds a round's writes, which go on when ctx ends so
// that a round is stored whole or not at all.
const roundWriteTimeout = 30 * time.Second

// completeLookback is how far back Run, when it starts, looks for a round
// stored without its kpi_runs rows.
const completeLookback = 24 * time.Hour

// Run evaluates until ctx ends. With a fence (SetFence), it first
// completes a round the previously active process left half-stored, and
// returns as soon as the fence refuses a write, with an error wrapping
// ErrFenced.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.fence != nil {
		n, err := CompleteRounds(ctx, s.conn, s.now().Add(-completeLookback), s.fence)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrFenced):
			return err
		case err != nil:
			s.log.Warn("could not complete the KPI rounds a previous transform process stored without their runs; the exporter ignores them", "err", err)
		case n > 0:
			s.log.Info("completed the KPI runs of rounds a previous transform process stored but did not finish", "runs", n)
		}
	}
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
				if errors.Is(err, ErrFenced) {
					s.log.Warn("identity update stopped: this process no longer holds the transform role", "err", err)
					return err
				}
				s.log.Error("identity update failed; KPIs use the previous customer view, retrying next interval", "err", err)
			} else {
				s.log.Debug("identity updated", "took", time.Since(start))
			}
			lastIdentity = now
		}
		if err := s.RunDue(ctx, now); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// RunDue evaluates the KPIs whose refresh is due at now (all of them the
// first time) and stores them as one round (WriteRound). A round cut short
// by ctx, or refused by the fence, is not stored, and its KPIs are due
// again at once. It returns an
// error only when the fence refused the round's write (wrapping ErrFenced).
func (s *Scheduler) RunDue(ctx context.Context, now time.Time) error {
	var due []catalog.KPI
	for _, k := range s.cat.Order() {
		if !now.Before(s.next[k.Name]) {
			due = append(due, k)
			s.next[k.Name] = now.Add(time.Duration(k.Refresh))
		}
	}
	if len(due) == 0 {
		return nil
	}
	// Simple and ratio KPIs in parallel, then derived ones over their
	// results; KPIs of the round share the measures they have in common.
	cache := NewMeasureCache()
	s.mu.Lock()
	prior := map[string]Result{}
	for name, st := range s.states {
		prior[name] = st.Last
	}
	s.mu.Unlock()
	results := make([]Result, len(due))
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, k := range due {
		if k.Type == catalog.TypeDerived {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = s.evaluate(ctx, k, now, prior, cache)
		}()
	}
	wg.Wait()
	for i, k := range due {
		if k.Type != catalog.TypeDerived {
			prior[k.Name] = results[i]
		}
	}
	for i, k := range due {
		if k.Type == catalog.TypeDerived {
			results[i] = s.evaluate(ctx, k, now, prior, cache)
			prior[k.Name] = results[i]
		}
	}
	again := func() {
		for _, k := range due {
			s.next[k.Name] = time.Time{}
		}
	}
	if ctx.Err() != nil {
		again()
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), roundWriteTimeout)
	err := WriteRound(wctx, s.conn, results, s.fence)
	cancel()
	if errors.Is(err, ErrFenced) {
		again()
		s.log.Warn("KPI round not stored: this process no longer holds the transform role", "computed_at", now.UTC().Format(time.RFC3339), "err", err)
		return err
	}
	for i := range results {
		if err != nil && results[i].Err == nil {
			results[i].Err = fmt.Errorf("store result: %w", err)
		}
		s.record(ctx, due[i], results[i])
	}
	s.publish()
	return nil
}

// evaluate computes one KPI of a round; prior holds the latest result of
// every KPI it may reference.
func (s *Scheduler) evaluate(ctx context.Context, k catalog.KPI, now time.Time, prior map[string]Result, cache *MeasureCache) Result {
	kctx, cancel := context.WithTimeout(ctx, time.Duration(k.Timeout))
	defer cancel()
	return EvaluateShared(kctx, s.conn, k, now, prior, cache)
}

// record keeps a stored result in the KPI's state, and logs what went wrong.
func (s *Scheduler) record(ctx context.Context, k catalog.KPI, res Result) {
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
	if err := writeValues(ctx, conn, name, rs); err != nil {
		return err
	}
	return writeRuns(ctx, conn, name, rs)
}

// writeValues inserts the series of the successful results in kpi_values, in one insert.
func writeValues(ctx context.Context, conn store.Conn, name string, rs []Result) error {
	rows := 0
	for _, r := range rs {
		if r.Err == nil {
			rows += len(r.Series)
		}
	}
	if rows == 0 {
		return nil
	}
	values, err := conn.PrepareBatch(ctx, "INSERT INTO kpi_values (kpi, dimension, dimension_value, value, numerator, denominator, window, window_start, window_end, computed_at)")
	if err != nil {
		return fmt.Errorf("write kpi_values for %s: %w", name, err)
	}
	for _, r := range rs {
		if r.Err != nil {
			continue
		}
		for _, s := range r.Series {
			if err := values.Append(r.KPI, s.Dimension, s.Value, s.Result, s.Numerator, s.Denominator, r.Window, r.WindowStart, r.WindowEnd, r.ComputedAt); err != nil {
				_ = values.Abort()
				return fmt.Errorf("write kpi_values for %s: %w", r.KPI, err)
			}
		}
	}
	if err := values.Send(); err != nil {
		return fmt.Errorf("write kpi_values for %s: %w", name, err)
	}
	return nil
}

// writeRuns inserts one kpi_runs row per result, successful or not, in one insert.
func writeRuns(ctx context.Context, conn store.Conn, name string, rs []Result) error {
	if len(rs) == 0 {
		return nil
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
