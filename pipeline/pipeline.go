// Package pipeline runs kpibridge's roles — ingest, transform, export — in one
// process, each owned by Run, which waits for all of them and stops the rest
// when one fails.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// Roles lists every role, in start order.
var Roles = []string{"ingest", "transform", "export"}

// available are the roles this build can run.
var available = []string{"ingest", "transform"}

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
	Roles    []string
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Getenv   func(string) string
}

// Run runs the roles until ctx ends or one of them fails.
func Run(ctx context.Context, cfg config.Config, opts Options) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	errs := make([]error, len(opts.Roles))
	for i, role := range opts.Roles {
		runRole, err := build(ctx, role, cfg, opts)
		if err != nil {
			cancel(err)
			wg.Wait()
			return fmt.Errorf("start %s: %w", role, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runRole(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", role, err)
				cancel(errs[i])
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func build(ctx context.Context, role string, cfg config.Config, opts Options) (func(context.Context) error, error) {
	switch role {
	case "ingest":
		return buildIngest(ctx, cfg, opts)
	case "transform":
		return buildTransform(ctx, cfg, opts)
	}
	return nil, fmt.Errorf("role %q is not built yet", role)
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

func buildIngest(ctx context.Context, cfg config.Config, opts Options) (func(context.Context) error, error) {
	log := opts.Logger.With("role", "ingest")
	dec, err := Decoder(cfg, opts.Getenv, log)
	if err != nil {
		return nil, err
	}
	conn, target, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var dlq *ingest.KafkaDLQ
	var pub ingest.Publisher
	if !cfg.Ingest.DLQ.Disabled {
		dlq = ingest.NewKafkaDLQ(cfg.Kafka.Brokers, cfg.Ingest.DLQ.Suffix)
		pub = dlq
	}
	src := ingest.NewKafkaSource(cfg.Kafka.Brokers, cfg.Kafka.Topics, cfg.Ingest.GroupID, log)
	in, err := ingest.New(cfg.Ingest, src, ingest.NewClickHouseWriter(conn, cfg.Ingest.DLQ.MaxPayloadBytes), pub, dec,
		ingest.NewMetrics(opts.Registry, cfg.Kafka.Topics), log)
	if err != nil {
		src.Close()
		conn.Close()
		return nil, err
	}
	log.Info("ingest starting", "brokers", strings.Join(cfg.Kafka.Brokers, ","), "topics", strings.Join(cfg.Kafka.Topics, ","),
		"group", cfg.Ingest.GroupID, "clickhouse", target.Redacted(), "batch_max_rows", cfg.Ingest.Batch.MaxRows,
		"batch_max_wait", cfg.Ingest.Batch.MaxWait)
	return func(ctx context.Context) error {
		defer conn.Close()
		if dlq != nil {
			defer dlq.Close()
		}
		return in.Run(ctx)
	}, nil
}

// openStore connects to ClickHouse and checks the schema is current.
func openStore(ctx context.Context, cfg config.Config) (store.Conn, store.Target, error) {
	target, err := store.ParseDSN(cfg.ClickHouse.DSN)
	if err != nil {
		return nil, target, err
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		return nil, target, err
	}
	if err := store.CheckSchema(ctx, conn, target.Database); err != nil {
		conn.Close()
		return nil, target, err
	}
	return conn, target, nil
}

func buildTransform(ctx context.Context, cfg config.Config, opts Options) (func(context.Context) error, error) {
	log := opts.Logger.With("role", "transform")
	cat, err := transform.LoadCatalog(cfg.Transform)
	if err != nil {
		return nil, err
	}
	conn, target, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := transform.NewScheduler(cfg.Transform, cat, conn, log)
	if err != nil {
		conn.Close()
		return nil, err
	}
	log.Info("transform starting", "kpis", len(cat.KPIs), "catalog", catalogName(cfg.Transform), "clickhouse", target.Redacted())
	return func(ctx context.Context) error {
		defer conn.Close()
		return s.Run(ctx)
	}, nil
}

func catalogName(c transform.Config) string {
	if c.CatalogFile == "" {
		return "embedded default"
	}
	return c.CatalogFile
}
