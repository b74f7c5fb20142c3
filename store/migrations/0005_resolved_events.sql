-- Valid events resolved to their customer, one row per event_id, kept by the
-- transform role's identity resolver: each update appends the events ingested
-- since the last one that are not here yet, with the customer they resolve to
-- at that moment. Customer-level KPIs scan this table instead of joining every
-- event to identity_map. A customer id that later merges into another is
-- redirected through customer_merges, and the rows themselves are never rewritten.
-- customer_key is a 64-bit hash of the customer id (0 for no identity):
-- distinct counts and joins on it are several times cheaper than on the
-- id, which is up to 70 characters. (Two of a million customers sharing a
-- hash has odds of about 1 in 36 million.)
-- resolve_run tags the rows one resolver update added, so that the next
-- update finishes the work of one that did not complete.
-- The ReplacingMergeTree key is a safety net only: the resolver inserts each
-- event_id once, so no query needs FINAL here.
CREATE TABLE IF NOT EXISTS resolved_events (
    event_id       String,
    type           String,
    occurred_at    DateTime('UTC'),
    source         String,
    channel        String,
    campaign_id    String,
    order_channel  String,
    platform       String,
    stage          String,
    outcome        String,
    segment        String,
    country        String,
    vendor         String,
    currency       String,
    entity_id      String,
    crm_contact_id String,
    email_hash     String,
    anonymous_id   String,
    topic          String,
    amount         Float64,
    impressions    UInt64,
    clicks         UInt64,
    ingested_at    DateTime('UTC'),
    identifier     String,
    customer       String,
    customer_key   UInt64 DEFAULT if(customer = '', 0, cityHash64(customer)),
    resolve_run    UInt64
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (type, occurred_at, event_id);

-- Customer ids that stopped being canonical (their customer merged into
-- another) and the customer they belong to now, transitively. Small: one row
-- per merge. Latest row per former id wins.
CREATE TABLE IF NOT EXISTS customer_merges (
    former       String,
    customer_id  String,
    updated_at   DateTime('UTC'),
    former_key   UInt64 DEFAULT cityHash64(former),
    customer_key UInt64 DEFAULT cityHash64(customer_id)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY former;

-- The same key on the customer 360, for joining customer attributes.
ALTER TABLE customers ADD COLUMN customer_key UInt64 DEFAULT cityHash64(customer_id);

-- Scratch space of the identity resolver: the new events of the update in
-- progress, frozen so that their keys are linked before they join
-- resolved_events under their final customer. Emptied by every update. On
-- disk, not in memory: after a bulk load it holds millions of events.
CREATE TABLE IF NOT EXISTS resolve_staging AS resolved_events
ENGINE = MergeTree
ORDER BY tuple();
