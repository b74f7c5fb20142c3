package ingestbench_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/config"
	"github.com/kpibridge/kpibridge/ingest"
	"github.com/kpibridge/kpibridge/pipeline"
)

// BenchmarkKafkaClientFloor measures, over the same ~1 M-message stream in a
// `kpibridge broker` process, the CPU this process spends only reading it
// with kafka-go, before any storage:
//
//   - conn: kafka-go's lowest-level reader (a Conn per partition, ReadBatch
//     and ReadMessage), no consumer group;
//   - reader: the consumer-group source ingest uses (Fetch, no commit);
//   - reader+decode: that and the event decoder, the least ingest can do.
//
// Together with the server's own cost of storing the stream, this is what
// bounds the ingest targets on a given machine (see docs/OPERATIONS.md).
func BenchmarkKafkaClientFloor(b *testing.B) {
	f := load(b)
	total := 0
	for _, ends := range f.ends {
		for _, end := range ends {
			total += int(end)
		}
	}
	measure := func(b *testing.B, read func(b *testing.B, i int) int) {
		var cpu time.Duration
		msgs := 0
		for i := range b.N {
			cpu0 := selfCPU()
			msgs += read(b, i)
			cpu += selfCPU() - cpu0
		}
		if msgs != total*b.N {
			b.Fatalf("read %d messages, want %d", msgs, total*b.N)
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(msgs), "CPU-µs/msg")
	}
	b.Run("conn", func(b *testing.B) {
		measure(b, func(b *testing.B, _ int) int {
			n := 0
			for topic, ends := range f.ends {
				for p, end := range ends {
					conn, err := kafka.DialLeader(context.Background(), "tcp", f.broker, topic, p)
					if err != nil {
						b.Fatal(err)
					}
					for off := int64(0); off < end; {
						if _, err := conn.Seek(off, kafka.SeekAbsolute); err != nil {
							b.Fatal(err)
						}
						_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
						batch := conn.ReadBatch(1, 4<<20)
						for {
							m, err := batch.ReadMessage()
							if err != nil {
								break
							}
							off = m.Offset + 1
							n++
						}
						_ = batch.Close()
					}
					_ = conn.Close()
				}
			}
			return n
		})
	})
	group := func(b *testing.B, i int, each func(kafka.Message)) int {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		r, err := ingest.NewKafkaSource(ingest.SourceConfig{Brokers: []string{f.broker}, Topics: topics,
			GroupID: b.Name() + "-" + time.Now().Format("150405.000000"), SessionTimeout: ingest.Default().SessionTimeout, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		for n := 0; ; n++ {
			if n == total {
				return n
			}
			m, _, err := r.Fetch(ctx)
			if err != nil {
				b.Fatalf("after %d messages: %v", n, err)
			}
			each(m)
		}
	}
	b.Run("reader", func(b *testing.B) {
		measure(b, func(b *testing.B, i int) int { return group(b, i, func(kafka.Message) {}) })
	})
	b.Run("reader+decode", func(b *testing.B) {
		dec, err := pipeline.Decoder(config.Default(), func(string) string { return "" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func(b *testing.B, i int) int {
			return group(b, i, func(m kafka.Message) { _, _ = dec.Decode(m.Value) })
		})
	})
}
