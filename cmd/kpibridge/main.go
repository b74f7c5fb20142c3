// Command kpibridge is the single binary of kpibridge: every role and tool is a
// subcommand. This package only parses flags and wires packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kingpin/v2"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// buildVersion is set at build time with -ldflags "-X main.buildVersion=…".
var buildVersion = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// app holds what every subcommand shares: global flags and the process's I/O.
type app struct {
	configFile string
	logLevel   string
	logFormat  string
	brokers    string
	clickhouse string

	stdout, stderr io.Writer
	getenv         func(string) string
}

// action is what a subcommand runs once flags are parsed.
type action func(ctx context.Context) error

// registered is one subcommand of a command group (kpis list, kpis query, …).
type registered struct {
	name string
	run  action
}

// exit carries kingpin's requested exit code (after --help or --version) out of Parse.
type exit int

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exit)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	k := kingpin.New("kpibridge", "One shared, trusted set of marketing and IT KPIs: Kafka events → ClickHouse → Prometheus.")
	k.Version(buildVersion)
	k.HelpFlag.Short('h')
	k.UsageWriter(stdout)
	k.ErrorWriter(stderr)
	k.Terminate(func(c int) { panic(exit(c)) })
	k.Flag("config.file", "YAML configuration file (env KPIBRIDGE_CONFIG); without it the documented defaults apply.").Envar("KPIBRIDGE_CONFIG").StringVar(&a.configFile)
	k.Flag("log.level", "Log level: debug, info, warn, error.").Default("info").EnumVar(&a.logLevel, "debug", "info", "warn", "error")
	k.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&a.logFormat, "logfmt", "json")

	actions := map[string]action{}
	for _, register := range []func(*kingpin.Application, *app) []registered{
		registerKPIs,
		registerDashboards,
		registerHealthcheck,
		registerReport,
		registerCustomer,
		registerDLQ,
	} {
		for _, r := range register(k, a) {
			actions[r.name] = r.run
		}
	}
	for _, register := range []func(*kingpin.Application, *app) (string, action){
		registerBroker,
		registerMigrate,
		registerGenerate,
		registerConfigCheck,
		registerRun,
		registerDemo,
	} {
		name, act := register(k, a)
		actions[name] = act
	}

	cmd, err := k.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "kpibridge: %v (try --help)\n", err)
		return 2
	}
	if err := actions[cmd](ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintf(stderr, "kpibridge %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// addBrokersFlag adds --brokers; it overrides KPIBRIDGE_BROKERS and the config file.
func (a *app) addBrokersFlag(cmd *kingpin.CmdClause) {
	cmd.Flag("brokers", "Kafka bootstrap brokers, comma-separated host:port (overrides env KPIBRIDGE_BROKERS and kafka.brokers).").StringVar(&a.brokers)
}

// addClickHouseFlag adds --clickhouse; it overrides KPIBRIDGE_CLICKHOUSE_DSN and the config file.
func (a *app) addClickHouseFlag(cmd *kingpin.CmdClause) {
	cmd.Flag("clickhouse", "ClickHouse DSN, clickhouse://host:port/database (overrides env KPIBRIDGE_CLICKHOUSE_DSN and clickhouse.dsn).").StringVar(&a.clickhouse)
}

// config loads the configuration: defaults, then the file, then the
// environment, then flags; and validates the result.
func (a *app) config() (config.Config, error) {
	cfg := config.Default()
	if a.configFile != "" {
		var err error
		if cfg, err = config.Load(a.configFile); err != nil {
			return cfg, err
		}
	}
	cfg.ApplyEnv(a.getenv)
	if a.brokers != "" {
		cfg.Kafka.Brokers = config.SplitList(a.brokers)
	}
	if a.clickhouse != "" {
		cfg.ClickHouse.DSN = a.clickhouse
	}
	if err := cfg.Validate(); err != nil {
		if a.configFile != "" {
			if b, rerr := os.ReadFile(a.configFile); rerr == nil {
				// Each problem at the line of its key; values from the
				// environment or flags have none.
				return cfg, fmt.Errorf("invalid configuration:\n%w", config.Locate(a.configFile, b, err))
			}
		}
		return cfg, fmt.Errorf("invalid configuration (defaults, environment and flags):\n%w", err)
	}
	return cfg, nil
}

// addCatalogFlag adds --catalog; it overrides transform.catalog_file.
func addCatalogFlag(cmd *kingpin.CmdClause) *string {
	return cmd.Flag("catalog", "KPI catalog file (default transform.catalog_file, else the embedded default).").String()
}

// loadCatalog loads the configuration and the KPI catalog it names, or
// file (--catalog) when given.
func (a *app) loadCatalog(file string) (*catalog.Catalog, config.Config, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, cfg, err
	}
	if file != "" {
		cfg.Transform.CatalogFile = file
	}
	c, err := transform.LoadCatalog(cfg.Transform)
	return c, cfg, err
}

// openStore connects to the configured ClickHouse database.
func (a *app) openStore(ctx context.Context, cfg config.Config) (store.Conn, error) {
	target, err := cfg.ClickHouseTarget(a.getenv)
	if err != nil {
		return nil, err
	}
	conn, err := store.Open(ctx, target)
	if err != nil && a.clickhouse == "" && a.getenv("KPIBRIDGE_CLICKHOUSE_DSN") == "" && a.configFile == "" {
		return nil, fmt.Errorf("%w\nno ClickHouse was given, so the default was tried: pass --clickhouse clickhouse://host:port/database, or set KPIBRIDGE_CLICKHOUSE_DSN (or clickhouse.dsn in --config.file)", err)
	}
	if err != nil {
		return nil, err
	}
	if err := store.CheckSchema(ctx, conn, target); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (a *app) logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(a.logLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if a.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}
