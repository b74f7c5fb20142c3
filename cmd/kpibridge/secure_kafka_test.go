package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/kafkaconn"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

const (
	kafkaUser     = "kpi"
	kafkaPassword = "s3cret-for-the-secure-broker"
)

// startProcess runs the kpibridge binary with args and extra environment
// until the test ends.
func startProcess(t *testing.T, name string, env []string, args ...string) *testenv.Output {
	t.Helper()
	return testenv.StartProcess(t, name, env, args...).Out
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secureKafka is `kpibridge broker` serving TLS only, requiring a client
// certificate signed by ca and SASL as kafkaUser with one mechanism.
type secureKafka struct {
	addr, mechanism string
	ca              *testenv.CA
	out             *testenv.Output
	dir             string
}

func startSecureKafka(t *testing.T, mechanism string) *secureKafka {
	t.Helper()
	k := &secureKafka{addr: testenv.FreeAddr(t), mechanism: mechanism, ca: testenv.NewCA(t, "kafka-test-ca"), dir: t.TempDir()}
	cert, key := k.ca.Issue(t, "broker", "127.0.0.1", "localhost")
	cfg := writeFile(t, k.dir, "broker.yml", fmt.Sprintf(`kafka:
  sasl: {mechanism: %s, username: %s}
broker:
  partitions: 2
  tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
  sasl: {enabled: true}
`, mechanism, kafkaUser, cert, key, k.ca.File))
	k.out = startProcess(t, "broker", []string{kafkaconn.PasswordEnv + "=" + kafkaPassword}, "--config.file", cfg, "broker", "--listen", k.addr)
	waitUntil(t, 30*time.Second, "the broker listening", func() bool { return strings.Contains(k.out.String(), "Kafka protocol on "+k.addr) })
	if want := "TLS, SASL " + mechanism + " user " + kafkaUser; !strings.Contains(k.out.String(), want) {
		t.Fatalf("broker does not say %q:\n%s", want, k.out)
	}
	return k
}

// clientConfig writes a kpibridge configuration for this broker: its
// certificate checked against caFile, a client certificate, SASL as
// kafkaUser with the password in passwordFile ("": from the environment).
func (k *secureKafka) clientConfig(t *testing.T, caFile, passwordFile, group string) string {
	t.Helper()
	cert, key := k.ca.Issue(t, "client-"+group, "kpibridge")
	pw := ""
	if passwordFile != "" {
		pw = ", password_file: " + passwordFile
	}
	return writeFile(t, t.TempDir(), "kpibridge.yml", fmt.Sprintf(`kafka:
  brokers: [%q]
  tls: {enabled: true, ca_file: %s, cert_file: %s, key_file: %s}
  sasl: {mechanism: %s, username: %s%s}
ingest:
  group_id: %s
  batch: {max_rows: 500, max_wait: 100ms}
  shutdown_timeout: 10s
`, k.addr, caFile, cert, key, k.mechanism, kafkaUser, pw, group))
}

// security is how a test reaches the broker itself, as kpibridge would.
func (k *secureKafka) security(t *testing.T, cfgFile string) *kafkaconn.Security {
	t.Helper()
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cfg.KafkaSecurity(func(string) string { return kafkaPassword })
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// generateTo produces a small generated history through the broker with
// `kpibridge generate` (password from the environment) and returns its summary.
func generateTo(t *testing.T, cfgFile string) (valid, invalid int64) {
	t.Helper()
	code, out, errOut := runCLI(t, map[string]string{kafkaconn.PasswordEnv: kafkaPassword},
		"--config.file", cfgFile, "generate", "--seed", "7", "--customers", "40", "--days", "3", "--invalid-rate", "0.05")
	if code != 0 {
		t.Fatalf("generate through the secured broker: exit %d\n%s", code, errOut)
	}
	if strings.Contains(out+errOut, kafkaPassword) {
		t.Error("generate printed the password")
	}
	var sum struct {
		Valid   int64
		Invalid map[string]int64
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	for _, n := range sum.Invalid {
		invalid += n
	}
	if sum.Valid == 0 || invalid == 0 {
		t.Fatalf("generated %d valid and %d invalid messages; the test needs both", sum.Valid, invalid)
	}
	return sum.Valid, invalid
}

func get(url string) (int, string) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func count(t *testing.T, conn store.Conn, sql string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Through a broker that requires TLS with a client certificate and SASL,
// with each mechanism: `kpibridge generate` produces, `kpibridge run --role
// ingest` stores every valid event, dead-letters the invalid ones to the
// DLQ topic, measures its lag and is ready; `kpibridge dlq replay` reads
// the DLQ topic back and re-produces it; and no output holds the password.
func TestSecureKafkaEndToEnd(t *testing.T) {
	for _, mechanism := range kafkaconn.Mechanisms() {
		t.Run(mechanism, func(t *testing.T) {
			target, conn := testenv.MigratedClickHouse(t)
			k := startSecureKafka(t, mechanism)
			pwFile := writeFile(t, t.TempDir(), "kafka.password", kafkaPassword+"\n")
			cfgFile := k.clientConfig(t, k.ca.File, pwFile, "secure-e2e")
			valid, invalid := generateTo(t, cfgFile)

			web := testenv.FreeAddr(t)
			ingest := startProcess(t, "ingest", nil, "--config.file", cfgFile, "run", "--role", "ingest",
				"--clickhouse", target.DSN, "--web.listen-address", web)
			waitRows(t, conn, 90*time.Second, func(n uint64) bool { return n == uint64(valid) }, "SELECT uniqExact(event_id) FROM events")
			waitRows(t, conn, 30*time.Second, func(n uint64) bool { return n == uint64(invalid) }, "SELECT uniqExact(topic, partition, offset) FROM dead_letters")
			waitUntil(t, 30*time.Second, "/-/ready 200", func() bool { code, _ := get("http://" + web + "/-/ready"); return code == 200 })
			lagZero := regexp.MustCompile(`kpibridge_ingest_consumer_lag_messages\{partition="\d",topic="crm.events"\} 0\n`)
			waitUntil(t, 30*time.Second, "the lag poller's crm.events lag of 0", func() bool {
				_, body := get("http://" + web + "/metrics")
				return len(lagZero.FindAllString(body, -1)) == 2
			})

			if mechanism == kafkaconn.ScramSHA512 {
				// DLQ replay reads the dead letters ingest wrote and
				// re-produces them; ingest dead-letters them once more.
				var topic string
				var dead uint64
				if err := conn.QueryRow(context.Background(), "SELECT topic, uniqExact(partition, offset) AS n FROM dead_letters GROUP BY topic ORDER BY n DESC LIMIT 1").Scan(&topic, &dead); err != nil {
					t.Fatal(err)
				}
				code, out, errOut := runCLI(t, map[string]string{kafkaconn.PasswordEnv: kafkaPassword}, "--config.file", cfgFile, "dlq", "replay", "--topic", topic+".dlq")
				if code != 0 {
					t.Fatalf("dlq replay: exit %d\n%s", code, errOut)
				}
				if want := fmt.Sprintf("read %d dead letters from %s.dlq; replayed %d", dead, topic, dead); !strings.Contains(out, want) {
					t.Errorf("dlq replay says\n%s\nwant %q", out, want)
				}
				waitRows(t, conn, 60*time.Second, func(n uint64) bool { return n == 2*dead }, "SELECT uniqExact(partition, offset) FROM dead_letters WHERE topic = '"+topic+"'")
			}

			code, out, errOut := runCLI(t, map[string]string{kafkaconn.PasswordEnv: kafkaPassword}, "--config.file", cfgFile, "check-config")
			if code != 0 {
				t.Errorf("check-config: exit %d\n%s", code, errOut)
			}
			for name, text := range map[string]string{"broker": k.out.String(), "ingest": ingest.String(), "check-config": out + errOut} {
				if strings.Contains(text, kafkaPassword) {
					t.Errorf("the %s output shows the password", name)
				}
			}
		})
	}
}

// A wrong password and a CA that does not trust the broker each leave
// ingest running but not ready, with one log line that says what failed,
// and nothing consumed: no offsets committed, no rows stored.
func TestSecureKafkaRefusals(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	k := startSecureKafka(t, kafkaconn.ScramSHA512)
	good := k.clientConfig(t, k.ca.File, "", "producer")
	generateTo(t, good) // messages that a consumer that got in would store
	sec := k.security(t, good)

	dir := t.TempDir()
	wrongPassword := writeFile(t, dir, "wrong.password", "not-"+kafkaPassword+"\n")
	rightPassword := writeFile(t, dir, "right.password", kafkaPassword+"\n")
	otherCA := testenv.NewCA(t, "not-the-broker-ca")
	tests := []struct {
		name     string
		cfgFile  string
		wantLine string
	}{
		{"wrong password", k.clientConfig(t, k.ca.File, wrongPassword, "refused-password"),
			`authentication failed for user \"kpi\" with mechanism SCRAM-SHA-512`},
		{"CA that does not trust the broker", k.clientConfig(t, otherCA.File, rightPassword, "refused-ca"),
			"TLS: certificate signed by unknown authority for server 127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(tt.cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			web := testenv.FreeAddr(t)
			ingest := startProcess(t, "ingest", nil, "--config.file", tt.cfgFile, "run", "--role", "ingest",
				"--clickhouse", target.DSN, "--web.listen-address", web)
			waitUntil(t, 30*time.Second, "the refusal in the log", func() bool { return strings.Contains(ingest.String(), tt.wantLine) })
			// Several retries later: still not ready, still one line.
			for range 6 {
				code, body := get("http://" + web + "/-/ready")
				if code != 503 || !strings.Contains(body, "Kafka refuses kpibridge's connection ("+k.addr+")") || !strings.Contains(body, strings.ReplaceAll(tt.wantLine, `\"`, `"`)) {
					t.Errorf("/-/ready = %d %q; want 503 saying why", code, body)
				}
				time.Sleep(time.Second)
			}
			var lines []string
			for _, l := range strings.Split(ingest.String(), "\n") {
				if strings.Contains(l, tt.wantLine) {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") {
				t.Errorf("%d log lines say %q, want one error:\n%s", len(lines), tt.wantLine, strings.Join(lines, "\n"))
			}
			if strings.Contains(ingest.String(), kafkaPassword) {
				t.Error("the log shows the password")
			}
			for _, topic := range cfg.Kafka.Topics {
				if got := testenv.CommittedOffsetsVia(t, sec.Transport(), k.addr, cfg.Ingest.GroupID, topic); len(got) != 0 {
					t.Errorf("group %s committed %v on %s", cfg.Ingest.GroupID, got, topic)
				}
			}
			if n := count(t, conn, "SELECT count() FROM events") + count(t, conn, "SELECT count() FROM dead_letters"); n != 0 {
				t.Errorf("%d rows stored by a refused consumer", n)
			}
			// The one-shot commands say the same and exit 1.
			for _, args := range [][]string{{"generate", "--customers", "5", "--days", "1"}, {"dlq", "list", "--topic", "crm.events.dlq"}} {
				code, _, errOut := runCLI(t, nil, append([]string{"--config.file", tt.cfgFile}, args...)...)
				if want := strings.ReplaceAll(tt.wantLine, `\"`, `"`); code != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, kafkaPassword) {
					t.Errorf("%s: exit %d, stderr %q; want exit 1 saying %q", args[0], code, errOut, want)
				}
			}
		})
	}
}
