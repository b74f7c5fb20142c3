// Package config owns kpibridge's configuration file: one struct per
// component with YAML tags, documented defaults in Default, strict decoding
// (an unknown key is an error naming its line), and Validate errors that name
// the field. Flags and environment variables override the file; secrets come
// only from the environment or from files.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/internal/yamlcheck"

	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// Config is the whole configuration of one kpibridge process.
type Config struct {
	Kafka      Kafka            `yaml:"kafka"`
	ClickHouse ClickHouse       `yaml:"clickhouse"`
	Events     Events           `yaml:"events"`
	Broker     Broker           `yaml:"broker"`
	Ingest     ingest.Config    `yaml:"ingest"`
	Transform  transform.Config `yaml:"transform"`
	Export     Export           `yaml:"export"`
	Retention  store.Retention  `yaml:"retention"`
}

// Export configures the export role.
type Export struct {
	// StaleAfterRefreshes: a KPI whose last success is older than this many
	// refresh intervals loses its value series; its age stays visible.
	StaleAfterRefreshes int `yaml:"stale_after_refreshes"`
	// PollInterval is how often export, running without transform, reads the
	// latest KPI values from ClickHouse.
	PollInterval time.Duration `yaml:"poll_interval"`
	// DocsURL, when set, links each KPI on the landing page to its definition (URL#name).
	DocsURL string `yaml:"docs_url"`
	// ScorecardInterval is how often /scorecard is rebuilt from the KPI history.
	ScorecardInterval time.Duration `yaml:"scorecard_interval"`
}

// Kafka says where the event streams are.
type Kafka struct {
	// Brokers are the bootstrap brokers, host:port (env KPIBRIDGE_BROKERS, comma-separated).
	Brokers []string `yaml:"brokers"`
	// Topics are the event topics to consume.
	Topics []string `yaml:"topics"`
	// TLS encrypts the connections to the brokers and verifies them.
	TLS TLS `yaml:"tls"`
	// SASL authenticates kpibridge to the brokers.
	SASL KafkaSASL `yaml:"sasl"`
}

// ClickHouse says where the events and KPIs are stored.
type ClickHouse struct {
	// DSN is clickhouse://[user[:password]@]host:port/database (env KPIBRIDGE_CLICKHOUSE_DSN).
	// A password in it still works, but KPIBRIDGE_CLICKHOUSE_PASSWORD or
	// password_file is preferred: never put one in the file.
	DSN string `yaml:"dsn"`
	// User overrides the DSN's user (env KPIBRIDGE_CLICKHOUSE_USER).
	User string `yaml:"user"`
	// PasswordFile holds the password; KPIBRIDGE_CLICKHOUSE_PASSWORD wins over it,
	// and either wins over a password in the DSN.
	PasswordFile string `yaml:"password_file"`
	// TLS connects over TLS (the server's secure native port, 9440 by default).
	TLS TLS `yaml:"tls"`
	// Cluster names the ClickHouse cluster (remote_servers) the schema lives
	// on; empty for one server. migrate then creates replicated tables ON
	// CLUSTER with Distributed tables over the sharded ones (docs/SCALING.md),
	// and inserts wait for every shard (insert_distributed_sync).
	Cluster string `yaml:"cluster"`
}

// Events configures decoding of contract v1.
type Events struct {
	// ReportingCurrency is the one currency KPIs are reported in.
	ReportingCurrency string `yaml:"reporting_currency"`
	// CurrencyRates convert other currencies: amount in reporting currency = amount × rate.
	CurrencyRates map[string]float64 `yaml:"currency_rates"`
	// EmailHashKeyFile holds the HMAC key for email hashing; the environment
	// variable KPIBRIDGE_EMAIL_HASH_KEY takes precedence over it.
	EmailHashKeyFile string `yaml:"email_hash_key_file"`
	// MaxFutureSkew is how far in the future occurred_at may be.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
}

// Broker configures the embedded development broker (`kpibridge broker`).
type Broker struct {
	// Listen is the loopback host:port to serve the Kafka protocol on.
	Listen string `yaml:"listen"`
	// Partitions is the partition count of auto-created topics.
	Partitions int `yaml:"partitions"`
	// DataDir, when set, keeps topics and offsets on disk across restarts.
	DataDir string `yaml:"data_dir"`
	// TLS serves the Kafka protocol over TLS only.
	TLS BrokerTLS `yaml:"tls"`
	// SASL requires clients to authenticate.
	SASL BrokerSASL `yaml:"sasl"`
}

// DevEmailHashKey is the key used when none is configured. It is public:
// fine for demos and tests, never for real customer data.
const DevEmailHashKey = "kpibridge-development-key-not-for-production"

// MinEmailHashKeyLen is the shortest email hash key accepted, from the
// environment or from a file, in bytes.
const MinEmailHashKeyLen = 16

// Default returns the documented defaults.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Brokers: []string{"127.0.0.1:9092"},
			Topics:  []string{"crm.events", "campaign.events"},
		},
		ClickHouse: ClickHouse{DSN: "clickhouse://127.0.0.1:9000/kpibridge"},
		Events: Events{
			ReportingCurrency: "EUR",
			CurrencyRates:     map[string]float64{"USD": 0.92, "GBP": 1.17, "CHF": 1.05, "SEK": 0.087},
			MaxFutureSkew:     time.Hour,
		},
		Broker:    Broker{Listen: "127.0.0.1:9092", Partitions: 6},
		Ingest:    ingest.Default(),
		Transform: transform.DefaultConfig(),
		Export:    Export{StaleAfterRefreshes: 3, PollInterval: 15 * time.Second, ScorecardInterval: time.Minute},
		Retention: store.DefaultRetention(),
	}
}

// Load reads a YAML file over the defaults. Unknown keys are errors that name
// the file and line. The result is not yet validated: apply overrides, then
// call Validate.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes YAML bytes over the defaults; name is used in errors
// (file:line: path: …). Every problem of the file is reported at once: keys
// it does not know (with the nearest known one), values of the wrong kind,
// and values Validate refuses, each at the line of its key.
func Parse(name string, b []byte) (Config, error) {
	cfg := Default()
	// A key present in the file replaces the default as a whole, lists and maps included.
	cfg.Kafka.Topics, cfg.Kafka.Brokers, cfg.Events.CurrencyRates = nil, nil, nil
	doc := yamlcheck.Check(name, b, &cfg)
	if doc.Root != nil {
		_ = doc.Root.Decode(&cfg) // over what is wrong: Validate reports the rest in the same run
	}
	def := Default()
	if cfg.Kafka.Brokers == nil {
		cfg.Kafka.Brokers = def.Kafka.Brokers
	}
	if cfg.Kafka.Topics == nil {
		cfg.Kafka.Topics = def.Kafka.Topics
	}
	if cfg.Events.CurrencyRates == nil {
		cfg.Events.CurrencyRates = def.Events.CurrencyRates
	}
	if len(doc.Problems) == 0 {
		return cfg, nil
	}
	if doc.Root != nil {
		// The environment is not applied yet: leave whether it holds the
		// SASL password to the Validate after it.
		cfg.Kafka.SASL.passwordInEnv = true
		if err := cfg.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				path, msg, _ := strings.Cut(line, ": ")
				if !doc.Has(path) {
					doc.Problems = append(doc.Problems, yamlcheck.Problem{Line: doc.Line(path), Path: path, Msg: msg})
				}
			}
		}
	}
	return Config{}, doc.Err()
}

// Locate puts file:line in front of each line of a Validate error
// ("path: message") for a configuration read from file b.
func Locate(name string, b []byte, err error) error {
	doc := yamlcheck.Check(name, b, &Config{})
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		path, msg, ok := strings.Cut(line, ": ")
		if !ok {
			out = append(out, line)
			continue
		}
		out = append(out, doc.Format(doc.Line(path), path, msg))
	}
	return errors.New(strings.Join(out, "\n"))
}

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

var clusterRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the whole config and returns every wrong field, one per
// line, each named by its path ("kafka.tls.ca_file: …").
func (c Config) Validate() error {
	var errs []error
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers: must list at least one host:port"))
	}
	for i, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("kafka.brokers[%d]: must be host:port, got %q", i, b))
		}
	}
	if len(c.Kafka.Topics) == 0 {
		errs = append(errs, errors.New("kafka.topics: must list at least one topic"))
	}
	for i, t := range c.Kafka.Topics {
		if !topicRe.MatchString(t) {
			errs = append(errs, fmt.Errorf("kafka.topics[%d]: %q is not a valid Kafka topic name", i, t))
		}
	}
	if !strings.HasPrefix(c.ClickHouse.DSN, "clickhouse://") && !strings.HasPrefix(c.ClickHouse.DSN, "tcp://") {
		errs = append(errs, fmt.Errorf("clickhouse.dsn: must start with clickhouse:// (native protocol), got %q", redactDSN(c.ClickHouse.DSN)))
	}
	if c.ClickHouse.Cluster != "" && !clusterRe.MatchString(c.ClickHouse.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster: must be a ClickHouse identifier (letters, digits, _), got %q", c.ClickHouse.Cluster))
	}
	if !currencyRe.MatchString(c.Events.ReportingCurrency) {
		errs = append(errs, fmt.Errorf("events.reporting_currency: must be 3 upper-case letters (ISO 4217), got %q", c.Events.ReportingCurrency))
	}
	for cur, rate := range c.Events.CurrencyRates {
		if !currencyRe.MatchString(cur) {
			errs = append(errs, fmt.Errorf("events.currency_rates: key %q must be 3 upper-case letters", cur))
		}
		if !(rate > 0) {
			errs = append(errs, fmt.Errorf("events.currency_rates.%s: must be > 0, got %v", cur, rate))
		}
	}
	if c.Events.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("events.max_future_skew: must be >= 0, got %s", c.Events.MaxFutureSkew))
	}
	if _, _, err := net.SplitHostPort(c.Broker.Listen); err != nil {
		errs = append(errs, fmt.Errorf("broker.listen: must be host:port, got %q", c.Broker.Listen))
	}
	if c.Broker.Partitions < 1 || c.Broker.Partitions > 1000 {
		errs = append(errs, fmt.Errorf("broker.partitions: must be between 1 and 1000, got %d", c.Broker.Partitions))
	}
	errs = append(errs, c.validateSecurity()...)
	if err := c.Ingest.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Transform.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Export.StaleAfterRefreshes < 1 {
		errs = append(errs, fmt.Errorf("export.stale_after_refreshes: must be >= 1, got %d", c.Export.StaleAfterRefreshes))
	}
	if c.Export.ScorecardInterval < time.Second {
		errs = append(errs, fmt.Errorf("export.scorecard_interval: must be >= 1s, got %s", c.Export.ScorecardInterval))
	}
	if c.Export.PollInterval < time.Second {
		errs = append(errs, fmt.Errorf("export.poll_interval: must be >= 1s, got %s", c.Export.PollInterval))
	}
	return errors.Join(errs...)
}

var topicRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 {
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			return dsn[:j+3] + "…@" + dsn[i+1:]
		}
	}
	return dsn
}

// EmailHashKey returns the HMAC key for email hashing: from
// KPIBRIDGE_EMAIL_HASH_KEY, else from events.email_hash_key_file, else the
// public development key (dev reports true so callers can warn).
func (c Config) EmailHashKey(getenv func(string) string) (key []byte, dev bool, err error) {
	if k := getenv("KPIBRIDGE_EMAIL_HASH_KEY"); k != "" {
		if len(k) < MinEmailHashKeyLen {
			return nil, false, fmt.Errorf("KPIBRIDGE_EMAIL_HASH_KEY: key must be at least %d bytes, got %d (generate one with: openssl rand -hex 32)", MinEmailHashKeyLen, len(k))
		}
		return []byte(k), false, nil
	}
	if c.Events.EmailHashKeyFile != "" {
		b, err := os.ReadFile(c.Events.EmailHashKeyFile)
		if err != nil {
			return nil, false, fmt.Errorf("events.email_hash_key_file: %w", err)
		}
		k := bytes.TrimSpace(b)
		if len(k) < MinEmailHashKeyLen {
			return nil, false, fmt.Errorf("events.email_hash_key_file: key in %s must be at least %d bytes, got %d", c.Events.EmailHashKeyFile, MinEmailHashKeyLen, len(k))
		}
		return k, false, nil
	}
	return []byte(DevEmailHashKey), true, nil
}

// ApplyEnv overrides fields from the documented environment variables.
// Flags are applied after it by the command line, so they win.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv("KPIBRIDGE_BROKERS"); v != "" {
		c.Kafka.Brokers = SplitList(v)
	}
	if v := getenv("KPIBRIDGE_CLICKHOUSE_DSN"); v != "" {
		c.ClickHouse.DSN = v
	}
	if v := getenv("KPIBRIDGE_CLICKHOUSE_USER"); v != "" {
		c.ClickHouse.User = v
	}
	// Only whether it is set: the password itself is read where it is used.
	c.Kafka.SASL.passwordInEnv = getenv(kafkaconn.PasswordEnv) != ""
}

// SplitList splits a comma-separated list, trimming spaces and dropping empties.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
