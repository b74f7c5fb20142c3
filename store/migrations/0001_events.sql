-- Valid events, one row per event_id after merges. Query with FINAL, or count
-- uniqExact(event_id), to see each event once before ClickHouse merges duplicates.
CREATE TABLE IF NOT EXISTS events (
    event_id        String,
    type            String,
    occurred_at     DateTime('UTC'),
    source          String,
    crm_contact_id  String,
    anonymous_id    String,
    email_hash      String,
    campaign_id     String,
    channel         String,
    amount          Float64,
    amount_original Float64,
    currency        String,
    entity_id       String,
    stage           String,
    outcome         String,
    order_channel   String,
    platform        String,
    segment         String,
    country         String,
    vendor          String,
    url             String,
    referrer        String,
    stat_date       Date,
    impressions     UInt64,
    clicks          UInt64,
    properties      String,
    topic           String,
    `partition`     Int32,
    `offset`        Int64,
    ingested_at     DateTime('UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (type, event_id);
