// Package identity owns the one view of the customer: the identity graph
// that links every key a person is known by (CRM contact, hashed email,
// anonymous device), resolved_events (each valid event under its customer),
// the customer merges, and the customer 360 rows built from them.
package identity

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/store"
)

// Resolver keeps the identity graph: every identity key (crm:<id>,
// email:<hmac>, anon:<id>) belongs to one customer, and keys seen together on
// one event belong to the same customer, transitively. A visit's anonymous id,
// the email of the form it later filled, and the CRM contact with that email
// are one customer.
//
// The canonical customer id of a group is its smallest CRM key, else its
// smallest email key, else its smallest anonymous key — the same whatever
// order events arrive in. Resolution is incremental: each Update reads only
// events ingested since the last one (with an overlap, since several ingest
// processes write concurrently), and rewrites only the groups that changed.
type Resolver struct {
	conn store.Conn
	log  *slog.Logger

	parent  map[string]string   // union-find forest
	members map[string][]string // root → every key of its group
	stored  map[string]string   // key → customer_id as last written to identity_map
	former  map[string]string   // former customer id → customer as last written to customer_merges

	watermark     time.Time // ingested_at up to which events were read
	loaded        bool
	distributed   bool      // events is a Distributed table: the schema is on a cluster
	erasure       string    // the erasure mark of transform_state when loaded (Forget)
	lastRun       uint64    // the last update run that completed
	lastReadAt    time.Time // when that run read the newest ingested_at
	lastFullCheck time.Time // read time of the last update that checked every event
	// Overlap re-reads events ingested this long before the last update's
	// read: what an insert in flight then, or a clock between hosts, may lag.
	Overlap time.Duration
	// Now is the clock the read time comes from (time.Now).
	Now func() time.Time
	// FullCheckEvery: an update this long after the last full check (and
	// the first of a process) checks every event, not only the window's.
	FullCheckEvery time.Duration
	// Settings are the KPI catalog's: the attribution model, its lookback
	// and the channel classes the customer 360 computes. When they differ
	// from those the stored customers were computed with, the next update
	// recomputes every customer.
	Settings       catalog.Settings
	storedSettings string // fingerprint the customers table was computed with
	// Fence, when set, is asked before each step of an update that writes
	// (staging, links, resolved events, customers, progress): an update
	// stops with its error, leaving what the next update of the active
	// transform process finishes. Several transform processes keep one
	// resolver writing at a time with it (package leader).
	Fence func(context.Context) error
	// FullRebuildAbove: when more customers than this changed, the customers
	// table is recomputed whole instead of by id list. Either way every row
	// of resolved_events is read; a full rebuild also aggregates and writes
	// every customer, so it pays only when most of them changed (the first
	// build, a large back-fill).
	FullRebuildAbove int
}

// NewResolver returns a resolver over conn; call Update to bring it up to date.
func NewResolver(conn store.Conn, logger *slog.Logger) *Resolver {
	return &Resolver{conn: conn, log: logger, parent: map[string]string{}, members: map[string][]string{}, stored: map[string]string{}, former: map[string]string{},
		Overlap: 5 * time.Minute, FullRebuildAbove: 100_000, Now: time.Now, FullCheckEvery: time.Hour, Settings: catalog.DefaultSettings()}
}

// rank orders key kinds for the canonical id: CRM first, then email, then anonymous.
func rank(key string) int {
	switch {
	case strings.HasPrefix(key, "crm:"):
		return 0
	case strings.HasPrefix(key, "email:"):
		return 1
	}
	return 2
}

func less(a, b string) bool {
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra < rb
	}
	return a < b
}

func (r *Resolver) find(k string) string {
	p, ok := r.parent[k]
	if !ok {
		r.parent[k] = k
		r.members[k] = []string{k}
		return k
	}
	for p != k {
		gp := r.parent[p]
		r.parent[k] = gp
		k, p = p, gp
	}
	return k
}

// union joins the groups of a and b and returns the new root.
func (r *Resolver) union(a, b string) string {
	ra, rb := r.find(a), r.find(b)
	if ra == rb {
		return ra
	}
	if len(r.members[ra]) < len(r.members[rb]) {
		ra, rb = rb, ra
	}
	r.parent[rb] = ra
	r.members[ra] = append(r.members[ra], r.members[rb]...)
	delete(r.members, rb)
	return ra
}

func (r *Resolver) canonical(root string) string {
	best := ""
	for _, m := range r.members[root] {
		if best == "" || less(m, best) {
			best = m
		}
	}
	return best
}

// load reads identity_map, customer_merges, the progress of the last
// completed update and the erasure mark: the state a restart resumes from.
func (r *Resolver) load(ctx context.Context) error {
	mark, err := erasureMark(ctx, r.conn)
	if err != nil {
		return err
	}
	r.erasure = mark
	var engine string
	if err := r.conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'events'").Scan(&engine); err != nil {
		return fmt.Errorf("identity: read the engine of events: %w", err)
	}
	r.distributed = engine == "Distributed" // a cluster (store: migrate --cluster)
	rows, err := r.conn.Query(ctx, "SELECT identifier, customer_id FROM identity_map FINAL")
	if err != nil {
		return fmt.Errorf("load identity_map: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, cust string
		if err := rows.Scan(&id, &cust); err != nil {
			return fmt.Errorf("load identity_map: %w", err)
		}
		r.union(cust, id)
		r.stored[id] = cust
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load identity_map: %w", err)
	}
	mrows, err := r.conn.Query(ctx, "SELECT former, customer_id FROM customer_merges FINAL")
	if err != nil {
		return fmt.Errorf("load customer_merges: %w", err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var former, cust string
		if err := mrows.Scan(&former, &cust); err != nil {
			return fmt.Errorf("load customer_merges: %w", err)
		}
		r.former[former] = cust
	}
	if err := mrows.Err(); err != nil {
		return fmt.Errorf("load customer_merges: %w", err)
	}
	// identity_progress is "<watermark RFC3339> <last completed run, 20
	// digits> <its read time>", so that of two saved in one second the later
	// sorts last. A database without it (new, or from before
	// resolved_events) starts from the first event.
	// identity_settings is "<20-digit sequence> <fingerprint>": of two saved
	// in one second (updated_at has whole seconds), the later sorts last.
	var settings string
	if err := r.conn.QueryRow(ctx, "SELECT argMax(value, (updated_at, value)) FROM transform_state WHERE key = 'identity_settings'").Scan(&settings); err != nil {
		return fmt.Errorf("load identity settings: %w", err)
	}
	if _, fp, ok := strings.Cut(settings, " "); ok {
		r.storedSettings = fp
	}
	var progress string
	err = r.conn.QueryRow(ctx, "SELECT argMax(value, (updated_at, value)) FROM transform_state WHERE key = 'identity_progress'").Scan(&progress)
	if err != nil {
		return fmt.Errorf("load identity progress: %w", err)
	}
	if progress != "" {
		var wm, readAt string
		if _, err := fmt.Sscanf(progress, "%s %d %s", &wm, &r.lastRun, &readAt); err != nil {
			return fmt.Errorf("identity progress %q: %w", progress, err)
		}
		if r.watermark, err = time.Parse(time.RFC3339, wm); err != nil {
			return fmt.Errorf("identity progress %q: %w", progress, err)
		}
		if r.lastReadAt, err = time.Parse(time.RFC3339Nano, readAt); err != nil {
			return fmt.Errorf("identity progress %q: %w", progress, err)
		}
	}
	r.loaded = true
	return nil
}

// UpdateStats says what one Update did.
type UpdateStats struct {
	Keys       int // identity keys read from new events
	Changed    int // keys whose customer changed (or are new)
	Customers  int // customers recomputed
	Merged     int // customers merged into another
	FullRebuld bool
	// Time spent staging new events, linking their keys (reading them and
	// writing merges and identity_map), resolving them, and recomputing customers.
	Stage, Link, Resolve, Recompute time.Duration
}

// Update brings the identity graph up to date: it stages the events
// ingested since the last update that resolved_events does not hold, links
// their keys (customer_merges, customers tombstones, identity_map), moves
// them to resolved_events under their customer, recomputes the 360 of the
// customers they touch, and saves its progress.
func (r *Resolver) Update(ctx context.Context) (UpdateStats, error) {
	var st UpdateStats
	started := time.Now()
	// No querySettings here: the resolver filters FINAL reads on their sorting
	// key only (safe in PREWHERE), and its scans of events by ingested_at
	// need PREWHERE not to read every column of every event.
	if r.loaded {
		// A customer forgotten since the graph was loaded is still in its
		// memory: start over from the tables, which no longer hold them.
		// So is one another transform process updated since this one did
		// (the transform role moved to it and back).
		mark, err := erasureMark(ctx, r.conn)
		if err != nil {
			return st, err
		}
		run, err := r.storedRun(ctx)
		if err != nil {
			return st, err
		}
		why := ""
		switch {
		case mark != r.erasure:
			why = "a customer was forgotten"
		case run != r.lastRun:
			why = "another transform process updated it since this one last did"
		}
		if why != "" {
			r.parent, r.members, r.stored, r.former = map[string]string{}, map[string][]string{}, map[string]string{}, map[string]string{}
			r.loaded = false
			if r.log != nil {
				r.log.Info("identity graph reloaded: " + why)
			}
		}
	}
	if !r.loaded {
		if err := r.load(ctx); err != nil {
			return st, err
		}
	}
	readAt := r.Now().UTC()
	var upper time.Time
	if err := r.conn.QueryRow(ctx, "SELECT max(ingested_at) FROM events").Scan(&upper); err != nil {
		return st, fmt.Errorf("identity: read newest ingested_at: %w", err)
	}
	upper = upper.UTC()
	resettle := r.storedSettings != r.Settings.Fingerprint()
	// Equal is not up to date: more events may have been stored within the
	// watermark's second (ingested_at has whole seconds) after it was read.
	if upper.Before(r.watermark) || upper.Unix() <= 0 {
		if resettle {
			if err := r.fence(ctx); err != nil {
				return st, err
			}
			st.FullRebuld = true
			return st, r.recomputeCustomers(ctx, nil, true, time.Now().UTC())
		}
		return st, nil
	}
	// Every event visible at the last update's read with ingested_at up to
	// its watermark was resolved then. One not yet visible was stamped at
	// most an insert's duration (plus clock skew between hosts) before that
	// read: Overlap covers both. Anchoring on the read time rather than the
	// watermark keeps a bulk load, whose events share a minute of
	// ingested_at, from being re-checked by every later update.
	from := r.watermark.Add(-r.Overlap)
	if !r.lastReadAt.IsZero() {
		from = r.lastReadAt.Add(-r.Overlap)
	}
	// Now and then, and first thing after a start, every event is checked
	// instead: whatever a window missed (an insert slower than Overlap, a
	// clock further off, a bulk load with old ingest times) is resolved then.
	full := r.watermark.Unix() <= 0 || readAt.Sub(r.lastFullCheck) >= r.FullCheckEvery
	if full {
		from = time.Unix(0, 0).UTC()
	}
	// 1. The window's events that resolved_events does not hold yet are
	// frozen in resolve_staging: one stored while this update runs waits
	// for the next one whole, so every event is resolved after its keys
	// have been linked.
	run := max(uint64(time.Now().UnixNano()), r.lastRun+1) // increasing even if the clock steps back
	step := time.Now()
	lap := func(d *time.Duration) { *d, step = time.Since(step), time.Now() }
	if err := r.fence(ctx); err != nil {
		return st, err
	}
	if err := r.conn.Exec(ctx, "TRUNCATE TABLE resolve_staging"); err != nil {
		return st, fmt.Errorf("identity: empty resolve_staging: %w", err)
	}
	q := StageEventsQuery(from, upper, full, r.distributed)
	if err := r.conn.Exec(ctx, q.SQL, q.Args...); err != nil {
		return st, fmt.Errorf("identity: stage events ingested %s to %s: %w", from.Format(time.RFC3339), upper.Format(time.RFC3339), err)
	}
	lap(&st.Stage)
	// 2. Their keys, and those of rows an update that did not complete
	// resolved (their customers may not have been recomputed).
	rows, err := r.conn.Query(ctx, `SELECT DISTINCT crm_contact_id, email_hash, anonymous_id FROM resolve_staging
UNION ALL SELECT DISTINCT crm_contact_id, email_hash, anonymous_id FROM resolved_events WHERE resolve_run > ?`, r.lastRun)
	if err != nil {
		return st, fmt.Errorf("identity: read keys of new events: %w", err)
	}
	touched := map[string]bool{} // roots of groups with new keys or links
	for rows.Next() {
		var crm, email, anon string
		if err := rows.Scan(&crm, &email, &anon); err != nil {
			rows.Close()
			return st, fmt.Errorf("identity: %w", err)
		}
		keys := identityKeys(crm, email, anon)
		st.Keys += len(keys)
		for i, k := range keys {
			root := r.find(k)
			if i > 0 {
				root = r.union(keys[0], k)
			}
			touched[root] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("identity: read keys of new events: %w", err)
	}
	// Roots may have been merged away since they were marked: keep live roots.
	changedCustomers := map[string]bool{}
	var mapIDs, mapCust []string
	var tombstones [][2]string // old customer id, survivor
	var merges [][2]string     // former customer id, the customer it belongs to now
	for root := range touched {
		root = r.find(root)
		canon := r.canonical(root)
		if changedCustomers[canon] {
			continue
		}
		changedCustomers[canon] = true
		for _, m := range r.members[root] {
			old, ok := r.stored[m]
			// A key that ever was a customer id may label rows of
			// resolved_events: point it at the customer it belongs to now.
			f, wasFormer := r.former[m]
			if labelled := (ok && old == m) || wasFormer; labelled && m != canon && f != canon {
				merges = append(merges, [2]string{m, canon})
			}
			if ok && old == canon {
				continue
			}
			if ok && old != canon && old == m { // m was a canonical id itself: that customer is merged
				tombstones = append(tombstones, [2]string{old, canon})
			}
			mapIDs = append(mapIDs, m)
			mapCust = append(mapCust, canon)
		}
	}
	st.Changed = len(mapIDs)
	st.Merged = len(tombstones)
	now := time.Now().UTC()
	// Merges and tombstones first: they are derived from the stored map, so
	// after a crash before the map is written a restart derives and writes
	// them again (writing them twice is harmless).
	if err := r.fence(ctx); err != nil {
		return st, err
	}
	if err := r.writeMerges(ctx, merges, now); err != nil {
		return st, err
	}
	if err := r.writeTombstones(ctx, tombstones, now); err != nil {
		return st, err
	}
	for _, m := range merges {
		r.former[m[0]] = m[1]
	}
	if err := r.writeMap(ctx, mapIDs, mapCust, now); err != nil {
		return st, err
	}
	for i, id := range mapIDs {
		r.stored[id] = mapCust[i]
	}
	lap(&st.Link)
	// 3. The staged events join resolved_events under their customer.
	q = ResolveStagedQuery(run)
	if err := r.fence(ctx); err != nil {
		return st, err
	}
	if err := r.conn.Exec(ctx, q.SQL, q.Args...); err != nil {
		return st, fmt.Errorf("identity: resolve staged events: %w", err)
	}
	lap(&st.Resolve)
	ids := make([]string, 0, len(changedCustomers))
	for c := range changedCustomers {
		ids = append(ids, c)
	}
	st.Customers = len(ids)
	st.FullRebuld = len(ids) > r.FullRebuildAbove || resettle
	if err := r.fence(ctx); err != nil {
		return st, err
	}
	if err := r.recomputeCustomers(ctx, ids, st.FullRebuld, now); err != nil {
		return st, err
	}
	lap(&st.Recompute)
	if err := r.fence(ctx); err != nil {
		return st, err
	}
	if err := r.saveWatermark(ctx, upper, run, readAt, now); err != nil {
		return st, err
	}
	r.watermark, r.lastRun, r.lastReadAt = upper, run, readAt
	if full {
		r.lastFullCheck = readAt
	}
	if r.log != nil && (st.Changed > 0 || st.Customers > 0) {
		r.log.Info("identity graph updated", "keys_read", st.Keys, "mappings_written", st.Changed, "customers_recomputed", st.Customers,
			"took", time.Since(started).Round(time.Millisecond),
			"customers_merged", st.Merged, "full_rebuild", st.FullRebuld, "watermark", upper.Format(time.RFC3339))
	}
	return st, nil
}

// fence asks Fence, when set, whether this resolver may write now.
func (r *Resolver) fence(ctx context.Context) error {
	if r.Fence == nil {
		return nil
	}
	if err := r.Fence(ctx); err != nil {
		return fmt.Errorf("identity update stopped before writing: %w", err)
	}
	return nil
}

// storedRun is the run of the last update that completed, as stored in
// transform_state (0 before the first).
func (r *Resolver) storedRun(ctx context.Context) (uint64, error) {
	var progress string
	if err := r.conn.QueryRow(ctx, "SELECT argMax(value, (updated_at, value)) FROM transform_state WHERE key = 'identity_progress'").Scan(&progress); err != nil {
		return 0, fmt.Errorf("read identity progress: %w", err)
	}
	var wm string
	var run uint64
	if progress == "" {
		return 0, nil
	}
	if _, err := fmt.Sscanf(progress, "%s %d", &wm, &run); err != nil {
		return 0, fmt.Errorf("identity progress %q: %w", progress, err)
	}
	return run, nil
}

// identityKeys returns an event's keys; system identities of spend events
// (anonymous_id "system:…") identify no one.
func identityKeys(crm, email, anon string) []string {
	var keys []string
	if crm != "" {
		keys = append(keys, "crm:"+crm)
	}
	if email != "" {
		keys = append(keys, "email:"+email)
	}
	if anon != "" && !strings.HasPrefix(anon, "system:") {
		keys = append(keys, "anon:"+anon)
	}
	return keys
}

func (r *Resolver) writeMap(ctx context.Context, ids, cust []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO identity_map (identifier, customer_id, updated_at)")
	if err != nil {
		return fmt.Errorf("write identity_map: %w", err)
	}
	times := make([]time.Time, len(ids))
	for i := range times {
		times[i] = now
	}
	for i, col := range []any{ids, cust, times} {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("write identity_map: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write %d rows to identity_map: %w", len(ids), err)
	}
	return nil
}

// writeMerges records customer ids that stopped being canonical and the customer each belongs to now.
func (r *Resolver) writeMerges(ctx context.Context, merges [][2]string, now time.Time) error {
	return r.writePairs(ctx, "INSERT INTO customer_merges (former, customer_id, updated_at)", "customer_merges", merges, now)
}

// writeTombstones marks merged customers in the 360 with the survivor.
func (r *Resolver) writeTombstones(ctx context.Context, ts [][2]string, now time.Time) error {
	return r.writePairs(ctx, "INSERT INTO customers (customer_id, merged_into, updated_at)", "merged customers", ts, now)
}

// writePairs inserts rows of (a, b, now) in one batch.
func (r *Resolver) writePairs(ctx context.Context, insert, what string, pairs [][2]string, now time.Time) error {
	if len(pairs) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	for _, p := range pairs {
		if err := batch.Append(p[0], p[1], now); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("write %s: %w", what, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write %d rows of %s: %w", len(pairs), what, err)
	}
	return nil
}

func (r *Resolver) saveWatermark(ctx context.Context, wm time.Time, run uint64, readAt, now time.Time) error {
	return r.saveState(ctx, "identity_progress", fmt.Sprintf("%s %020d %s", wm.Format(time.RFC3339), run, readAt.Format(time.RFC3339Nano)), now)
}

// saveState writes one key of transform_state.
func (r *Resolver) saveState(ctx context.Context, key, value string, now time.Time) error {
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO transform_state (key, value, updated_at)")
	if err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	if err := batch.Append(key, value, now); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("save %s: %w", key, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save %s: %w", key, err)
	}
	return nil
}

// customersSQL computes the 360 of customers from resolved_events: every
// event once, under the customer it belongs to now. The inner query
// aggregates each customer's events and keeps their campaign touches
// (time, channel, campaign); the outer one credits two conversions —
// becoming a lead and the first order — each to one touch within the
// lookback before it (%[1]s is min for first touch, max for last touch;
// ties go to the smaller channel, then campaign). Aliases are prefixed x_
// so that none shadows a column another aggregate reads.
var customersSQL = `INSERT INTO customers (customer_id, crm_contact_id, acquisition_channel, acquisition_campaign, acquisition_class,
  lead_channel, lead_campaign, lead_class, segment, country,
  stage, orders, revenue, channels_count, is_crm, churned, first_seen, last_seen, first_order_at, last_order_at,
  reached_lead_at, reached_mql_at, reached_sql_at, reached_opportunity_at, reached_customer_at, won_at,
  subscribed_at, churned_at, channels, campaigns, order_channels, merged_into, updated_at)
SELECT
  x_customer, x_crm_contact_id,
  tupleElement(x_acquired_by, 2), tupleElement(x_acquired_by, 3), transform(tupleElement(x_acquired_by, 2), ?, ?, ''),
  tupleElement(x_lead_by, 2), tupleElement(x_lead_by, 3), transform(tupleElement(x_lead_by, 2), ?, ?, ''),
  x_segment, x_country, x_stage, x_orders, x_revenue, x_channels_count, x_is_crm, x_churned, x_first_seen, x_last_seen,
  x_first_order_at, x_last_order_at, x_reached_lead_at, x_reached_mql_at, x_reached_sql_at, x_reached_opportunity_at,
  x_reached_customer_at, x_won_at, x_subscribed_at, x_churned_at, x_channels, x_campaigns, x_order_channels, '', toDateTime(?)
FROM (
SELECT *,
  -- replicate: a lambda here cannot read a column of the aggregate below on ClickHouse 18.16.
  arrayReduce('%[1]s', arrayFilter((t, at) -> tupleElement(t, 1) <= at AND tupleElement(t, 1) >= at - ?, x_touches, replicate(x_first_order_at, x_touches))) AS x_acquired_by,
  arrayReduce('%[1]s', arrayFilter((t, at) -> tupleElement(t, 1) <= at AND tupleElement(t, 1) >= at - ?, x_touches, replicate(x_reached_lead_at, x_touches))) AS x_lead_by
FROM (
SELECT
  customer AS x_customer,
  argMinIf(crm_contact_id, occurred_at, crm_contact_id != '') AS x_crm_contact_id,
  argMaxIf(segment, occurred_at, segment != '') AS x_segment,
  argMaxIf(country, occurred_at, country != '') AS x_country,
  arrayElement(['', 'lead', 'mql', 'sql', 'opportunity', 'customer'], toUInt8(max(stage_rank)) + 1) AS x_stage,
  toUInt32(uniqExactIf(entity_id, type = 'order.placed')) AS x_orders,
  sumIf(amount, type = 'order.placed') - sumIf(amount, type = 'order.refunded') AS x_revenue,
  toUInt32(uniqExactIf(touch_channel, touch_channel != '')) AS x_channels_count,
  toUInt8(max(crm_contact_id != '')) AS x_is_crm,
  toUInt8(maxIf(occurred_at, type = 'subscription.cancelled') > maxIf(occurred_at, type = 'subscription.started') AND countIf(type = 'subscription.started') > 0) AS x_churned,
  min(occurred_at) AS x_first_seen,
  max(occurred_at) AS x_last_seen,
  if(countIf(type = 'order.placed') > 0, minIf(occurred_at, type = 'order.placed'), toDateTime(?)) AS x_first_order_at,
  if(countIf(type = 'order.placed') > 0, maxIf(occurred_at, type = 'order.placed'), toDateTime(?)) AS x_last_order_at,
  if(countIf(stage_rank >= 1) > 0, minIf(occurred_at, stage_rank >= 1), toDateTime(?)) AS x_reached_lead_at,
  if(countIf(stage_rank >= 2) > 0, minIf(occurred_at, stage_rank >= 2), toDateTime(?)) AS x_reached_mql_at,
  if(countIf(stage_rank >= 3) > 0, minIf(occurred_at, stage_rank >= 3), toDateTime(?)) AS x_reached_sql_at,
  if(countIf(stage_rank >= 4) > 0, minIf(occurred_at, stage_rank >= 4), toDateTime(?)) AS x_reached_opportunity_at,
  if(countIf(stage_rank >= 5) > 0, minIf(occurred_at, stage_rank >= 5), toDateTime(?)) AS x_reached_customer_at,
  if(countIf(type = 'opportunity.closed' AND outcome = 'won') > 0, minIf(occurred_at, type = 'opportunity.closed' AND outcome = 'won'), toDateTime(?)) AS x_won_at,
  if(countIf(type = 'subscription.started') > 0, minIf(occurred_at, type = 'subscription.started'), toDateTime(?)) AS x_subscribed_at,
  if(countIf(type = 'subscription.started') > 0 AND maxIf(occurred_at, type = 'subscription.cancelled') > maxIf(occurred_at, type = 'subscription.started'),
     maxIf(occurred_at, type = 'subscription.cancelled'), toDateTime(?)) AS x_churned_at,
  groupUniqArrayIf(touch_channel, touch_channel != '') AS x_channels,
  groupUniqArrayIf(campaign_id, campaign_id != '') AS x_campaigns,
  groupUniqArrayIf(order_channel, type = 'order.placed' AND order_channel != '') AS x_order_channels,
  groupArrayIf((occurred_at, channel, campaign_id), is_touch) AS x_touches
FROM (
  SELECT type, occurred_at, crm_contact_id, channel, campaign_id, segment, country, entity_id, amount, outcome, order_channel,
    multiIf(type != 'lead.stage_changed', 0, stage = 'lead', 1, stage = 'mql', 2, stage = 'sql', 3, stage = 'opportunity', 4, stage = 'customer', 5, 0) AS stage_rank,
    ` + catalog.TouchChannelExpr + ` AS touch_channel,
    type IN (` + sqlStrings(catalog.TouchTypes()) + `) AND channel != '' AS is_touch,
    customer
  FROM (%[2]s)
  WHERE %[3]s
)
GROUP BY customer
)
)`

// customerColumns are the resolved_events columns the 360 reads.
var customerColumns = []string{"type", "occurred_at", "crm_contact_id", "channel", "campaign_id", "segment", "country", "entity_id", "amount", "outcome", "order_channel", "stage"}

// ChangedCustomersTable is the external table (one column, customer_id)
// that carries the customer ids CustomersQuery recomputes: sent beside the
// query, not inside its text, so any number of ids fits.
const ChangedCustomersTable = "changed_customers"

// CustomersQuery is the INSERT … SELECT that recomputes the 360 of the given
// customers, or of every customer when all is true.
func CustomersQuery(ids []string, all bool, now time.Time, settings catalog.Settings) (store.Query, error) {
	never := catalog.NeverTime()
	chans, classes := settings.ClassMap()
	lookback := settings.LookbackSeconds()
	args := []any{chans, classes, chans, classes, now, lookback, lookback, never, never, never, never, never, never, never, never, never, never}
	pick := "min"
	if settings.Attribution.Model == catalog.LastTouch {
		pick = "max"
	}
	if all {
		return store.Query{SQL: fmt.Sprintf(customersSQL, pick, ResolvedSQL(customerColumns, "", true), "customer != ''"), Args: args}, nil
	}
	table, err := ext.NewTable(ChangedCustomersTable, ext.Column("customer_id", "String"))
	if err != nil {
		return store.Query{}, err
	}
	for _, id := range ids {
		if err := table.Append(id); err != nil {
			return store.Query{}, fmt.Errorf("changed customers: %w", err)
		}
	}
	in := "(SELECT customer_id FROM " + ChangedCustomersTable + ")"
	// Read only the rows stored under these customers or under ids merged
	// into them, then keep those that belong to them now.
	pre := " WHERE customer_key IN (SELECT cityHash64(customer_id) FROM " + ChangedCustomersTable + ") OR customer_key IN (SELECT former_key FROM customer_merges WHERE customer_id IN " + in + ")"
	return store.Query{SQL: fmt.Sprintf(customersSQL, pick, ResolvedSQL(customerColumns, pre, true), "customer IN "+in), Args: args, External: []*ext.Table{table}}, nil
}

// recomputeCustomers recomputes the 360 of ids, or of every customer when
// full is set, and records the settings it used.
func (r *Resolver) recomputeCustomers(ctx context.Context, ids []string, full bool, now time.Time) error {
	if len(ids) == 0 && !full {
		return nil
	}
	q, err := CustomersQuery(ids, full, now, r.Settings)
	if err != nil {
		return err
	}
	if err := r.conn.Exec(clickhouse.Context(ctx, clickhouse.WithExternalTable(q.External...)), q.SQL, q.Args...); err != nil {
		return fmt.Errorf("recompute %d customers: %w", len(ids), err)
	}
	if full {
		// A full rebuild wrote a new version of every customer: merge them
		// now, so that reads with FINAL see one row per customer, not two.
		if err := r.conn.Exec(ctx, "OPTIMIZE TABLE customers FINAL"); err != nil && r.log != nil {
			r.log.Warn("could not merge the rebuilt customers table; KPIs over customers stay correct but slower until ClickHouse merges it", "err", err)
		}
	}
	if fp := r.Settings.Fingerprint(); fp != r.storedSettings {
		if err := r.saveState(ctx, "identity_settings", fmt.Sprintf("%020d %s", max(time.Now().UnixNano(), 0), fp), now); err != nil {
			return err
		}
		if r.log != nil && r.storedSettings != "" {
			r.log.Info("customer 360 recomputed for new attribution settings", "model", r.Settings.Attribution.Model, "lookback", r.Settings.Attribution.Lookback.String())
		}
		r.storedSettings = fp
	}
	return nil
}
