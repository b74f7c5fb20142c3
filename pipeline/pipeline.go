// Package pipeline runs kpibridge's roles — ingest, transform, export — in one
// process, each owned by Run, which waits for all of them and stops the rest
// when one fails.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/exporter"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/leader"
	"github.com/kpibridge/kpibridge/scorecard"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// Roles lists every role, in start order.
var Roles = []string{"ingest", "transform", "export"}

// available are the roles this build can run.
var available = []string{"ingest", "transform", "export"}

// ParseRoles turns "ingest,export" into a role list; empty means every available role.
func ParseRoles(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(available), nil
	}
	var out []string
	for _, r := range config.SplitList(s) {
		if !slices.Contains(Roles, r) {
			return nil, fmt.Errorf("--role: unknown role %q (roles: %s)", r, strings.Join(Roles, ", "))
		}
		if !slices.Contains(available, r) {
			return nil, fmt.Errorf("--role: role %q is not built yet (available: %s)", r, strings.Join(available, ", "))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Options are what Run needs besides the configuration.
type Options struct {
	Roles   []string
	Logger  *slog.Logger
	Getenv  func(string) string
	Version string
	// Web is where /metrics and the landing page are served
	// (exporter-toolkit flags); nil serves nothing.
	Web *web.FlagConfig
}

// process is what the roles of one process share.
type process struct {
	cfg       config.Config
	opts      Options
	reg       *prometheus.Registry
	scheduler *transform.Scheduler // set when transform runs here
	elector   *leader.Elector      // set when transform runs here and elects its active process
	catalog   *catalog.Catalog
	snapshots exporter.SnapshotSource
	kpis      prometheus.Gatherer // the KPI families, when export runs here
	conns     []store.Conn
	kafka     *kafkaconn.Security             // how the ingest role (and the transform election) connects to Kafka
	ingester  atomic.Pointer[ingest.Ingester] // the ingest role's, once it consumes
	scorecard atomic.Pointer[[]byte]          // the /scorecard page as last built (export role)
}

// Run runs the roles, and the HTTP server for their metrics, until ctx ends
// or one of them fails.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &process{cfg: cfg, opts: opts, reg: prometheus.NewRegistry()}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("kpibridge"))
	defer func() {
		for _, c := range p.conns {
			c.Close()
		}
	}()
	type task struct {
		name string
		run  func(context.Context) error
	}
	var tasks []task
	// Transform before export, so export serves the scheduler's snapshot in process.
	for _, role := range Roles {
		if !slices.Contains(opts.Roles, role) {
			continue
		}
		run, err := p.build(ctx, role)
		if err != nil {
			return fmt.Errorf("start %s: %w", role, err)
		}
		tasks = append(tasks, task{role, run})
	}
	if opts.Web != nil {
		tasks = append(tasks, task{"web", p.serve}, task{"readiness", p.watchReadiness})
		if p.snapshots != nil {
			tasks = append(tasks, task{"scorecard", p.buildScorecard})
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(tasks))
	for i, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.run(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", t.name, err)
				cancel(errs[i])
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *process) build(ctx context.Context, role string) (func(context.Context) error, error) {
	switch role {
	case "ingest":
		return buildIngest(ctx, p)
	case "transform":
		return buildTransform(ctx, p)
	case "export":
		return buildExport(ctx, p)
	}
	return nil, fmt.Errorf("role %q is not built yet", role)
}

// serve runs the HTTP server: /metrics with every role's metrics, the landing page, health.
func (p *process) serve(ctx context.Context) error {
	log := p.opts.Logger.With("role", "web")
	h := exporter.NewHandler(exporter.HandlerOptions{
		Gatherer: p.gatherer(), Catalog: p.catalog, Snapshots: p.snapshots, Ready: p.ready, Roles: p.opts.Roles,
		Version: p.opts.Version, Staleness: p.cfg.Export.StaleAfterRefreshes, DocsURL: p.cfg.Export.DocsURL, Logger: log,
		Scorecard: p.scorecardOption(),
		Currency:  p.cfg.Events.ReportingCurrency,
		Status:    p.transformStatus(),
	})
	return exporter.Serve(ctx, h, p.opts.Web, log)
}

// gatherer joins the process's metrics and, with the export role, the KPI families.
func (p *process) gatherer() prometheus.Gatherer {
	if p.kpis == nil {
		return p.reg
	}
	return exporter.Join(p.reg, p.kpis)
}

// buildScorecard keeps the /scorecard page current: the week to now, from
// the stored KPI history, rebuilt every export.scorecard_interval.
func (p *process) buildScorecard(ctx context.Context) error {
	log := p.opts.Logger.With("role", "export")
	baselines := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kpibridge_kpi_baseline",
		Help: "The KPI's baseline, where progress to its target is measured from (kpis baseline set, or the catalog's baseline)."}, []string{"kpi", "team"})
	if err := p.reg.Register(baselines); err != nil {
		return err
	}
	// The export role's connection (its own, or the transform's in this
	// process): the same database, a pool safe to share.
	conn := p.conns[0]
	t := time.NewTicker(p.cfg.Export.ScorecardInterval)
	defer t.Stop()
	for {
		r, err := scorecard.Build(ctx, conn, p.catalog, scorecard.Options{At: time.Now(), Period: scorecard.Week, Currency: p.cfg.Events.ReportingCurrency, Staleness: p.cfg.Export.StaleAfterRefreshes})
		var page bytes.Buffer
		if err == nil {
			err = scorecard.Render(&page, r)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			log.Warn("could not rebuild the scorecard; serving the last one", "err", err)
		default:
			b := page.Bytes()
			p.scorecard.Store(&b)
			baselines.Reset()
			for _, g := range r.Goals {
				for _, row := range g.Rows {
					if row.BaselineValue != nil {
						baselines.WithLabelValues(row.KPI.Name, row.KPI.Owner.Team).Set(*row.BaselineValue)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scorecardOption serves /scorecard when the export role runs here.
func (p *process) scorecardOption() func() ([]byte, bool) {
	if p.snapshots == nil {
		return nil
	}
	return p.scorecardPage
}

// scorecardPage is the last built /scorecard page.
func (p *process) scorecardPage() ([]byte, bool) {
	b := p.scorecard.Load()
	if b == nil {
		return nil, false
	}
	return *b, true
}

// watchReadiness keeps kpibridge_ready and kpibridge_dependency_up current
// (every 10 s), so alerts see what /-/ready answers without a scrape
// running a check.
func (p *process) watchReadiness(ctx context.Context) error {
	ready := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kpibridge_ready",
		Help: "1 when this process is ready (what /-/ready answers 200 for), 0 otherwise; checked every 10 s."})
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kpibridge_dependency_up",
		Help: "1 when a dependency of this process's roles answers (clickhouse, kafka), 0 otherwise; checked every 10 s."}, []string{"dependency"})
	if err := p.reg.Register(ready); err != nil {
		return err
	}
	if err := p.reg.Register(up); err != nil {
		return err
	}
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		check, cancel := context.WithTimeout(ctx, 5*time.Second)
		results := p.check(check)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		ok := 1.0
		for _, r := range results {
			v := 1.0
			if r.err != nil {
				v, ok = 0, 0
			}
			if r.dependency {
				up.WithLabelValues(r.name).Set(v)
			}
		}
		ready.Set(ok)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// checkResult is one readiness condition and whether it holds.
type checkResult struct {
	name       string
	dependency bool // a service the process needs (a kpibridge_dependency_up series)
	err        error
}

// check tests what readiness needs: ClickHouse answers; with the ingest
// role, a Kafka broker answers; with the export role, a KPI was computed.
func (p *process) check(ctx context.Context) []checkResult {
	var out []checkResult
	if len(p.conns) > 0 {
		var err error
		for _, c := range p.conns {
			if err = c.Ping(ctx); err != nil {
				err = fmt.Errorf("ClickHouse does not answer: %w", err)
				break
			}
		}
		out = append(out, checkResult{"clickhouse", true, err})
	}
	if p.elector != nil {
		out = append(out, checkResult{"transform_election", false, p.elector.Err()})
	}
	if slices.Contains(p.opts.Roles, "ingest") || p.elector != nil {
		out = append(out, checkResult{"kafka", true, p.checkKafka(ctx)})
	}
	if slices.Contains(p.opts.Roles, "ingest") {
		if in := p.ingester.Load(); in != nil {
			out = append(out, checkResult{"ingest", false, in.Health()})
		}
	}
	if p.snapshots != nil {
		var err error
		snap := p.snapshots.Snapshot()
		switch {
		case snap == nil:
			err = errors.New("no KPI snapshot yet")
		case !slices.ContainsFunc(snap.KPIs, func(st transform.KPIState) bool { return !st.Last.ComputedAt.IsZero() }):
			err = errors.New("no KPI computed yet")
		}
		out = append(out, checkResult{"kpi_snapshot", false, err})
	}
	return out
}

// checkKafka connects to the configured brokers, as the ingest role does
// (TLS, SASL), until one accepts.
func (p *process) checkKafka(ctx context.Context) error {
	err := p.kafka.Check(ctx, p.cfg.Kafka.Brokers)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kafkaconn.ErrRefused):
		return fmt.Errorf("Kafka refuses kpibridge's connection (%s): %w", strings.Join(p.cfg.Kafka.Brokers, ", "), err)
	}
	return fmt.Errorf("no Kafka broker answers (%s): %w", strings.Join(p.cfg.Kafka.Brokers, ", "), err)
}

// waitForKafka returns true once a broker accepts the ingest role's
// connection (TLS handshake, SASL authentication), false if ctx ends first.
// While Kafka is refused or unreachable it says why in one line, and again
// only when the reason changes: the consumer, the lag poller and the DLQ
// producer start after it, so they do not each retry and log the same
// wrong password or certificate.
func waitForKafka(ctx context.Context, sec *kafkaconn.Security, brokers []string, log *slog.Logger) bool {
	last := ""
	for delay := time.Second; ; delay = min(2*delay, 5*time.Second) {
		check, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := sec.Check(check, brokers)
		cancel()
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil:
			if last != "" {
				log.Info("Kafka accepts the connection now; ingest starts", "brokers", strings.Join(brokers, ","))
			}
			return true
		case err.Error() != last:
			last = err.Error()
			level := slog.LevelWarn
			if errors.Is(err, kafkaconn.ErrRefused) {
				level = slog.LevelError // a setting to fix, not an outage to wait out
			}
			log.Log(ctx, level, "cannot connect to Kafka; ingest waits and retries every few seconds", "brokers", strings.Join(brokers, ","), "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

// ready: every check holds; the error names the first that does not.
func (p *process) ready(ctx context.Context) error {
	for _, r := range p.check(ctx) {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// Decoder builds the event decoder from the configuration.
func Decoder(cfg config.Config, getenv func(string) string, logger *slog.Logger) (*events.Decoder, error) {
	key, dev, err := cfg.EmailHashKey(getenv)
	if err != nil {
		return nil, err
	}
	if dev {
		logger.Warn("using the public development key for email hashing; set KPIBRIDGE_EMAIL_HASH_KEY or events.email_hash_key_file before ingesting real customer data")
	}
	return events.NewDecoder(events.Config{
		EmailHashKey:      key,
		ReportingCurrency: cfg.Events.ReportingCurrency,
		Rates:             cfg.Events.CurrencyRates,
		MaxFutureSkew:     cfg.Events.MaxFutureSkew,
	})
}

func buildIngest(ctx context.Context, p *process) (func(context.Context) error, error) {
	cfg := p.cfg
	log := p.opts.Logger.With("role", "ingest")
	dec, err := Decoder(cfg, p.opts.Getenv, log)
	if err != nil {
		return nil, err
	}
	if err := cfg.Ingest.Validate(); err != nil {
		return nil, err
	}
	sec, err := cfg.KafkaSecurity(p.opts.Getenv)
	if err != nil {
		return nil, err
	}
	conn, target, err := openStore(ctx, cfg, p.opts.Getenv)
	if err != nil {
		return nil, err
	}
	p.kafka = sec
	var dlq *ingest.KafkaDLQ
	var pub ingest.Publisher
	if !cfg.Ingest.DLQ.Disabled {
		dlq = ingest.NewKafkaDLQ(cfg.Kafka.Brokers, cfg.Ingest.DLQ, sec)
		pub = dlq
	}
	metrics := ingest.NewMetrics(p.reg, cfg.Kafka.Topics)
	lag := ingest.NewLagMonitor(cfg.Kafka.Brokers, sec, cfg.Ingest.GroupID, cfg.Kafka.Topics, ingest.LagInterval, metrics, log)
	w := ingest.NewClickHouseWriter(conn, cfg.Ingest.DLQ.MaxPayloadBytes)
	log.Info("ingest starting", append([]any{"brokers", strings.Join(cfg.Kafka.Brokers, ","), "topics", strings.Join(cfg.Kafka.Topics, ","),
		"group", cfg.Ingest.GroupID, "clickhouse", target.Redacted(), "batch_max_rows", cfg.Ingest.Batch.MaxRows,
		"batch_max_wait", cfg.Ingest.Batch.MaxWait}, sec.Describe()...)...)
	p.conns = append(p.conns, conn)
	return func(ctx context.Context) error {
		if dlq != nil {
			defer dlq.Close()
		}
		if !waitForKafka(ctx, sec, cfg.Kafka.Brokers, log) {
			return nil // stopped before Kafka accepted: nothing consumed, nothing to drain
		}
		if dlq != nil {
			// A broker with topic auto-creation off would refuse every dead letter.
			created, err := dlq.EnsureTopics(ctx, cfg.Kafka.Topics)
			if len(created) > 0 {
				log.Info("created dead-letter topics", "topics", strings.Join(created, ","))
			}
			if err != nil {
				log.Warn("cannot make sure the dead-letter topics exist; dead letters may only reach ClickHouse dead_letters", "err", err)
			}
		}
		src, err := ingest.NewKafkaSource(ingest.SourceConfig{Brokers: cfg.Kafka.Brokers, Topics: cfg.Kafka.Topics, GroupID: cfg.Ingest.GroupID,
			SessionTimeout: cfg.Ingest.SessionTimeout, Security: sec, Logger: log, Metrics: metrics})
		if err != nil {
			return err
		}
		in, err := ingest.New(cfg.Ingest, src, w, pub, dec, metrics, log)
		if err != nil {
			src.Close()
			return err
		}
		p.ingester.Store(in)
		lagCtx, stopLag := context.WithCancel(ctx)
		lagDone := make(chan struct{})
		go func() {
			defer close(lagDone)
			lag.Run(lagCtx)
		}()
		defer func() { stopLag(); <-lagDone }()
		return in.Run(ctx)
	}, nil
}

// openStore connects to ClickHouse and checks the schema is current.
func openStore(ctx context.Context, cfg config.Config, getenv func(string) string) (store.Conn, store.Target, error) {
	target, err := cfg.ClickHouseTarget(getenv)
	if err != nil {
		return nil, target, err
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		return nil, target, err
	}
	if err := store.CheckSchema(ctx, conn, target); err != nil {
		conn.Close()
		return nil, target, err
	}
	return conn, target, nil
}

func buildTransform(ctx context.Context, p *process) (func(context.Context) error, error) {
	cfg := p.cfg
	log := p.opts.Logger.With("role", "transform")
	cat, err := transform.LoadCatalog(cfg.Transform)
	if err != nil {
		return nil, err
	}
	conn, target, err := openStore(ctx, cfg, p.opts.Getenv)
	if err != nil {
		return nil, err
	}
	s, err := transform.NewScheduler(cfg.Transform, cat, conn, log)
	if err != nil {
		conn.Close()
		return nil, err
	}
	var el *leader.Elector
	if cfg.Transform.Leader.Election == leader.Kafka {
		sec, err := cfg.KafkaSecurity(p.opts.Getenv)
		if err == nil {
			el, err = leader.New(cfg.Transform.Leader, cfg.Kafka.Brokers, sec, log)
		}
		if err != nil {
			conn.Close()
			return nil, err
		}
		s.SetFence(el.Check)
		p.kafka = sec
	}
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kpibridge_transform_active",
		Help: "1 while this process holds the transform role (runs the identity resolver and the KPI scheduler), 0 while it stands by."},
		func() float64 {
			if el == nil || el.Active() {
				return 1
			}
			return 0
		})
	if err := p.reg.Register(active); err != nil {
		conn.Close()
		return nil, err
	}
	election := []any{"leader_election", cfg.Transform.Leader.Election}
	if el != nil {
		election = append(election, "leader_group", cfg.Transform.Leader.GroupID, "leader_topic", cfg.Transform.Leader.Topic,
			"session_timeout", cfg.Transform.Leader.SessionTimeout, "brokers", strings.Join(cfg.Kafka.Brokers, ","))
	}
	log.Info("transform starting", append([]any{"kpis", len(cat.KPIs), "catalog", catalogName(cfg.Transform), "clickhouse", target.Redacted()}, election...)...)
	p.conns = append(p.conns, conn)
	p.scheduler, p.catalog, p.elector = s, cat, el
	run := func(ctx context.Context) error {
		// Retention runs beside the scheduler and stops with it.
		ctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			transform.RunRetention(ctx, conn, target, cfg.Retention, cat, log)
		}()
		defer func() { stop(); <-done }()
		return s.Run(ctx)
	}
	if el == nil {
		return run, nil
	}
	return func(ctx context.Context) error { return el.Run(ctx, run) }, nil
}

// transformStatus says, for /-/ready, whether this process holds the transform role.
func (p *process) transformStatus() func() string {
	switch {
	case p.elector != nil:
		return p.elector.Status
	case p.scheduler != nil:
		return func() string { return "transform active: leader election off (transform.leader.election: none)" }
	}
	return nil
}

// roleSnapshots is export's snapshot source in a process that may hold
// the transform role or stand by: the scheduler's while it is active and
// has computed, else the latest stored values, polled like an export-only
// process does.
type roleSnapshots struct {
	active    func() bool
	scheduler *transform.Scheduler
	poller    *exporter.Poller
}

func (r roleSnapshots) Snapshot() *transform.Snapshot {
	if r.active() {
		snap := r.scheduler.Snapshot()
		if slices.ContainsFunc(snap.KPIs, func(st transform.KPIState) bool { return !st.Last.ComputedAt.IsZero() }) {
			return snap
		}
	}
	if snap := r.poller.Snapshot(); snap != nil {
		return snap
	}
	return r.scheduler.Snapshot()
}

func catalogName(c transform.Config) string {
	if c.CatalogFile == "" {
		return "embedded default"
	}
	return c.CatalogFile
}

func buildExport(ctx context.Context, p *process) (func(context.Context) error, error) {
	cfg := p.cfg
	log := p.opts.Logger.With("role", "export")
	if p.opts.Web == nil {
		return nil, errors.New("the export role needs a listen address (--web.listen-address)")
	}
	if p.elector != nil {
		// On standby this process's scheduler computes nothing: serve what
		// the active one stores, as an export-only process does.
		poller := exporter.NewPoller(p.catalog, p.conns[0], cfg.Export.PollInterval, log)
		p.snapshots = roleSnapshots{active: p.elector.Active, scheduler: p.scheduler, poller: poller}
		p.kpis = exporter.NewCachedGatherer(exporter.NewKPICollector(p.catalog, p.snapshots, cfg.Export.StaleAfterRefreshes))
		log.Info("export starting: serving the transform role's snapshots while this process holds it, else the latest KPI values from ClickHouse",
			"kpis", len(p.catalog.KPIs), "poll_interval", cfg.Export.PollInterval)
		return poller.Run, nil
	}
	if p.scheduler != nil {
		p.snapshots = p.scheduler
		p.kpis = exporter.NewCachedGatherer(exporter.NewKPICollector(p.catalog, p.scheduler, cfg.Export.StaleAfterRefreshes))
		log.Info("export starting: serving the transform role's snapshots", "kpis", len(p.catalog.KPIs))
		return func(ctx context.Context) error { <-ctx.Done(); return nil }, nil
	}
	cat, err := transform.LoadCatalog(cfg.Transform)
	if err != nil {
		return nil, err
	}
	conn, target, err := openStore(ctx, cfg, p.opts.Getenv)
	if err != nil {
		return nil, err
	}
	p.conns = append(p.conns, conn)
	poller := exporter.NewPoller(cat, conn, cfg.Export.PollInterval, log)
	p.catalog, p.snapshots = cat, poller
	p.kpis = exporter.NewCachedGatherer(exporter.NewKPICollector(cat, poller, cfg.Export.StaleAfterRefreshes))
	log.Info("export starting: reading the latest KPI values from ClickHouse", "clickhouse", target.Redacted(), "poll_interval", cfg.Export.PollInterval)
	return poller.Run, nil
}
