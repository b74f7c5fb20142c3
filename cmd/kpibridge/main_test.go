package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kpibridge/kpibridge/internal/testenv"
)

// runCLI runs the binary's entry point in process with the given environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, sub := range []string{"broker", "migrate", "generate", "check-config", "run", "demo", "kpis list", "kpis check", "kpis query", "kpis docs", "customer", "customer show", "customer forget", "dlq list", "dlq replay"} {
		t.Run(sub, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append(strings.Fields(sub), "--help")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, "usage: kpibridge "+sub) {
				t.Fatalf("help of %s does not show its usage:\n%s", sub, out)
			}
		})
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(errOut, `"frobnicate"`) {
		t.Fatalf("exit %d, stderr %q; want 2 naming the command", code, errOut)
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kpibridge.yml")
	if err := os.WriteFile(file, []byte("kafka:\n  brokers: [file:9092]\nclickhouse:\n  dsn: clickhouse://file:9000/db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		env         map[string]string
		flags       []string
		wantBrokers string
		wantDSN     string
	}{
		{"file over defaults", nil, nil, "file:9092", "clickhouse://file:9000/db"},
		{"env over file", map[string]string{"KPIBRIDGE_BROKERS": "env:9092", "KPIBRIDGE_CLICKHOUSE_DSN": "clickhouse://env:9000/db"}, nil, "env:9092", "clickhouse://env:9000/db"},
		{"flag over env", map[string]string{"KPIBRIDGE_BROKERS": "env:9092"}, []string{"--brokers", "flag:9092"}, "flag:9092", "clickhouse://file:9000/db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{configFile: file, getenv: func(k string) string { return tt.env[k] }}
			for i := 0; i < len(tt.flags); i += 2 {
				if tt.flags[i] == "--brokers" {
					a.brokers = tt.flags[i+1]
				}
			}
			cfg, err := a.config()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(cfg.Kafka.Brokers, ","); got != tt.wantBrokers || cfg.ClickHouse.DSN != tt.wantDSN {
				t.Fatalf("brokers %s dsn %s; want %s %s", got, cfg.ClickHouse.DSN, tt.wantBrokers, tt.wantDSN)
			}
		})
	}
}

func TestCheckConfigNamesBadFileLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(file, []byte("kafka:\n  brokerz: [a:1]\nbroker:\n  partitions: 0\ntransform:\n  catalog_file: nowhere.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every problem of the file in one run, each at its line, with a suggestion.
	code, _, errOut := runCLI(t, nil, "--config.file", file, "check-config")
	for _, want := range []string{`bad.yml:2: kafka.brokerz: unknown key "brokerz"; did you mean "brokers"?`, "bad.yml:4: broker.partitions: must be between 1 and 1000, got 0"} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr %q lacks %q", code, errOut, want)
		}
	}
	// The catalog the configuration names is checked too, under its key.
	if err := os.WriteFile(file, []byte("transform:\n  catalog_file: nowhere.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, nil, "--config.file", file, "check-config"); code != 1 || !strings.Contains(errOut, "transform.catalog_file: read KPI catalog: open nowhere.yaml") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCheckConfigRedactsPassword(t *testing.T) {
	code, out, errOut := runCLI(t, map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": "clickhouse://u:s3cret@h:9000/db"}, "check-config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "clickhouse://u:xxxxx@h:9000/db") {
		t.Fatalf("password not redacted:\n%s", out)
	}
}

func TestMigrateCommandTwice(t *testing.T) {
	target := testenv.ClickHouse(t)
	env := map[string]string{"KPIBRIDGE_CLICKHOUSE_DSN": target.DSN}
	code, out, errOut := runCLI(t, env, "migrate")
	if code != 0 || !strings.Contains(out, "applied") {
		t.Fatalf("first migrate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "migrate")
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: exit %d\n%s%s", code, out, errOut)
	}
}

func TestMigrateUnreachableServerSaysWhere(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "migrate", "--clickhouse", "clickhouse://127.0.0.1:1/kpibridge")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q; want an error naming the server", code, errOut)
	}
}

func TestGenerateToFilesWithExactSummary(t *testing.T) {
	dir := t.TempDir()
	args := []string{"generate", "--seed", "3", "--customers", "50", "--days", "10", "--end", "2026-03-30", "--invalid-rate", "0.05", "--out", filepath.Join(dir, "{topic}.ndjson")}
	code, out, errOut := runCLI(t, nil, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum struct {
		Total    int64
		Valid    int64
		Messages map[string]int64
		Invalid  map[string]int64
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out)
	}
	var lines int64
	for topic, n := range sum.Messages {
		b, err := os.ReadFile(filepath.Join(dir, topic+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(bytes.Count(b, []byte("\n"))); got != n {
			t.Errorf("%s.ndjson has %d lines, summary says %d", topic, got, n)
		}
		lines += n
	}
	if lines != sum.Total || sum.Valid == 0 || len(sum.Invalid) != 7 {
		t.Errorf("lines %d, total %d, valid %d, reasons %d", lines, sum.Total, sum.Valid, len(sum.Invalid))
	}
	// The same seed and end give the same bytes.
	dir2 := t.TempDir()
	args[len(args)-1] = filepath.Join(dir2, "{topic}.ndjson")
	if code, _, errOut := runCLI(t, nil, args...); code != 0 {
		t.Fatal(errOut)
	}
	for topic := range sum.Messages {
		a, _ := os.ReadFile(filepath.Join(dir, topic+".ndjson"))
		b, _ := os.ReadFile(filepath.Join(dir2, topic+".ndjson"))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs with the same seed", topic)
		}
	}
	if code, _, errOut := runCLI(t, nil, "generate", "--days", "0", "--out", filepath.Join(dir, "x.ndjson")); code == 0 || !strings.Contains(errOut, "--days") {
		t.Errorf("--days 0: exit %d, %s", code, errOut)
	}
}

func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // restore
	none := func(string) string { return "" }
	tests := []struct {
		name  string
		flag  string
		roles []string
		env   func(string) string
		want  int64
	}{
		{"ingest-only default", "", []string{"ingest"}, none, 256 << 20},
		{"explicit", "1GiB", []string{"ingest", "transform"}, none, 1 << 30},
		{"GOMEMLIMIT wins", "1GiB", []string{"ingest"}, func(k string) string { return map[string]string{"GOMEMLIMIT": "512MiB"}[k] }, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			if err := setMemoryLimit(tt.flag, tt.roles, tt.env); err != nil {
				t.Fatal(err)
			}
			got := debug.SetMemoryLimit(-1)
			if tt.want == -1 {
				tt.want = math.MaxInt64 // untouched
			}
			if got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
		})
	}
	if err := setMemoryLimit("lots", nil, none); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("bad value: %v", err)
	}
}
