package transform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/store"
)

// Fence returns nil while this process may write as the transform role,
// an error when it must not (another process holds the role now).
type Fence func(context.Context) error

// ErrFenced marks a write the fence refused.
var ErrFenced = errors.New("write fenced off")

// Check asks the fence (a nil Fence always says yes); a refusal wraps ErrFenced and the fence's reason.
func (f Fence) Check(ctx context.Context) error {
	if f == nil {
		return nil
	}
	if err := f(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return nil
}

// WriteRound stores one round of the scheduler, every result computed at
// the same time, so that it is applied once and whole: kpi_values in one
// insert, then kpi_runs in one insert (each one block of one partition,
// which ClickHouse stores whole or not at all). A KPI that already has
// rows of a table at that computed_at gets none more there, so running a
// round again at the same time doubles nothing and completes a round that
// stopped between its two inserts. fence, when set, is asked right before
// each insert; when it says no, nothing more is written and its error is
// returned (wrapping ErrFenced).
func WriteRound(ctx context.Context, conn store.Conn, rs []Result, fence Fence) error {
	if len(rs) == 0 {
		return nil
	}
	at := rs[0].ComputedAt.UTC().Truncate(time.Second)
	names := make([]string, len(rs))
	for i, r := range rs {
		if !r.ComputedAt.UTC().Truncate(time.Second).Equal(at) {
			return fmt.Errorf("write KPI round: %s computed at %s, the round at %s", r.KPI, r.ComputedAt.Format(time.RFC3339), at.Format(time.RFC3339))
		}
		names[i] = r.KPI
	}
	name := fmt.Sprintf("the KPI round at %s", at.Format(time.RFC3339))
	for _, table := range []string{"kpi_values", "kpi_runs"} {
		if err := fence.Check(ctx); err != nil {
			return err
		}
		have, err := storedAt(ctx, conn, table, at, names)
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		var todo []Result
		for _, r := range rs {
			if !have[r.KPI] {
				todo = append(todo, r)
			}
		}
		if table == "kpi_values" {
			err = writeValues(ctx, conn, name, todo)
		} else {
			err = writeRuns(ctx, conn, name, todo)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// storedAt returns which of the KPIs named have rows in table at computed_at at.
func storedAt(ctx context.Context, conn store.Conn, table string, at time.Time, names []string) (map[string]bool, error) {
	in := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
	args := append([]any{at}, anys(names)...)
	rows, err := conn.Query(ctx, "SELECT DISTINCT kpi FROM "+table+" WHERE computed_at = ? AND kpi IN ("+in+")", args...)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", table, at.Format(time.RFC3339), err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", table, at.Format(time.RFC3339), err)
		}
		have[k] = true
	}
	return have, rows.Err()
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// CompleteRounds finishes the rounds computed since since whose KPI values
// were stored but whose kpi_runs rows were not (the process that computed
// them stopped between the two inserts): it writes their runs, successful,
// with the number of series stored. The active transform process runs it
// when it takes the role, before its first round; it returns how many runs
// it wrote.
func CompleteRounds(ctx context.Context, conn store.Conn, since time.Time, fence Fence) (int, error) {
	rows, err := conn.Query(ctx, `SELECT kpi, computed_at, toUInt32(count()) FROM kpi_values
WHERE computed_at >= ? AND (kpi, computed_at) NOT IN (SELECT kpi, computed_at FROM kpi_runs WHERE computed_at >= ?)
GROUP BY kpi, computed_at ORDER BY computed_at, kpi`, since, since)
	if err != nil {
		return 0, fmt.Errorf("find KPI rounds stored without their runs: %w", err)
	}
	var runs []Result
	for rows.Next() {
		var r Result
		var n uint32
		if err := rows.Scan(&r.KPI, &r.ComputedAt, &n); err != nil {
			rows.Close()
			return 0, fmt.Errorf("find KPI rounds stored without their runs: %w", err)
		}
		r.Series = make([]Series, n)
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find KPI rounds stored without their runs: %w", err)
	}
	written := 0
	for len(runs) > 0 {
		n := 1
		for n < len(runs) && runs[n].ComputedAt.Equal(runs[0].ComputedAt) {
			n++
		}
		if err := WriteRound(ctx, conn, runs[:n], fence); err != nil {
			return written, err
		}
		written += n
		runs = runs[n:]
	}
	return written, nil
}
