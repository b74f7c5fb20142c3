package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/config"
)

func TestDefaultIsValid(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestGoodFile(t *testing.T) {
	cfg, err := config.Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "kafka-1:9092,kafka-2:9092" {
		t.Errorf("brokers = %s", got)
	}
	if len(cfg.Kafka.Topics) != 1 || cfg.Events.ReportingCurrency != "USD" || cfg.Events.MaxFutureSkew != 30*time.Minute {
		t.Errorf("file values not applied: %+v", cfg)
	}
	if len(cfg.Events.CurrencyRates) != 1 || cfg.Events.CurrencyRates["EUR"] != 1.08 {
		t.Errorf("currency_rates = %v, want the file's map to replace the default", cfg.Events.CurrencyRates)
	}
	if cfg.Broker.Partitions != 6 {
		t.Errorf("broker.partitions = %d, want default 6 kept", cfg.Broker.Partitions)
	}
}

// Each testdata/bad_*.yml has the expected error lines in bad_*.err beside it.
func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad_*.yml")
	if len(files) == 0 {
		t.Fatal("no bad cases")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(f)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				if !strings.Contains(err.Error(), line) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, line)
				}
			}
			for _, jargon := range []string{"!!str", "[]string", "in type", "unmarshal", "not found in"} {
				if strings.Contains(err.Error(), jargon) {
					t.Errorf("error says %q:\n%v", jargon, err)
				}
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	cfg, err := config.Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KPIBRIDGE_BROKERS": " a:1, b:2 ,", "KPIBRIDGE_CLICKHOUSE_DSN": "clickhouse://ch:9000/x"}
	cfg.ApplyEnv(func(k string) string { return env[k] })
	if strings.Join(cfg.Kafka.Brokers, ",") != "a:1,b:2" || cfg.ClickHouse.DSN != "clickhouse://ch:9000/x" {
		t.Fatalf("env not applied: %v %s", cfg.Kafka.Brokers, cfg.ClickHouse.DSN)
	}
}

func TestEmailHashKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		file    string
		env     func(string) string
		want    string
		dev     bool
		wantErr string
	}{
		{"development default", "", noEnv, config.DevEmailHashKey, true, ""},
		{"file, trimmed", keyFile, noEnv, "0123456789abcdef-secret", false, ""},
		{"env wins", keyFile, func(k string) string { return map[string]string{"KPIBRIDGE_EMAIL_HASH_KEY": "from-env-0123456789"}[k] }, "from-env-0123456789", false, ""},
		{"short key", short, noEnv, "", false, "must be at least 16 bytes"},
		{"short env key", keyFile, func(k string) string { return map[string]string{"KPIBRIDGE_EMAIL_HASH_KEY": "from-env"}[k] }, "", false,
			"KPIBRIDGE_EMAIL_HASH_KEY: key must be at least 16 bytes, got 8"},
		{"missing file", filepath.Join(dir, "nope"), noEnv, "", false, "events.email_hash_key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Events.EmailHashKeyFile = tt.file
			key, dev, err := cfg.EmailHashKey(tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(key) != tt.want || dev != tt.dev {
				t.Fatalf("key %q dev %v err %v; want %q dev %v", key, dev, err, tt.want, tt.dev)
			}
		})
	}
}

// Retention periods are Prometheus durations; a key left out keeps its default.
func TestRetentionSettings(t *testing.T) {
	cfg, err := config.Parse("kpibridge.yml", []byte("retention:\n  dead_letters: 30d\n  kpi_history: 2y\n  duplicates: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Retention
	if r.DeadLetters.String() != "30d" || r.KPIHistory.String() != "730d" || r.Duplicates != 0 || r.Interval != 24*time.Hour {
		t.Errorf("retention = %+v", r)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	if d := config.Default().Retention; d.DeadLetters.String() != "90d" || d.Duplicates.String() != "90d" || d.KPIHistory.String() != "400d" {
		t.Errorf("default retention = %+v, want the documented 90d, 90d, 400d", d)
	}
}
