package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// A file with every security setting, its files present, validates; the
// Kafka password is taken from the environment before the file, and is
// nowhere in what the configuration prints.
func TestSecuritySettings(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	cert, key := ca.Issue(t, "client", "kpibridge")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "kafka.password")
	if err := os.WriteFile(pwFile, []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "kpibridge.yml")
	yml := fmt.Sprintf(`kafka:
  brokers: ["kafka-1:9093"]
  tls: {enabled: true, ca_file: %[1]s, cert_file: %[2]s, key_file: %[3]s, server_name: kafka.internal}
  sasl: {mechanism: SCRAM-SHA-512, username: kpibridge, password_file: %[4]s}
clickhouse:
  dsn: clickhouse://clickhouse:9440/analytics
  user: kpibridge
  password_file: %[4]s
  tls: {enabled: true, ca_file: %[1]s}
broker:
  tls: {cert_file: %[2]s, key_file: %[3]s, client_ca_file: %[1]s}
  sasl: {enabled: true}
`, ca.File, cert, key, pwFile)
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid settings refused:\n%v", err)
	}
	if cfg.Kafka.SASL.Username != "kpibridge" || !cfg.Kafka.TLS.Enabled || cfg.Kafka.TLS.ServerName != "kafka.internal" || cfg.ClickHouse.User != "kpibridge" || !cfg.Broker.SASL.Enabled {
		t.Errorf("settings not read: %+v %+v", cfg.Kafka, cfg.ClickHouse)
	}
	env := map[string]string{"KPIBRIDGE_KAFKA_SASL_PASSWORD": "from-the-env-secret", "KPIBRIDGE_CLICKHOUSE_USER": "ch-user-from-env"}
	getenv := func(k string) string { return env[k] }
	cfg.ApplyEnv(getenv)
	if cfg.ClickHouse.User != "ch-user-from-env" {
		t.Errorf("clickhouse.user = %q, want the environment's", cfg.ClickHouse.User)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{{env, "from-the-env-secret"}, {nil, "from-the-file"}} {
		got, err := cfg.KafkaSASLPassword(func(k string) string { return tt.env[k] })
		if err != nil || got != tt.want {
			t.Errorf("KafkaSASLPassword = %q, %v; want %q", got, err, tt.want)
		}
	}
	sec, err := cfg.KafkaSecurity(getenv)
	if err != nil || sec == nil {
		t.Fatalf("KafkaSecurity: %v", err)
	}
	if _, err := cfg.Broker.TLS.ServerConfig(); err != nil {
		t.Errorf("broker.tls: %v", err)
	}
	printed, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{string(printed), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(sec.Describe()...)} {
		if strings.Contains(out, "from-the-env-secret") || strings.Contains(out, "from-the-file") {
			t.Errorf("the password is printed:\n%s", out)
		}
	}
}

// The SASL password is required with a mechanism: from the environment
// (ApplyEnv notes it is set) or a file; an empty file is no password.
func TestSASLPasswordIsRequired(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Kafka.SASL = config.KafkaSASL{Mechanism: "PLAIN", Username: "kpi"}
	const want = "kafka.sasl.password_file: mechanism PLAIN needs a password: set KPIBRIDGE_KAFKA_SASL_PASSWORD or kafka.sasl.password_file"
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate without a password = %v, want %s", err, want)
	}
	if _, err := cfg.KafkaSecurity(func(string) string { return "" }); err == nil || err.Error() != want {
		t.Errorf("KafkaSecurity without a password = %v, want %s", err, want)
	}
	withEnv := cfg
	withEnv.ApplyEnv(func(k string) string { return map[string]string{"KPIBRIDGE_KAFKA_SASL_PASSWORD": "pw"}[k] })
	if err := withEnv.Validate(); err != nil {
		t.Errorf("Validate with KPIBRIDGE_KAFKA_SASL_PASSWORD: %v", err)
	}
	cfg.Kafka.SASL.PasswordFile = empty
	if _, err := cfg.KafkaSecurity(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "kafka.sasl.password_file: "+empty+" is empty") {
		t.Errorf("KafkaSecurity with an empty password file = %v", err)
	}
}
