-- Re-sent events that ingest recognised (same event_id seen recently) and did
-- not write to events again: the basis of the duplicate-rate KPI. One row per
-- Kafka message; a retried insert is harmless.
CREATE TABLE IF NOT EXISTS duplicates (
    event_id    String,
    type        String,
    source      String,
    topic       String,
    `partition` Int32,
    `offset`    Int64,
    seen_at     DateTime('UTC')
) ENGINE = ReplacingMergeTree(seen_at)
PARTITION BY toYYYYMM(seen_at)
ORDER BY (topic, `partition`, `offset`);
