package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Retention says how long the tables that grow with traffic keep their
// rows; 0 keeps them forever. The events and what is derived from them
// (resolved_events, customers) are not aged out: every KPI, and any KPI
// history recomputed with `kpibridge kpis backfill`, reads them.
//
// ClickHouse 18.16 has no table TTL (it came in 19.6), so the transform
// role applies retention itself, every Interval: months entirely older
// than the cutoff are dropped as partitions, and the rest of what is older
// is deleted with an ALTER TABLE … DELETE mutation.
type Retention struct {
	// DeadLetters keeps dead_letters rows this long after failed_at.
	DeadLetters Duration `yaml:"dead_letters"`
	// Duplicates keeps duplicates rows this long after seen_at.
	Duplicates Duration `yaml:"duplicates"`
	// KPIHistory keeps kpi_values and kpi_runs rows this long after
	// computed_at, in whole months: a month goes once all of it is older.
	// The totals of a catalog baseline's day (baseline.at) are kept.
	KPIHistory Duration `yaml:"kpi_history"`
	// Interval is how often the transform role applies retention.
	Interval time.Duration `yaml:"interval"`
}

// DefaultRetention returns the documented defaults: dead letters and
// duplicates for 90 days (a quarter to find and replay a producer's
// mistake), KPI history for 400 days (the scorecard's 13-week trend and a
// month before it, and a year ago for a year-over-year look).
func DefaultRetention() Retention {
	return Retention{DeadLetters: 90 * Day, Duplicates: 90 * Day, KPIHistory: 400 * Day, Interval: 24 * time.Hour}
}

// Day is 24 hours, the unit retention is written in ("90d").
const Day = Duration(24 * time.Hour)

// MinKPIHistory is the shortest KPI history the scorecard can live with:
// its 13-week trend and the month before it.
const MinKPIHistory = Duration((13*7 + 31) * 24 * time.Hour)

// Validate names every wrong field, prefixed with "retention.".
func (r Retention) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    Duration
	}{{"dead_letters", r.DeadLetters}, {"duplicates", r.Duplicates}} {
		if f.d != 0 && f.d < Day {
			errs = append(errs, fmt.Errorf("retention.%s: must be 0 (keep forever) or at least 1d, got %s", f.name, f.d))
		}
	}
	if r.KPIHistory != 0 && r.KPIHistory < MinKPIHistory {
		errs = append(errs, fmt.Errorf("retention.kpi_history: must be 0 (keep forever) or at least %s (the scorecard reads 13 weeks and a month back), got %s", MinKPIHistory, r.KPIHistory))
	}
	if r.Interval < time.Minute {
		errs = append(errs, fmt.Errorf("retention.interval: must be >= 1m, got %s", r.Interval))
	}
	return errors.Join(errs...)
}

// Duration is a retention period, written as a Prometheus duration: "90d",
// "400d", "2160h".
type Duration time.Duration

// UnmarshalYAML decodes a Prometheus duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 90d or 2160h, got %q", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML encodes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String writes whole days as "90d", anything else as Go does.
func (d Duration) String() string {
	if d != 0 && d%Day == 0 {
		return fmt.Sprintf("%dd", d/Day)
	}
	return time.Duration(d).String()
}

// KeptDay is a KPI total that outlives the KPI history: the day a catalog
// baseline (baseline.at) reads its value from.
type KeptDay struct {
	KPI string
	Day time.Time
}

// Aged is what retention removed from one table.
type Aged struct {
	Table  string
	Cutoff time.Time // rows before it went
	// Partitions are the months dropped whole; Rows counts every row
	// removed, theirs included.
	Partitions []string
	Rows       uint64
}

// agedTable is one table's retention.
type agedTable struct {
	table, column string
	keep          Duration
	monthly       bool // remove whole months only
	baselines     bool // keep the totals of KeptDays
}

// retentionTables are the tables retention applies to, partitioned by
// toYYYYMM(column).
func (r Retention) tables() []agedTable {
	return []agedTable{
		{table: "dead_letters", column: "failed_at", keep: r.DeadLetters},
		{table: "duplicates", column: "seen_at", keep: r.Duplicates},
		{table: "kpi_values", column: "computed_at", keep: r.KPIHistory, monthly: true, baselines: true},
		{table: "kpi_runs", column: "computed_at", keep: r.KPIHistory, monthly: true},
	}
}

// AgedQuery is the condition, with its arguments, that selects the rows of
// one table that retention removes at now ("" when the table keeps
// everything): older than the cutoff, and not a kept baseline day.
func (r Retention) AgedQuery(table string, keep []KeptDay, now time.Time) (cond Query, cutoff time.Time) {
	for _, t := range r.tables() {
		if t.table != table || t.keep == 0 {
			continue
		}
		cutoff = now.UTC().Add(-time.Duration(t.keep)).Truncate(time.Second)
		if t.monthly {
			cutoff = time.Date(cutoff.Year(), cutoff.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		cond = Query{SQL: QuoteIdent(t.column) + " < ?", Args: []any{cutoff}}
		if t.baselines && len(keep) > 0 {
			days := make([]string, len(keep))
			for i, k := range keep {
				days[i] = k.KPI + " " + k.Day.UTC().Format("2006-01-02")
			}
			cond.SQL += " AND NOT (dimension = '' AND has(?, concat(kpi, ' ', toString(toDate(" + QuoteIdent(t.column) + ")))))"
			cond.Args = append(cond.Args, days)
		}
		return cond, cutoff
	}
	return Query{}, time.Time{}
}

var monthPartition = regexp.MustCompile(`^\d{6}$`)

// ApplyRetention removes from target's database, which conn is connected
// to, what r no longer keeps at now, but the baseline days in keep, and
// returns what it removed from each table that lost rows. A table's months
// older than its cutoff go as partitions (cheap: no data is rewritten);
// the older rows left in the cutoff's month go with a mutation, which it
// waits for. Running it again removes nothing more until time moves on.
//
// On a cluster a sharded table's partitions and rows go from its
// <table>_local ON CLUSTER, on every shard, and a table replicated whole
// loses them on conn's server, whence replication carries the change to
// every node (Alter); ApplyRetention returns once every node has applied
// it (waitDropped, WaitMutations).
func ApplyRetention(ctx context.Context, conn Conn, target Target, r Retention, keep []KeptDay, now time.Time) ([]Aged, error) {
	var out []Aged
	for _, t := range r.tables() {
		cond, cutoff := r.AgedQuery(t.table, keep, now)
		if cond.SQL == "" {
			continue
		}
		a := Aged{Table: t.table, Cutoff: cutoff}
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+t.table+" WHERE "+cond.SQL, cond.Args...).Scan(&a.Rows); err != nil {
			return out, fmt.Errorf("retention of %s: %w", t.table, err)
		}
		if a.Rows == 0 {
			continue
		}
		months, err := agedMonths(ctx, conn, target, t.table, cutoff)
		if err != nil {
			return out, fmt.Errorf("retention of %s: partitions: %w", t.table, err)
		}
		for _, p := range months {
			month, _ := strconv.Atoi(p)
			if t.baselines && len(keep) > 0 {
				// A month holding a baseline's day loses the rest by mutation.
				var kept uint64
				if err := conn.QueryRow(ctx, "SELECT count() FROM "+t.table+" WHERE toYYYYMM("+QuoteIdent(t.column)+") = ? AND NOT ("+cond.SQL+")",
					append([]any{uint32(month)}, cond.Args...)...).Scan(&kept); err != nil {
					return out, fmt.Errorf("retention of %s: %w", t.table, err)
				}
				if kept > 0 {
					continue
				}
			}
			if err := Alter(ctx, conn, target, t.table, Query{SQL: "DROP PARTITION " + p}); err != nil {
				return out, fmt.Errorf("retention of %s: drop partition %s: %w", t.table, p, err)
			}
			a.Partitions = append(a.Partitions, p)
		}
		if err := waitDropped(ctx, conn, target, t.table, a.Partitions); err != nil {
			return out, fmt.Errorf("retention of %s: %w", t.table, err)
		}
		var left uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+t.table+" WHERE "+cond.SQL, cond.Args...).Scan(&left); err != nil {
			return out, fmt.Errorf("retention of %s: %w", t.table, err)
		}
		if left > 0 {
			q := Query{SQL: "DELETE WHERE " + cond.SQL, Args: cond.Args}
			if err := Mutate(ctx, conn, target, t.table, q); err != nil {
				return out, fmt.Errorf("retention of %s: delete rows before %s: %w", t.table, cutoff.Format(time.RFC3339), err)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// agedMonths lists table's partitions, months, older than cutoff's month:
// on one server those of conn's server; on a cluster those of every node,
// since each shard holds its own.
func agedMonths(ctx context.Context, conn Conn, target Target, table string, cutoff time.Time) ([]string, error) {
	seen := map[string]bool{}
	err := eachNode(ctx, conn, target, func(node Conn) error {
		parts, err := node.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active AND partition < ? ORDER BY partition",
			target.Database, target.storage(table), cutoff.Format("200601"))
		if err != nil {
			return err
		}
		defer parts.Close()
		for parts.Next() {
			var p string
			if err := parts.Scan(&p); err != nil {
				return err
			}
			if monthPartition.MatchString(p) {
				seen[p] = true
			}
		}
		return parts.Err()
	})
	return slices.Sorted(maps.Keys(seen)), err
}
