package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/store"
)

// ClickHousePasswordEnv names the environment variable with the ClickHouse
// password; it wins over clickhouse.password_file and the DSN's password.
const ClickHousePasswordEnv = "KPIBRIDGE_CLICKHOUSE_PASSWORD"

// TLS configures the client side of a TLS connection (kafka.tls, clickhouse.tls).
type TLS struct {
	// Enabled turns TLS on; the other settings need it.
	Enabled bool `yaml:"enabled"`
	// CAFile holds the PEM certificates of the authorities that sign the
	// server's certificate; empty: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key (PEM), for
	// servers that require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must hold; empty: the
	// host connected to.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate: for a test setup
	// only, since anyone in the middle can then read and change the traffic.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// KafkaSASL authenticates kpibridge to the brokers.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// PasswordFile holds the password; KPIBRIDGE_KAFKA_SASL_PASSWORD wins over it.
	PasswordFile string `yaml:"password_file"`

	passwordInEnv bool // set by ApplyEnv, for Validate
}

// BrokerTLS makes the embedded broker serve TLS.
type BrokerTLS struct {
	// CertFile and KeyFile are the broker's certificate and key (PEM).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires every client to present a
	// certificate signed by one of its authorities.
	ClientCAFile string `yaml:"client_ca_file"`
}

// BrokerSASL makes the embedded broker require SASL.
type BrokerSASL struct {
	// Enabled requires every client to authenticate as the user of
	// kafka.sasl: its mechanism, username and password.
	Enabled bool `yaml:"enabled"`
}

func (c Config) validateSecurity() []error {
	var errs []error
	errs = append(errs, c.Kafka.TLS.validate("kafka.tls")...)
	errs = append(errs, c.ClickHouse.TLS.validate("clickhouse.tls")...)
	s := c.Kafka.SASL
	known := strings.Join(kafkaconn.Mechanisms(), ", ")
	switch {
	case s.Mechanism == "" && (s.Username != "" || s.PasswordFile != ""):
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: must be set with a username or password_file, to one of %s", known))
	case s.Mechanism != "" && !kafkaconn.Known(s.Mechanism):
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: must be one of %s, got %q", known, s.Mechanism))
	case s.Mechanism != "":
		if s.Username == "" {
			errs = append(errs, fmt.Errorf("kafka.sasl.username: must be set with mechanism %s", s.Mechanism))
		}
		if s.PasswordFile == "" && !s.passwordInEnv {
			errs = append(errs, fmt.Errorf("kafka.sasl.password_file: mechanism %s needs a password: set %s or kafka.sasl.password_file", s.Mechanism, kafkaconn.PasswordEnv))
		}
	}
	errs = append(errs, fileError("kafka.sasl.password_file", s.PasswordFile)...)
	errs = append(errs, fileError("clickhouse.password_file", c.ClickHouse.PasswordFile)...)
	b := c.Broker.TLS
	switch {
	case b.CertFile != "" && b.KeyFile == "":
		errs = append(errs, errors.New("broker.tls.key_file: must be set with cert_file"))
	case b.CertFile == "" && b.KeyFile != "":
		errs = append(errs, errors.New("broker.tls.cert_file: must be set with key_file"))
	case b.CertFile == "" && b.ClientCAFile != "":
		errs = append(errs, errors.New("broker.tls.client_ca_file: needs the broker's own cert_file and key_file"))
	}
	for _, f := range []struct{ path, file string }{{"broker.tls.cert_file", b.CertFile}, {"broker.tls.key_file", b.KeyFile}, {"broker.tls.client_ca_file", b.ClientCAFile}} {
		errs = append(errs, fileError(f.path, f.file)...)
	}
	if c.Broker.SASL.Enabled && s.Mechanism == "" {
		errs = append(errs, errors.New("broker.sasl.enabled: needs kafka.sasl (mechanism, username, password): the user the broker accepts"))
	}
	return errs
}

func (t TLS) validate(path string) []error {
	var errs []error
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""}, {"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify}} {
		if f.set {
			set = append(set, f.name)
		}
	}
	if !t.Enabled && len(set) > 0 {
		errs = append(errs, fmt.Errorf("%s.enabled: must be true when %s is set (without it the connection is not encrypted)", path, strings.Join(set, ", ")))
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		errs = append(errs, fmt.Errorf("%s.key_file: must be set with cert_file", path))
	case t.CertFile == "" && t.KeyFile != "":
		errs = append(errs, fmt.Errorf("%s.cert_file: must be set with key_file", path))
	}
	errs = append(errs, fileError(path+".ca_file", t.CAFile)...)
	errs = append(errs, fileError(path+".cert_file", t.CertFile)...)
	errs = append(errs, fileError(path+".key_file", t.KeyFile)...)
	return errs
}

// fileError says why file, the value of the setting at path, cannot be read.
func fileError(path, file string) []error {
	if file == "" {
		return nil
	}
	f, err := os.Open(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []error{fmt.Errorf("%s: file %s does not exist", path, file)}
	case err != nil:
		return []error{fmt.Errorf("%s: %w", path, err)}
	}
	f.Close()
	return nil
}

// clientConfig loads the files; nil when TLS is off. path names the setting in errors.
func (t TLS) clientConfig(path string) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pool, err := certPool(path+".ca_file", t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file, %s.key_file: %w", path, path, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func certPool(path, file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate in %s", path, file)
	}
	return pool, nil
}

// ServerConfig loads the embedded broker's certificate; nil when TLS is off.
func (b BrokerTLS) ServerConfig() (*tls.Config, error) {
	if b.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("broker.tls.cert_file, broker.tls.key_file: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if b.ClientCAFile != "" {
		if cfg.ClientCAs, err = certPool("broker.tls.client_ca_file", b.ClientCAFile); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// readSecret reads a password file; a trailing newline is not part of it.
func readSecret(path, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", path, file)
	}
	return s, nil
}

// KafkaSASLPassword returns the SASL password: from
// KPIBRIDGE_KAFKA_SASL_PASSWORD, else from kafka.sasl.password_file, else "".
func (c Config) KafkaSASLPassword(getenv func(string) string) (string, error) {
	if v := getenv(kafkaconn.PasswordEnv); v != "" {
		return v, nil
	}
	if c.Kafka.SASL.PasswordFile == "" {
		return "", nil
	}
	return readSecret("kafka.sasl.password_file", c.Kafka.SASL.PasswordFile)
}

// KafkaSecurity reads kafka.tls and kafka.sasl into the connection settings
// every Kafka client of the process uses.
func (c Config) KafkaSecurity(getenv func(string) string) (*kafkaconn.Security, error) {
	tlsCfg, err := c.Kafka.TLS.clientConfig("kafka.tls")
	if err != nil {
		return nil, err
	}
	s := c.Kafka.SASL
	var password string
	if s.Mechanism != "" {
		if password, err = c.KafkaSASLPassword(getenv); err != nil {
			return nil, err
		}
		if password == "" {
			return nil, fmt.Errorf("kafka.sasl.password_file: mechanism %s needs a password: set %s or kafka.sasl.password_file", s.Mechanism, kafkaconn.PasswordEnv)
		}
	}
	return kafkaconn.New(kafkaconn.Options{TLS: tlsCfg, Mechanism: s.Mechanism, Username: s.Username, Password: password})
}

// ClickHouseTarget parses clickhouse.dsn and applies clickhouse.tls,
// clickhouse.user and the password: KPIBRIDGE_CLICKHOUSE_PASSWORD, else
// clickhouse.password_file, else the DSN's.
func (c Config) ClickHouseTarget(getenv func(string) string) (store.Target, error) {
	t, err := store.ParseDSN(c.ClickHouse.DSN)
	if err != nil {
		return t, err
	}
	tlsCfg, err := c.ClickHouse.TLS.clientConfig("clickhouse.tls")
	if err != nil {
		return t, err
	}
	if tlsCfg != nil {
		t = t.WithTLS(tlsCfg)
	}
	password := getenv(ClickHousePasswordEnv)
	if password == "" && c.ClickHouse.PasswordFile != "" {
		if password, err = readSecret("clickhouse.password_file", c.ClickHouse.PasswordFile); err != nil {
			return t, err
		}
	}
	return t.WithAuth(c.ClickHouse.User, password).WithCluster(c.ClickHouse.Cluster)
}
