package ingest_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/internal/testenv"
)

// BenchmarkInsertEvents writes batches of 50 000 rows (the default
// batch.max_rows) of a realistic shape; ns/op is per batch, and the
// client-side cost per row is what this file's writer controls.
func BenchmarkInsertEvents(b *testing.B) {
	_, conn := testenv.MigratedClickHouse(b)
	ctx := context.Background()
	const n = 50000
	rows := make([]ingest.Row, n)
	at := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for i := range rows {
		rows[i] = ingest.Row{Event: events.Event{EventID: fmt.Sprintf("evt_%016x", i), Type: events.TypeWebVisit, OccurredAt: at.Add(time.Duration(i) * time.Second),
			Source: "google_analytics", AnonymousID: fmt.Sprintf("anon_%016x", i%7000), CampaignID: "cmp_0042", Channel: "paid_search",
			URL: "https://shop.example.com/products/" + fmt.Sprint(i%300), Referrer: "https://www.google.com/",
			Properties: []byte(fmt.Sprintf(`{"url":"https://shop.example.com/products/%d","referrer":"https://www.google.com/"}`, i%300))},
			Topic: "campaign.events", Partition: i % 6, Offset: int64(i)}
	}
	w := ingest.NewClickHouseWriter(conn, 16<<10)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		if err := w.InsertEvents(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N*n), "client-CPU-ns/row")
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
