package transform_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/generate"
	"github.com/kpibridge/kpibridge/identity"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
	"github.com/kpibridge/kpibridge/transform"
)

// storeSink writes generated valid events straight to ClickHouse (no Kafka:
// this benchmark is about the transform, not ingest).
type storeSink struct {
	dec  *events.Decoder
	w    *ingest.ClickHouseWriter
	rows []ingest.Row
}

func (s *storeSink) Write(ctx context.Context, recs []generate.Record) error {
	for _, r := range recs {
		if !r.Valid || r.Duplicate {
			continue
		}
		ev, err := s.dec.Decode(r.Value)
		if err != nil {
			return err
		}
		s.rows = append(s.rows, ingest.Row{Event: ev, Topic: r.Topic})
	}
	if len(s.rows) >= 200_000 {
		return s.flush(ctx)
	}
	return nil
}

func (s *storeSink) flush(ctx context.Context) error {
	err := s.w.InsertEvents(ctx, s.rows)
	s.rows = s.rows[:0]
	return err
}

func (s *storeSink) Close() error { return s.flush(context.Background()) }

// benchEnd is the last generated day of the refresh data set.
var benchEnd = time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)

// refreshDataset opens database bench_refresh_<N> holding
// KPIBRIDGE_BENCH_EVENTS generated events (default 10 M), building it first
// when it is missing, and brings the identity graph up to date (the first
// time, a full build of identity_map, resolved_events and customers).
func refreshDataset(b *testing.B) (store.Conn, store.Target) {
	dsn := os.Getenv("KPIBRIDGE_TEST_CLICKHOUSE_DSN")
	if dsn == "" {
		b.Skip("KPIBRIDGE_TEST_CLICKHOUSE_DSN is not set: run make bench")
	}
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("KPIBRIDGE_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	base, err := store.ParseDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	target, err := base.WithDatabase(fmt.Sprintf("bench_refresh_%d", n))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Migrate(ctx, target, nil); err != nil {
		b.Fatal(err)
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	var have uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&have); err != nil {
		b.Fatal(err)
	}
	end := benchEnd
	if have < uint64(n)*9/10 {
		// Start over: the transform's tables describe the old events.
		for _, t := range []string{"events", "identity_map", "customers", "customer_merges", "resolved_events", "transform_state", "kpi_values", "kpi_runs"} {
			if err := conn.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
				b.Fatal(err)
			}
		}
		def := config.Default()
		dec, err := events.NewDecoder(events.Config{EmailHashKey: []byte("bench-key-0123456789"), ReportingCurrency: def.Events.ReportingCurrency,
			Rates: def.Events.CurrencyRates, Now: func() time.Time { return end.Add(24 * time.Hour) }})
		if err != nil {
			b.Fatal(err)
		}
		gcfg := generate.DefaultConfig()
		// The generator yields about 11.7 valid events per customer over 90 days.
		gcfg.Customers, gcfg.Days, gcfg.End, gcfg.InvalidRate, gcfg.DuplicateRate = n*10/117, 90, end, 0, 0
		gcfg.Now = end.Add(24 * time.Hour)
		start := time.Now()
		sum, err := generate.Run(ctx, gcfg, &storeSink{dec: dec, w: ingest.NewClickHouseWriter(conn, 1024)}, os.Stderr)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %d generated events for %d customers in %s", sum.Valid, gcfg.Customers, time.Since(start).Round(time.Second))
		_ = conn.Exec(ctx, "OPTIMIZE TABLE events FINAL")
	}
	start := time.Now()
	st, err := identity.NewResolver(conn, nil).Update(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("identity update: %+v in %s", st, time.Since(start).Round(time.Millisecond))
	return conn, target
}

// BenchmarkDefaultCatalogRefresh times one refresh of every default KPI over
// the refresh data set. Target: ≤ 5 s on the 2-core machine at 10 M events.
func BenchmarkDefaultCatalogRefresh(b *testing.B) {
	conn, _ := refreshDataset(b)
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		b.Fatal(err)
	}
	now := benchEnd.Add(23 * time.Hour)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	for range b.N {
		s, err := transform.NewScheduler(transform.DefaultConfig(), cat, conn, log)
		if err != nil {
			b.Fatal(err)
		}
		s.RunDue(ctx, now)
		for _, k := range s.Snapshot().KPIs {
			if k.Last.Err != nil {
				b.Fatalf("%s: %v", k.KPI.Name, k.Last.Err)
			}
			if testing.Verbose() {
				b.Logf("%-26s %6d ms  %d series", k.KPI.Name, k.Last.Duration.Milliseconds(), len(k.Last.Series))
			}
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/refresh")
}

// BenchmarkIdentityUpdate times the steady-state identity update over the
// refresh data set: each iteration stores 20,000 new events of known
// customers (copies of the last day's, under new ids) and updates identity,
// resolved_events and the 360 of the customers they touch.
func BenchmarkIdentityUpdate(b *testing.B) {
	conn, _ := refreshDataset(b)
	ctx := context.Background()
	r := identity.NewResolver(conn, nil)
	cols := strings.Join(identity.ResolvedColumns, ", ")
	copyCols := strings.Replace(strings.Replace(cols, "event_id", "concat('inc-', toString(?), '-', event_id)", 1), "ingested_at", "now()", 1)
	// The copies stay: deleting them would rewrite the data set's parts
	// (a mutation) under the next benchmark. They add 0.2 % per iteration.
	addEvents := func() {
		if err := conn.Exec(ctx, "INSERT INTO events ("+cols+") SELECT "+copyCols+" FROM events WHERE occurred_at >= ? AND NOT startsWith(event_id, 'inc-') LIMIT 20000",
			time.Now().UnixNano(), benchEnd.Add(-24*time.Hour)); err != nil {
			b.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // past the watermark's second
	}
	// The first update of a process checks every event: timed on its own.
	addEvents()
	start := time.Now()
	st, err := r.Update(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("first update of the process (full check): %+v in %s", st, time.Since(start).Round(time.Millisecond))
	var total time.Duration
	for i := range b.N {
		b.StopTimer()
		addEvents()
		b.StartTimer()
		start := time.Now()
		st, err := r.Update(ctx)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		if testing.Verbose() {
			b.Logf("update %d: %+v in %s", i, st, time.Since(start).Round(time.Millisecond))
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/update")
}

// BenchmarkBackfill times `kpibridge kpis backfill` of 90 days of daily
// history for the default catalog over the refresh data set (the days
// the data set covers), run as its own process so that its peak memory
// is its own. The history is emptied first, so every day is computed.
// Target: ≤ 5 minutes, memory bounded.
func BenchmarkBackfill(b *testing.B) {
	conn, target := refreshDataset(b)
	ctx := context.Background()
	bin := testenv.Binary(b)
	from := benchEnd.AddDate(0, 0, -89)
	var rss int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, t := range []string{"kpi_values", "kpi_runs"} {
			if err := conn.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		cmd := exec.Command(bin, "kpis", "backfill", "--clickhouse", target.DSN, "--from", from.Format(time.DateOnly), "--to", benchEnd.Format(time.DateOnly))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak := peakRSS(cmd.Process.Pid)
		err := cmd.Wait()
		rss = max(rss, <-peak)
		if err != nil {
			b.Fatalf("kpis backfill: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "backfilled 90 points in time") || !strings.Contains(out.String(), " 0 failed") {
			b.Fatalf("kpis backfill did not compute 90 days without failures:\n%s", out.String())
		}
		if testing.Verbose() {
			b.Logf("%s", out.String())
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/backfill")
	b.ReportMetric(sec/90, "s/day")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
}

// peakRSS follows a child process's peak resident set size (VmHWM, in
// bytes) until it exits, then sends it. The rusage of a child cannot say:
// Linux counts in it the parent's size at fork time.
func peakRSS(pid int) <-chan int64 {
	ch := make(chan int64, 1)
	go func() {
		var peak int64
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				break // exited
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					peak = max(peak, kb<<10)
				}
			}
			if strings.Contains(string(b), "State:\tZ") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		ch <- peak
	}()
	return ch
}
