package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/kpibridge/kpibridge/events"
)

// A message read again at the same place — its partition given back from
// the last commit after a rebalance — is neither written again nor counted
// as a duplicate: its first read is stored already. A re-send stays a
// duplicate however often it is read, and never reaches events: writing a
// re-send with other figures, or an old report after its correction, could
// put it in the place of the event stored first.
func TestReReadIsNeitherWrittenNorCounted(t *testing.T) {
	dec, err := events.NewDecoder(events.Config{EmailHashKey: []byte("test-key-0123456789"), ReportingCurrency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(Default(), nopSource{}, nopWriter{}, nil, dec, NewMetrics(nil, nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	order := func(offset int64, amount float64) kafka.Message {
		v := fmt.Sprintf(`{"event_id":"o1","type":"order.placed","occurred_at":"2026-01-10T12:00:00Z","source":"shopify",`+
			`"identity":{"crm_contact_id":"c1"},"properties":{"order_id":"o1","amount":%v,"currency":"EUR","channel":"web"}}`, amount)
		return kafka.Message{Topic: "crm.events", Partition: 2, Offset: offset, Value: []byte(v), Time: time.Now()}
	}
	stream := []kafka.Message{order(10, 100), order(15, 999)} // the order, then a re-send with other figures
	read := func(gen int32) *batch {
		b := newBatch(10)
		for _, m := range stream {
			in.add(b, &m, gen)
		}
		return b
	}
	if b := read(1); len(b.rows) != 1 || b.rows[0].Offset != 10 || len(b.dups) != 1 || b.dups[0].Offset != 15 {
		t.Fatalf("first read: rows %v, duplicates %v; want the order at 10 stored, the re-send at 15 a duplicate", b.rows, b.dups)
	}
	// The same member reads the partition again from its last commit.
	if b := read(2); len(b.rows) != 0 || len(b.dups) != 1 || b.dups[0].Offset != 15 || b.msgs != 2 || b.spans[0].last != 15 {
		t.Errorf("read again: rows %v, duplicates %v, %d messages up to %d; want no row, the re-send at 15 a duplicate again (its row replaces the first), both offsets passed",
			b.rows, b.dups, b.msgs, b.spans[0].last)
	}
}

type nopSource struct{}

func (nopSource) Fetch(ctx context.Context) (kafka.Message, int32, error) {
	<-ctx.Done()
	return kafka.Message{}, 0, ctx.Err()
}
func (nopSource) Commit(context.Context, int32, map[string]map[int]int64) error { return nil }
func (nopSource) Close() error                                                  { return nil }

type nopWriter struct{}

func (nopWriter) InsertEvents(context.Context, []Row) error             { return nil }
func (nopWriter) InsertDeadLetters(context.Context, []DeadLetter) error { return nil }
func (nopWriter) InsertDuplicates(context.Context, []Duplicate) error   { return nil }
