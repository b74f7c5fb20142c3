package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// ingestProcess is `kpibridge run --role ingest` as a child process.
type ingestProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func startIngest(t *testing.T, bin, cfgFile, brokers, dsn string) *ingestProcess {
	t.Helper()
	cmd := exec.Command(bin, "--config.file", cfgFile, "run", "--role", "ingest", "--brokers", brokers, "--clickhouse", dsn)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &ingestProcess{cmd: cmd, stderr: &stderr}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("ingest process output:\n%s", stderr.String())
		}
	})
	return p
}

func orderEvent(i int) kafka.Message {
	v := fmt.Sprintf(`{"event_id":"evt-%d","type":"order.placed","occurred_at":"2026-01-10T12:00:00Z","source":"shopify","identity":{"crm_contact_id":"c-%d"},"properties":{"order_id":"o-%d","amount":10,"currency":"EUR","channel":"web"}}`, i, i%500, i)
	return kafka.Message{Topic: "crm.events", Key: []byte(fmt.Sprintf("c-%d", i%500)), Value: []byte(v)}
}

func waitRows(t *testing.T, conn store.Conn, timeout time.Duration, done func(uint64) bool, query string) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var n uint64
	for time.Now().Before(deadline) {
		if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if done(n) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s = %d after %s", query, n, timeout)
	return n
}

// TestKillNineThenRestartLosesNothing kills the ingest process with SIGKILL
// mid-stream, restarts it, and checks every produced event is stored exactly
// once to the documented queries; then SIGTERM drains and commits everything.
func TestKillNineThenRestartLosesNothing(t *testing.T) {
	target, conn := testenv.MigratedClickHouse(t)
	ctx := context.Background()
	addr := testenv.Broker(t, 6)
	bin := testenv.Binary(t)
	cfgFile := filepath.Join(t.TempDir(), "kpibridge.yml")
	cfg := "ingest:\n  group_id: kill-test\n  batch: {max_rows: 500, max_wait: 100ms}\n  shutdown_timeout: 10s\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	const total = 30000
	produced := make(chan struct{})
	go func() { // a steady stream while the process is killed and restarted
		defer close(produced)
		for from := 0; from < total; from += 1000 {
			msgs := make([]kafka.Message, 0, 1000)
			for i := from; i < from+1000; i++ {
				msgs = append(msgs, orderEvent(i))
			}
			testenv.Produce(t, addr, msgs...)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	const distinct = "SELECT uniqExact(event_id) FROM events"
	p := startIngest(t, bin, cfgFile, addr, target.DSN)
	stored := waitRows(t, conn, 60*time.Second, func(n uint64) bool { return n >= 3000 }, distinct)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	t.Logf("killed with %d events stored", stored)
	if stored >= total {
		t.Fatalf("all %d events were stored before the kill; the test did not kill mid-stream", total)
	}

	p2 := startIngest(t, bin, cfgFile, addr, target.DSN)
	<-produced
	waitRows(t, conn, 120*time.Second, func(n uint64) bool { return n == total }, distinct)
	var final uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if final != total {
		t.Errorf("events FINAL = %d, want %d", final, total)
	}

	// SIGTERM: drain, commit, exit 0 within the shutdown timeout.
	start := time.Now()
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p2.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p2.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit within the 10s shutdown timeout (+5s)")
	}
	t.Logf("drained and exited in %s", time.Since(start).Round(time.Millisecond))
	committed, end := testenv.CommittedOffsets(t, addr, "kill-test", "crm.events"), testenv.EndOffsets(t, addr, "crm.events")
	if fmt.Sprint(committed) != fmt.Sprint(end) {
		t.Errorf("after drain committed %v, end offsets %v", committed, end)
	}
}
