package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/store"
)

// erasureKey is the transform_state key Forget changes after it removed a
// customer: a running Resolver sees it at its next update and reloads the
// identity graph from the tables, so that its memory cannot bring the
// customer back. Its value is a sequence, never an id.
const erasureKey = "identity_erasure"

// Forgotten says what Forget removed.
type Forgotten struct {
	// CustomerID is the canonical id of the customer.
	CustomerID string
	// Keys is how many identity keys (crm:, email:, anon:) the customer had.
	Keys int
	// Rows counts the rows removed, by table; tables without any are absent.
	Rows map[string]uint64
}

// ForgetOptions tune Forget.
type ForgetOptions struct {
	// Settle is how long Forget keeps checking, after the removal, that no
	// row of the customer came back: an identity update that was running
	// then may still write what it had read before. Rows that reappear are
	// removed again. 0 checks once.
	Settle time.Duration
}

// Forget removes one customer everywhere kpibridge keeps them: their
// events, duplicates of those events, their dead letters (found by their
// ids and email hashes in the redacted payloads), their identity keys, the
// resolved events, merges and 360 rows. id is anything LookupCustomer
// takes; an email address is hashed with key. conn is connected to
// target's database. Each table loses the rows with an ALTER TABLE …
// DELETE mutation, and Forget waits until ClickHouse has applied it; on a
// cluster, on every shard of a sharded table and on every node
// (store.Alter, store.WaitMutations), so that once Forget returns no node
// holds the customer. The KPIs computed next no longer count the customer;
// KPI history already stored holds only totals, and stays.
func Forget(ctx context.Context, conn store.Conn, target store.Target, id string, key []byte, opts ForgetOptions) (Forgotten, error) {
	customer, matched, err := findCustomer(ctx, conn, id, key)
	if err != nil {
		return Forgotten{}, err
	}
	keys := []string{customer, matched}
	rows, err := conn.Query(ctx, "SELECT identifier FROM identity_map FINAL WHERE customer_id = ?", customer)
	if err != nil {
		return Forgotten{}, fmt.Errorf("keys of %s: %w", customer, err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return Forgotten{}, fmt.Errorf("keys of %s: %w", customer, err)
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Forgotten{}, fmt.Errorf("keys of %s: %w", customer, err)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	f := Forgotten{CustomerID: customer, Keys: len(keys), Rows: map[string]uint64{}}
	deadline := time.Now().Add(opts.Settle)
	late := 0 // passes after the settle time that still found rows
	for {
		removed, err := forgetPass(ctx, conn, target, keys, f.Rows)
		if err != nil {
			return f, fmt.Errorf("forget %s: %w", customer, err)
		}
		if removed > 0 {
			if err := markErasure(ctx, conn); err != nil {
				return f, err
			}
		}
		if !time.Now().Before(deadline) {
			if removed == 0 {
				return f, nil
			}
			if late++; late == 3 {
				return f, fmt.Errorf("forget %s: rows of the customer keep arriving (are their events still being produced?); run the command again once they stop", customer)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-time.After(min(time.Second, time.Until(deadline))):
		}
	}
}

// forgetPass removes every row the customer with keys has left, adding
// the counts to rows, and returns how many it removed.
func forgetPass(ctx context.Context, conn store.Conn, target store.Target, keys []string, rows map[string]uint64) (uint64, error) {
	eventIDs, err := customerEventIDs(ctx, conn, keys)
	if err != nil {
		return 0, err
	}
	var total uint64
	var mutated []string
	for _, c := range ForgetConditions(keys, eventIDs) {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+c.Table+" WHERE "+c.SQL, c.Args...).Scan(&n); err != nil {
			return total, fmt.Errorf("count rows of %s: %w", c.Table, err)
		}
		if n == 0 {
			continue
		}
		if err := store.Alter(ctx, conn, target, c.Table, store.Query{SQL: "DELETE WHERE " + c.SQL, Args: c.Args}); err != nil {
			return total, fmt.Errorf("delete from %s: %w", c.Table, err)
		}
		rows[c.Table] += n
		total += n
		mutated = append(mutated, c.Table)
	}
	if err := store.WaitMutations(ctx, conn, target, mutated...); err != nil {
		return total, err
	}
	return total, nil
}

// customerEventIDs are the ids of the events that carry one of keys.
func customerEventIDs(ctx context.Context, conn store.Conn, keys []string) ([]string, error) {
	cond := eventKeysCondition(keys)
	rows, err := conn.Query(ctx, "SELECT DISTINCT event_id FROM events WHERE "+cond.SQL, cond.Args...)
	if err != nil {
		return nil, fmt.Errorf("events of the customer: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("events of the customer: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// TableCondition is a WHERE condition, with its arguments, on one table.
type TableCondition struct {
	Table string
	store.Query
}

// ForgetConditions are, table by table, the conditions that select every
// row of the customer with the identity keys keys (crm:…, email:…,
// anon:…, the customer id among them) and the events eventIDs. Dead
// letters are found by their message key or by the ids and the redacted
// email form in their payload.
func ForgetConditions(keys, eventIDs []string) []TableCondition {
	crm, hashes, anon := splitKeys(keys)
	ev := eventKeysCondition(keys)
	resolved := or(ev, in("identifier", keys), in("customer", keys))
	var needles, msgKeys []string
	for _, h := range hashes {
		msgKeys = append(msgKeys, events.RedactedEmailPrefix+h)
		needles = append(needles, events.RedactedEmailPrefix+h)
	}
	for _, ids := range []struct {
		field string
		ids   []string
	}{{"crm_contact_id", crm}, {"anonymous_id", anon}} {
		for _, id := range ids.ids {
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(id)
			needles = append(needles, `"`+ids.field+`":"`+q+`"`, `"`+ids.field+`": "`+q+`"`)
			msgKeys = append(msgKeys, id)
		}
	}
	out := []TableCondition{
		{"events", ev},
		{"resolved_events", resolved},
		{"resolve_staging", resolved},
		{"identity_map", or(in("identifier", keys), in("customer_id", keys))},
		{"customer_merges", or(in("former", keys), in("customer_id", keys))},
		{"customers", or(in("customer_id", keys), in("merged_into", keys))},
	}
	if len(eventIDs) > 0 {
		out = append(out, TableCondition{"duplicates", in("event_id", eventIDs)})
	}
	if len(needles) > 0 {
		// One position() per needle: a lambda cannot read a column on
		// ClickHouse 18.16, nor is there multiSearchAny.
		conds := []store.Query{in("message_key", msgKeys)}
		for _, n := range needles {
			conds = append(conds, store.Query{SQL: "position(payload, ?) > 0", Args: []any{n}})
		}
		out = append(out, TableCondition{"dead_letters", or(conds...)})
	}
	return out
}

// eventKeysCondition selects the events that carry one of keys.
func eventKeysCondition(keys []string) store.Query {
	crm, hashes, anon := splitKeys(keys)
	return or(in("crm_contact_id", crm), in("email_hash", hashes), in("anonymous_id", anon))
}

// splitKeys returns the CRM ids, email hashes and anonymous ids of keys.
func splitKeys(keys []string) (crm, hashes, anon []string) {
	for _, k := range keys {
		kind, v, _ := strings.Cut(k, ":")
		switch kind {
		case "crm":
			crm = append(crm, v)
		case "email":
			hashes = append(hashes, v)
		case "anon":
			anon = append(anon, v)
		}
	}
	return crm, hashes, anon
}

// in is "column is one of values"; without values it matches nothing
// (ClickHouse 18.16 refuses has() of an empty array).
func in(column string, values []string) store.Query {
	if len(values) == 0 {
		return store.Query{SQL: "0"}
	}
	return store.Query{SQL: "has(?, " + store.QuoteIdent(column) + ")", Args: []any{values}}
}

// or joins conditions, each with its own arguments.
func or(qs ...store.Query) store.Query {
	var out store.Query
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = "(" + q.SQL + ")"
		out.Args = append(out.Args, q.Args...)
	}
	out.SQL = strings.Join(parts, " OR ")
	return out
}

// markErasure changes the erasure mark of transform_state.
func markErasure(ctx context.Context, conn store.Conn) error {
	err := conn.Exec(ctx, "INSERT INTO transform_state (key, value, updated_at) SELECT ?, ?, now()", erasureKey, fmt.Sprintf("%020d", time.Now().UnixNano()))
	if err != nil {
		return fmt.Errorf("record the erasure in transform_state: %w", err)
	}
	return nil
}

// erasureMark reads the erasure mark of transform_state ("" if none).
func erasureMark(ctx context.Context, conn store.Conn) (string, error) {
	var mark string
	if err := conn.QueryRow(ctx, "SELECT argMax(value, (updated_at, value)) FROM transform_state WHERE key = ?", erasureKey).Scan(&mark); err != nil {
		return "", fmt.Errorf("read the erasure mark: %w", err)
	}
	return mark, nil
}
