package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kpibridge/kpibridge/internal/testenv"
	"github.com/kpibridge/kpibridge/store"
)

// Errors of a wrong schema, of data of the wrong type and of a query the
// server cannot run are permanent, each with what to do; a network error
// is not.
func TestPermanentErrors(t *testing.T) {
	target := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.CreateDatabase(ctx, target); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// events.amount as text, as if changed by hand.
	if err := conn.Exec(ctx, "CREATE TABLE events (event_id String, amount String) ENGINE = MergeTree ORDER BY event_id"); err != nil {
		t.Fatal(err)
	}
	insert := func(cols string, vals ...any) error {
		b, err := conn.PrepareBatch(ctx, "INSERT INTO events ("+cols+")")
		if err != nil {
			return err
		}
		if err := b.Append(vals...); err != nil {
			_ = b.Abort()
			return err
		}
		return b.Send()
	}
	for _, tc := range []struct {
		name string
		err  error
		hint string
	}{
		{"type mismatch", insert("event_id, amount", "e1", 12.5), "column's type differs"},
		{"unknown column", insert("event_id, revenue", "e1", 12.5), "kpibridge migrate"},
		{"unknown table", conn.Exec(ctx, "INSERT INTO no_such_table VALUES (1)"), "kpibridge migrate"},
		{"syntax", conn.Exec(ctx, "SELEKT 1"), "cannot parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("no error")
			}
			hint, ok := store.Permanent(tc.err)
			if !ok || !strings.Contains(hint, tc.hint) {
				t.Errorf("Permanent(%v) = %q, %v; want a permanent error saying %q", tc.err, hint, ok, tc.hint)
			}
		})
	}
	for _, transient := range []error{context.DeadlineExceeded, fmt.Errorf("write: %w", errors.New("dial tcp 127.0.0.1:9000: connect: connection refused"))} {
		if hint, ok := store.Permanent(transient); ok {
			t.Errorf("Permanent(%v) = %q, want transient", transient, hint)
		}
	}
}
