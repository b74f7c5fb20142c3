package identity

import (
	"fmt"
	"strings"
	"time"

	"github.com/kpibridge/kpibridge/catalog"
	"github.com/kpibridge/kpibridge/events"
	"github.com/kpibridge/kpibridge/store"
)

// ResolvedColumns are the event columns resolved_events keeps besides
// identifier and customer: every raw column of the events source, so any
// measure that needs the customer can read all it filters and groups on.
var ResolvedColumns = []string{"event_id", "type", "occurred_at", "source", "channel", "campaign_id", "order_channel", "platform",
	"stage", "outcome", "segment", "country", "vendor", "currency", "entity_id", "crm_contact_id", "email_hash", "anonymous_id",
	"topic", "amount", "impressions", "clicks", "stat_date", "ingested_at"}

// ResolvedSQL selects cols and customer_key (0 for no identity) from
// resolved_events rows matching where (a " WHERE …" clause on stored
// columns, or ""), with every customer that has since merged into another
// redirected to the customer it belongs to now; withID adds the customer id
// as customer.
func ResolvedSQL(cols []string, where string, withID bool) string {
	list := strings.Join(append(store.QuoteIdents(cols), ""), ", ") // each name followed by ", "
	outID, inID, mergedID := "", "", ""
	if withID {
		outID = ", if(merged_key != 0, merged_to, stored_customer) AS customer"
		inID = ", customer AS stored_customer"
		mergedID = ", customer_id AS merged_to"
	}
	return fmt.Sprintf("SELECT %sif(merged_key != 0, merged_key, stored_key) AS customer_key%s FROM (SELECT %scustomer_key AS stored_key%s FROM resolved_events%s) AS stored ANY LEFT JOIN (SELECT former_key AS stored_key, customer_key AS merged_key%s FROM customer_merges FINAL) AS merges USING stored_key",
		list, outID, list, inID, where, mergedID)
}

// sqlStrings writes schema constants (event types) as SQL string literals.
func sqlStrings(vals []string) string {
	quoted := make([]string, len(vals))
	for i, v := range vals {
		quoted[i] = "'" + v + "'"
	}
	return strings.Join(quoted, ", ")
}

// eventList is ResolvedColumns quoted and comma-separated.
var eventList = strings.Join(store.QuoteIdents(ResolvedColumns), ", ")

// stageEventsSQL freezes in resolve_staging the events ingested in
// [from, upper] that resolved_events does not hold yet, each once: %[1]s
// is the column list, %[2]s the query of resolved_events to check against.
var stageEventsSQL = `INSERT INTO resolve_staging (%[1]s, identifier)
SELECT %[1]s, ` + catalog.IdentifierExpr + `
FROM events
WHERE ingested_at >= ? AND ingested_at <= ?
  AND type NOT IN (` + sqlStrings(events.CorrectableTypes()) + `)
  AND (type, occurred_at, event_id) %[3]sNOT IN (%[2]s)
LIMIT 1 BY event_id`

// Reports (campaign.daily_stats, martech.cost) are not staged: they
// identify no person, and a correction replaces them (events.Correctable),
// so KPIs read their latest version from events.
//
// StageEventsQuery is the INSERT … SELECT that fills resolve_staging with
// the new events ingested in [from, upper]. A window checks only
// resolved_events rows that match its own events (cheap while the window
// is small); full checks against every row, which is cheaper than that
// when the window holds everything.
//
// distributed says events is a Distributed table (a cluster): the check
// then runs once, where the query is sent (GLOBAL), since resolved_events is
// replicated whole to every node but a shard runs its part of the query
// outside the database (docs/SCALING.md).
func StageEventsQuery(from, upper time.Time, full, distributed bool) store.Query {
	global := ""
	if distributed {
		global = "GLOBAL "
	}
	if full {
		return store.Query{SQL: fmt.Sprintf(stageEventsSQL, eventList, "SELECT type, occurred_at, event_id FROM resolved_events", global), Args: []any{from, upper}}
	}
	check := "SELECT type, occurred_at, event_id FROM resolved_events WHERE (type, occurred_at, event_id) IN (SELECT type, occurred_at, event_id FROM events WHERE ingested_at >= ? AND ingested_at <= ?)"
	return store.Query{SQL: fmt.Sprintf(stageEventsSQL, eventList, check, global), Args: []any{from, upper, from, upper}}
}

// resolveStagedSQL moves the staged events to resolved_events, each under
// the customer its identity key maps to (the key itself when it has none),
// tagged with the update's run. Staged rows resolved_events already holds
// are left out: a re-delivered copy can be stored while staging checks.
const resolveStagedSQL = `INSERT INTO resolved_events (%[1]s, identifier, customer, resolve_run)
SELECT %[1]s, identifier, if(mapped_customer != '', mapped_customer, identifier), ?
FROM resolve_staging
ANY LEFT JOIN (
  SELECT identifier, customer_id AS mapped_customer FROM identity_map FINAL
  WHERE identifier IN (SELECT identifier FROM resolve_staging)
) AS idmap USING identifier
WHERE (type, occurred_at, event_id) NOT IN (
  SELECT type, occurred_at, event_id FROM resolved_events
  WHERE (type, occurred_at, event_id) IN (SELECT type, occurred_at, event_id FROM resolve_staging))`

// ResolveStagedQuery is the INSERT … SELECT that moves resolve_staging to
// resolved_events, tagging the rows with run.
func ResolveStagedQuery(run uint64) store.Query {
	return store.Query{SQL: fmt.Sprintf(resolveStagedSQL, eventList), Args: []any{run}}
}
