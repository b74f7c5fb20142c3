package ingestbench_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/pipeline"
	"github.com/kpibridge/kpibridge/store"
)

// Sizing of the generated stream: 78 000 customers over 90 days is about
// 1 M messages (≈ 94 % valid, 1 % invalid, 5 % re-sent duplicates).
const (
	defaultCustomers = 78000
	days             = 90
	endDay           = "2026-01-31" // pinned, so the stream is the same every run
	seed             = 42
	clockTicks       = 100 // USER_HZ of /proc/PID/stat on Linux
)

var topics = []string{"crm.events", "campaign.events"}

// summary is the part of `kpibridge generate`'s JSON summary the benchmark checks.
type summary struct {
	Total      int            `json:"total"`
	Valid      int            `json:"valid"`
	Invalid    map[string]int `json:"invalid"`
	Duplicates int            `json:"duplicates"`
}

func (s summary) invalid() int {
	n := 0
	for _, v := range s.Invalid {
		n += v
	}
	return n
}

// fixture is a broker process loaded with the generated stream.
type fixture struct {
	bin    string
	broker string
	sum    summary
	ends   map[string]map[int]int64 // high watermarks by topic and partition
}

// load builds kpibridge, starts `kpibridge broker` and fills it with `kpibridge generate`.
func load(b *testing.B) *fixture {
	b.Helper()
	testenv.Require(b, os.Getenv(testenv.ClickHouseEnv) != "", testenv.ClickHouseEnv+" (a ClickHouse server)")
	bin := testenv.Binary(b)
	f := &fixture{bin: bin, broker: startBroker(b, bin)}

	customers := defaultCustomers
	if s := os.Getenv("KPIBRIDGE_BENCH_CUSTOMERS"); s != "" {
		var err error
		if customers, err = strconv.Atoi(s); err != nil {
			b.Fatalf("KPIBRIDGE_BENCH_CUSTOMERS=%q: %v", s, err)
		}
	}
	gen := exec.Command(bin, "generate", "--brokers", f.broker, "--seed", fmt.Sprint(seed),
		"--customers", fmt.Sprint(customers), "--days", fmt.Sprint(days), "--end", endDay)
	var stderr bytes.Buffer
	gen.Stderr = &stderr
	out, err := gen.Output()
	if err != nil {
		b.Fatalf("kpibridge generate: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(out, &f.sum); err != nil {
		b.Fatalf("generate summary: %v\n%s", err, out)
	}
	f.ends = map[string]map[int]int64{}
	var msgs int64
	for _, t := range topics {
		f.ends[t] = testenv.EndOffsets(b, f.broker, t)
		for _, o := range f.ends[t] {
			msgs += o
		}
	}
	if msgs != int64(f.sum.Total) {
		b.Fatalf("broker holds %d messages, generate reported %d", msgs, f.sum.Total)
	}
	b.Logf("loaded %d messages (%d valid, %d invalid, %d duplicates) into %s", f.sum.Total, f.sum.Valid, f.sum.invalid(), f.sum.Duplicates, f.broker)
	return f
}

// ingestBin is the binary that runs ingest: KPIBRIDGE_BENCH_INGEST_BIN, to
// compare two builds on the same generated stream, or bin.
func ingestBin(bin string) string {
	if b := os.Getenv("KPIBRIDGE_BENCH_INGEST_BIN"); b != "" {
		return b
	}
	return bin
}

// startBroker runs `kpibridge broker` on a free port and returns its address.
func startBroker(b *testing.B, bin string) string {
	b.Helper()
	cmd := exec.Command(bin, "broker", "--listen", "127.0.0.1:0", "--partitions", "6")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		// "kpibridge broker: Kafka protocol on 127.0.0.1:PORT (development broker; …)"
		if _, rest, ok := strings.Cut(sc.Text(), "Kafka protocol on "); ok {
			addr, _, _ := strings.Cut(rest, " ")
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return addr
		}
	}
	b.Fatal("kpibridge broker exited before announcing its address")
	return ""
}

// done reports whether group has committed every message of the stream,
// which the ingester does only once they are stored.
func (f *fixture) done(ctx context.Context, c *kafka.Client, group string) (bool, error) {
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for t, ends := range f.ends {
		for p := range ends {
			req.Topics[t] = append(req.Topics[t], p)
		}
	}
	res, err := c.OffsetFetch(ctx, req)
	if err != nil {
		return false, err
	}
	for t, ends := range f.ends {
		committed := map[int]int64{}
		for _, p := range res.Topics[t] {
			committed[p.Partition] = p.CommittedOffset
		}
		for p, end := range ends {
			if committed[p] < end {
				return false, nil
			}
		}
	}
	return true, nil
}

// verify checks that ClickHouse holds exactly what the generator produced.
func (f *fixture) verify(b *testing.B, target store.Target) {
	b.Helper()
	ctx := context.Background()
	conn, err := store.Open(ctx, target)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	checks := []struct {
		query string
		want  int
	}{
		{"SELECT uniqExact(event_id) FROM events", f.sum.Valid},
		{"SELECT count() FROM dead_letters FINAL", f.sum.invalid()},
		{"SELECT count() FROM duplicates FINAL", f.sum.Duplicates},
	}
	for _, c := range checks {
		var n uint64
		if err := conn.QueryRow(ctx, c.query).Scan(&n); err != nil {
			b.Fatalf("%s: %v", c.query, err)
		}
		if n != uint64(c.want) {
			b.Errorf("%s = %d, want %d", c.query, n, c.want)
		}
	}
}

// iteration prepares a fresh database and a fresh consumer group.
func (f *fixture) iteration(b *testing.B, i int) (target store.Target, group string) {
	b.Helper()
	target = testenv.ClickHouse(b)
	if _, err := store.Migrate(context.Background(), target, nil); err != nil {
		b.Fatal(err)
	}
	return target, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
}

// waitDone polls the group's commits until the whole stream is committed,
// failing if exited is closed first or after timeout.
func (f *fixture) waitDone(b *testing.B, group string, exited <-chan struct{}, timeout time.Duration) {
	b.Helper()
	c := &kafka.Client{Addr: kafka.TCP(f.broker), Timeout: 10 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok, err := f.done(context.Background(), c, group)
		if err != nil {
			b.Fatalf("offset fetch for group %s: %v", group, err)
		}
		if ok {
			return
		}
		select {
		case <-exited:
			b.Fatal("ingest exited before storing the stream")
		case <-time.After(20 * time.Millisecond):
		}
	}
	b.Fatalf("the stream was not stored within %s", timeout)
}

// BenchmarkIngestEndToEnd measures `kpibridge run --role ingest` as a separate
// process at default settings: from its start until every message of a
// generated stream of about 1 M is committed (so stored), events/s over the
// wall time, CPU-µs per message (utime+stime from /proc) and peak RSS (VmHWM).
func BenchmarkIngestEndToEnd(b *testing.B) {
	f := load(b)
	var wall time.Duration
	var cpuTicks, msgs int64
	var peakKB int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		target, group := f.iteration(b, i)
		cfgFile := filepath.Join(b.TempDir(), "kpibridge.yml")
		if err := os.WriteFile(cfgFile, []byte("ingest:\n  group_id: "+group+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		logFile, err := os.Create(filepath.Join(b.TempDir(), "ingest.log"))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(ingestBin(f.bin), "--config.file", cfgFile, "run", "--role", "ingest", "--brokers", f.broker, "--clickhouse", target.DSN,
			"--web.listen-address", freeAddr(b))
		cmd.Stdout, cmd.Stderr = logFile, logFile
		exited := make(chan struct{})
		b.StartTimer()

		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() { _ = cmd.Wait(); close(exited) }()
		f.waitDone(b, group, exited, 10*time.Minute)
		elapsed := time.Since(start)

		b.StopTimer()
		ticks, hwm, err := procUsage(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if !cmd.ProcessState.Success() {
				b.Errorf("ingest exited with %v after SIGTERM; log in %s", cmd.ProcessState, logFile.Name())
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			b.Fatal("ingest did not exit within 60s of SIGTERM")
		}
		logFile.Close()
		f.verify(b, target)
		b.Logf("run %d: %d messages in %s: %.0f events/s, %.2f CPU-µs/event, peak RSS %d MB",
			i, f.sum.Total, elapsed.Round(time.Millisecond), float64(f.sum.Total)/elapsed.Seconds(),
			float64(ticks)*1e6/clockTicks/float64(f.sum.Total), hwm>>10)
		wall += elapsed
		cpuTicks += ticks
		msgs += int64(f.sum.Total)
		peakKB = max(peakKB, hwm)
		b.StartTimer()
	}
	b.ReportMetric(float64(msgs)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(cpuTicks)*1e6/clockTicks/float64(msgs), "CPU-µs/event")
	b.ReportMetric(float64(peakKB)/1024, "peak-RSS-MB")
}

// BenchmarkIngestInProcess runs the ingest role in the test process (the same
// pipeline.Run as `kpibridge run --role ingest`) over the same stream, so
// -cpuprofile and -memprofile show the ingest hot path. CPU-µs/event here
// includes the benchmark's own polling. KPIBRIDGE_BENCH_HEAPPROFILE=file
// writes the live heap at the moment the stream is stored.
func BenchmarkIngestInProcess(b *testing.B) {
	f := load(b)
	var wall, cpu time.Duration
	var msgs int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		target, group := f.iteration(b, i)
		cfg := config.Default()
		cfg.Kafka.Brokers = []string{f.broker}
		cfg.ClickHouse.DSN = target.DSN
		cfg.Ingest.GroupID = group
		ctx, cancel := context.WithCancel(context.Background())
		exited := make(chan struct{})
		var runErr error
		b.StartTimer()

		start, cpu0 := time.Now(), selfCPU()
		go func() {
			defer close(exited)
			runErr = pipeline.Run(ctx, cfg, pipeline.Options{Roles: []string{"ingest"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Getenv: func(string) string { return "" }})
		}()
		f.waitDone(b, group, exited, 10*time.Minute)
		elapsed, used := time.Since(start), selfCPU()-cpu0
		if path := os.Getenv("KPIBRIDGE_BENCH_HEAPPROFILE"); path != "" {
			writeHeapProfile(b, path)
		}

		b.StopTimer()
		cancel()
		<-exited
		if runErr != nil {
			b.Fatalf("ingest: %v", runErr)
		}
		f.verify(b, target)
		wall += elapsed
		cpu += used
		msgs += int64(f.sum.Total)
		b.StartTimer()
	}
	b.ReportMetric(float64(msgs)/wall.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(msgs), "CPU-µs/event")
}

// procUsage reads utime+stime (clock ticks) from /proc/PID/stat and VmHWM (kB) from /proc/PID/status.
func procUsage(pid int) (ticks, hwmKB int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces:
	// state is field 3, utime field 14, stime field 15.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwmKB, err = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return utime + stime, hwmKB, err
		}
	}
	return 0, 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// writeHeapProfile writes the live heap while ingest still holds its batches.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// freeAddr returns a loopback address with a free port, for the ingest process's /metrics.
func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// selfCPU is the user+system CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
